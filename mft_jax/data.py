"""Weighted datasets: finite training sets and quadrature rules are the same object.

A ``Dataset`` holds points ``x`` (P, d), weights ``q`` (P,) with ``sum q = 1`` and targets
``y`` (P, C) (docs/theory.md section 2). The loss is ``L = 1/2 sum_mu q_mu |f(x_mu) - y_mu|^2``.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.errors import ConfigError

MAX_QUADRATURE_POINTS = 2_000_000


class Dataset(NamedTuple):
    """Points ``x`` (P, d), weights ``q`` (P,) summing to 1, targets ``y`` (P, C). A pytree."""

    x: jax.Array
    q: jax.Array
    y: jax.Array

    @property
    def num_points(self) -> int:
        return self.x.shape[0]

    @property
    def input_dim(self) -> int:
        return self.x.shape[1]

    @property
    def output_dim(self) -> int:
        return self.y.shape[1]


def make_dataset(x, y, q=None, *, name: str = "dataset") -> Dataset:
    """Validate and build a ``Dataset``; ``q`` defaults to ``1/P``; 1-D ``y`` becomes (P, 1).

    Raises ``ConfigError`` naming the array at fault for wrong shapes, NaN/inf, non-positive
    weights, or weights that do not sum to 1.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2:
        raise ConfigError(f"{name}: x must have shape (P, d), got shape {x.shape}")
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise ConfigError(f"{name}: y must have shape (P,) or (P, C) with P = {x.shape[0]} rows like x, got {y.shape}")
    if x.shape[0] == 0:
        raise ConfigError(f"{name}: the dataset is empty (P = 0)")
    if q is None:
        q = np.full(x.shape[0], 1.0 / x.shape[0])
    q = np.asarray(q)
    if q.shape != (x.shape[0],):
        raise ConfigError(f"{name}: q must have shape (P,) = ({x.shape[0]},), got {q.shape}")
    for label, array in (("x", x), ("y", y), ("q", q)):
        if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
            raise ConfigError(f"{name}: {label} must hold real numbers, got dtype {array.dtype}"
                              + (" (complex values are refused, never cast)" if array.dtype.kind == "c" else ""))
        bad = ~np.isfinite(array)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ConfigError(f"{name}: {label} has {int(bad.sum())} NaN/inf entries (first at index {index}); all entries must be finite")
    if (q <= 0).any():
        raise ConfigError(f"{name}: weights q must be > 0; {int((q <= 0).sum())} are not (min {q.min():g})")
    if abs(q.sum() - 1.0) > 1e-6:
        raise ConfigError(f"{name}: weights q must sum to 1, they sum to {q.sum():.8g}; pass q / q.sum()")
    dtype = jnp.result_type(float)
    return Dataset(jnp.asarray(x, dtype), jnp.asarray(q, dtype), jnp.asarray(y, dtype))


def check_batch_size(batch_size, num_points: int, where: str = "") -> None:
    """``ConfigError`` unless ``batch_size`` is None (full batch) or an integer in ``[1, num_points]``: a minibatch of
    distinct points of the data (``minibatch_indices``). ``where`` is said after ``batch_size`` in the message."""
    if batch_size is None:
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= num_points:
        raise ConfigError(f"batch_size{where} must be None (full batch) or an integer in [1, P = {num_points}], got {batch_size!r}")


def minibatch_indices(key: jax.Array, num_points: int, batch_size: int) -> jax.Array:
    """The points of one minibatch: ``batch_size`` distinct indices of ``range(num_points)``, uniformly drawn
    (without replacement) from ``key`` and sorted (so ``batch_size = num_points`` gives ``arange(num_points)``)."""
    return jnp.sort(jax.random.choice(key, num_points, (batch_size,), replace=False))


def minibatch(data: Dataset, indices: jax.Array) -> Dataset:
    """``data`` restricted to the points ``indices`` with its weights renormalised to the whole data's total:
    ``q_B(mu) = q_mu sum_nu q_nu / sum_{nu in B} q_nu``, so the loss on the batch ``1/2 sum_{mu in B} q_B(mu) |r_mu|^2``
    is the whole data's loss on average over batches when q is uniform (and equals it, bit for bit, for the whole data)."""
    q = data.q[indices]
    return Dataset(data.x[indices], q * (jnp.sum(data.q) / jnp.sum(q)), data.y[indices])


def gauss_hermite_normal(points_per_dim: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor-product Gauss-Hermite rule for ``x ~ N(0, I_dim)``: nodes (n^d, d), weights summing to 1.

    Exact for polynomials of degree ``<= 2 n - 1`` in each coordinate.
    """
    if points_per_dim < 1:
        raise ConfigError(f"quadrature must be a positive number of points per dimension, got {points_per_dim}")
    total = points_per_dim**dim
    if total > MAX_QUADRATURE_POINTS:
        raise ConfigError(
            f"quadrature {points_per_dim} in d = {dim} needs {points_per_dim}^{dim} = {total:.3g} points "
            f"(limit {MAX_QUADRATURE_POINTS}); use `samples` (Monte Carlo) for this dimension"
        )
    nodes, weights = np.polynomial.hermite_e.hermegauss(points_per_dim)
    weights = weights / weights.sum()
    x = np.array(list(itertools.product(nodes, repeat=dim)))
    q = np.prod(np.array(list(itertools.product(weights, repeat=dim))), axis=1)
    return x, q / q.sum()
