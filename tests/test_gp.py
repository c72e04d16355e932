"""NNGP kernels (closed forms, Gauss-Hermite, Monte Carlo) and the GP (kernel ridge) prediction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose

from mft_jax.errors import ConfigError
from mft_jax.theory.gp import gauss_hermite_kernel, gp_loss, gp_predict, gp_residual, nngp_kernel
from mft_jax.model import TwoLayer
from mft_jax.tasks import make_data

SW2 = 0.8
MC_DRAWS = 200_000
K_SIGMA = 5.0  # per entry; two-sided 5-sigma false-failure 5.7e-7, times < 200 entries: < 1.2e-4 per test


def _points():
    """Six points of norms 0.5..1.1 (sw2 |x|^2 <= 1) in d = 3 at assorted angles, incl. anti-correlated ones."""
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(6, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    directions[5] = -directions[0]
    return directions * np.linspace(0.5, 1.1, 6)[:, None]


def _monte_carlo(activation, x):
    """``E[phi(w.x) phi(w.x')]`` and its standard error from ``MC_DRAWS`` prior draws."""
    w = np.sqrt(SW2) * jax.random.normal(jax.random.key(1), (MC_DRAWS, x.shape[1]))
    features = TwoLayer(activation).features(w, jnp.asarray(x))
    products = features[:, :, None] * features[:, None, :]
    return jnp.mean(products, 0), jnp.std(products, 0) / np.sqrt(MC_DRAWS)


@pytest.mark.parametrize("activation", ["erf", "relu", "square", "linear"])
def test_closed_forms_match_monte_carlo(x64, activation):
    x = _points()
    mean, error = _monte_carlo(activation, x)
    kernel = nngp_kernel(activation, SW2, x, x)
    assert np.all(np.abs(kernel - mean) <= K_SIGMA * error + 1e-12)
    # wrong twins: a kernel 10% off fails the same criterion (200000 draws: the largest entries' standard error is
    # ~0.3% of them, so 10% is > 30 of them there)
    for factor in (0.9, 1.1):
        assert not np.all(np.abs(factor * kernel - mean) <= K_SIGMA * error + 1e-12), factor


@pytest.mark.parametrize("activation", ["ramp", "hardtanh", "tanh", "gelu"])
def test_generic_kernel_matches_monte_carlo(x64, activation):
    x = _points()
    mean, error = _monte_carlo(activation, x)
    kernel = nngp_kernel(activation, SW2, x, x, nodes=256)
    # MC error (K_SIGMA standard errors) plus the quadrature's own error: kinked ramp/hardtanh converge
    # like 1/nodes (relu at 64 nodes: 4e-3 of K(x,x) -> at 256 nodes about 1e-3 of the largest diagonal).
    quadrature_error = 1e-3 * float(jnp.max(jnp.diag(kernel)))
    assert np.all(np.abs(kernel - mean) <= K_SIGMA * error + quadrature_error)
    for factor in (0.9, 1.1):  # wrong twins: a kernel 10% off fails the same criterion
        assert not np.all(np.abs(factor * kernel - mean) <= K_SIGMA * error + quadrature_error), factor


def test_generic_path_matches_closed_forms(x64):
    x = _points()
    # Polynomial phi: Gauss-Hermite with n nodes is exact for degree <= 2n - 1 (rounding only).
    for activation in ("square", "linear"):
        assert_allclose(gauss_hermite_kernel(activation, SW2, x, x, nodes=8), nngp_kernel(activation, SW2, x, x), rtol=1e-12, atol=1e-14)
    # Smooth phi at sw2 |x|^2 <= 1: exponential convergence, 64 nodes reach ~1e-13 (measured), 1e-11 leaves margin.
    assert_allclose(gauss_hermite_kernel("erf", SW2, x, x), nngp_kernel("erf", SW2, x, x), atol=1e-11)
    # Kinked phi (relu): the documented 1/nodes rate: within 5e-3 of K(x,x) at 64 nodes, 4x smaller at 4x nodes.
    exact = nngp_kernel("relu", SW2, x, x)
    scale = float(jnp.max(jnp.diag(exact)))
    error_64 = float(jnp.max(jnp.abs(gauss_hermite_kernel("relu", SW2, x, x, 64) - exact)))
    error_256 = float(jnp.max(jnp.abs(gauss_hermite_kernel("relu", SW2, x, x, 256) - exact)))
    assert error_64 < 5e-3 * scale
    assert error_256 < error_64 / 3.0  # 1/n predicts a factor 4; 3 allows the rate's oscillation


def test_user_callable_named_like_a_closed_form_uses_quadrature(x64):
    x = _points()

    def relu(z):  # a user function that is NOT jax.nn.relu: here the softplus
        return jax.nn.softplus(z)

    assert_allclose(nngp_kernel(relu, SW2, x, x), gauss_hermite_kernel(jax.nn.softplus, SW2, x, x), rtol=1e-12)
    assert not np.allclose(nngp_kernel(relu, SW2, x, x), nngp_kernel("relu", SW2, x, x), rtol=1e-2)


@pytest.mark.parametrize("activation", ["erf", "relu", "square", "ramp", "tanh"])
def test_kernel_is_symmetric_positive_semidefinite(x64, activation):
    x = np.concatenate([_points(), np.zeros((1, 3))])  # the origin too: a kernel row of phi(0)^2 or zeros
    kernel = np.asarray(nngp_kernel(activation, SW2, x, x))
    assert np.all(np.isfinite(kernel))
    assert_allclose(kernel, kernel.T, rtol=1e-12, atol=1e-15)
    # PSD up to rounding of the O(1) entries.
    assert np.linalg.eigvalsh(kernel).min() >= -1e-10 * np.abs(kernel).max()


def test_gp_residual_solves_the_ridge_equation(x64):
    data = make_data("continuous_xor", n_train=40, seed=3)
    model = TwoLayer("ramp", sa2=1.5, sw2=0.7, beta=4.0)
    residual = gp_residual(data, model)
    kernel = nngp_kernel(model.activation, model.sw2, data.x, data.x)
    lhs = residual + model.beta * model.sa2 * kernel @ (data.q[:, None] * residual)
    assert_allclose(lhs, data.y, atol=1e-12)  # (I + beta sa2 K Q) r = y, float64 rounding
    # r = y - f on the data, and the loss is 1/2 sum q r^2.
    assert_allclose(gp_predict(data, model, data.x), data.y - residual, atol=1e-12)
    assert_allclose(gp_loss(data, model), 0.5 * jnp.sum(data.q[:, None] * residual**2), rtol=1e-12)


def test_gp_loss_linear_teacher_exact(x64):
    """Linear phi, Gaussian inputs, y = v.x: the c -> 0 limit of docs/theory.md section 5: r = lambda v.x,
    lambda = 1 / (1 + beta sa2 sw2), loss = lambda^2 |v|^2 / 2 (Gauss-Hermite inputs: exact second moments)."""
    v = np.array([0.7, -1.2])
    data = make_data("linear_teacher", quadrature=6, teacher=list(v))
    model = TwoLayer("linear", sa2=0.5, sw2=1.5, beta=3.0)
    lam = 1.0 / (1.0 + model.beta * model.sa2 * model.sw2)
    assert_allclose(gp_loss(data, model), 0.5 * lam**2 * v @ v, rtol=1e-10)
    assert_allclose(gp_residual(data, model), lam * data.y, atol=1e-10)


def test_bad_input_raises_config_error():
    x = np.ones((3, 2))
    with pytest.raises(ConfigError, match="sw2"):
        nngp_kernel("erf", -1.0, x, x)
    with pytest.raises(ConfigError, match="same d"):
        nngp_kernel("erf", 1.0, x, np.ones((3, 4)))
    with pytest.raises(ConfigError, match="nodes"):
        gauss_hermite_kernel("ramp", 1.0, x, x, nodes=0)
    with pytest.raises(ConfigError, match="unknown activation"):
        nngp_kernel("sigmoidal", 1.0, x, x)
