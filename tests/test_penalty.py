"""Non-Gaussian weight priors ``exp(-|w|^2/(2 sw2) - Gamma(w))`` (docs/theory.md section 7)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax.errors import ConfigError, NonNormalizableError
from mft_jax.theory.samplers.grid import grid_sampler
from mft_jax.theory.samplers.importance import importance_sampler
from mft_jax.model import TwoLayer
from mft_jax.theory.normalizability import check_normalizable
from mft_jax.priors import FourierSextic, fourier_coefficients, fourier_sextic, make_penalty, sextic
from mft_jax.theory.two_layer import solve
from mft_jax.tasks import make_data


def test_sextic_and_fourier_sextic_values():
    w = jnp.asarray([[1.0, -2.0, 0.5]])
    np.testing.assert_allclose(sextic(0.3)(w), 0.3 / 6 * (1 + 64 + 0.5**6), rtol=1e-6)
    # one Fourier mode per half: u_n = A cos(2 pi k n / P) has |u_k| = |u_-k| = A/2, all other modes 0
    size, k, amplitude = 7, 2, 1.5
    n = np.arange(size)
    u = amplitude * np.cos(2 * np.pi * k * n / size)
    v = np.zeros(size)
    v[0] = 1.0  # a delta: |v_k| = 1/P for every k
    gamma = 0.01
    expected = size * gamma / 6 * (2 * (amplitude / 2) ** 6 + size * (1.0 / size) ** 6)
    np.testing.assert_allclose(fourier_sextic(gamma)(jnp.asarray(np.concatenate([u, v])[None])), expected, rtol=1e-5)
    with pytest.raises(ConfigError, match="gamma"):
        sextic(-1.0)
    with pytest.raises(ConfigError, match="penalty"):
        make_penalty({"name": "quartic", "gamma": 1.0})
    assert TwoLayer("erf", penalty={"name": "sextic", "gamma": 0.5}).penalty == sextic(0.5)


def _dft_coefficients(x: np.ndarray) -> np.ndarray:
    """The stated convention by an explicit matrix: x_k = (1/P) sum_n x_n exp(+2 pi i k n / P)."""
    size = x.shape[-1]
    k, n = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    return x @ np.exp(2j * np.pi * k * n / size).T / size


def test_fourier_convention_inverse_and_parseval(x64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 11))
    coefficients = np.asarray(fourier_coefficients(jnp.asarray(x)))
    np.testing.assert_allclose(coefficients, _dft_coefficients(x), atol=1e-13)
    k, n = np.meshgrid(np.arange(11), np.arange(11), indexing="ij")
    back = coefficients @ np.exp(-2j * np.pi * k * n / 11)  # x_n = sum_k x_k e^(-2 pi i k n / P)
    np.testing.assert_allclose(back.real, x, atol=1e-13)
    np.testing.assert_allclose(np.abs(back.imag), 0, atol=1e-13)
    np.testing.assert_allclose(np.sum(x**2, axis=1), 11 * np.sum(np.abs(coefficients) ** 2, axis=1), rtol=1e-13)


def test_penalties_on_random_weights_and_the_sextic_gradient(x64):
    """Generic weights (every Fourier mode occupied) against the explicit DFT; ``grad sextic = gamma w^5``."""
    rng = np.random.default_rng(1)
    size, gamma = 7, 0.3
    w = rng.normal(size=(4, 2 * size))
    np.testing.assert_allclose(sextic(gamma)(jnp.asarray(w)), gamma / 6 * np.sum(w**6, axis=1), rtol=1e-13)
    uk, vk = _dft_coefficients(w[:, :size]), _dft_coefficients(w[:, size:])
    expected = size * gamma / 6 * np.sum(np.abs(uk) ** 6 + np.abs(vk) ** 6, axis=1)
    np.testing.assert_allclose(fourier_sextic(gamma)(jnp.asarray(w)), expected, rtol=1e-12)
    np.testing.assert_allclose(jax.grad(lambda v: sextic(gamma)(v[None])[0])(jnp.asarray(w[0])), gamma * w[0] ** 5, rtol=1e-12)
    with pytest.raises(ConfigError, match="even weight dimension"):
        fourier_sextic(1.0)(jnp.ones((2, 9)))
    with pytest.raises(ConfigError, match="penalty"):
        make_penalty({"name": "sextic"})  # gamma missing


def test_penalty_is_a_pytree_with_traced_gamma():
    penalty = fourier_sextic(0.5)
    leaves, _ = jax.tree.flatten(penalty)
    assert leaves == [0.5] and penalty.degree == 6
    w = jnp.ones((3, 10)).at[:, 1].set(2.0)
    values = jax.jit(lambda p, w: p(w))(penalty, w)  # gamma traced: one compilation for a sweep over gamma
    swept = jax.vmap(lambda g: FourierSextic(g)(w))(jnp.array([0.5, 1.0]))
    np.testing.assert_allclose(swept[0], values, rtol=1e-6)
    np.testing.assert_allclose(swept[1], 2 * values, rtol=1e-6)
    assert sextic(1.0) == sextic(1.0) and hash(sextic(1.0)) == hash(sextic(1.0))


def test_free_energy_with_a_penalised_prior_matches_direct_quadrature(x64):
    """``I = beta L + KL(rho(a, w) || prior)`` with the penalised prior, by direct quadrature of the right side.
    Power: the same identity with the prior's Gaussian part alone (a wrong normaliser) misses by far more."""
    data = make_data("continuous_xor", quadrature=8)
    model = TwoLayer("erf", 1.0, 1.0, 10.0, penalty=sextic(0.5))
    solution = solve(data, model, grid_sampler(96, 6.0), key=jax.random.key(0), tol=1e-11)
    assert solution.converged, solution.message
    w, p = np.asarray(solution.law.w), np.asarray(solution.law.weights())
    log_prior = np.asarray(model.log_prior_w(solution.law.w))
    prior = np.exp(log_prior - log_prior.max())
    prior /= prior.sum()  # the penalised prior on the grid nodes
    gaussian = np.exp(-0.5 * np.sum(w * w, axis=1))
    gaussian /= gaussian.sum()
    f = np.asarray(solution.predict(data.x))
    beta_loss = model.beta * 0.5 * np.sum(np.asarray(data.q)[:, None] * (np.asarray(data.y) - f) ** 2)
    tilt = np.sum(p * np.asarray(model.log_tilt(solution.law.w, data, solution.residual)))  # KL(a | w)
    kept = p > 0  # the sextic term drives the outer nodes' weights to exactly 0 (0 log 0 = 0)
    right = beta_loss + np.sum(p[kept] * np.log(p[kept] / prior[kept])) + tilt
    wrong = beta_loss + np.sum(p[kept] * np.log(p[kept] / gaussian[kept])) + tilt
    np.testing.assert_allclose(solution.free_energy, right, rtol=1e-8)
    assert abs(solution.free_energy - wrong) > 1e3 * abs(solution.free_energy - right) + 1e-3


