"""The fixed-point engine (``mft_jax.theory.fixed_point``) on maps with known fixed points, apart from the physics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax.errors import NoFixedPointError
from mft_jax.theory.fixed_point import (Anderson, Damped, Evaluation, InadmissibleStep, NewtonKrylov, NoiseFloorStop, Problem, Result,
                                 Stall, Step, backtracked, fixed_point)


def linear_map(n=12, seed=0, radius=0.9):
    """``G(x) = A x + b`` with spectral radius ``radius`` < 1: the fixed point solves ``(I - A) x = b``."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    a = q @ np.diag(radius * np.linspace(-1, 1, n)) @ q.T
    b = rng.normal(size=n)
    return a, b, np.linalg.solve(np.eye(n) - a, b)


def test_anderson_and_damped_reach_the_fixed_point_of_a_contraction_and_report_each_iterate():
    a, b, exact = linear_map()
    problem = Problem(lambda x: Evaluation(a @ x + b - x))
    seen = []
    runs = {}
    for name, solver in {"anderson": Anderson(memory=5, damping=0.5), "damped": Damped(0.5)}.items():
        seen.clear()
        runs[name] = fixed_point(problem, np.zeros(12), solver, tol=1e-10, max_steps=2000,
                                 callback=lambda it, kind: seen.append(kind))
        run = runs[name]
        assert run.result is Result.SUCCESSFUL and run.converged and "<= tol" in run.message
        # |x - x*| <= |(I - A)^-1| |g| <= |g| / (1 - 0.9) <= 10 tol |G(x)| (x2 for |G(x)| vs |x*|)
        assert np.linalg.norm(run.value - exact) <= 2 * 10 * 1e-10 * np.linalg.norm(exact)
        assert seen[0] == "start" and len(seen) == run.steps + 1 == len(run.changes)
    # damped on eigenvalues near -0.9 contracts by ~0.95 per step; Anderson fits the spectrum (12 dimensions)
    print(f"steps to tol 1e-10: Anderson {runs['anderson'].steps}, damped {runs['damped'].steps}")  # pytest -s
    assert runs["anderson"].steps * 5 < runs["damped"].steps


def test_newton_krylov_solves_a_nonlinear_map_to_rounding():
    """``G(x) = tanh(W x) + b``: Newton-Krylov on JVPs of the traceable ``fn``; the fixed point satisfies
    ``x = tanh(W x) + b`` to float64 rounding (power: the start is 1 away)."""
    jax.config.update("jax_enable_x64", True)
    try:
        rng = np.random.default_rng(1)
        w, b = jnp.asarray(rng.normal(size=(8, 8)) * 0.6), jnp.asarray(rng.normal(size=8))

        def fn(x, args):
            w, b = args
            return jnp.tanh(w @ x) + b - x

        problem = Problem(lambda x: Evaluation(fn(x, (w, b))), fn=fn, args=(w, b))
        run = fixed_point(problem, jnp.zeros(8), NewtonKrylov(), tol=1e-13, max_steps=50)
        assert run.converged, run.message
        assert float(jnp.max(jnp.abs(fn(run.value, (w, b))))) < 1e-12
        assert float(jnp.max(jnp.abs(fn(jnp.zeros(8), (w, b))))) > 0.5
    finally:
        jax.config.update("jax_enable_x64", False)


def test_a_cycling_map_is_called_stalled_in_words_and_throw_raises():
    """``G(x) = -x``: a full damped step maps x to -x and back; the stall rule says so."""
    problem = Problem(lambda x: Evaluation(-2.0 * x))
    run = fixed_point(problem, np.ones(3), Damped(1.0), tol=1e-8, max_steps=100, stop=(Stall(window=5, factor=0.5, min_steps=10),))
    assert run.result is Result.STALLED and not run.converged and "cycles or stagnates" in run.message
    assert run.steps == 9  # 10 changes of 1.0: the rule looks first at 10
    with pytest.raises(NoFixedPointError, match="stalled"):
        fixed_point(problem, np.ones(3), Damped(1.0), tol=1e-8, max_steps=100, stop=(Stall(5, 0.5, 10),), throw=True)
    capped = fixed_point(problem, np.ones(3), Damped(1.0), tol=1e-8, max_steps=7)
    assert capped.result is Result.MAX_STEPS and capped.steps == 7 and "max_iter = 7" in capped.message


