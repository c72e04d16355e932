"""The fixed-point solver against exact results (docs/theory.md sections 3 and 5)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax.errors import NonNormalizableError, NoFixedPointError
from mft_jax.foreground.grid import grid_sampler
from mft_jax.foreground.importance import importance_sampler
from mft_jax.model import TwoLayer
from mft_jax.normalizability import check_normalizable, runaway_strength
from mft_jax.solver import solve, solve_branches
from mft_jax.tasks import make_data

TEACHER = (1.0, -0.5)


def linear_lambda(beta, sa2, sw2, v2):
    """Root of ``lambda (1 + beta sa2 sw2 / (1 - 2 c sw2 lambda^2 |v|^2)) = 1`` by bisection (docs/theory.md 5)."""
    c = 0.5 * beta**2 * sa2
    low, high = 0.0, min(1.0, 1.0 / np.sqrt(2 * c * sw2 * v2))  # the LHS is increasing on [0, high)
    for _ in range(200):
        mid = 0.5 * (low + high)
        value = mid * (1 + beta * sa2 * sw2 / (1 - 2 * c * sw2 * mid**2 * v2))
        low, high = (mid, high) if value < 1 else (low, mid)
    return 0.5 * (low + high)


def test_linear_teacher_exact(x64):
    beta, sa2, sw2 = 1.0, 1.0, 1.0
    data = make_data("linear_teacher", quadrature=3, teacher=TEACHER)  # Gauss-Hermite: E[x x^T] = I exactly
    model = TwoLayer("linear", sa2, sw2, beta)
    solution = solve(data, model, grid_sampler(64, 10.0), key=jax.random.key(0), tol=1e-12)
    assert solution.converged, solution.message
    v = np.asarray(TEACHER)
    lam = linear_lambda(beta, sa2, sw2, v @ v)
    # 1e-6 relative: the grid rule is spectrally accurate for this Gaussian law (h = 0.28 sd, box = 8.8 sd)
    np.testing.assert_allclose(solution.loss, lam**2 * (v @ v) / 2, rtol=1e-6)
    u = lam * v
    covariance = np.linalg.inv(np.eye(2) / sw2 - 2 * model.coupling * np.outer(u, u))
    w, weight = np.asarray(solution.law.w), np.asarray(solution.law.weights())
    mean = weight @ w
    np.testing.assert_allclose(mean, 0.0, atol=1e-9)  # symmetric law, symmetric grid
    np.testing.assert_allclose((w - mean).T @ (weight[:, None] * (w - mean)), covariance, rtol=1e-6)


def test_continuation_rescales_a_warm_start_that_would_run_away(x64):
    # v = (2, 1), beta = 2: each stage's fixed point has 2 c sw2 |u|^2 = g* ~ 0.59, so a plain warm start at
    # the next beta (ratio 50^(1/5) = 2.2) has g = 2.2^2 g* > 1 and would be refused; rescaled by
    # beta_prev / beta it starts at the previous stage's g* and the iteration reaches the exact fixed point.
    teacher = np.array([2.0, 1.0])
    data = make_data("linear_teacher", quadrature=3, teacher=tuple(teacher))
    model = TwoLayer("linear", 1.0, 1.0, 2.0)
    solution = solve(data, model, grid_sampler(64, 10.0), key=jax.random.key(0), continuation=6, tol=1e-10)
    assert solution.converged, solution.message
    lam = linear_lambda(2.0, 1.0, 1.0, teacher @ teacher)
    np.testing.assert_allclose(solution.loss, lam**2 * (teacher @ teacher) / 2, rtol=1e-6)  # as in the exact test above


def test_non_normalizable_start_is_reported(x64):
    data = make_data("linear_teacher", quadrature=3, teacher=TEACHER)
    model = TwoLayer("linear", 1.0, 1.0, 2.0)  # r = y: 2 c sw2 |u|^2 = beta^2 |v|^2 = 5 >= 1
    with pytest.raises(NonNormalizableError, match=r"2 c sw2 \|S\(u\)\|\^2 = 5 >= 1 along u"):
        solve(data, model, grid_sampler(16, 6.0), key=jax.random.key(0), init="feature")


def test_relu_runaway_direction_matches_brute_force():
    data = make_data("continuous_xor", quadrature=6)
    model = TwoLayer("relu", 1.0, 1.0, 5.0)
    value, u = runaway_strength(model, data, data.y)
    angles = np.linspace(0, 2 * np.pi, 20_001)
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    overlap = np.maximum(directions @ np.asarray(data.x).T, 0) @ (np.asarray(data.q)[:, None] * np.asarray(data.y))
    brute = 2 * model.coupling * model.sw2 * np.max(np.sum(overlap**2, axis=1))
    np.testing.assert_allclose(value, brute, rtol=1e-4)  # float32 search vs a 3e-4 rad angular grid
    assert value >= 1
    with pytest.raises(NonNormalizableError, match="weights run away"):
        check_normalizable(model, data, data.y)


def test_square_activation_is_non_normalizable_unless_overlap_vanishes():
    data = make_data("continuous_xor", quadrature=4)
    model = TwoLayer("square", 1.0, 1.0, 1.0)
    with pytest.raises(NonNormalizableError, match="like z\\^2"):
        check_normalizable(model, data, data.y)
    check_normalizable(model, data, jnp.zeros_like(data.y))  # S = 0: the prior


def clover(quadrature=12, beta=50.0):
    return make_data("continuous_xor", quadrature=quadrature), TwoLayer("ramp", 1.0, 1.0, beta)


def qnorm(data, v):
    return float(jnp.sqrt(jnp.sum(data.q[:, None] * v * v)))


def test_anderson_and_damping_reach_the_same_fixed_point():
    data, model = clover()
    sampler = grid_sampler(48, 6.0)
    fast = solve(data, model, sampler, key=jax.random.key(0), tol=1e-6)
    slow = solve(data, model, sampler, key=jax.random.key(0), anderson=0, damping=0.2, tol=1e-6, max_iter=500)
    assert fast.converged and slow.converged
    # both stop within tol/(1 - L) of the fixed point; the damped map contracts slowly (L ~ 0.97), so allow 1e-6/0.03
    assert qnorm(data, fast.residual - slow.residual) <= 5e-5 * qnorm(data, fast.residual)
    assert 5 * fast.iterations <= slow.iterations
    assert {"anderson"} <= set(fast.history["step"])


def test_continuation_reaches_the_same_fixed_point():
    data, model = clover(quadrature=8)
    sampler = grid_sampler(40, 6.0)
    direct = solve(data, model, sampler, key=jax.random.key(0), tol=1e-6)
    staged = solve(data, model, sampler, key=jax.random.key(0), tol=1e-6, continuation=3)
    assert staged.converged
    assert len(set(staged.history["beta"])) == 3 and staged.history["beta"][-1] == model.beta
    assert qnorm(data, direct.residual - staged.residual) <= 1e-4 * qnorm(data, direct.residual)  # 2 x tol/(1-L), L <~ 0.9


@pytest.mark.slow  # ~30 s on 2 cores: two fine grids and six importance solves
def test_grid_and_importance_agree_within_sampling_error():
    data, model = clover(quadrature=8)
    grid = solve(data, model, grid_sampler(160, 6.0), key=jax.random.key(0), tol=1e-6)
    coarser = solve(data, model, grid_sampler(120, 6.0), key=jax.random.key(0), tol=1e-6)
    grid_error = abs(grid.loss - coarser.loss)  # the grid's own discretisation error, bounded by the refinement step
    runs = [solve(data, model, importance_sampler(20_000), key=jax.random.key(seed), tol=1e-6) for seed in range(6)]
    assert all(run.converged for run in runs)
    losses = np.array([run.loss for run in runs])
    standard_error = losses.std(ddof=1) / np.sqrt(len(losses))
    # 5 standard errors (t with 5 dof: two-sided false-failure rate ~ 4e-3) plus the grid's error
    assert abs(losses.mean() - grid.loss) <= 5 * standard_error + grid_error
    kernels = np.stack([np.asarray(run.kernel())[:3, :3] for run in runs])
    kernel_error = kernels.std(axis=0, ddof=1) / np.sqrt(len(runs))
    kernel_grid_error = np.abs(np.asarray(grid.kernel())[:3, :3] - np.asarray(coarser.kernel())[:3, :3])
    assert np.all(np.abs(kernels.mean(axis=0) - np.asarray(grid.kernel())[:3, :3]) <= 5 * kernel_error + kernel_grid_error + 1e-6)


def test_free_energy_matches_direct_quadrature(x64):
    data, model = clover(quadrature=8, beta=20.0)
    solution = solve(data, model, grid_sampler(96, 6.0), key=jax.random.key(0), tol=1e-11)
    assert solution.converged, solution.message
    w, p = np.asarray(solution.law.w), np.asarray(solution.law.weights())
    cell = (w[1, 1] - w[0, 1]) ** 2  # the grid's cell area (nodes vary fastest along the last axis)
    prior = cell * np.exp(-0.5 * np.sum(w * w, axis=1) / model.sw2) / (2 * np.pi * model.sw2)  # N(0, sw2 I) per cell
    f = np.asarray(solution.predict(data.x))
    beta_loss = model.beta * 0.5 * np.sum(np.asarray(data.q)[:, None] * (np.asarray(data.y) - f) ** 2)
    kl_w = np.sum(p * np.log(p / prior))
    tilt = np.asarray(model.log_tilt(solution.law.w, data, solution.residual))
    kl_a_given_w = np.sum(p * tilt)  # KL(N(beta sa2 S, sa2) || N(0, sa2)) = beta^2 sa2 |S|^2 / 2 = c |S|^2
    # the identity is exact at the fixed point; 1e-8 covers tol = 1e-11 times beta |y|^2 and rounding
    np.testing.assert_allclose(solution.free_energy, beta_loss + kl_w + kl_a_given_w, rtol=1e-8)


def test_no_convergence_is_reported_and_throw_raises():
    data, model = clover(quadrature=6)
    sampler = grid_sampler(24, 6.0)
    solution = solve(data, model, sampler, key=jax.random.key(0), anderson=0, damping=0.1, max_iter=2, tol=1e-8)
    assert not solution.converged and solution.iterations == 2
    assert "no fixed point" in solution.message and "Hint" in solution.message
    with pytest.raises(NoFixedPointError, match="continuation"):
        solve(data, model, sampler, key=jax.random.key(0), anderson=0, damping=0.1, max_iter=2, tol=1e-8, throw=True)


def test_branches_report_free_energies():
    data, model = clover(quadrature=6)
    branches = solve_branches(data, model, grid_sampler(32, 6.0), key=jax.random.key(0), tol=1e-6)
    assert branches.gp.converged and branches.feature.converged
    lower = min(branches.gp.free_energy, branches.feature.free_energy)
    assert getattr(branches, branches.stable).free_energy == lower
    assert "free energy per neuron" in branches.message


def test_sampler_warnings_in_words():
    data, model = clover(quadrature=6)
    cramped = solve(data, model, grid_sampler(24, 1.0), key=jax.random.key(0))  # box of +-1 prior sd
    assert "boundary of the grid" in cramped.message and "grid_extent" in cramped.message
    starved = solve(data, model, importance_sampler(150), key=jax.random.key(0))  # ESS < 100 of 150 draws
    assert starved.diagnostics["ess"] < 100
    assert "effective sample size" in starved.message and "num_samples" in starved.message
