"""Exact Gibbs draws of a network's readouts given everything else (docs/theory.md section 2).

Every model of the protocol is linear in its readouts: ``f(x) = Psi(x) a`` with ``Psi`` (P, N) the
last hidden layer's features divided by the readout norm (``apply`` with ``a = I_N`` returns it). With a
Gaussian readout prior ``N(0, sa2)`` and the tempered likelihood ``exp(-beta E L)``,
``L = 1/2 sum_mu q_mu |Psi a - y|_mu^2``, ``E = energy_scale(N)``, the readouts' conditional law is Gaussian:
in whitened coordinates ``a = sqrt(sa2) b``, with ``A = sqrt(beta E sa2) Q^1/2 Psi`` and
``z = sqrt(beta E) Q^1/2 y``,

    p(b | rest) ∝ exp(-|A b - z|^2 / 2 - |b|^2 / 2) = N(M^-1 A^T z, M^-1),     M = I + A^T A = L L^T,

drawn as ``b = M^-1 A^T z + L^-T xi`` (one Cholesky factor per draw, each output channel an independent
column). The factor and the triangular solves are written as ``lax.fori_loop`` sweeps (``cholesky``,
``solve_lower``, ``solve_lower_transposed``; ``N^3`` and ``N^2 C`` per draw), not LAPACK's ``potrf`` / ``trsm``:
those custom calls deadlocked intermittently inside the trainer's scanned, vmapped step on CPU (jax 0.10.2, seen
at N = 352 and 700 while the teacher-student benchmark ran, more often with ``OPENBLAS_NUM_THREADS=1``). That is
a CPU workaround: N sequential sweeps starve a GPU or TPU, so elsewhere the same three functions lower to the
backend's own factorisation and triangular solves (``jax.lax.platform_dependent``: only the branch of the platform
being compiled for is lowered).
Alternating such draws with Langevin steps on the rest leaves the same posterior invariant as Langevin on
everything, but the readouts no longer relax at the prior's slow rate ``T / sa2``: this is the
equilibrium sampler of ``train(..., readout_gibbs_every=K)``, not a model of training dynamics.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mft_jax.data import Dataset
from mft_jax.resources import require
from mft_jax.precision import uses_precision


def _sweep_cholesky(M: jax.Array) -> jax.Array:
    """Lower ``L`` with ``L L^T = M`` (symmetric positive definite), column by column:
    ``v = M[:, j] - L L[j]^T``, ``L[j, j] = sqrt(v[j])``, ``L[i, j] = v[i] / L[j, j]`` for ``i > j``."""
    n = M.shape[0]
    rows = jnp.arange(n)

    def column(j, L):
        v = M[:, j] - L @ L[j]  # L[j, k >= j] are still zero
        pivot = jnp.sqrt(v[j])
        return L.at[:, j].set(jnp.where(rows > j, v / pivot, jnp.where(rows == j, pivot, 0.0)))

    return jax.lax.fori_loop(0, n, column, jnp.zeros_like(M))


def _sweep_solve_lower(L: jax.Array, B: jax.Array) -> jax.Array:
    """``X`` with ``L X = B`` by forward substitution: ``X[j] = (B[j] - L[j] X) / L[j, j]``."""

    def row(j, X):
        return X.at[j].set((B[j] - L[j] @ X) / L[j, j])  # X[k >= j] are still zero

    return jax.lax.fori_loop(0, L.shape[0], row, jnp.zeros_like(B))


def _sweep_solve_lower_transposed(L: jax.Array, B: jax.Array) -> jax.Array:
    """``X`` with ``L^T X = B`` by back substitution: ``X[j] = (B[j] - L[:, j] . X) / L[j, j]``, j from the last."""
    n = L.shape[0]

    def row(i, X):
        j = n - 1 - i
        return X.at[j].set((B[j] - L[:, j] @ X) / L[j, j])  # X[k <= j] are still zero

    return jax.lax.fori_loop(0, n, row, jnp.zeros_like(B))


def cholesky(M: jax.Array) -> jax.Array:
    """Lower ``L`` with ``L L^T = M``: the column sweep on CPU (module docstring), the backend's factorisation elsewhere."""
    return jax.lax.platform_dependent(M, cpu=_sweep_cholesky, default=lambda M: jnp.linalg.cholesky(M))


def solve_lower(L: jax.Array, B: jax.Array) -> jax.Array:
    """``X`` with ``L X = B``: forward substitution on CPU, the backend's triangular solve elsewhere."""
    return jax.lax.platform_dependent(L, B, cpu=_sweep_solve_lower,
                                      default=lambda L, B: jax.lax.linalg.triangular_solve(L, B, left_side=True, lower=True))


def solve_lower_transposed(L: jax.Array, B: jax.Array) -> jax.Array:
    """``X`` with ``L^T X = B``: back substitution on CPU, the backend's triangular solve elsewhere."""
    return jax.lax.platform_dependent(L, B, cpu=_sweep_solve_lower_transposed, default=lambda L, B: jax.lax.linalg.triangular_solve(
        L, B, left_side=True, lower=True, transpose_a=True))


def readout_features(model, params: dict, x: jax.Array) -> jax.Array:
    """``Psi`` (P, N) with ``f(x) = Psi a`` for any model of the protocol (``apply`` at ``a = I_N``)."""
    width = params["a"].shape[0]
    return model.apply({**params, "a": jnp.eye(width, dtype=params["a"].dtype)}, x)


@uses_precision
def readout_posterior(model, params: dict, data: Dataset) -> tuple[jax.Array, jax.Array]:
    """``(mean (N, C), chol)``: the conditional mean of ``a`` and the lower Cholesky factor ``L`` of the whitened
    precision ``M = I + A^T A`` (module docstring), in the highest precision enabled (float64 under x64)."""
    width = params["a"].shape[0]
    require(8.0 * width * (width + data.num_points), f"the readout precision of {width} neurons on {data.num_points} points",
            "the width or the number of data points")
    dtype = jnp.promote_types(params["a"].dtype, jnp.float64) if jax.config.jax_enable_x64 else params["a"].dtype
    psi = readout_features(model, params, data.x).astype(dtype)
    scale = jnp.sqrt(model.beta * model.energy_scale(width)).astype(dtype)
    root_q = jnp.sqrt(data.q.astype(dtype))[:, None]
    A = (scale * jnp.sqrt(jnp.asarray(model.sa2, dtype))) * root_q * psi
    z = scale * root_q * data.y.astype(dtype)
    chol = cholesky(jnp.eye(width, dtype=dtype) + A.T @ A)
    b = solve_lower_transposed(chol, solve_lower(chol, A.T @ z))
    return jnp.sqrt(jnp.asarray(model.sa2, dtype)) * b, chol


@uses_precision
def sample_readouts(key: jax.Array, model, params: dict, data: Dataset) -> jax.Array:
    """One exact draw of ``a`` (N, C) from ``p(a | the other parameters, data)`` (module docstring)."""
    mean, chol = readout_posterior(model, params, data)
    xi = jax.random.normal(key, mean.shape, mean.dtype)
    fluctuation = solve_lower_transposed(chol, xi)  # L^-T xi ~ N(0, M^-1)
    return (mean + jnp.sqrt(jnp.asarray(model.sa2, mean.dtype)) * fluctuation).astype(params["a"].dtype)
