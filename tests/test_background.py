"""The background kernel and residual: dense vs matrix-free, and the NNGP limit."""

import functools
import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.theory.background import Background, kernel, kernel_matvec, solve_residual
from mft_jax.theory.samplers.grid import grid_sampler
from mft_jax.theory.samplers.importance import importance_sampler
from mft_jax.model import TwoLayer
from mft_jax.theory.two_layer import gp_background
from mft_jax.tasks import make_data


def tilted_law(key, model, data, num_samples):
    """An importance law of the clover task at residual y (far from the prior)."""
    sampler = importance_sampler(num_samples)
    law, _ = sampler.update(sampler.init(key, model, data), model, data, data.y)
    return law


def test_dense_and_conjugate_gradient_residuals_agree(x64):
    data = make_data("continuous_xor", samples=300, seed=1)
    model = TwoLayer("ramp", 1.0, 1.0, 20.0)
    law = tilted_law(jax.random.key(0), model, data, 1000)
    dense = solve_residual(model, law, data, method="dense")
    for cache in (0, 10**8):  # streamed over particle chunks / features kept in memory
        matrix_free = solve_residual(model, law, data, method="cg", chunk=256, feature_cache=cache)
        np.testing.assert_allclose(matrix_free, dense, rtol=1e-9, atol=1e-11)  # CG to 10 eps on a system with cond <~ 1 + beta sa2
    # and the dense residual solves (I + beta sa2 K Q) r = y
    gram = kernel(model, law, data.x)
    np.testing.assert_allclose(dense + model.beta * model.sa2 * gram @ (data.q[:, None] * dense), data.y, atol=1e-10)


def test_streamed_matvec_matches_dense_kernel(x64):
    data = make_data("continuous_xor", samples=200, seed=2)
    model = TwoLayer("erf", 1.0, 1.0, 5.0)
    law = tilted_law(jax.random.key(1), model, data, 1000)  # 1000 = 3 chunks of 256 + a padded one
    v = jax.random.normal(jax.random.key(2), (200, 1), jnp.float64)
    expected = kernel(model, law, data.x) @ v
    # float64 sums of 2500 terms in two orders: 1e-12 of the largest entry
    np.testing.assert_allclose(kernel_matvec(model, law, data.x, v, chunk=256), expected, atol=1e-12 * float(jnp.max(jnp.abs(expected))))


def test_large_dataset_never_forms_the_p_by_p_kernel():
    """Each path is held to its own memory bound, in the traced program (largest array) and in XLA's compiled
    buffer plan (temp bytes): streamed features O(chunk P), cached features O(M P), never O(P^2). Power, in the
    test: the cached path (which builds the whole M x P feature matrix) fails the streamed path's bound."""
    size, num, chunk = 10_000, 512, 128
    data = make_data("continuous_xor", samples=size, seed=3)
    model = TwoLayer("ramp", 1.0, 1.0, 10.0)
    law = tilted_law(jax.random.key(0), model, data, num)
    itemsize = np.dtype(data.x.dtype).itemsize

    def footprint(cache):
        solve = functools.partial(solve_residual, model, method="cg", chunk=chunk, feature_cache=cache)
        sizes = [int(np.prod(v.aval.shape)) for v in _all_outvars(jax.make_jaxpr(solve)(law, data).jaxpr)]
        assert len(sizes) > 10
        temp = jax.jit(solve).lower(law, data).compile().memory_analysis().temp_size_in_bytes
        return max(sizes), temp

    def within(bound, footprint):  # largest array <= bound elements; compiled temporaries <= 2 such arrays
        largest, temp = footprint
        return largest <= bound and temp <= 2 * bound * itemsize

    streamed, cached = footprint(0), footprint(10**8)
    assert within(chunk * size, streamed), streamed  # the (chunk, P) features of one chunk at a time
    assert within(num * size, cached), cached  # the M x P feature matrix, and nothing P x P
    assert not within(chunk * size, cached), cached  # power: a path that builds all features fails the streamed bound
    residual = solve_residual(model, law, data, method="cg")
    background = Background(model, law, data)
    equation = residual + model.beta * model.sa2 * background.matvec(data.q[:, None] * residual)
    # float32 CG at 10 eps relative; the system has condition number <= 1 + beta sa2 max eig(K Q) ~ 10
    np.testing.assert_allclose(equation, data.y, atol=2e-5 * float(jnp.max(jnp.abs(data.y))))


def _all_outvars(jaxpr):
    """Output variables of every equation, recursing into sub-jaxprs (scan/while/cond bodies)."""
    out = []
    for eqn in jaxpr.eqns:
        out.extend(eqn.outvars)
        for param in eqn.params.values():
            for inner in param if isinstance(param, (list, tuple)) else [param]:
                inner = getattr(inner, "jaxpr", inner)
                if hasattr(inner, "eqns"):
                    out.extend(_all_outvars(inner))
    return out


def test_prediction_on_the_data_is_target_minus_residual(x64):
    data = make_data("continuous_xor", quadrature=8)
    model = TwoLayer("ramp", 1.0, 1.0, 20.0)
    law = tilted_law(jax.random.key(4), model, data, 4000)
    background = Background(model, law, data)
    residual = background.imposed_residual()
    np.testing.assert_allclose(background.predict(data.x, residual), data.y - residual, atol=1e-12)  # r = y - f exactly


def test_gp_background_is_the_nngp_kernel(x64):
    """Grid quadrature of the prior vs the closed form for erf (docs/theory.md section 5)."""
    data = make_data("continuous_xor", quadrature=4)
    model = TwoLayer("erf", 1.0, 0.7, 3.0)
    background = gp_background(data, model, grid_sampler(96, 9.0), key=jax.random.key(0))
    x = np.asarray(data.x)
    q12 = model.sw2 * x @ x.T
    diag = np.diag(q12)
    closed = 2 / np.pi * np.arcsin(2 * q12 / np.sqrt(np.outer(1 + 2 * diag, 1 + 2 * diag)))
    # erf is smooth and the box holds 9 prior sds: the uniform rule is accurate far below 1e-9
    np.testing.assert_allclose(background.kernel(), closed, atol=1e-9)
