"""The MALA machinery shared by the MCMC samplers (``mcmc``, ``tempered``, ``layers.tempered_move``): blackjax's
MALA kernel vectorised over chains, the Robbins-Monro adaptation of the shared step size, the effective sample
size of summary traces and the mixing verdict, the argument checks of the factories.

Step-size rule (stochastic approximation on the log step size, one ``h`` shared by the chains):

    log h <- log h + rate (mean acceptance over chains - target_acceptance)

``TARGET_ACCEPTANCE = 0.574`` is MALA's asymptotic optimum (Roberts & Rosenthal 1998). Steps at a fixed ``h`` are
an exact MALA kernel for the target; the adaptation runs only in warm-up. The ESS is blackjax's (Geyer) over
chains x steps, and the chains count as mixed when they ran ``MIXING_FACTOR`` autocorrelation times.
"""

from __future__ import annotations

import dataclasses

import math

import blackjax
import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.errors import ConfigError, NonFiniteError

TARGET_ACCEPTANCE = 0.574  # MALA's asymptotically optimal acceptance rate
MIXING_FACTOR = 20  # chains count as mixed when their run is >= this many autocorrelation times


def chains(log_density):
    """``(init, step)`` of blackjax MALA chains of ``log_density`` (a scalar function of one position), vectorised:
    ``init(positions (M, d)) -> states`` and ``step(keys (M,), states, h) -> (states, info)`` with one shared ``h``."""
    kernel = blackjax.mala.build_kernel()
    init = jax.vmap(lambda w: blackjax.mala.init(w, log_density))
    step = jax.vmap(lambda k, state, h: kernel(k, state, log_density, h), in_axes=(0, 0, None))
    return init, step


def adapted(log_h, acceptance, target_acceptance, rate=1.0):
    """``log h + rate (acceptance - target_acceptance)``: one Robbins-Monro step of the log step size."""
    return log_h + rate * (acceptance - target_acceptance)


def summary_trace(model, data, residual, position, logdensity):
    """Per chain, the four summary statistics whose traces give the ESS: ``w_1``, ``|w|^2``, ``S_1(w)`` (the signed
    ones see hopping between the mirror-image lobes of ``rho``) and ``log rho(w)``: (num_chains, 4)."""
    overlap = model.overlap(position, data, residual)
    return jnp.stack([position[:, 0], jnp.sum(position**2, -1), overlap[:, 0], logdensity], axis=-1)


def min_ess(trace):
    """The smallest blackjax (Geyer) effective sample size over the statistics of a (steps, chains, k) trace."""
    return jnp.min(blackjax.diagnostics.effective_sample_size(trace, chain_axis=1, sample_axis=0))


def mixing(settings, ess):
    """``(autocorrelation_time, mixed)``: ``num_chains num_steps / ess`` in steps, and 1.0 if ``num_warmup + num_steps``
    is at least ``MIXING_FACTOR`` of them (``settings``: any sampler with those three fields)."""
    autocorrelation_time = settings.num_chains * settings.num_steps / ess
    mixed = (settings.num_warmup + settings.num_steps >= MIXING_FACTOR * autocorrelation_time).astype(ess.dtype)
    return autocorrelation_time, mixed


def short_chains(settings, info, chains: str) -> list[str]:
    """The warning for chains shorter than ``MIXING_FACTOR`` autocorrelation times (``info.mixed`` < 1), else []."""
    if float(info.mixed) >= 1.0:
        return []
    return [
        f"{chains} ran {settings.num_warmup + settings.num_steps} steps, fewer than {MIXING_FACTOR} autocorrelation "
        f"times ({float(info.autocorrelation_time):.3g} steps each): the law may not be mixed; raise num_steps"
    ]


def refuse_runaway(log_density, sampler: str, chains: str, step_size=None) -> None:
    """``NonFiniteError`` in words if any final ``log rho`` (one per chain, any shape) is not finite; skipped under tracing."""
    if isinstance(log_density, jax.core.Tracer):
        return
    runaway = int(jnp.sum(~jnp.isfinite(log_density)))
    if runaway:
        step = "" if step_size is None else f" (step size {float(step_size):.3g})"
        raise NonFiniteError(
            f"{sampler}: {runaway} of {log_density.size} {chains} reached a non-finite log rho(w){step}; the single-neuron law may be "
            "non-normalizable (unbounded activation, large coupling) or the step size too large"
        )


def check_int(name, value, minimum, sampler=""):
    """``value`` as an int ``>= minimum``, else a ``ConfigError`` naming it (prefixed by the sampler's name, if given)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{sampler + ' ' if sampler else ''}{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_float(name, value, low, high, sampler=""):
    """``value`` as a float in ``(low, high)``, else a ``ConfigError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not low < value < high:
        raise ConfigError(f"{sampler + ' ' if sampler else ''}{name} must be a number in ({low}, {high}), got {value!r}")
    return float(value)


def longer_chains(settings, info):
    """``settings`` with ``num_steps`` doubled if its chains are not mixed (``info.mixed`` < 1), else None: the
    ``Sampler.escalated`` of the MCMC and tempered samplers (their state, chain positions and step size, goes on)."""
    if float(info.mixed) >= 1.0:
        return None
    return dataclasses.replace(settings, num_steps=2 * settings.num_steps)
