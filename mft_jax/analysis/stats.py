"""Statistics of repeated runs: means and standard errors over seeds, extrapolations in 1/N (or 1/d), the
integrated autocorrelation time of a chain, and batch-means errors of a time series.

Every error here is one standard error of the estimate it accompanies; a fit's ``chi2`` against its degrees of
freedom says whether the stated errors and the assumed form hold (``chi2 >> dof``: they do not).
"""

from __future__ import annotations

import math

import numpy as np


def mean_se(values, finite_only: bool = False) -> tuple[float, float]:
    """``(mean, s.e.)`` of independent values (seeds, draws): ``s.e. = std(ddof=1) / sqrt(n)``; NaN for the s.e. of
    one value. ``finite_only`` drops NaN and infinite values first (``(nan, nan)`` if none are left)."""
    v = np.asarray(values, float).reshape(-1)
    if finite_only:
        v = v[np.isfinite(v)]
        if len(v) == 0:
            return float("nan"), float("nan")
    return float(v.mean()), (float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan"))


def fit_inverse_size(sizes, values, errors, order: int = 1) -> dict:
    """Weighted least squares ``v(N) = v_inf + sum_(j=1..order) c_j / N^j`` with weights ``1/se^2``.

    Returns ``limit`` (``v_inf``) and ``limit_se``, ``coefficients`` ``[c_1, ..]`` and their ``coefficients_se`` (from
    the covariance ``(X^T W X)^-1``), ``chi2``, ``dof = points - order - 1`` and ``chi2_per_dof`` (NaN with no degree
    of freedom left). ``N`` is a width (1/N corrections of a finite network) or a dimension (1/d)."""
    sizes, values, errors = (np.asarray(v, float) for v in (sizes, values, errors))
    if not (sizes.shape == values.shape == errors.shape) or sizes.ndim != 1:
        raise ValueError(f"sizes, values and errors must be 1-d of one length, got {sizes.shape}, {values.shape}, {errors.shape}")
    if len(sizes) < order + 1 or not np.all(errors > 0):
        raise ValueError(f"a fit of order {order} needs at least {order + 1} points with positive errors, got {len(sizes)}")
    design = np.stack([sizes ** (-float(j)) for j in range(order + 1)], axis=1)
    weight = 1.0 / errors**2
    covariance = np.linalg.inv(design.T @ (weight[:, None] * design))
    coef = covariance @ design.T @ (weight * values)
    chi2 = float(np.sum(weight * (values - design @ coef) ** 2))
    dof = len(values) - order - 1
    return {"order": order, "sizes": sizes.tolist(), "limit": float(coef[0]), "limit_se": float(math.sqrt(covariance[0, 0])),
            "coefficients": coef[1:].tolist(), "coefficients_se": np.sqrt(np.diag(covariance)[1:]).tolist(),
            "chi2": chi2, "dof": dof, "chi2_per_dof": chi2 / dof if dof > 0 else float("nan")}


def line_in_inverse_size(sizes, values) -> dict:
    """Unweighted least-squares line ``v = v_inf + B / N`` (``np.polyfit`` in ``1/N``): ``limit``, ``slope`` and the
    largest residual ``max_residual`` (the size of what the line leaves out). For values without errors, e.g. a
    deterministic theory at several dimensions d."""
    x = 1.0 / np.asarray(sizes, float)
    v = np.asarray(values, float)
    slope, limit = np.polyfit(x, v, 1)
    return {"limit": float(limit), "slope": float(slope), "max_residual": float(np.abs(v - limit - slope * x).max())}


def autocorrelation_time(series) -> float:
    """Integrated autocorrelation time ``tau = 1 + 2 sum_k rho(k)`` (in records) of a ``(T, S)`` series (S chains or
    seeds, centred per chain, autocorrelation pooled over chains), summed up to Sokal's window ``k >= 5 tau``;
    at least 1, NaN for a constant series or T < 4."""
    series = np.asarray(series, float)
    x = series - series.mean(axis=0)
    T = x.shape[0]
    var = np.mean(x * x)
    if var == 0 or T < 4:
        return float("nan")
    rho = np.array([np.mean(x[: T - k] * x[k:]) / var for k in range(T // 2)])
    tau = 1.0
    for k in range(1, len(rho)):
        tau = 1 + 2 * rho[1 : k + 1].sum()
        if k >= 5 * tau:
            break
    return float(max(tau, 1.0))


def batch_means_error(samples, blocks: int = 5) -> float:
    """Standard error of the mean of a ``(time, seed)`` series from ``blocks`` contiguous block means per seed (the
    last ``blocks * floor(T / blocks)`` records), all blocks of all seeds treated as independent; NaN if T < blocks."""
    samples = np.asarray(samples)
    usable = samples.shape[0] // blocks * blocks
    if usable == 0:
        return float("nan")
    means = samples[-usable:].reshape(blocks, usable // blocks, -1).mean(axis=1).reshape(-1)
    return float(means.std(ddof=1) / math.sqrt(means.size))
