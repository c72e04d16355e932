"""Self-normalised importance sampling of the single-neuron law from a fixed proposal law ``q`` (not the prior).

``init`` calls ``draw(key) -> (w, log_ratio)`` once: ``M`` draws ``w_i ~ q`` and ``log_ratio_i = log(prior(w_i)/q(w_i))
- log_norm`` (known up to the constant ``log_norm``, given apart). Every ``update`` reweights the SAME draws (common
random numbers: a deterministic map, Anderson and Newton apply):

    log_weight_i = c |S(w_i)|^2 + log_ratio_i,    log_partition = logsumexp(log_weight) - log M + log_norm,

the latter estimating ``log E_prior[exp(c |S(w)|^2)]`` restricted to where ``q`` puts its draws. With ``q`` the prior
(``log_ratio = 0``, ``log_norm = 0``) this is ``importance_sampler``. With ``q`` a law concentrated in one well of a
multi-well ``rho`` (e.g. the full-table modular law, ``mft_jax.theory.reduced.modular.sample_neurons``, whose
``prior/q = Z_full exp(-c_full |S_full|^2)`` is known exactly) the sampler holds ``rho`` in that well: the law and free
energy of one branch (a restricted ensemble), as the prior's draws hold the other.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from mft_jax.errors import ConfigError
from mft_jax.neurons import NeuronLaw
from mft_jax.theory.samplers import Sampler
from mft_jax.theory.samplers.importance import MIN_ESS


class ProposalInfo(NamedTuple):
    log_partition: jax.Array  # log E_prior[exp(c |S(w)|^2)] over the proposal's support
    ess: jax.Array  # Kish's effective sample size of the weights


class ProposalState(NamedTuple):
    w: jax.Array  # (M, d) fixed draws from q
    log_ratio: jax.Array  # (M,) log(prior/q) - log_norm at the draws
    info: ProposalInfo


@dataclasses.dataclass(frozen=True)
class ProposalSampler(Sampler):
    """Importance sampler with fixed draws from a proposal: ``draw(key) -> (w (M, d), log_ratio (M,))``, ``log_norm``."""

    draw: Callable
    log_norm: float = 0.0
    name: ClassVar[str] = "proposal"

    def __post_init__(self):
        if not callable(self.draw):
            raise ConfigError(f"proposal_sampler needs draw(key) -> (w, log_ratio); got {self.draw!r}")

    def init(self, key, model, data) -> ProposalState:
        w, log_ratio = self.draw(key)
        w, log_ratio = jnp.asarray(w, data.x.dtype), jnp.asarray(log_ratio, data.x.dtype)
        if w.ndim != 2 or w.shape[1] != data.input_dim or log_ratio.shape != (w.shape[0],):
            raise ConfigError(f"proposal draw must give w (M, {data.input_dim}) and log_ratio (M,); got {w.shape} and {log_ratio.shape}")
        zero = jnp.zeros((), data.x.dtype)
        return ProposalState(w, log_ratio, ProposalInfo(zero, jnp.asarray(w.shape[0], data.x.dtype)))

    def update(self, state: ProposalState, model, data, residual):
        log_weight = model.log_tilt(state.w, data, residual) + state.log_ratio
        law = NeuronLaw(state.w, log_weight)
        log_partition = jax.nn.logsumexp(log_weight) - jnp.log(log_weight.shape[0]) + self.log_norm
        return law, state._replace(info=ProposalInfo(log_partition, law.effective_sample_size()))

    def warnings(self, info: ProposalInfo, law) -> list[str]:
        ess = float(info.ess)
        if ess >= MIN_ESS:
            return []
        return [f"proposal importance sampling kept an effective sample size of {ess:.1f} (< {MIN_ESS:g}): the law has left "
                "the proposal's support; more draws or a proposal nearer the law"]


def proposal_sampler(draw: Callable, log_norm: float = 0.0) -> ProposalSampler:
    """Importance sampler with fixed draws ``w, log_ratio = draw(key)`` from a proposal ``q``; ``log_ratio + log_norm =
    log(prior/q)`` at the draws."""
    return ProposalSampler(draw, float(log_norm))


@dataclasses.dataclass(frozen=True)
class StartedSampler(Sampler):
    """A chain sampler (``mcmc_sampler``, ...) whose chains start at ``start(key) -> (M, d)`` instead of prior draws.

    With chains started in one well of a multi-well law and a barrier the chains do not cross in a run, the sampler
    holds that well: one branch of the law (e.g. ``start`` = draws of the full-table modular law, the learned wells).
    ``base.num_chains`` must equal M."""

    base: Sampler
    start: Callable
    name: ClassVar[str] = "started"

    @property
    def stochastic(self) -> bool:  # as the base sampler
        return self.base.stochastic

    def init(self, key, model, data):
        state = self.base.init(key, model, data)
        position = jnp.asarray(self.start(key), data.x.dtype)
        if position.shape != state.position.shape:
            raise ConfigError(f"started sampler: start(key) must give positions of shape {state.position.shape}; got {position.shape}")
        return state._replace(position=position)

    def update(self, state, model, data, residual):
        return self.base.update(state, model, data, residual)

    def warnings(self, info, law) -> list[str]:
        return self.base.warnings(info, law)


def started_sampler(base: Sampler, start: Callable) -> StartedSampler:
    """``base`` (a sampler whose state has ``position``) with its chains started at ``start(key)``."""
    return StartedSampler(base, start)
