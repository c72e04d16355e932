"""The finite-width network: its function, loss, residual and neuron law against direct numpy formulas."""

from math import erf

import jax
import numpy as np
import pytest

from mft_jax.data import make_dataset
from mft_jax.errors import ConfigError
from mft_jax.model import TwoLayer
from mft_jax.train.joint import loss, network_law, residual


@pytest.mark.parametrize("scaling, power", [("mean_field", 1.0), ("standard", 0.5)])
def test_function_loss_and_residual_match_their_formulas(x64, scaling, power):
    model = TwoLayer("erf", sa2=0.7, sw2=1.3, scaling=scaling)
    params = model.init_params(jax.random.key(0), 50, input_dim=3, output_dim=2)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(7, 2))
    q = rng.uniform(0.5, 1.5, size=7)
    data = make_dataset(x, y, q / q.sum())
    a, w = np.asarray(params["a"]), np.asarray(params["w"])
    phi = np.vectorize(erf)(x @ w.T)  # (P, N)
    f = phi @ a / 50**power
    np.testing.assert_allclose(model.apply(params, data.x), f, rtol=1e-12)  # float64: exact up to rounding
    np.testing.assert_allclose(residual(params, model, data), y - f, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(loss(params, model, data), 0.5 * np.sum(q / q.sum() * np.sum((f - y) ** 2, 1)), rtol=1e-12)


def test_initialisation_is_the_prior():
    model = TwoLayer("ramp", sa2=0.5, sw2=2.0)
    params = model.init_params(jax.random.key(1), 20_000, input_dim=2, output_dim=1)
    for name, variance in (("a", 0.5), ("w", 2.0)):
        values = np.asarray(params[name], float).ravel()
        # Sample variance of n Gaussian draws has standard error variance * sqrt(2 / n); 4 SE: false-failure 6e-5.
        assert abs(values.var() - variance) < 4 * variance * np.sqrt(2.0 / values.size), name
        assert abs(values.mean()) < 4 * np.sqrt(variance / values.size), name
        # wrong twins: a prior variance 10% off fails the same criterion (s.e. 1% of it for a, 0.7% for w: 10% is
        # >= 10 of them)
        for factor in (0.9, 1.1):
            wrong = factor * variance
            assert abs(values.var() - wrong) > 4 * wrong * np.sqrt(2.0 / values.size), (name, factor)


def test_seeds_vmap_into_independent_networks_and_their_law():
    model = TwoLayer("ramp")
    params = jax.vmap(lambda key: model.init_params(key, 8, 2, 3))(jax.random.split(jax.random.key(2), 5))
    assert params["a"].shape == (5, 8, 3) and params["w"].shape == (5, 8, 2)
    assert len({float(params["w"][s, 0, 0]) for s in range(5)}) == 5  # distinct draws per seed
    law = network_law(params)
    assert law.w.shape == (40, 2) and law.a.shape == (40, 3)
    np.testing.assert_allclose(law.weights(), 1.0 / 40, rtol=1e-6)  # float32 softmax of zeros
    np.testing.assert_array_equal(law.a[8:16], params["a"][1])  # seed 1's neurons follow seed 0's


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="width"):
        TwoLayer().init_params(jax.random.key(0), 0, 2)
    with pytest.raises(ConfigError, match="output_dim"):
        TwoLayer().init_params(jax.random.key(0), 4, 2, output_dim=-1)
