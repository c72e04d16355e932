"""Exact Gibbs draws of the readouts (mft_jax.train.gibbs) and the trainer that alternates them with Langevin."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax.data import Dataset
from mft_jax.theory.deep import Deep
from mft_jax.errors import ConfigError
from mft_jax.model import TwoLayer
from mft_jax.tasks import teacher_student
from mft_jax.train.gibbs import cholesky, readout_features, readout_posterior, sample_readouts, solve_lower, solve_lower_transposed
from mft_jax.train.joint import langevin_optimizer, optax_optimizer, train


def test_loop_cholesky_and_triangular_solves_match_numpy():
    """The fori_loop factor and sweeps that replace LAPACK inside the trainer (module docstring of mft_jax.train.gibbs)."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(40, 30))
    M = np.eye(30) + A.T @ A  # condition number ~ 1e2
    B = rng.normal(size=(30, 2))
    L = np.asarray(cholesky(jnp.asarray(M, jnp.float32)), dtype=float)
    np.testing.assert_allclose(L, np.linalg.cholesky(M), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(solve_lower(jnp.asarray(L), jnp.asarray(B))), np.linalg.solve(L, B), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(solve_lower_transposed(jnp.asarray(L), jnp.asarray(B))), np.linalg.solve(L.T, B),
                               rtol=1e-4, atol=1e-5)


def _data(points=7, dim=3, outputs=2):
    x = jax.random.normal(jax.random.key(0), (points, dim))
    y = jax.random.normal(jax.random.key(1), (points, outputs))
    return Dataset(x=x, y=y, q=jnp.linspace(0.5, 1.5, points))


def _closed_form(model, params, data):
    """Mean and covariance of a | rest in float64: precision beta E Psi^T Q Psi + I / sa2."""
    width = params["a"].shape[0]
    psi = np.asarray(readout_features(model, params, data.x), dtype=float)
    weighted = float(model.beta) * model.energy_scale(width) * psi.T * np.asarray(data.q, dtype=float)
    cov = np.linalg.inv(weighted @ psi + np.eye(width) / float(model.sa2))
    return cov @ weighted @ np.asarray(data.y, dtype=float), cov


@pytest.mark.parametrize("model", [TwoLayer(activation="erf", sa2=2.0, sw2=0.5, beta=3.0),
                                   TwoLayer(activation="relu", sa2=0.7, sw2=1.0, beta=5.0, scaling="standard"),
                                   Deep(activation="tanh", depth=3, sa2=1.5, sW2=1.0, sw2=0.8, beta=2.0)],
                         ids=["two-layer", "standard-scaling", "deep"])
def test_readout_posterior_is_the_gaussian_conditional(model):
    data = _data()
    params = model.init_params(jax.random.key(2), 5, 3, 2)
    f = model.apply(params, data.x)
    np.testing.assert_allclose(readout_features(model, params, data.x) @ params["a"], f, rtol=1e-5, atol=1e-6)  # f = Psi a
    mean, cov = _closed_form(model, params, data)
    got_mean, chol = readout_posterior(model, params, data)
    np.testing.assert_allclose(got_mean, mean, rtol=1e-4, atol=1e-5)
    whitened = np.linalg.inv(np.asarray(chol, dtype=float) @ np.asarray(chol, dtype=float).T)  # M^-1 = cov / sa2
    np.testing.assert_allclose(float(model.sa2) * whitened, cov, rtol=1e-4, atol=1e-6)


def test_readout_draws_have_the_conditional_covariance():
    model = TwoLayer(activation="erf", sa2=2.0, sw2=0.5, beta=3.0)
    data = _data(outputs=1)
    params = model.init_params(jax.random.key(2), 4, 3, 1)
    mean, cov = _closed_form(model, params, data)
    draws = 20000
    a = np.asarray(jax.vmap(lambda k: sample_readouts(k, model, params, data))(jax.random.split(jax.random.key(3), draws)))[..., 0]
    # error budget: each sample mean / covariance entry against its standard error (Gaussian draws:
    # var(S_ij) = (C_ii C_jj + C_ij^2) / n); 4 + 10 entries at 5 s.e.: false-failure rate < 1e-5
    z_mean = (a.mean(axis=0) - mean[:, 0]) / np.sqrt(np.diag(cov) / draws)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / draws)
    z_cov = (np.cov(a.T) - cov) / se_cov
    assert np.abs(z_mean).max() < 5 and np.abs(z_cov).max() < 5, (z_mean, z_cov)
    # power: the transposed factor (L^-1 xi instead of L^-T xi) has another covariance, far outside that budget
    chol = np.asarray(readout_posterior(model, params, data)[1], dtype=float)
    wrong = float(model.sa2) * np.linalg.inv(chol.T @ chol)
    assert np.abs((wrong - cov) / se_cov).max() > 20


