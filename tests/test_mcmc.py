"""The blackjax MALA single-neuron sampler against an exactly Gaussian law, and its contract."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax.errors import ConfigError, NonFiniteError
from mft_jax.theory.samplers.mcmc import mcmc_sampler
from mft_jax.model import TwoLayer
from mft_jax.tasks import make_data

SAMPLER = dict(num_chains=4096, num_steps=60, num_warmup=40)  # one setting for the tests below: one jit compile
K_SIGMA = 5.0  # two-sided 5-sigma per moment: false-failure 5.7e-7 each, < 1e-5 for the 5 moments tested


def _linear_problem():
    """Linear phi, Gaussian inputs (exact second moments), y = v.x, residual r = y: rho is Gaussian with
    precision I/sw2 - 2c u u^T, u = E[r x] = v (docs/theory.md section 5); here 2 c sw2 |v|^2 = 0.6."""
    v = np.array([0.6, -0.3])
    data = make_data("linear_teacher", quadrature=4, teacher=list(v))
    sw2 = 1.0
    beta = float(np.sqrt(0.6 / (sw2 * v @ v)))  # c = beta^2 sa2 / 2 with sa2 = 1
    model = TwoLayer("linear", sa2=1.0, sw2=sw2, beta=beta)
    covariance = np.linalg.inv(np.eye(2) / sw2 - 2 * model.coupling * np.outer(v, v))
    return data, model, covariance


def test_mala_chains_sample_the_exact_gaussian_law():
    data, model, covariance = _linear_problem()
    sampler = mcmc_sampler(**SAMPLER)
    state = sampler.init(jax.random.key(0), model, data)
    law, state = sampler.update(state, model, data, data.y)
    w = np.asarray(law.w, dtype=np.float64)
    num = w.shape[0]
    assert float(state.info.mixed) == 1.0
    # Within 0.05 of the target: the warm-up's last steps average the acceptance of 4096 chains (sd ~ 0.01).
    assert abs(float(state.info.acceptance_rate) - 0.574) < 0.05
    # Final positions of independent chains are independent draws: standard error sd / sqrt(num_chains).
    second = w[:, :, None] * w[:, None, :]
    for (i, j) in ((0, 0), (1, 1), (0, 1)):
        error = second[:, i, j].std() / np.sqrt(num)
        assert abs(second[:, i, j].mean() - covariance[i, j]) < K_SIGMA * error, (i, j)
    for i in range(2):
        assert abs(w[:, i].mean()) < K_SIGMA * w[:, i].std() / np.sqrt(num)


def test_updates_warm_start_and_use_fresh_randomness():
    data, model, _ = _linear_problem()
    sampler = mcmc_sampler(**SAMPLER)
    state = sampler.init(jax.random.key(1), model, data)
    law1, state1 = sampler.update(state, model, data, data.y)
    law2, state2 = sampler.update(state1, model, data, data.y)
    assert not np.array_equal(np.asarray(law1.w), np.asarray(law2.w))
    assert not np.array_equal(jax.random.key_data(state1.key), jax.random.key_data(state2.key))
    # Same state in, same law out: the update is a pure function of its state.
    law1_again, _ = sampler.update(state, model, data, data.y)
    np.testing.assert_array_equal(np.asarray(law1.w), np.asarray(law1_again.w))
    assert state2.info._fields == ("acceptance_rate", "step_size", "ess", "autocorrelation_time", "mixed")
    assert all(np.isfinite(float(v)) for v in state2.info)
    np.testing.assert_allclose(law2.weights(), 1.0 / SAMPLER["num_chains"], rtol=1e-5)  # equally weighted samples


def test_non_finite_log_density_raises_in_words():
    """An activation that is NaN for part of the inputs (log z, z < 0) makes log rho NaN: said in words, not returned."""
    data, model, _ = _linear_problem()
    model = model.replace(activation=jnp.log)
    sampler = mcmc_sampler(num_chains=16, num_steps=4, num_warmup=0)
    state = sampler.init(jax.random.key(2), model, data)
    with pytest.raises(NonFiniteError, match="non-finite log rho"):
        sampler.update(state, model, data, data.y)


@pytest.mark.parametrize(
    "options, key",
    [
        ({"num_chains": 1}, "num_chains"),
        ({"num_steps": 2.5}, "num_steps"),
        ({"num_warmup": -1}, "num_warmup"),
        ({"step_size": -0.1}, "step_size"),
        ({"target_acceptance": 1.5}, "target_acceptance"),
        ({"adaptation_rate": -1.0}, "adaptation_rate"),
    ],
)
def test_bad_settings_raise_config_error(options, key):
    with pytest.raises(ConfigError, match=key):
        mcmc_sampler(**options)
