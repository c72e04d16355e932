"""One solve API: ``solve`` and ``solve_deep`` take the same keywords in the same order, solver objects and one
``Continuation`` policy; their solutions share a core; the 0.1 keywords and names still work for one release, each
with a ``DeprecationWarning`` naming its replacement and the same result to the bit."""

import inspect
import warnings

import jax
import numpy as np
import pytest

import mft_jax
from mft_jax import (Anderson, Ascent, Continuation, Damped, Deep, DeepSolution, NewtonKrylov, Result, Solution, TwoLayer,
                     make_data, make_dataset, solve, solve_deep)
from mft_jax.cli.config import schedule_from, solver_from
from mft_jax.errors import ConfigError
from mft_jax.samplers import gaussian_layers, grid_sampler, importance_sampler

SHARED = ["data", "model", "sampler", "key", "solver", "schedule", "init", "auto", "tol", "max_iter", "throw", "callback",
          "progress"]
CORE = ("residual", "loss", "free_energy", "result", "message", "iterations", "history", "actions", "diagnostics")


def linear_problem():
    return make_data("linear_teacher", quadrature=3, teacher=(1.0, -0.5)), TwoLayer("linear", 1.0, 1.0, 1.5)


def deep_problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3)) / np.sqrt(3)
    return make_dataset(x, np.tanh(x @ np.array([1.0, -0.5, 0.3]))[:, None]), Deep("linear", depth=3, beta=3.0)


def same(a, b):
    """Bit-identical results: residual, loss, every iteration's change."""
    np.testing.assert_array_equal(np.asarray(a.residual), np.asarray(b.residual))
    assert a.loss == b.loss and a.iterations == b.iterations and a.history["change"] == b.history["change"]


def test_solve_and_solve_deep_share_one_signature_and_one_policy():
    for function in (solve, solve_deep):
        names = [p.name for p in inspect.signature(function).parameters.values() if p.kind is not p.VAR_KEYWORD]
        assert names[: len(SHARED)] == SHARED, function.__name__
    defaults = [{k: inspect.signature(f).parameters[k].default for k in ("schedule", "auto", "tol", "max_iter", "throw")}
                for f in (solve, solve_deep)]
    assert defaults[0] == defaults[1]  # one meaning, one value
    assert Solution._fields[: len(CORE)] == DeepSolution._fields[: len(CORE)] == CORE
    # the default ladder: direct, then 7 stages from beta/50, then 13 stages at damping x 0.4 (both solvers)
    ladder = Continuation().attempts(10.0, 0.5, auto=True)
    assert [len(a.betas) for a in ladder] == [1, 7, 13] and [a.damping for a in ladder] == [0.5, 0.5, 0.2]
    assert ladder[1].betas[0] == pytest.approx(0.2) and ladder[2].betas[-1] == 10.0
    assert len(Continuation().attempts(10.0, 0.5, auto=False)) == 1


