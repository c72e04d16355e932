"""The model protocol (mft_jax.protocol): TwoLayer and Deep answer the same questions the same way.

- Both implement ``Model``; an object that does not is not taken for one.
- Prior sampling: each parameter array of a prior draw has the variance ``prior_variances()`` declares
  (sample variance of n >= 4096 entries: relative s.e. sqrt(2/n) <= 0.022, checked at 5 s.e.; the
  variances are chosen 1.33x-4x apart, so a draw from the wrong one fails by > 10 s.e.).
- The network function and the per-layer kernels equal the network written out in NumPy.
- Single sites: the depth-2 law written as a layer law (``Phihat_1 = -beta^2 sa2 Q r r^T Q``) is the
  two-layer law ``-|w|^2/(2 sw2) - Gamma(w) + c |S(w)|^2`` exactly, with and without a penalty; the
  deep model's depth-2 background at its fixed point is the two-layer background at the same residual.
- Hyperparameters are traced leaves: one compilation serves every beta.
- The foreground trainer of any layer runs against a two-layer fixed point through the protocol and
  samples its single-neuron law (linear activation: Gaussian, the Euler chain's exact covariance).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax.data import make_dataset
from mft_jax.theory.deep import Deep, gaussian_layers, importance_layers, solve_deep
from mft_jax.errors import ConfigError
from mft_jax.model import TwoLayer
from mft_jax.priors import sextic
from mft_jax.protocol import Model, readout_background
from mft_jax.theory.samplers.grid import grid_sampler
from mft_jax.theory.two_layer import solve
from mft_jax.train.deep_foreground import train_deep_foreground
from test_deep_foreground import euler_kernel

MODELS = {
    "two_layer": TwoLayer("tanh", sa2=0.5, sw2=2.0, beta=3.0),
    "deep": Deep("tanh", depth=3, sa2=0.5, sW2=1.5, sw2=2.0, beta=3.0),
}


class FixedPoint(NamedTuple):
    """A two-layer fixed point as the foreground trainer sees it (``mft_jax.protocol.LayerBackgrounds``)."""

    model: TwoLayer
    data: object
    residual: jax.Array

    def layer_background(self, layer: int):
        assert layer == 1
        return readout_background(self.model, self.data, self.residual)


def small_data(P=12, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((P, d))
    return make_dataset(x, np.tanh(x[:, :1] * x[:, 1:2]))


def test_both_models_implement_the_protocol_and_other_objects_do_not():
    for model in MODELS.values():
        assert isinstance(model, Model)
    assert not isinstance(object(), Model)
    assert not isinstance(importance_layers(), Model)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_prior_draws_have_the_declared_variances(name):
    model = MODELS[name]
    params = model.init_params(jax.random.key(0), 1024, 4, 4)
    variances = model.prior_variances()
    assert set(params) == set(variances)
    for array, variance in variances.items():
        values = np.asarray(params[array], dtype=float).ravel()
        assert values.size >= 4096
        relative_se = np.sqrt(2.0 / values.size)
        assert abs(values.var() / variance - 1.0) < 5 * relative_se, (array, values.var(), variance)


def reference_forward(model, params, x):
    """The network written out in NumPy (float64): per-layer features and f (docs/theory.md 2 and 6.1)."""
    p = {k: np.asarray(v, dtype=float) for k, v in params.items()}
    width = p["w"].shape[0]
    features = [np.tanh(x @ p["w"].T)]
    for W in p.get("W", ()):
        features.append(np.tanh(features[-1] @ W.T / np.sqrt(width)))
    return features, features[-1] @ p["a"] / width


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_network_function_and_its_kernels_are_the_written_out_network(name):
    model, data = MODELS[name], small_data()
    params = model.init_params(jax.random.key(1), 64, data.input_dim, 2)
    features, f = reference_forward(model, params, np.asarray(data.x, dtype=float))
    np.testing.assert_allclose(np.asarray(model.apply(params, data.x)), f, rtol=1e-4, atol=1e-6)
    kernels = np.asarray(model.feature_kernels(params, data.x))
    assert kernels.shape == (model.hidden_layers, data.num_points, data.num_points)
    for kernel, phi in zip(kernels, features):
        np.testing.assert_allclose(kernel, phi @ phi.T / 64, rtol=1e-4, atol=1e-6)
    with pytest.raises(ConfigError, match="width must be a positive integer"):
        model.init_params(jax.random.key(0), 0, 3, 1)


@pytest.mark.parametrize("penalty", [None, sextic(0.3)])
def test_two_layer_site_law_is_the_layer_law_with_the_readout_conjugate_kernel(x64, penalty):
    model = TwoLayer("erf", sa2=0.7, sw2=1.3, beta=2.5, penalty=penalty)
    data = small_data()
    residual = 3.0 * jnp.asarray(np.random.default_rng(1).standard_normal((data.num_points, 1)))
    w = jnp.asarray(np.random.default_rng(2).standard_normal((50, data.input_dim)))
    background = readout_background(model, data, residual)
    np.testing.assert_allclose(model.site_log_density(w, background), model.log_density(w, data, residual), rtol=1e-12, atol=1e-12)
    # power: the law without its tilt, or with the tilt's sign flipped, differs by O(1)
    tilt = model.log_tilt(w, data, residual)
    assert float(jnp.min(jnp.abs(tilt))) > 0 and float(jnp.max(jnp.abs(tilt))) > 0.1
    with pytest.raises(ConfigError, match="layer must be 1"):
        solve(data, model, grid_sampler(8, 6.0), key=jax.random.key(0), max_iter=1, auto=False).layer_background(2)


def test_deep_depth_two_background_is_the_two_layer_background(x64):
    data = small_data()
    deep = Deep("linear", depth=2, sa2=0.7, sw2=1.3, beta=2.5)
    solution = solve_deep(data, deep, gaussian_layers(), max_iter=0)  # the NNGP state: the identity holds at every residual
    two = TwoLayer("linear", sa2=0.7, sw2=1.3, beta=2.5)
    expected = readout_background(two, data, solution.residual)
    got = solution.layer_background(1)
    np.testing.assert_allclose(got.phihat, expected.phihat, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(got.basis, expected.basis)
    assert float(got.prior_variance) == float(expected.prior_variance)
    assert float(jnp.max(jnp.abs(expected.phihat))) > 1e-3  # not trivially zero


def test_hyperparameters_are_traced_one_compilation_serves_every_beta():
    data = small_data()
    traces = []

    @jax.jit
    def loss_at(model, params):
        traces.append(1)
        return jnp.sum((model.apply(params, data.x) - data.y) ** 2) * model.temperature

    for model in MODELS.values():
        traces.clear()
        params = model.init_params(jax.random.key(0), 32, data.input_dim, 1)
        values = [float(loss_at(model.replace(beta=beta), params)) for beta in (1.0, 2.0, 4.0)]
        assert len(traces) == 1
        np.testing.assert_allclose(values[0] / values[1], 2.0, rtol=1e-5)  # T = 1/beta enters as a traced value


def test_foreground_of_a_two_layer_fixed_point_samples_its_single_neuron_law(x64):
    """Linear activation: p(w) ~ exp(-|w|^2/(2 sw2) + c (w . v)^2), v = X^T Q r: Gaussian with precision
    I/sw2 - 2c v v^T. 2048 independent neurons, 850 averaged steps (h T lambda_max = 0.05, as in
    test_deep_foreground): kernel entries within 5 s.e. (Bonferroni over the 78 entries: a false alarm has
    probability < 1e-4); the prior's kernel is > 10 s.e. away (measured ~15)."""
    data = small_data(P=12, d=3, seed=4)
    model = TwoLayer("linear", sa2=1.0, sw2=1.0, beta=2.0)
    residual = 0.3 * data.y  # a residual the solver could hand over: the law is exact at any residual
    solution = FixedPoint(model, data, residual)
    x = np.asarray(data.x)
    v = x.T @ (np.asarray(data.q)[:, None] * np.asarray(residual))[:, 0]
    precision = np.eye(3) / model.sw2 - 2 * model.coupling * np.outer(v, v)
    assert np.linalg.eigvalsh(precision).min() > 0.2  # normalizable, and tilted: the largest variance grows
    temperature = 1.0 / model.beta
    step = 0.05 / (temperature * np.linalg.eigvalsh(precision).max())
    neurons = train_deep_foreground(jax.random.key(5), solution, 1, num_neurons=2048, steps=1000, step_size=step,
                                    burn_in=150, progress=False)
    kernel, se = np.asarray(neurons.kernel), np.asarray(neurons.kernel_standard_error)
    rows, cols = np.triu_indices(12)
    reference = euler_kernel(x, precision, step, temperature)
    prior = euler_kernel(x, np.eye(3) / model.sw2, step, temperature)
    assert np.max(np.abs(kernel - reference)[rows, cols] / se[rows, cols]) < 5.0
    assert np.max(np.abs(kernel - prior)[rows, cols] / se[rows, cols]) > 10.0
