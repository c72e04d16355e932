"""Replica-exchange (parallel-tempering) MALA sampler of the single-neuron law, for laws with separated wells.

Target: ``log rho(w) = log_prior_w(w) + c |S(w)|^2`` (``model.log_density``), as ``mft_jax.theory.samplers.mcmc``.
Plain MALA chains stay in the well they start in when ``rho`` has two wells behind a barrier of many nats
(the zero and the learned saddles of a square network, docs/theory.md section 9): their law is then the
law of the start, not ``rho``. Here every chain has ``num_levels`` replicas at inverse temperatures

    1 = b_0 > b_1 > ... > b_(K-1) = min_inverse_temperature   (geometric),

replica k targeting ``rho(w)^(b_k)`` (normalizable for every ``b_k > 0`` whenever ``rho`` is: the same tails,
flattened), so the barrier is ``b_k`` times lower at level k. Each step moves every replica by one MALA step
(its own adapted step size ``h_k``) and then proposes to exchange the positions of neighbouring levels
``(k, k+1)`` (even k on even steps, odd k on odd steps: the deterministic even-odd scheme) with the Metropolis
probability

    min(1, exp[(b_k - b_(k+1)) (log rho(w_(k+1)) - log rho(w_k))]),

which leaves the product of the K tempered laws invariant; the level-0 replicas are draws of ``rho``. Each
``update`` warm-starts from the last positions, runs ``num_warmup`` steps adapting every ``h_k`` toward
``target_acceptance`` (``log h_k <- log h_k + adaptation_rate (acceptance_k - target)``), then ``num_steps``
steps at fixed ``h_k``, and returns the level-0 positions (``num_chains`` equally weighted particles).

Diagnostics (``TemperedInfo``): MALA ``acceptance_rate`` at level 0, the smallest neighbour ``swap_rate`` (a
ladder with a pair that never swaps is two separate samplers: add levels), ``round_trips`` (replicas that went
from level 0 to the hottest level and back, per chain: the rate at which the ladder carries a chain across the
barrier), and the level-0 ``ess``/``autocorrelation_time``/``mixed`` of the same four summary traces as MCMC.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.data import Dataset
from mft_jax.theory.samplers import Sampler
from mft_jax.theory.samplers._mala import (TARGET_ACCEPTANCE, adapted, chains as mala_chains, check_float, check_int, min_ess,
                                           longer_chains, mixing, refuse_runaway, short_chains,
                                           summary_trace)
from mft_jax.theory.samplers.mcmc import _log_density_fn
from mft_jax.neurons import NeuronLaw
from mft_jax.resources import require

MIN_SWAP_RATE = 0.05  # below this a neighbour pair hardly exchanges: the ladder is too coarse


class TemperedInfo(NamedTuple):
    acceptance_rate: jax.Array  # MALA acceptance at level 0 (b = 1), mean over chains and sampling steps
    swap_rate: jax.Array  # smallest mean exchange acceptance over the neighbour pairs
    round_trips: jax.Array  # level 0 -> hottest -> level 0 trips completed, per chain, during the sampling steps
    step_size: jax.Array  # the adapted MALA step at level 0
    ess: jax.Array  # smallest Geyer ESS of the level-0 summary traces
    autocorrelation_time: jax.Array  # num_chains num_steps / ess, in steps
    mixed: jax.Array  # 1.0 if num_warmup + num_steps >= 20 autocorrelation times


class TemperedState(NamedTuple):
    """Replica positions (num_levels, num_chains, d), the next key, per-level step sizes (num_levels,), the info."""

    position: jax.Array
    key: jax.Array
    step_size: jax.Array
    info: TemperedInfo


@dataclasses.dataclass(frozen=True)
class TemperedSampler(Sampler):
    """``num_chains`` replica-exchange MALA ladders of ``rho(w)`` (see ``tempered_sampler``)."""

    num_chains: int
    num_steps: int
    num_warmup: int
    num_levels: int
    min_inverse_temperature: float
    target_acceptance: float
    adaptation_rate: float
    name: ClassVar[str] = "tempered"
    stochastic: ClassVar[bool] = True

    def inverse_temperatures(self) -> np.ndarray:
        """``b_k = min_inverse_temperature^(k/(K-1))``, k = 0..K-1: 1 down to the hottest level."""
        return self.min_inverse_temperature ** (np.arange(self.num_levels) / (self.num_levels - 1))

    def init(self, key: jax.Array, model, data: Dataset) -> TemperedState:
        replicas = float(self.num_chains) * self.num_levels
        require(replicas * (4 * data.num_points + 8 * data.input_dim + 4 * self.num_steps) * np.dtype(data.x.dtype).itemsize,
                f"the tempered sampler's {self.num_chains} chains x {self.num_levels} levels x {data.num_points} data points",
                "num_chains, num_levels (or the data size)")
        prior_key, key = jax.random.split(key)
        b = jnp.asarray(self.inverse_temperatures(), data.x.dtype)
        # the Gaussian part of rho^b has variance sw2 / b: start each level there
        noise = jax.random.normal(prior_key, (self.num_levels, self.num_chains, data.input_dim), data.x.dtype)
        position = noise * jnp.sqrt(model.sw2 / b)[:, None, None]
        h = (0.5 * model.sw2 * data.input_dim ** (-1 / 3)) / b  # MALA's scaling at each level's width
        zero = jnp.zeros((), data.x.dtype)
        info = TemperedInfo(zero, zero, zero, h[0], jnp.asarray(1.0, data.x.dtype), zero, zero)  # filled in by update
        return TemperedState(position, key, h.astype(data.x.dtype), info)

    def update(self, state: TemperedState, model, data: Dataset, residual: jax.Array):
        b = jnp.asarray(self.inverse_temperatures(), state.position.dtype)
        position, log_density, key, h, acceptance, swap, trips, ess = _run_ladder(
            self, model, data, residual, state.position, state.key, state.step_size, b
        )
        refuse_runaway(log_density, "tempered", "replicas")
        info = TemperedInfo(acceptance, swap, trips, h[0], ess, *mixing(self, ess))
        return NeuronLaw.from_samples(position[0]), TemperedState(position, key, h, info)

    def warnings(self, info: TemperedInfo, law) -> list[str]:
        words = []
        if float(info.swap_rate) < MIN_SWAP_RATE:
            words.append(
                f"a neighbour pair of the tempering ladder exchanged in only {float(info.swap_rate):.3g} of the proposals "
                f"(< {MIN_SWAP_RATE}): the ladder is too coarse there; raise num_levels"
            )
        return words + short_chains(self, info, "the level-0 chains")

    def escalated(self, info: TemperedInfo) -> TemperedSampler | None:
        """Level-0 chains not mixed: twice the ``num_steps`` per update (a coarse ladder is not fixed by this); else None."""
        return longer_chains(self, info)


def _exchange(key, parity, b, position, logdensity, grad):
    """Propose swaps of levels ``(k, k+1)`` for ``k = parity, parity + 2, ...``; return the new replicas and the
    acceptance per pair (K - 1, M) (zero for pairs not proposed). ``logdensity``/``grad`` are those of ``rho^b_k``."""
    num_levels = b.shape[0]
    base = logdensity / b[:, None]  # log rho per replica: (K, M)
    log_ratio = (b[:-1, None] - b[1:, None]) * (base[1:] - base[:-1])  # (K-1, M)
    proposed = (jnp.arange(num_levels - 1) % 2 == parity)[:, None]
    accept_prob = jnp.where(proposed, jnp.minimum(1.0, jnp.exp(log_ratio)), 0.0)
    accepted = jax.random.uniform(key, log_ratio.shape) < accept_prob  # (K-1, M)
    up = jnp.concatenate([accepted, jnp.zeros_like(accepted[:1])])  # level k swaps with k + 1
    down = jnp.concatenate([jnp.zeros_like(accepted[:1]), accepted])  # level k swaps with k - 1
    source = jnp.arange(num_levels)[:, None] + up.astype(jnp.int32) - down.astype(jnp.int32)  # (K, M)
    take = lambda z: jnp.take_along_axis(z, source.reshape(source.shape + (1,) * (z.ndim - 2)), axis=0)
    new_base, new_grad = take(base), take(grad / b[:, None, None])
    return take(position), new_base * b[:, None], new_grad * b[:, None, None], accept_prob, source


@functools.partial(jax.jit, static_argnums=(0,))
def _run_ladder(settings: TemperedSampler, model, data, residual, position, key, step_size, b):
    """Warm-up (adapting each level's h) then sampling; level-0 traces for the ESS; swap rates and round trips."""
    log_rho = _log_density_fn(model, data, residual)
    K, M = settings.num_levels, settings.num_chains

    def init_level(positions, bk):
        return mala_chains(lambda z: bk * log_rho(z))[0](positions)

    def move_level(keys, states, h, bk):
        return mala_chains(lambda z: bk * log_rho(z))[1](keys, states, h)

    def step(carry, inputs):
        states, log_h, label, trips = carry
        key, parity = inputs
        move_key, swap_key = jax.random.split(key)
        states, info = jax.vmap(move_level)(jax.random.split(move_key, K * M).reshape(K, M), states, jnp.exp(log_h), b)
        position, logdensity, grad, swap_prob, source = _exchange(
            swap_key, parity, b, states.position, states.logdensity, states.logdensity_grad
        )
        states = states._replace(position=position, logdensity=logdensity, logdensity_grad=grad)
        # round trips: a replica's label is 1 once it has touched the hottest level since it last left level 0
        label = jnp.take_along_axis(label, source, axis=0)
        label = label.at[-1].set(1)
        trips = trips + jnp.sum(label[0])  # arriving at level 0 with the label set ends a trip
        label = label.at[0].set(0)
        return (states, log_h, label, trips), (jnp.mean(info.acceptance_rate, axis=1), swap_prob)

    def warmup_step(carry, inputs):
        (states, log_h, label, trips), (acceptance, _) = step(carry, inputs)
        log_h = adapted(log_h, acceptance, settings.target_acceptance, settings.adaptation_rate)
        return (states, log_h, label, trips), None

    def sampling_step(carry, inputs):
        carry, (acceptance, swap_prob) = step(carry, inputs)
        states = carry[0]
        trace = summary_trace(model, data, residual, states.position[0], states.logdensity[0])
        return carry, (trace, acceptance[0], swap_prob)

    states = jax.vmap(init_level)(position, b)
    label = jnp.zeros((K, M), jnp.int32)
    key, warmup_key, sampling_key = jax.random.split(key, 3)
    parities = lambda n: jnp.arange(n) % 2
    carry = (states, jnp.log(step_size), label, jnp.zeros((), jnp.int32))
    carry, _ = jax.lax.scan(warmup_step, carry, (jax.random.split(warmup_key, settings.num_warmup), parities(settings.num_warmup)))
    states, log_h, label, _ = carry
    carry = (states, log_h, label, jnp.zeros((), jnp.int32))
    (states, log_h, _, trips), (trace, acceptance, swap_prob) = jax.lax.scan(
        sampling_step, carry, (jax.random.split(sampling_key, settings.num_steps), parities(settings.num_steps))
    )
    ess = min_ess(trace)
    # each pair is proposed every other step: its rate is the mean over the steps it was proposed on
    pair_rate = 2.0 * jnp.mean(swap_prob, axis=(0, 2))  # (K-1,)
    return (states.position, states.logdensity, key, jnp.exp(log_h), jnp.mean(acceptance), jnp.min(pair_rate),
            trips.astype(position.dtype) / M, ess)


def tempered_sampler(
    num_chains: int = 1024,
    num_steps: int = 100,
    *,
    num_levels: int = 12,
    min_inverse_temperature: float = 0.05,
    num_warmup: int = 50,
    target_acceptance: float = TARGET_ACCEPTANCE,
    adaptation_rate: float = 1.0,
) -> TemperedSampler:
    """A ``Sampler`` of ``rho(w)`` by replica-exchange MALA: ``num_chains`` ladders of ``num_levels`` replicas at
    inverse temperatures from 1 down to ``min_inverse_temperature`` (geometric).

    Use it when ``rho`` has wells that plain MALA (``mcmc_sampler``) does not cross: the hottest level sees the
    barrier ``min_inverse_temperature`` times lower. The ladder works when every neighbour pair exchanges often
    (``info.swap_rate``, warned below 0.05: the spacing should shrink like ``1/sqrt(d)``) and replicas make
    round trips (``info.round_trips``). Cost: ``num_levels`` times that of ``mcmc_sampler`` with the same chains.
    """
    return TemperedSampler(
        num_chains=check_int("num_chains", num_chains, 2, "tempered"),
        num_steps=check_int("num_steps", num_steps, 4, "tempered"),
        num_warmup=check_int("num_warmup", num_warmup, 0, "tempered"),
        num_levels=check_int("num_levels", num_levels, 2, "tempered"),
        min_inverse_temperature=check_float("min_inverse_temperature", min_inverse_temperature, 0.0, 1.0, "tempered"),
        target_acceptance=check_float("target_acceptance", target_acceptance, 0.0, 1.0, "tempered"),
        adaptation_rate=0.0 if adaptation_rate == 0 else check_float("adaptation_rate", adaptation_rate, 0.0, math.inf, "tempered"),
    )
