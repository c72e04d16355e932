"""The fixed-point solver against exact results (docs/theory.md sections 3 and 5)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax.errors import NonNormalizableError, NoFixedPointError
from mft_jax.theory.samplers.grid import grid_sampler
from mft_jax.theory.samplers.importance import importance_sampler
from mft_jax.model import TwoLayer
from mft_jax.theory.fixed_point import Continuation, Damped
from mft_jax.theory.normalizability import check_normalizable, runaway_strength
from mft_jax.theory.two_layer import solve, solve_branches
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
    solution = solve(data, model, grid_sampler(64, 10.0), key=jax.random.key(0), schedule=Continuation(stages=6), tol=1e-10)
    assert solution.converged, solution.message
    lam = linear_lambda(2.0, 1.0, 1.0, teacher @ teacher)
    np.testing.assert_allclose(solution.loss, lam**2 * (teacher @ teacher) / 2, rtol=1e-6)  # as in the exact test above


def test_non_normalizable_start_is_reported(x64):
    data = make_data("linear_teacher", quadrature=3, teacher=TEACHER)
    model = TwoLayer("linear", 1.0, 1.0, 2.0)  # r = y: 2 c sw2 |u|^2 = beta^2 |v|^2 = 5 >= 1
    with pytest.raises(NonNormalizableError, match=r"2 c sw2 \|S\(u\)\|\^2 = 5 >= 1 along u"):
        solve(data, model, grid_sampler(16, 6.0), key=jax.random.key(0), init="feature", auto=False)


@pytest.mark.parametrize("init", ["gp", "feature"])
def test_default_solve_escalates_past_a_non_normalizable_start(x64, init):
    """Issue 7's case: linear net, beta = 5, sa2 = 1, sw2 = 0.5, teacher (2, 1). Both starts are refused at
    beta = 5 (2 c sw2 |u|^2 = 5.1 from the GP side), the fixed point exists (g* < 1); the default solve
    continues in beta by itself, says so, and lands on the closed form."""
    teacher = np.array([2.0, 1.0])
    data = make_data("linear_teacher", quadrature=3, teacher=tuple(teacher))
    model = TwoLayer("linear", 1.0, 0.5, 5.0)
    with pytest.raises(NonNormalizableError):
        solve(data, model, grid_sampler(64, 10.0), key=jax.random.key(0), init=init, auto=False)
    solution = solve(data, model, grid_sampler(64, 10.0), key=jax.random.key(0), init=init, tol=1e-10)
    assert solution.converged, solution.message
    assert "refused" in solution.actions[0] and "continuation" in solution.message
    lam = linear_lambda(5.0, 1.0, 0.5, teacher @ teacher)
    exact = lam**2 * (teacher @ teacher) / 2
    np.testing.assert_allclose(solution.loss, exact, rtol=1e-6)  # the grid rule is spectrally accurate here
    assert abs(solution.loss - exact) < 1e-4 * abs(exact - 0.5 * teacher @ teacher)  # far from the untrained loss


def test_default_solve_escalates_past_a_cycling_iteration():
    """Clover at beta = 300 with damping 0.5: the direct iteration cycles (its change stays at 0.25-0.38, measured
    on Intel and AMD CPUs and two instruction sets; at beta = 200 the cycle is marginal: Anderson escaped it after
    32 iterations on an AMD EPYC); the default solve detects the stall, goes on by Newton ascent on the concave free
    energy, re-grids the law that the 64^2 grid no longer resolves, and converges (~10 s on 2 cores)."""
    data, model = clover(quadrature=8, beta=300.0)
    sampler = grid_sampler(64, 6.0)
    plain = solve(data, model, sampler, key=jax.random.key(0), auto=False, max_iter=80)
    assert not plain.converged and min(plain.history["change"][-20:]) > 1e-2  # cycles, 1000 x tol
    solution = solve(data, model, sampler, key=jax.random.key(0))
    assert solution.converged, solution.message
    assert any("stalled" in action for action in solution.actions)
    assert any(action.startswith("re-grid") for action in solution.actions)
    assert any(action.startswith("Newton ascent") for action in solution.actions)
    assert "newton" in solution.history["step"]
    assert solution.diagnostics["ess"] >= 50 and not solution.diagnostics["warnings"]  # a resolved law
    # the map's own residual at the answer, one more G evaluation: a fixed point, not a stop
    image = solve(data, model, solution.sampler, key=jax.random.key(0), init=solution.residual, auto=False, max_iter=1)
    assert image.history["change"][0] < 1e-4


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


def contraction_rate(solution):
    """Geometric mean factor by which the relative change fell per iteration."""
    change = np.asarray(solution.history["change"])
    return float((change[-1] / change[0]) ** (1 / (len(change) - 1)))


def test_anderson_and_damping_reach_the_same_fixed_point():
    data, model = clover()
    sampler = grid_sampler(48, 6.0)
    fast = solve(data, model, sampler, key=jax.random.key(0), tol=1e-6, auto=False)  # the algorithms alone
    slow = solve(data, model, sampler, key=jax.random.key(0), solver=Damped(0.2), tol=1e-6, max_iter=500, auto=False)
    # the fixed point of this 48^2 rule (which does not resolve the law at beta = 50: not "converged", tests/test_vouch.py)
    assert fast.diagnostics["settled"] and slow.diagnostics["settled"]
    # both stop within tol/(1 - L) of the fixed point; the damped map contracts slowly (L ~ 0.97), so allow 1e-6/0.03
    assert qnorm(data, fast.residual - slow.residual) <= 5e-5 * qnorm(data, fast.residual)
    assert {"anderson"} <= set(fast.history["step"])
    # Speed-up as a contraction rate, not an iteration count (counts move by a few with the CPU's float
    # reordering): the mean factor per iteration by which the relative change falls. Measured: Anderson 0.17,
    # damping 0.2 0.75, so Anderson gains at least twice the digits per iteration with a wide margin.
    assert contraction_rate(fast) ** 2 <= contraction_rate(slow)
    # and it is Anderson that converges: the same damping without it cycles (measured rate 1.0006 over 500
    # iterations), so after 60 iterations its change is still far above tol.
    plain = solve(data, model, sampler, key=jax.random.key(0), solver=Damped(0.5), tol=1e-6, max_iter=60, auto=False)
    assert not plain.diagnostics["settled"] and min(plain.history["change"][-10:]) > 100 * 1e-6


def test_continuation_reaches_the_same_fixed_point():
    data, model = clover(quadrature=8)
    sampler = grid_sampler(40, 6.0)
    direct = solve(data, model, sampler, key=jax.random.key(0), tol=1e-6)
    staged = solve(data, model, sampler, key=jax.random.key(0), tol=1e-6, schedule=Continuation(stages=3))
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
    solution = solve(data, model, sampler, key=jax.random.key(0), solver=Damped(0.1), max_iter=2, tol=1e-8, auto=False)
    assert not solution.converged and solution.iterations == 2
    assert "no fixed point" in solution.message and "Hint" in solution.message
    with pytest.raises(NoFixedPointError, match="continuation"):
        solve(data, model, sampler, key=jax.random.key(0), solver=Damped(0.1), max_iter=2, tol=1e-8, throw=True, auto=False)


def test_branches_report_free_energies(x64):
    """``I(r) = beta sum q (r.y - |r|^2/2) - log E_prior[exp(c |S_r(w)|^2)]`` is strictly concave in r (a concave
    quadratic minus a log-mean-exp of convex functions of r), so the two-layer theory at finite P has ONE fixed
    point: its maximum. Two starts far apart (the GP residual and y) must reach it, with one free energy, and I
    must be stationary there and lower along every line through it. Power: the fixed point of beta 10% off is not
    stationary for this I (its slope is > 1e-3 in units of the curvature, 1e-6 at ours). Two genuine branches
    (a first-order transition) exist only in the d -> infinity saddle equations:
    tests/test_modular.py::test_saddle_branches_cross_at_coexistence and
    tests/test_teacher_student.py::test_paper_equations_give_their_critical_coupling."""
    from mft_jax.theory.two_layer import free_energy

    data, model = clover(quadrature=6)
    sampler = grid_sampler(32, 6.0)  # a fixed grid (adapt_grid=False): I below uses the same quadrature nodes
    branches = solve_branches(data, model, sampler, key=jax.random.key(0), tol=1e-8, adapt_grid=False)
    # the fixed point of this fixed 32^2 rule (the one I below integrates), settled from both starts
    assert branches.gp.diagnostics["settled"] and branches.feature.diagnostics["settled"]
    r_star = np.asarray(branches.gp.residual)
    y, q = np.asarray(data.y), np.asarray(data.q)
    norm = lambda v: float(np.sqrt(np.sum(q[:, None] * v * v)))  # noqa: E731
    assert norm(y - r_star) > 0.25 * norm(r_star)  # the feature start (r = y) is far from the fixed point ...
    assert norm(np.asarray(branches.feature.residual) - r_star) < 1e-6 * norm(r_star)  # ... and reaches it
    np.testing.assert_allclose(branches.feature.free_energy, branches.gp.free_energy, rtol=1e-9)
    assert "both starts reach the same fixed point" in branches.message and "free energy per neuron" in branches.message
    assert getattr(branches, branches.stable).free_energy == min(branches.gp.free_energy, branches.feature.free_energy)

    state = sampler.init(jax.random.key(0), model, data)

    def energy(r):
        _, after = sampler.update(state, model, data, jnp.asarray(r))
        return free_energy(model, data, r, float(after.info.log_partition))

    np.testing.assert_allclose(energy(r_star), branches.gp.free_energy, rtol=1e-12)
    directions = [y - r_star, np.random.default_rng(0).normal(size=r_star.shape) * norm(r_star)]

    def slope_over_curvature(r, direction, h=0.01):
        """Central first over second difference of I along ``direction``: the offset (in t) to the line's maximum."""
        low, mid, high = energy(r - h * direction), energy(r), energy(r + h * direction)
        curvature = (high + low - 2 * mid) / h**2
        assert curvature < 0  # concave along the line
        return (high - low) / (2 * h) / abs(curvature)

    for direction in directions:
        assert abs(slope_over_curvature(r_star, direction)) < 1e-4
        for t in (-0.3, -0.1, 0.1, 0.3):
            assert energy(r_star + t * direction) < energy(r_star)  # the fixed point is the maximum of I
    wrong = solve(data, model.replace(beta=1.1 * model.beta), sampler, key=jax.random.key(0), tol=1e-8, adapt_grid=False)
    assert wrong.diagnostics["settled"] and abs(slope_over_curvature(np.asarray(wrong.residual), directions[0])) > 1e-3


