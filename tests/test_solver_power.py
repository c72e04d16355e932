"""Promised behaviour with tests that can fail: predictions at new points, the README's extension examples,
the normalizability probe for callables of unknown growth (each with the wrong answer shown to fail)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax.errors import ConfigError, NonNormalizableError
from mft_jax.theory.samplers.grid import grid_sampler
from mft_jax.model import TwoLayer
from mft_jax.theory.normalizability import check_normalizable
from mft_jax.theory.two_layer import solve
from mft_jax.tasks import make_data

from test_solver import linear_lambda


def test_predict_at_new_points_is_the_linear_closed_form(x64):
    """Linear net, y = v.x: the residual is r = lambda v.x, so f(x) = (1 - lambda) v.x at every x, also off the
    quadrature nodes. Power: the GP's prediction (rho = prior) at the same points misses by >> the tolerance."""
    teacher = np.array([2.0, 1.0])
    data = make_data("linear_teacher", quadrature=3, teacher=tuple(teacher))
    model = TwoLayer("linear", 1.0, 1.0, 0.3)
    solution = solve(data, model, grid_sampler(64, 10.0), key=jax.random.key(0), tol=1e-12)
    x_new = np.random.default_rng(0).normal(size=(7, 2)) * 3.0  # far outside the 3-point rule's nodes too
    lam = linear_lambda(0.3, 1.0, 1.0, teacher @ teacher)
    exact = (1 - lam) * x_new @ teacher
    predicted = np.asarray(solution.predict(jnp.asarray(x_new)))[:, 0]
    np.testing.assert_allclose(predicted, exact, rtol=1e-6)
    gp = solve(data, model, grid_sampler(64, 10.0), key=jax.random.key(0), max_iter=1, auto=False, tol=1e-12)
    gp_prediction = np.asarray(gp.background().predict(jnp.asarray(x_new), gp.residual))[:, 0]
    assert np.max(np.abs(gp_prediction - exact)) > 1e3 * 1e-6 * np.max(np.abs(exact))


def test_readme_extension_example_registers_a_task_and_an_activation():
    """The README's 'Extending' snippet, verbatim in substance: a new activation and task, usable by name."""
    from mft_jax import Task, make_data as make, register_activation, register_task

    register_activation("softplus_readme", jax.nn.softplus, growth=1)
    register_task("sign_readme", lambda d=3: Task("sign_readme", d, 1, lambda x: jnp.sign(x[:, :1])))
    data = make("sign_readme", d=3, samples=512, seed=0)
    assert data.x.shape == (512, 3) and set(np.unique(np.asarray(data.y))) <= {-1.0, 1.0}
    np.testing.assert_array_equal(np.asarray(data.y)[:, 0], np.sign(np.asarray(data.x)[:, 0]))
    model = TwoLayer("softplus_readme", sa2=1.0, sw2=1.0, beta=2.0)
    np.testing.assert_allclose(np.asarray(model.features(jnp.ones((1, 3)), data.x[:4])),
                               np.asarray(jax.nn.softplus(jnp.sum(data.x[:4], axis=1)))[None], rtol=1e-6)


def test_probe_of_a_callable_of_unknown_growth():
    """A user callable of unknown growth: the ray probe accepts a bounded one and refuses a cubic one whose
    tilt outgrows the prior (the same residual, only the growth differs). An odd target, so S(t u) ~ t^3 does
    not vanish by symmetry (for the even continuous XOR an odd phi gives S = 0 and the law exists)."""
    data = make_data("linear_teacher", quadrature=4, teacher=(1.0, -0.5))
    assert "falls at large radii" in check_normalizable(TwoLayer(jnp.tanh, 1.0, 1.0, 5.0), data, data.y)
    with pytest.raises(NonNormalizableError, match="keeps growing"):
        check_normalizable(TwoLayer(lambda z: z**3, 1.0, 1.0, 5.0), data, data.y)


def test_mcmc_solve_says_why_it_stopped_and_that_it_has_no_free_energy():
    """A stochastic sampler: damped steps, a stop at the noise floor said in words, no free energy (MALA gives
    no log-normaliser) said in words; a deterministic sampler on the same problem has one."""
    from mft_jax.theory.samplers.mcmc import mcmc_sampler

    data = make_data("continuous_xor", quadrature=5)
    model = TwoLayer("ramp", 1.0, 1.0, 10.0)
    solution = solve(data, model, mcmc_sampler(num_chains=256, num_steps=10, num_warmup=5), key=jax.random.key(0),
                     max_iter=40, tol=1e-7)
    assert solution.converged and "noise floor" in solution.message  # 256 chains cannot reach 1e-7
    assert set(solution.history["step"]) <= {"start", "damped"}  # no Anderson on a noisy map
    assert solution.free_energy is None and "free energy not computed" in solution.message
    assert solve(data, model, grid_sampler(32, 6.0), key=jax.random.key(0)).free_energy is not None


def test_predict_consistent_is_kernel_regression_with_the_final_law_off_the_fixed_point(x64):
    """A solve stopped after one iteration (off the fixed point): ``kernel_regression(x)`` is kernel
    regression with the final law's kernel, so on the data points it equals ``y - G(r)`` with ``G(r) = (I + beta sa2
    K Q)^-1 y`` from the dense kernel. Power: the iterate's prediction misses that identity by far more than the
    tolerance there; at the converged solve the two predictions agree. A bad name is refused in words."""
    data = make_data("linear_teacher", quadrature=3, teacher=(2.0, 1.0))
    model = TwoLayer("linear", 1.0, 1.0, 0.3)
    early = solve(data, model, grid_sampler(64, 10.0), key=jax.random.key(0), max_iter=1, auto=False)
    assert not early.converged
    k = np.asarray(early.kernel(), float)
    q, y = np.asarray(data.q, float), np.asarray(data.y, float)
    g = np.linalg.solve(np.eye(len(q)) + model.gain * k * q[None, :], y)  # G(r) from the dense kernel
    consistent = np.asarray(early.kernel_regression(data.x), float)
    np.testing.assert_allclose(consistent, y - g, rtol=1e-8, atol=1e-10)
    at_iterate = np.asarray(early.predict(data.x), float)
    assert np.max(np.abs(at_iterate - (y - g))) > 1e4 * 1e-8 * np.max(np.abs(y))
    done = solve(data, model, grid_sampler(64, 10.0), key=jax.random.key(0), tol=1e-12)
    np.testing.assert_allclose(np.asarray(done.kernel_regression(data.x)), np.asarray(done.predict(data.x)),
                               rtol=1e-8)
    with pytest.raises(ConfigError, match="'iterate'.*'consistent'.*got 'fixed'"), pytest.warns(DeprecationWarning):
        early.predict(data.x, at="fixed")  # the deprecated at= still names what it allows