def test_converged_is_the_result_code_and_both_predictions_are_named():
    data, model = linear_problem()
    solution = solve(data, model, grid_sampler(16, 8.0), key=jax.random.key(0), tol=1e-6)
    assert solution.result is Result.SUCCESSFUL and solution.converged
    early = solve(data, model, grid_sampler(16, 8.0), key=jax.random.key(0), max_iter=1, auto=False, tol=1e-12)
    assert early.result is Result.MAX_STEPS and not early.converged
    x = np.asarray(data.x)[:3] + 0.1
    # off the fixed point the two predictions differ; at it they agree
    assert np.max(np.abs(np.asarray(early.predict(x)) - np.asarray(early.kernel_regression(x)))) > 1e-6
    np.testing.assert_allclose(solution.predict(x), solution.kernel_regression(x), rtol=1e-4, atol=1e-6)
    with pytest.warns(DeprecationWarning, match="kernel_regression"):
        consistent = early.predict(x, at="consistent")
    np.testing.assert_array_equal(np.asarray(consistent), np.asarray(early.kernel_regression(x)))
    deep_data, deep_model = deep_problem()
    deep = solve_deep(deep_data, deep_model, gaussian_layers(), tol=1e-6)
    assert deep.result is Result.SUCCESSFUL and deep.converged and deep.actions == ()
    np.testing.assert_allclose(deep.predict(deep_data.x), deep.kernel_regression(deep_data.x), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("old, new", [
    (dict(anderson=0), dict(solver=Damped(0.5))),
    (dict(anderson=3, damping=0.3), dict(solver=Anderson(3, 0.3))),
    (dict(newton=True), dict(solver=Ascent())),
    (dict(continuation=3), dict(schedule=Continuation(stages=3))),
    (dict(continuation=3, beta_start=0.5), dict(schedule=Continuation(stages=3, beta_start=0.5))),
])
def test_old_solve_keywords_warn_and_give_the_same_result(old, new):
    data, model = linear_problem()
    options = dict(key=jax.random.key(0), tol=1e-7)
    with pytest.warns(DeprecationWarning, match="is deprecated: use (solver|schedule)="):
        legacy = solve(data, model, grid_sampler(16, 8.0), **options, **old)
    same(legacy, solve(data, model, grid_sampler(16, 8.0), **options, **new))


@pytest.mark.parametrize("old, new", [
    (dict(method="anderson"), dict(solver=Anderson(5, 0.5, halvings=12))),
    (dict(method="damped", damping=0.7), dict(solver=Damped(0.7, halvings=12, descent=True))),
    (dict(method="newton"), dict(solver=NewtonKrylov(0.5))),
    (dict(continuation=2, beta_start=1.0), dict(schedule=Continuation(stages=2, beta_start=1.0))),
])
def test_old_solve_deep_keywords_warn_and_give_the_same_result(old, new):
    data, model = deep_problem()
    with pytest.warns(DeprecationWarning, match="is deprecated: use (solver|schedule)="):
        legacy = solve_deep(data, model, gaussian_layers(), tol=1e-6, **old)
    same(legacy, solve_deep(data, model, gaussian_layers(), tol=1e-6, **new))


def test_bad_solver_settings_are_refused_in_words():
    data, model = linear_problem()
    sampler, key = grid_sampler(8, 6.0), jax.random.key(0)
    with pytest.raises(ConfigError, match="either solver= or the deprecated anderson"):
        solve(data, model, sampler, key=key, solver=Damped(), anderson=0)
    with pytest.raises(ConfigError, match="solver must be one of Anderson, Damped, Ascent"):
        solve(data, model, sampler, key=key, solver=NewtonKrylov())
    with pytest.raises(ConfigError, match="solver must be one of NewtonKrylov, Anderson, Damped"):
        solve_deep(*deep_problem(), gaussian_layers(), solver=Ascent())
    with pytest.raises(ConfigError, match="damping must be in"):
        solve(data, model, sampler, key=key, solver=Damped(1.5))
    with pytest.raises(TypeError, match="unexpected keyword argument 'anderson_memory'"):
        solve(data, model, sampler, key=key, anderson_memory=3)
    with pytest.raises(ConfigError, match="stages must be an integer >= 1"):
        Continuation(stages=0)
    with pytest.raises(ConfigError, match=r"beta_start must be in \(0, beta = 1.5\]"):
        solve(data, model, sampler, key=key, schedule=Continuation(stages=3, beta_start=2.0))


def test_the_cli_is_where_strings_become_objects():
    assert solver_from(None, damping=0.5) == Anderson(5, 0.5, 6)
    assert solver_from(None, damping=0.2, anderson=0) == Damped(0.2, 6)
    assert solver_from(None, damping=0.5, newton=True) == Ascent(0.5)
    assert solver_from("damped", damping=0.5) == Damped(0.5, 6)
    assert solver_from(None, damping=0.5, deep=True) == NewtonKrylov(0.5)
    assert solver_from("anderson", damping=0.4, deep=True) == Anderson(5, 0.4, halvings=12)
    assert schedule_from(0, None) == Continuation() and schedule_from(4, 0.1) == Continuation(stages=4, beta_start=0.1)
    with pytest.raises(ConfigError, match="method = 'newton' is unknown for a two-layer net"):
        solver_from("newton", damping=0.5)


def test_old_names_and_paths_warn_and_forward():
    from mft_jax.theory import deep, fixed_point

    with pytest.warns(DeprecationWarning, match="kernels_at"):
        assert deep.test_kernels is deep.kernels_at
    with pytest.warns(DeprecationWarning, match="NoiseFloorStop"):
        assert fixed_point.NoiseFloor is fixed_point.NoiseFloorStop
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from mft_jax.train.deep_network import feature_kernels
        from mft_jax.train.network import init_network, loss  # noqa: F401
    assert any("moved to" in str(w.message) for w in caught)
    model = TwoLayer("erf")
    params = init_network(jax.random.key(0), model, 4, 2)
    np.testing.assert_array_equal(params["w"], model.init_params(jax.random.key(0), 4, 2)["w"])
    data, two = linear_problem()
    solution = solve(data, two, grid_sampler(8, 6.0), key=jax.random.key(0), max_iter=2, auto=False)
    with pytest.warns(DeprecationWarning, match="solution.layer_background"):
        old = two.layer_background(solution, 1)
    np.testing.assert_array_equal(old.phihat, solution.layer_background(1).phihat)
    deep_data, deep_model = deep_problem()
    deep_solution = solve_deep(deep_data, deep_model, gaussian_layers(), max_iter=0)
    with pytest.warns(DeprecationWarning, match="solution.layer_background"):
        old = deep_model.layer_background(deep_solution, 2)
    np.testing.assert_array_equal(old.basis, deep_solution.layer_background(2).basis)
    assert feature_kernels is not None


def test_the_solver_never_asks_a_samplers_type():
    import mft_jax.theory.two_layer as two_layer

    source = inspect.getsource(two_layer)
    assert "GridSampler" not in source and "isinstance(sampler" not in source
    data, model = linear_problem()
    summary = solve(data, model, importance_sampler(512), key=jax.random.key(0), max_iter=2, auto=False).diagnostics["sampler"]
    assert summary == {"name": "importance", "num_samples": 512}


def test_the_flat_api_has_the_nouns():
    for name in ("solve", "solve_deep", "solve_branches", "Solution", "DeepSolution", "Deep", "TwoLayer", "Anderson",
                 "Damped", "NewtonKrylov", "Ascent", "Continuation", "Result"):
        assert hasattr(mft_jax, name), name
    for name in ("grid_sampler", "importance_sampler", "mcmc_sampler", "tempered_sampler", "gaussian_layers",
                 "importance_layers", "grid_layers", "mcmc_layers"):
        assert callable(getattr(mft_jax.samplers, name)), name


def test_the_foreground_trainer_takes_a_solution_or_a_bare_layer_background():
    from mft_jax.train.deep_foreground import train_deep_foreground

    data, model = deep_problem()
    solution = solve_deep(data, model, gaussian_layers(), tol=1e-6)
    run = dict(num_neurons=8, steps=4, step_size=0.01, chunk=2, progress=False)
    via_solution = train_deep_foreground(jax.random.key(1), solution, 2, **run)
    via_background = train_deep_foreground(jax.random.key(1), solution.layer_background(2), 2, model=model, **run)
    np.testing.assert_array_equal(np.asarray(via_solution.theta), np.asarray(via_background.theta))
    with pytest.raises(ConfigError, match="needs its prior"):
        train_deep_foreground(jax.random.key(1), solution.layer_background(2), 2, **run)
    with pytest.raises(ConfigError, match="the background's own layer"):
        train_deep_foreground(jax.random.key(1), solution.layer_background(2), 1, model=model, **run)