def test_sampler_warnings_in_words():
    data, model = clover(quadrature=6)
    cramped = solve(data, model, grid_sampler(24, 1.0), key=jax.random.key(0), adapt_grid=False)  # box of +-1 prior sd
    assert "boundary of the grid" in cramped.message and "grid_extent" in cramped.message
    adapted = solve(data, model, grid_sampler(24, 1.0), key=jax.random.key(0))  # the default widens the box itself
    assert adapted.converged and not adapted.diagnostics["warnings"]
    assert adapted.actions and all(action.startswith("re-grid") for action in adapted.actions)
    assert max(abs(end) for span in adapted.diagnostics["sampler"]["spans"] for end in span) > 2.0  # beyond 2 prior sd
    starved = solve(data, model, importance_sampler(150), key=jax.random.key(0))  # ESS < 100 of 150 draws
    assert starved.diagnostics["ess"] < 100
    assert "effective sample size" in starved.message and "num_samples" in starved.message


def test_a_sweep_over_beta_compiles_the_fixed_point_map_once():
    """beta, sa2 and sw2 are traced leaves of the model and samplers hash by their settings, so a sweep
    with a new model and a new (equal) sampler object at every point reuses one compiled map."""
    from mft_jax.theory.two_layer import fixed_point_map

    data = make_data("continuous_xor", quadrature=7)  # a shape no other test uses: its own cache entry
    before = fixed_point_map._cache_size()
    losses = []
    for beta in (2.0, 3.0, 5.0, 8.0):
        solution = solve(data, TwoLayer("ramp", 1.0, 1.0, beta), grid_sampler(40, 6.0), key=jax.random.key(0), tol=1e-4)
        assert not solution.actions  # a resolved law: no re-grid (a new grid shape would compile anew)
        losses.append(solution.loss)
    assert fixed_point_map._cache_size() - before == 1
    assert losses == sorted(losses, reverse=True)  # and the sweep did move: the loss falls as beta grows
    # the same with the model's hyperparameters static (as before the pytree) would compile 4 times:
    static = jax.jit(lambda beta: TwoLayer("ramp", 1.0, 1.0, beta).coupling, static_argnums=0)
    for beta in (2.0, 3.0, 5.0, 8.0):
        static(beta)
    assert static._cache_size() == 4