def test_a_noisy_map_stops_at_its_noise_floor_and_counts_as_converged():
    """``G(x) = x / 2 + noise (sd 1e-3)``: the change falls to the noise and stays there."""
    rng = np.random.default_rng(0)
    problem = Problem(lambda x: Evaluation(0.5 * x + 1.0 + 1e-3 * rng.normal(size=x.shape) - x))
    run = fixed_point(problem, np.zeros(50), Damped(1.0), tol=1e-12, max_steps=200, stop=(NoiseFloorStop(10, 0.8),))
    assert run.result is Result.NOISE_FLOOR and run.converged and "noise floor" in run.message
    assert np.abs(run.value - 2.0).max() < 0.01  # at the fixed point 2, within the noise
    # power: the same map without noise converges to tol instead
    clean = fixed_point(Problem(lambda x: Evaluation(1.0 - 0.5 * x)), np.zeros(50), Damped(1.0), tol=1e-12, max_steps=200,
                        stop=(NoiseFloorStop(10, 0.8),))
    assert clean.result is Result.SUCCESSFUL


def test_a_noise_floor_above_the_ceiling_is_no_fixed_point():
    """A map that only wanders (``G(x) = noise``, relative change ~1 at every step) stops as stalled, in words,
    not as converged; the same rule with a ceiling above that floor would call it converged (the check has power)."""
    rng = np.random.default_rng(1)
    problem = Problem(lambda x: Evaluation(rng.normal(size=x.shape) - x))
    run = fixed_point(problem, np.zeros(50), Damped(1.0), tol=1e-6, max_steps=200, stop=(NoiseFloorStop(10, 0.8),))
    assert run.result is Result.STALLED and not run.converged and "no fixed point" in run.message
    lenient = fixed_point(problem, np.zeros(50), Damped(1.0), tol=1e-6, max_steps=200, stop=(NoiseFloorStop(10, 0.8, ceiling=10.0),))
    assert lenient.converged and "noise floor" in lenient.message


def test_anderson_keeps_its_iterates_admissible():
    """The admissible region ``x_0 <= 1.5`` around a fixed point with ``x_0 = 1``: unconstrained, the first
    (damped) step lands at ``x_0 = 1.57``; constrained, every iterate stays inside and the fixed point is reached."""
    a, b, exact = linear_map(radius=0.95)
    e0 = np.eye(12)[0]
    b = b + (1.0 - exact[0]) * (np.eye(12) - a) @ e0  # moves the fixed point's first coordinate to 1
    for region, inside in ((lambda x: True, False), (lambda x: x[0] <= 1.5, True)):
        visited = []
        run = fixed_point(Problem(lambda x: Evaluation(a @ x + b - x), admissible=region), np.zeros(12), Anderson(5, 1.0),
                          tol=1e-10, max_steps=500, callback=lambda it, kind: visited.append(it.x[0]))
        assert run.converged and abs(run.value[0] - 1.0) < 1e-7
        assert (max(visited) <= 1.5) == inside, max(visited)


def test_backtracking_halves_the_step_until_admissible_and_says_when_it_cannot():
    """``backtracked``: x + t d with t halved while the admissibility test refuses it; the two-layer solver
    turns the failure into ``NonNormalizableError`` naming the residual (``tests/test_solver.py``)."""
    x, d = np.zeros((4, 1)), 0.5 * np.ones((4, 1))
    problem = Problem(lambda v: Evaluation(v), admissible=lambda point: float(np.max(point)) <= 0.1)
    accepted = backtracked(problem, x, d, 6)
    np.testing.assert_allclose(accepted.x, 0.0625 * np.ones((4, 1)))  # 0.5 -> 0.25 -> 0.125 -> 0.0625, the first <= 0.1
    assert accepted.t == 0.125 and accepted.evaluation is None  # a cheap check: no evaluation spent
    np.testing.assert_allclose(backtracked(Problem(lambda v: Evaluation(v)), x, d, 6).x, d)  # no halving if not needed
    calls = []
    refusing = Problem(lambda v: Evaluation(v), admissible=lambda point: calls.append(1) and False)
    with pytest.raises(InadmissibleStep, match=r"every damped step \(down to 0.0312 x\)") as refused:
        backtracked(refusing, x, d, 6)
    assert len(calls) == 6 and refused.value.smallest == 0.5**5  # the smallest step tried
    # only the map knows: each try is evaluated once, and the accepted one's evaluation comes back
    evaluations = []
    mapped = Problem(lambda v: evaluations.append(1) or Evaluation(v, None, float(np.max(v)) <= 0.1), admissible=None)
    trial = backtracked(mapped, x, d, 6)
    assert trial.t == 0.125 and trial.evaluation.admissible and len(evaluations) == 4