def test_importance_weights_carry_the_penalty():
    """Importance draws stay Gaussian; the weights gain -Gamma. Grid and importance laws then agree on E|w|^2
    within 5 standard errors (false-failure rate ~ 6e-7); without the penalty in the model they do not."""
    data = make_data("continuous_xor", quadrature=6)
    model = TwoLayer("erf", 1.0, 1.0, 5.0, penalty=sextic(2.0))
    residual = data.y
    grid_law, _ = grid_sampler(120, 6.0).update(grid_sampler(120, 6.0).init(None, model, data), model, data, residual)
    exact = float(grid_law.expectation(jnp.sum(grid_law.w**2, axis=1)))
    sampler = importance_sampler(200_000)
    state = sampler.init(jax.random.key(0), model, data)
    law, _ = sampler.update(state, model, data, residual)
    weights = np.asarray(law.weights())
    norm2 = np.sum(np.asarray(law.w) ** 2, axis=1)
    estimate = float(weights @ norm2)
    standard_error = float(np.sqrt(np.sum(weights**2 * (norm2 - estimate) ** 2)))  # delta method for a ratio estimator
    assert abs(estimate - exact) <= 5 * standard_error
    gaussian_model = model.replace(penalty=None)
    wrong, _ = sampler.update(state, gaussian_model, data, residual)
    assert abs(float(wrong.expectation(jnp.sum(wrong.w**2, axis=1))) - exact) > 20 * standard_error


def test_a_sextic_prior_makes_the_square_network_law_exist():
    data = make_data("continuous_xor", quadrature=4)
    bare = TwoLayer("square", 1.0, 1.0, 1.0)
    with pytest.raises(NonNormalizableError, match="sextic"):
        check_normalizable(bare, data, data.y)
    reason = check_normalizable(bare.replace(penalty=sextic(0.1)), data, data.y)
    assert "penalty grows like |w|^6" in reason and "exists" in reason


def _penalised_second_moment(gamma, sw2=1.0):
    """``E[w_n^2]`` under ``exp(-w^2/(2 sw2) - gamma w^6/6)`` per coordinate, by a fine quadrature."""
    z = np.linspace(-8, 8, 400_001)
    density = np.exp(-0.5 * z * z / sw2 - gamma * z**6 / 6)
    return float(np.sum(density * z * z) / np.sum(density))


@pytest.mark.slow  # default-suite budget: moved to make test-slow (2026-12-01, suite 12:19 on this machine)
def test_langevin_neurons_sample_the_penalised_prior():
    """Foreground Langevin neurons on a zero residual sample the prior exp(-|w|^2/2 - gamma sum w^6/6) (the same
    Gamma as the theory's). E[w_n^2] over 2 x 16384 independent coordinates: standard error ~0.0027.
    Budget: 4 standard errors (false-failure rate 6e-5) plus the step-size bias, measured as the change
    between h and h/2 (O(h) bias: the h/2 run is off by about that much; measured 0.0025), so the budget is
    ~0.013 against a measured deviation of ~0.004. Power: gamma 1.5 x (E[w^2] 0.040 lower) and the Gaussian
    prior (penalty ignored: 0.56 higher) sit outside the same budget; a 10% change of gamma (0.010) is below
    what 2 x 16384 draws resolve, so it is not claimed."""
    from mft_jax.data import make_dataset
    from mft_jax.train.foreground import train_foreground

    gamma = 1.0
    data = make_dataset(np.ones((1, 2)), np.zeros((1, 1)))
    model = TwoLayer("erf", 1.0, 1.0, 1.0, penalty=sextic(gamma))
    moments = {}
    for h in (0.02, 0.01):
        law = train_foreground(jax.random.key(3), model, data, jnp.zeros((1, 1)), num_neurons=16384,
                               steps=int(30 / h), step_size=h, progress=False)  # 30 relaxation times (T = 1)
        squares = np.asarray(law.w, dtype=np.float64).ravel() ** 2
        moments[h] = (squares.mean(), squares.std(ddof=1) / np.sqrt(squares.size))
    estimate, standard_error = moments[0.01]
    bias = abs(moments[0.02][0] - moments[0.01][0])
    budget = 4 * standard_error + bias
    exact = _penalised_second_moment(gamma)
    assert abs(estimate - exact) <= budget, (estimate, exact, budget)
    assert abs(estimate - _penalised_second_moment(1.5 * gamma)) > budget
    assert abs(estimate - 1.0) > budget  # the Gaussian prior's E[w^2] = sw2
