"""Self-normalised importance sampling of the single-neuron law from the prior.

``init`` draws ``w_i ~ N(0, sw2 I)`` once; every ``update`` reweights the SAME draws
(common random numbers, so the fixed-point map is deterministic and Anderson applies):

    log_weight_i = c |S(w_i)|^2,    log_partition = log (1/M) sum_i exp(c |S(w_i)|^2)

the latter estimating ``log E_prior[exp(c |S(w)|^2)]``. Diagnostics: Kish's effective sample
size ``ess`` (M for equal weights); ``ImportanceSampler.warnings`` puts a tiny ESS in words.
With a weight penalty the draws stay Gaussian and the weights gain ``-Gamma(w)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.errors import ConfigError
from mft_jax.theory.samplers import Sampler
from mft_jax.neurons import NeuronLaw
from mft_jax.resources import require

MIN_ESS = 100.0  # below this the law is resolved by too few prior draws


class ImportanceInfo(NamedTuple):
    log_partition: jax.Array  # log E_prior[exp(c |S(w)|^2)] from the same draws
    ess: jax.Array  # Kish's effective sample size of the weights


class ImportanceState(NamedTuple):
    w: jax.Array  # (M, d) fixed draws from N(0, sw2 I)
    info: ImportanceInfo


@dataclasses.dataclass(frozen=True)
class ImportanceSampler(Sampler):
    """Importance sampler with ``num_samples`` fixed draws from the Gaussian ``N(0, sw2 I)``."""

    num_samples: int = 100_000
    name: ClassVar[str] = "importance"

    def __post_init__(self):
        num_samples = self.num_samples
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 2:
            raise ConfigError(f"num_samples must be an integer >= 2, got {num_samples!r}")
        object.__setattr__(self, "num_samples", int(num_samples))

    def init(self, key, model, data) -> ImportanceState:
        require(float(self.num_samples) * (3 * data.num_points + 2 * data.input_dim) * np.dtype(data.x.dtype).itemsize,
                f"the importance sampler's {self.num_samples} draws x {data.num_points} data points",
                "[solver] num_samples (or the data size)")
        w = math.sqrt(model.sw2) * jax.random.normal(key, (self.num_samples, data.input_dim), data.x.dtype)
        zero = jnp.zeros((), data.x.dtype)
        return ImportanceState(w, ImportanceInfo(zero, jnp.asarray(self.num_samples, data.x.dtype)))

    def update(self, state: ImportanceState, model, data, residual):
        log_tilt = model.log_tilt(state.w, data, residual)
        log_mean = jnp.log(log_tilt.shape[0])
        if model.penalty is None:
            log_weight, log_prior_mass = log_tilt, 0.0
        else:  # draws from the Gaussian part: rho / gauss ~ exp(c |S|^2 - Gamma); E_prior = E_gauss[. e^-Gamma] / E_gauss[e^-Gamma]
            log_penalty = -model.penalty(state.w)
            log_weight = log_tilt + log_penalty
            log_prior_mass = jax.nn.logsumexp(log_penalty) - log_mean
        law = NeuronLaw(state.w, log_weight)
        log_partition = jax.nn.logsumexp(log_weight) - log_mean - log_prior_mass
        return law, state._replace(info=ImportanceInfo(log_partition, law.effective_sample_size()))

    def warnings(self, info: ImportanceInfo, law) -> list[str]:
        """Words for an effective sample size too small to trust."""
        ess = float(info.ess)
        if ess >= min(MIN_ESS, 0.5 * self.num_samples):
            return []
        return [
            f"importance sampling kept an effective sample size of {ess:.1f} of {self.num_samples} prior draws "
            f"(< {MIN_ESS:g}): the neuron law is far from the prior; raise num_samples or use sampler 'grid' / 'mcmc'"
        ]


def importance_sampler(num_samples: int = 100_000) -> ImportanceSampler:
    """Importance sampler with ``num_samples`` fixed draws from the prior ``N(0, sw2 I)``."""
    return ImportanceSampler(num_samples)