def test_model_is_a_pytree_that_vmaps_over_couplings(x64):
    data = make_data("linear_teacher", quadrature=3, teacher=TEACHER)
    model = TwoLayer("linear", 1.0, 1.0, 0.5)
    betas = jnp.asarray([0.25, 0.5, 1.0])
    stacked = jax.vmap(lambda beta: model.replace(beta=beta))(betas)
    assert stacked.beta.shape == (3,) and stacked.activation is model.activation
    w = jnp.asarray([[0.3, -0.2]])
    batched = jax.vmap(lambda m: m.log_density(w, data, data.y))(stacked)
    one_by_one = [TwoLayer("linear", 1.0, 1.0, float(b)).log_density(w, data, data.y) for b in betas]
    np.testing.assert_allclose(np.asarray(batched), np.asarray(one_by_one), rtol=1e-12)


def test_a_step_that_runs_away_is_refused_in_words_naming_the_residual(monkeypatch):
    """Every damped step from the start makes the law non-normalizable (here: a stand-in check that accepts
    only the start): ``NonNormalizableError`` in the physics' words after ``BACKTRACK`` halvings (the
    backtracking itself: ``tests/test_fixed_point.py``)."""
    import tqdm

    import mft_jax.theory.two_layer as solver_module
    from mft_jax.theory.two_layer import BACKTRACK, _iterate

    data = make_data("linear_teacher", quadrature=3, teacher=TEACHER)
    model = TwoLayer("linear", 1.0, 1.0, 1.0)
    calls = []

    def only_the_start(model, data, residual, key):
        calls.append(1)
        if len(calls) > 1:
            raise NonNormalizableError("stand-in: runs away")

    monkeypatch.setattr(solver_module, "check_normalizable", only_the_start)
    sampler = grid_sampler(16, 6.0)
    with pytest.raises(NonNormalizableError, match="every damped step from the current residual .* non-normalizable at beta = 1"):
        _iterate(sampler, model, data, sampler.init(jax.random.key(0), model, data), np.asarray(data.y), solver=Damped(0.5, BACKTRACK),
                 tol=1e-8, max_iter=5, stochastic=False, history={"change": [], "loss": [], "beta": [], "step": []},
                 bar=tqdm.tqdm(disable=True), key=jax.random.key(0), callback=None)
    assert len(calls) == 1 + BACKTRACK
