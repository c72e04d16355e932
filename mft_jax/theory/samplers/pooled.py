"""Pool the particles of a stochastic sampler's last ``num_updates`` laws into one law.

The fixed-point map ``G(r) = (I + beta sa2 K Q)^-1 y`` is nonlinear in the kernel ``K``, so a kernel
estimated from M particles gives a residual biased at order 1/M, and a noisy one: where the gain on the
target is large (a network that has learned: ``1/a - 1 >> 1``) both are large. For modular addition at
P = 11 (beta = 3000, full table, at the exact fixed point ``a = 0.0867``) 256 tempered chains give
``a = 0.143`` and 1024 give 0.097, with off-target residual noise of 0.7 and 0.3 of the target part.
More particles per update cost sampling time; the chains' previous positions cost nothing. This wrapper
keeps a ring buffer of the inner sampler's last ``num_updates`` laws and returns their union (each law's
weights normalised, the laws weighted equally): ``num_updates x M`` particles for the price of M.

The pooled laws were drawn at the residuals of the last ``num_updates`` iterations; with damping ``alpha``
the residual moves by ``alpha |G(r) - r|`` per iteration, so at a fixed point the lag is at the noise level
and the pooled law is the law at the fixed point. Until the buffer is full the unfilled slots carry zero
weight. ``state.info`` is the inner sampler's info of the latest update; ``warnings`` are the inner's.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from mft_jax.errors import ConfigError
from mft_jax.theory.samplers import Sampler
from mft_jax.neurons import NeuronLaw


class PooledState(NamedTuple):
    """The inner sampler's state, the buffer of particles (num_updates, M, d) and their normalised log-weights
    (num_updates, M; -inf in unfilled slots), the next slot, and the inner info (``info``, for the solver)."""

    inner: Any
    w: jax.Array
    log_weight: jax.Array
    slot: jax.Array
    info: Any


@dataclasses.dataclass(frozen=True)
class PooledSampler(Sampler):
    """``inner``'s last ``num_updates`` laws as one (see ``pooled_sampler``)."""

    inner: Sampler
    num_updates: int
    name: ClassVar[str] = "pooled"
    stochastic: ClassVar[bool] = True

    def init(self, key: jax.Array, model, data) -> PooledState:
        inner = self.inner.init(key, model, data)
        shape = jax.eval_shape(lambda s: self.inner.update(s, model, data, jnp.zeros_like(data.y))[0], inner)
        w = jnp.zeros((self.num_updates,) + shape.w.shape, shape.w.dtype)
        log_weight = jnp.full((self.num_updates,) + shape.log_weight.shape, -jnp.inf, shape.log_weight.dtype)
        return PooledState(inner, w, log_weight, jnp.zeros((), jnp.int32), inner.info)

    def update(self, state: PooledState, model, data, residual: jax.Array):
        law, inner = self.inner.update(state.inner, model, data, residual)
        w = state.w.at[state.slot].set(law.w)
        log_weight = state.log_weight.at[state.slot].set(jax.nn.log_softmax(law.log_weight))
        pooled = NeuronLaw(w.reshape((-1,) + law.w.shape[1:]), log_weight.reshape(-1))
        return pooled, PooledState(inner, w, log_weight, (state.slot + 1) % self.num_updates, inner.info)

    def warnings(self, info, law) -> list[str]:
        return self.inner.warnings(info, law)

    def escalated(self, info) -> PooledSampler | None:
        """The inner sampler escalated (same pool), or None."""
        inner = self.inner.escalated(info)
        return None if inner is None else PooledSampler(inner, self.num_updates)


def pooled_sampler(inner: Sampler, num_updates: int = 8) -> PooledSampler:
    """Wrap a stochastic ``inner`` sampler so that each update returns the union of its last ``num_updates`` laws."""
    if not isinstance(inner, Sampler) or not inner.stochastic:
        raise ConfigError(f"pooled_sampler wraps a stochastic Sampler (mcmc, tempered); got {inner!r}")
    if isinstance(num_updates, bool) or not isinstance(num_updates, int) or num_updates < 1:
        raise ConfigError(f"pooled_sampler num_updates must be an integer >= 1, got {num_updates!r}")
    return PooledSampler(inner, num_updates)
