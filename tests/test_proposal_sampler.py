"""``proposal_sampler`` (importance sampling from a fixed proposal) and ``started_sampler`` (chains started at given points)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax.errors import ConfigError
from mft_jax.model import TwoLayer
from mft_jax.tasks import make_data
from mft_jax.theory.samplers.importance import importance_sampler
from mft_jax.theory.samplers.mcmc import mcmc_sampler
from mft_jax.theory.samplers.proposal import proposal_sampler, started_sampler


def _setting():
    data = make_data("modular_addition", modulus=5)
    return data, TwoLayer("square", sa2=0.1, sw2=1.0, beta=2.0)


def test_proposal_from_the_prior_is_the_importance_sampler(x64):
    data, model = _setting()
    key = jax.random.key(3)
    reference = importance_sampler(4000)
    state = reference.init(key, model, data)
    residual = 0.5 * data.y
    law, state = reference.update(state, model, data, residual)
    proposal = proposal_sampler(lambda k: (state.w, np.zeros(state.w.shape[0])))
    law2, state2 = proposal.update(proposal.init(key, model, data), model, data, residual)
    np.testing.assert_allclose(law2.weights(), law.weights(), rtol=1e-12)
    assert float(state2.info.log_partition) == pytest.approx(float(state.info.log_partition), rel=1e-12)


def test_proposal_log_partition_is_unbiased_for_a_gaussian_proposal(x64):
    """Proposal N(0, s^2 I) with s = 1.2: log(prior/q) = d log s - |w|^2 (1 - 1/s^2)/2 exactly; its log partition
    matches the prior-draw estimate within the two estimates' sampling error (a wrong log_norm, +0.1, does not)."""
    data, model = _setting()
    d, s, m = data.input_dim, 1.2, 40000
    w = s * np.random.default_rng(0).standard_normal((m, d))
    log_ratio = d * np.log(s) - 0.5 * np.sum(w * w, 1) * (1 - 1 / s**2)
    residual = 0.3 * data.y
    ours = proposal_sampler(lambda k: (w, log_ratio))
    _, state = ours.update(ours.init(jax.random.key(0), model, data), model, data, residual)
    prior = importance_sampler(m)
    _, reference = prior.update(prior.init(jax.random.key(1), model, data), model, data, residual)
    gap = float(state.info.log_partition) - float(reference.info.log_partition)
    bound = 4 * (1 / np.sqrt(float(state.info.ess)) + 1 / np.sqrt(float(reference.info.ess)))
    assert abs(gap) < bound
    wrong = proposal_sampler(lambda k: (w, log_ratio), 0.1 + bound)
    _, state = wrong.update(wrong.init(jax.random.key(0), model, data), model, data, residual)
    assert abs(float(state.info.log_partition) - float(reference.info.log_partition)) > bound


def test_started_sampler_starts_where_told_and_rejects_wrong_shapes():
    data, model = _setting()
    start = jnp.full((8, data.input_dim), 3.0)
    sampler = started_sampler(mcmc_sampler(8, 4, num_warmup=0), lambda key: start)
    state = sampler.init(jax.random.key(0), model, data)
    np.testing.assert_array_equal(state.position, start)
    assert sampler.stochastic
    with pytest.raises(ConfigError, match="positions of shape"):
        started_sampler(mcmc_sampler(4, 4, num_warmup=0), lambda key: start).init(jax.random.key(0), model, data)
    with pytest.raises(ConfigError, match="draw"):
        proposal_sampler(3)
