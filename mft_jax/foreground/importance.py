"""Self-normalised importance sampling of the single-neuron law from the prior.

``init`` draws ``w_i ~ N(0, sw2 I)`` once; every ``update`` reweights the SAME draws
(common random numbers, so the fixed-point map is deterministic and Anderson applies):

    log_weight_i = c |S(w_i)|^2,    log_partition = log (1/M) sum_i exp(c |S(w_i)|^2)

the latter estimating ``log E_prior[exp(c |S(w)|^2)]``. Diagnostics: Kish's effective sample
size ``ess`` (M for equal weights); ``importance_warning`` puts a tiny ESS in words.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.errors import ConfigError
from mft_jax.foreground import Sampler
from mft_jax.neurons import NeuronLaw

MIN_ESS = 100.0  # below this the law is resolved by too few prior draws


class ImportanceState(NamedTuple):
    w: jax.Array  # (M, d) fixed prior draws
    diagnostics: dict


def importance_sampler(num_samples: int = 100_000) -> Sampler:
    """Importance sampler with ``num_samples`` fixed draws from the prior ``N(0, sw2 I)``."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 2:
        raise ConfigError(f"num_samples must be an integer >= 2, got {num_samples!r}")

    def init(key, model, data) -> ImportanceState:
        w = math.sqrt(model.sw2) * jax.random.normal(key, (num_samples, data.input_dim), data.x.dtype)
        zero = jnp.zeros((), data.x.dtype)
        return ImportanceState(w, _diagnostics(zero, jnp.asarray(num_samples, data.x.dtype)))

    def update(state: ImportanceState, model, data, residual):
        log_weight = model.log_tilt(state.w, data, residual)
        law = NeuronLaw(state.w, log_weight)
        log_partition = jax.nn.logsumexp(log_weight) - jnp.log(log_weight.shape[0])
        return law, state._replace(diagnostics=_diagnostics(log_partition, law.effective_sample_size()))

    return Sampler("importance", init, update)


def _diagnostics(log_partition, ess) -> dict:
    return {"log_partition": log_partition, "ess": ess}


def importance_warning(diagnostics: dict, num_samples: int) -> str | None:
    """Words for an effective sample size too small to trust, or None."""
    ess = float(diagnostics.get("ess", num_samples))
    if ess >= min(MIN_ESS, 0.5 * num_samples):
        return None
    return (
        f"importance sampling kept an effective sample size of {ess:.1f} of {num_samples} prior draws "
        f"(< {MIN_ESS:g}): the neuron law is far from the prior; raise num_samples or use sampler 'grid' / 'mcmc'"
    )