def test_pytree_state_with_weights_and_a_known_first_evaluation():
    """A dict state ``{"r": (3,), "k": (2, 2)}``: the engine ravels it, weights by leaf, hands pytrees back;
    with ``evaluation`` given the start is not reported again."""
    target = {"r": np.array([1.0, -2.0, 0.5]), "k": np.array([[2.0, 0.0], [0.0, -1.0]])}
    problem = Problem(lambda x: Evaluation(jax.tree.map(lambda t, v: 0.5 * (t - v), target, x)),
                      weights={"r": np.array([1.0, 2.0, 3.0]), "k": 1.0})
    start = {"r": np.zeros(3), "k": np.zeros((2, 2))}
    seen = []
    run = fixed_point(problem, start, Anderson(3, 1.0), tol=1e-6, max_steps=50, evaluation=problem.evaluate(start),
                      callback=lambda it, kind: seen.append((kind, set(it.x))))
    assert run.converged and set(run.value) == {"r", "k"}
    for name in target:
        np.testing.assert_allclose(np.asarray(run.value[name]), target[name], rtol=1e-5)
    assert seen and seen[0][0] != "start" and all(keys == {"r", "k"} for _, keys in seen)
    # admissibility known only to the map (admissible=None) works on pytrees too (it used to call None)
    judged = Problem(lambda x: Evaluation(jax.tree.map(lambda t, v: 0.5 * (t - v), target, x), None,
                                          bool(np.all(np.asarray(x["r"]) <= 1.0))), admissible=None)
    kept = []
    run = fixed_point(judged, start, Damped(1.0), tol=1e-6, max_steps=100, callback=lambda it, kind: kept.append(it.x["r"]))
    assert run.converged and max(float(np.max(r)) for r in kept) <= 1.0


def test_escalate_hands_a_refused_or_failed_attempt_to_the_next_and_says_so():
    from mft_jax.errors import NonNormalizableError
    from mft_jax.theory.fixed_point import Continuation, Outcome, escalate

    ladder = Continuation().attempts(10.0, 0.5, auto=True)
    tried = []

    def run(attempt):
        tried.append(attempt)
        if len(tried) == 1:
            raise NonNormalizableError("runs away: details")
        return Outcome(len(tried) == 3, "stalled", len(tried))

    actions = []
    assert escalate(run, ladder, actions, auto=True).value == 3 and tried == ladder
    assert actions[0].startswith("the direct solve at beta = 10 (damping 0.5) was refused (runs away); next: continuation")
    assert "found no fixed point (stalled)" in actions[1]
    tried.clear()
    with pytest.raises(NonNormalizableError):  # the last attempt's refusal stands
        escalate(run, ladder[:1], [], auto=False)


def test_adapt_swaps_the_map_between_steps_and_a_refused_step_stays_unreported():
    a, b, exact = linear_map()
    shifted = Problem(lambda x: Evaluation(a @ x + b + 1.0 - x))  # the first map: a wrong fixed point
    right = Problem(lambda x: Evaluation(a @ x + b - x))
    swaps, kinds = [], []

    def adapt(it):  # after 5 steps of the wrong map, switch once
        if not swaps and len(kinds) >= 5:
            swaps.append(True)
            return right
        return None

    run = fixed_point(shifted, np.zeros(12), Anderson(5, 0.5), tol=1e-10, max_steps=500, adapt=adapt,
                      callback=lambda it, kind: kinds.append(kind))
    assert run.converged and "refresh" in kinds and kinds.count("refresh") == 1
    np.testing.assert_allclose(run.value, exact, atol=1e-7)  # tol 1e-10 / (1 - 0.9) x |x| ~ 4e-9
    stop = fixed_point(right, np.zeros(12), Damped(0.5), tol=1e-10, max_steps=50,
                       adapt=lambda it: (Result.NO_PROGRESS, "the particles went stale"))
    assert stop.result is Result.NO_PROGRESS and stop.message == "the particles went stale" and stop.steps == 0
    refused = Problem(lambda x: Evaluation(a @ x + b - x, None, bool(np.all(np.abs(x) < 1e-3))), admissible=None)

    class Overshoot:  # a last-resort step that leaves the admissible region (as NewtonKrylov's may)
        def init(self, problem, it):
            return None

        def step(self, problem, state, it):
            x = it.x + it.evaluation.gap
            return Step(x, problem.evaluate(x), "overshoot", state)

    seen = []
    out = fixed_point(refused, np.zeros(12), Overshoot(), tol=1e-10, max_steps=50, callback=lambda it, k: seen.append(k),
                      refuse_inadmissible="no admissible step")
    assert out.result is Result.NO_PROGRESS and out.message.endswith("no admissible step") and seen == ["start"]
