"""Factors of kernel matrices for the deep solver: Cholesky with a jitter, symmetric roots, floored spectra."""

from __future__ import annotations

import jax
import jax.numpy as jnp

JITTER = 1e-12  # relative diagonal shift that keeps the Cholesky factor of a (numerically) singular Phi defined (float64; float32 uses 32 eps)
EIG_FLOOR = 1e-10  # eigenvalues of Phi below this fraction of the largest count as zero (pseudo-inverse)
JITTER_RETRIES = 3  # a failed factorisation is retried with the jitter x10, x100, x1000


def eigh_floor(matrix):
    """Eigen-decomposition of the symmetric part, eigenvalues below ``EIG_FLOOR lambda_max`` set to 0: ``(values, vectors, keep)``."""
    values, vectors = jnp.linalg.eigh(0.5 * (matrix + matrix.T))
    keep = values > EIG_FLOOR * jnp.max(values)
    return jnp.where(keep, values, 0.0), vectors, keep


def cholesky_factor(matrix):
    """Lower Cholesky factor of ``matrix + JITTER mean(diag) I``: a smooth (differentiable) factor ``A A^T``.

    Used for ``A_l`` (l >= 2) instead of an eigendecomposition, whose derivative is undefined at
    the degenerate spectra of exactly solvable cases (e.g. ``Phi = I + (c - 1) yhat yhat^T``).
    Rounding leaves eigenvalues of order ``eps lambda_max`` negative, and ``lambda_max`` grows like P
    times the mean diagonal for a numerically low-rank kernel (float32, d = 4 inputs: the factor
    fails from P ~ 2048 on). Only then (non-finite factor) the jitter is raised tenfold, up to
    ``JITTER_RETRIES`` times (float32: at most 3.8e-3 of the mean diagonal, below the Monte Carlo
    error of ``Phi``); a factor that succeeds the first time is unchanged.
    """
    n = matrix.shape[0]
    relative = max(JITTER, 32 * float(jnp.finfo(matrix.dtype).eps))  # float32: 3.8e-6, above its rounding of Phi
    jitter = relative * jnp.trace(matrix) / n
    sym = 0.5 * (matrix + matrix.T)
    eye = jnp.eye(n, dtype=matrix.dtype)
    factor = jnp.linalg.cholesky(sym + jitter * eye)
    for boost in (10.0**k for k in range(1, JITTER_RETRIES + 1)):
        factor = jax.lax.cond(jnp.all(jnp.isfinite(factor)), lambda f, b=boost: f,
                              lambda f, b=boost: jnp.linalg.cholesky(sym + b * jitter * eye), factor)
    return factor


def sym_sqrt(matrix):
    """Symmetric root ``M^(1/2)`` and pseudo-inverse root ``(M^(1/2))^+`` of a PSD matrix."""
    values, vectors, keep = eigh_floor(matrix)
    root = jnp.sqrt(values)
    inv_root = jnp.where(keep, 1.0 / jnp.where(keep, root, 1.0), 0.0)
    return (vectors * root) @ vectors.T, (vectors * inv_root) @ vectors.T
