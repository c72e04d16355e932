"""MCMC single-neuron sampler: blackjax MALA chains targeting rho(w), vmapped over chains.

Target (docs/theory.md section 3): ``log rho(w) = -|w|^2/(2 sw2) + c |S(w)|^2`` = ``TwoLayer.log_density``.
``init`` draws ``num_chains`` positions from the prior ``N(0, sw2 I_d)``; each ``update`` warm-starts
the chains from their last positions, runs ``num_warmup`` MALA steps while adapting the shared step
size, then ``num_steps`` MALA steps at a fixed step size, and returns the final positions as an
equally weighted ``NeuronLaw`` (the chains are independent, so their final positions are
``num_chains`` independent draws once the chains have mixed).

Step-size rule during warm-up (stochastic approximation on the log step size, one shared ``h`` for
all chains): ``log h <- log h + adaptation_rate * (mean acceptance over chains - target_acceptance)``.
Sampling steps keep ``h`` fixed, so they are an exact MALA kernel for ``rho``.

Diagnostics (``state.info``, an ``MCMCInfo``): ``acceptance_rate`` (mean over chains and sampling steps),
``step_size``, and ``ess`` = the smallest blackjax (Geyer) effective sample size of the traces of
four summary statistics (``w_1``, ``|w|^2``, ``S_1(w)`` and ``log rho(w)``; the signed ones see
hopping between the mirror-image lobes of ``rho``) over chains x sampling steps;
``autocorrelation_time = num_chains num_steps / ess`` in steps. The returned law is only as good
as ``num_steps`` (plus warm-up) is long compared with the autocorrelation time, and ``mixed``
reports ``num_warmup + num_steps >= 20 autocorrelation_time``.
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
from mft_jax.theory.samplers._mala import (MIXING_FACTOR, TARGET_ACCEPTANCE, adapted, chains as mala_chains, check_float,  # noqa: F401
                                           check_int, longer_chains, min_ess, mixing, refuse_runaway, short_chains, summary_trace)
from mft_jax.theory.samplers import Sampler
from mft_jax.model import TwoLayer
from mft_jax.neurons import NeuronLaw
from mft_jax.resources import require
from mft_jax.train.sharding import spread


class MCMCInfo(NamedTuple):
    acceptance_rate: jax.Array  # mean over chains and sampling steps
    step_size: jax.Array  # the adapted MALA step h
    ess: jax.Array  # smallest Geyer ESS of the four summary traces
    autocorrelation_time: jax.Array  # num_chains num_steps / ess, in steps
    mixed: jax.Array  # 1.0 if num_warmup + num_steps >= 20 autocorrelation times


class MCMCState(NamedTuple):
    """Chain positions (num_chains, d), the PRNG key for the next update, the adapted step size, the info record."""

    position: jax.Array
    key: jax.Array
    step_size: jax.Array
    info: MCMCInfo


@dataclasses.dataclass(frozen=True)
class MCMCSampler(Sampler):
    """``num_chains`` independent blackjax MALA chains of ``rho(w)`` (see ``mcmc_sampler``)."""

    num_chains: int
    num_steps: int
    num_warmup: int
    step_size: float | None
    target_acceptance: float
    adaptation_rate: float
    name: ClassVar[str] = "mcmc"
    stochastic: ClassVar[bool] = True

    def init(self, key: jax.Array, model: TwoLayer, data: Dataset) -> MCMCState:
        require(float(self.num_chains) * (4 * data.num_points + 8 * data.input_dim + 4 * self.num_steps) * np.dtype(data.x.dtype).itemsize,
                f"the MCMC sampler's {self.num_chains} chains x {data.num_points} data points",
                "[solver] num_chains (or the data size)")
        prior_key, key = jax.random.split(key)
        position = math.sqrt(model.sw2) * jax.random.normal(prior_key, (self.num_chains, data.input_dim), data.x.dtype)
        h = self.step_size if self.step_size is not None else 0.5 * model.sw2 * data.input_dim ** (-1 / 3)
        h = jnp.asarray(h, data.x.dtype)
        zero = jnp.zeros((), data.x.dtype)
        position = spread(position, self.num_chains)  # chains over all local devices
        return MCMCState(position, key, h, _info(self, zero, h, jnp.asarray(1.0, data.x.dtype)))  # filled in by update

    def update(self, state: MCMCState, model: TwoLayer, data: Dataset, residual: jax.Array):
        position, log_density, key, h, acceptance, ess = _run_chains(
            self, model, data, residual, state.position, state.key, state.step_size
        )
        refuse_runaway(log_density, "mcmc", "chains", h)
        return NeuronLaw.from_samples(position), MCMCState(position, key, h, _info(self, acceptance, h, ess))

    def warnings(self, info: MCMCInfo, law) -> list[str]:
        return short_chains(self, info, "the MCMC chains")

    def escalated(self, info: MCMCInfo) -> MCMCSampler | None:
        """Chains that ran too few autocorrelation times (``info.mixed`` < 1): the same sampler with twice the
        ``num_steps`` per update (the state, chain positions and step size, goes on unchanged); else None."""
        return longer_chains(self, info)


def _check_int(name, value, minimum, sampler="mcmc"):
    return check_int(name, value, minimum, sampler)


def _check_float(name, value, low, high, sampler="mcmc"):
    return check_float(name, value, low, high, sampler)


def _log_density_fn(model: TwoLayer, data: Dataset, residual: jax.Array):
    """``w (d,) -> log rho(w)`` (unnormalised), the scalar function blackjax differentiates."""
    return lambda w: model.log_density(w[None, :], data, residual)[0]


@functools.partial(jax.jit, static_argnums=(0,))
def _run_chains(settings: MCMCSampler, model: TwoLayer, data, residual, position, key, step_size):
    """Warm-up (adapting ``step_size``) then sampling; returns positions, key, step size and traces."""
    log_density = _log_density_fn(model, data, residual)
    init, step = mala_chains(log_density)
    chains = init(position)

    def warmup_step(carry, key):
        chains, log_h = carry
        chains, info = step(jax.random.split(key, settings.num_chains), chains, jnp.exp(log_h))
        log_h = adapted(log_h, jnp.mean(info.acceptance_rate), settings.target_acceptance, settings.adaptation_rate)
        return (chains, log_h), None

    def sampling_step(chains, key):
        chains, info = step(jax.random.split(key, settings.num_chains), chains, h)
        trace = summary_trace(model, data, residual, chains.position, chains.logdensity)  # (num_chains, 4)
        return chains, (trace, jnp.mean(info.acceptance_rate))

    key, warmup_key, sampling_key = jax.random.split(key, 3)
    (chains, log_h), _ = jax.lax.scan(
        warmup_step, (chains, jnp.log(step_size)), jax.random.split(warmup_key, settings.num_warmup)
    )
    h = jnp.exp(log_h)
    chains, (trace, acceptance) = jax.lax.scan(sampling_step, chains, jax.random.split(sampling_key, settings.num_steps))
    return chains.position, chains.logdensity, key, h, jnp.mean(acceptance), min_ess(trace)


def _info(settings: MCMCSampler, acceptance, step_size, ess) -> MCMCInfo:
    return MCMCInfo(acceptance, step_size, ess, *mixing(settings, ess))


def mcmc_sampler(
    num_chains: int = 4096,
    num_steps: int = 100,
    step_size: float | None = None,
    *,
    num_warmup: int = 50,
    target_acceptance: float = TARGET_ACCEPTANCE,
    adaptation_rate: float = 1.0,
) -> MCMCSampler:
    """A ``Sampler`` of ``rho(w)`` by ``num_chains`` independent blackjax MALA chains.

    ``step_size``: the initial MALA step ``h`` (proposal ``w + h grad log rho + sqrt(2 h) xi``);
    default ``0.5 sw2 d^(-1/3)`` (MALA's optimal scaling in dimension d). ``num_warmup`` steps of
    each update adapt ``h`` toward ``target_acceptance`` (0.574 is MALA's asymptotic optimum) with
    gain ``adaptation_rate`` (0 switches adaptation off); ``num_steps`` further steps at fixed
    ``h`` are the sampling run. ``update`` raises ``NonFiniteError`` if a chain reaches a
    non-finite ``log rho`` (a runaway chain: the law may be non-normalizable, or ``h`` too large).
    """
    return MCMCSampler(
        num_chains=_check_int("num_chains", num_chains, 2),
        num_steps=_check_int("num_steps", num_steps, 4),  # Geyer's ESS needs a few samples per chain
        num_warmup=_check_int("num_warmup", num_warmup, 0),
        step_size=None if step_size is None else _check_float("step_size", step_size, 0.0, math.inf),
        target_acceptance=_check_float("target_acceptance", target_acceptance, 0.0, 1.0),
        adaptation_rate=0.0 if adaptation_rate == 0 else _check_float("adaptation_rate", adaptation_rate, 0.0, math.inf),
    )