def _one_neuron_z_scores(h=0.005, steps=4000, seeds=512) -> dict:
    """Langevin + Gibbs readouts (every 5 steps) on one neuron in one input dimension, against its posterior
    ``exp(-beta L - a^2/(2 sa2) - w^2/(2 sw2))`` by quadrature on a grid: per moment, (seed mean - exact) / s.e. over
    ``seeds`` independent networks, each time-averaged after a burn-in of a quarter of the run."""
    model = TwoLayer(activation="erf", sa2=1.0, sw2=1.0, beta=4.0)
    x = jnp.array([[1.0], [-0.5], [2.0]])
    data = Dataset(x=x, y=jnp.array([[1.0], [0.3], [-0.8]]), q=jnp.ones(3))
    grid = np.linspace(-6, 6, 1201)
    a, w = np.meshgrid(grid, grid, indexing="ij")
    f = a[..., None] * np.asarray(jax.scipy.special.erf(w[..., None] * np.asarray(x[:, 0])))
    log_p = -4.0 * 0.5 * np.sum((f - np.asarray(data.y[:, 0])) ** 2, axis=-1) - a**2 / 2 - w**2 / 2
    p = np.exp(log_p - log_p.max())
    p /= p.sum()
    exact = {"a2": np.sum(p * a**2), "w2": np.sum(p * w**2), "f0": np.sum(p * f[..., 0])}

    def observe(params):
        return {"a2": params["a"][0, 0] ** 2, "w2": params["w"][0, 0] ** 2, "f0": model.apply(params, x)[0, 0]}

    result = train(jax.random.key(5), model, 1, data, langevin_optimizer(model, h), steps, num_seeds=seeds, chunk=10,
                   observables=observe, progress=False, readout_gibbs_every=5)
    kept = result.history["step"] > steps // 4  # >= 5 time units of burn-in; relaxation times are O(1)
    z = {}
    for name, value in exact.items():
        per_seed = np.asarray(result.history[name])[kept].mean(axis=0)
        z[name] = (per_seed.mean() - value) / (per_seed.std(ddof=1) / np.sqrt(seeds))
    return z


def test_langevin_with_gibbs_readouts_samples_the_posterior():
    # budget: 4 s.e. of 512 independent seeds (false-failure rate 6e-5 per moment); the O(h) bias of the Langevin
    # steps on w is inside it (the slow test below repeats the check at h / 2, and checks its power)
    z = _one_neuron_z_scores()
    assert all(abs(v) < 4 for v in z.values()), z


@pytest.mark.slow  # three more one-neuron runs (~25 s); the check itself is in the default suite above
def test_gibbs_posterior_check_at_half_the_step_and_its_power(monkeypatch):
    """At h / 2 over the same time the moments still agree within 4 s.e.; readouts drawn from the prior, or from the
    conditional law at 2 beta, instead of the right conditional law fail the same check (some moment > 8 s.e. off)."""
    z = _one_neuron_z_scores(h=0.0025, steps=8000)
    assert all(abs(v) < 4 for v in z.values()), z
    import mft_jax.train.joint as joint

    right = joint.sample_readouts
    monkeypatch.setattr(joint, "sample_readouts", lambda k, m, p, d: jnp.sqrt(m.sa2) * jax.random.normal(k, p["a"].shape))
    z = _one_neuron_z_scores()
    assert max(abs(v) for v in z.values()) > 8, z
    monkeypatch.setattr(joint, "sample_readouts", lambda k, m, p, d: right(k, m.replace(beta=2.0 * m.beta), p, d))
    z = _one_neuron_z_scores()
    assert max(abs(v) for v in z.values()) > 8, z


def test_gibbs_readouts_refuse_what_they_cannot_sample():
    model = TwoLayer(activation="erf", sa2=1.0, sw2=1.0, beta=2.0)
    data = _data(outputs=1)
    with pytest.raises(ConfigError, match="langevin optimizer"):
        train(jax.random.key(0), model, 4, data, optax_optimizer("sgd", 0.1), 10, readout_gibbs_every=2, progress=False)
    with pytest.raises(ConfigError, match="positive integer"):
        train(jax.random.key(0), model, 4, data, langevin_optimizer(model, 0.01), 10, readout_gibbs_every=0, progress=False)
    with pytest.raises(ConfigError, match="Dataset"):
        train(jax.random.key(0), model, 4, teacher_student(3, -0.3), langevin_optimizer(model, 0.01), 10, batch_size=8,
              readout_gibbs_every=2, progress=False)
