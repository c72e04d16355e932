"""Does ``rho(w) ~ exp(-|w|^2/(2 sw2) + c |S(w)|^2)`` have finite mass? (docs/theory.md section 3)

Along a ray ``w = t u`` (``|u| = 1``) the activation's growth k decides (``Activation.growth``):

- k = 0 (bounded phi): ``c |S|^2`` is bounded, always normalizable;
- k = 1 (relu, linear): ``S(t u) ~ t S_inf(u)`` with ``S_inf(u) = sum_mu q_mu r_mu phi_inf(u.x_mu)``,
  ``phi_inf(z) = lim phi(T z)/T``; the exponent is ``(2 c sw2 |S_inf(u)|^2 - 1) t^2/(2 sw2)``, so
  rho is non-normalizable iff ``max_u 2 c sw2 |S_inf(u)|^2 >= 1``. For ``linear`` the maximum is
  the top eigenvalue of ``M^T M``, ``M = sum_mu q_mu r_mu x_mu^T``; otherwise it is searched over
  random unit directions refined by projected gradient steps of shrinking length (a lower bound);
- k = 2 (square): ``c |S(t u)|^2 ~ t^4 |S_inf(u)|^2`` beats ``t^2`` unless ``S_inf`` vanishes;
- unknown growth: ``log rho`` is probed along random rays at growing radii.

``check_normalizable`` raises ``NonNormalizableError`` naming the quantity and the direction.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.data import Dataset
from mft_jax.errors import NonNormalizableError
from mft_jax.model import TwoLayer

NUM_DIRECTIONS = 512
NUM_REFINE = 8  # best directions refined by gradient steps
REFINE_STEPS = 40
SCALE = 1e4  # T in phi_inf(z) = phi(T z) / T^k (exact for relu, linear, square)
VANISHING = 1e-6  # |S_inf| below this (relative to sum q |y| |x|^2) counts as zero for k = 2
PROBE_RADII = (4.0, 16.0, 64.0, 256.0)  # in units of sqrt(sw2), for unknown growth


def _asymptotic_overlap(model: TwoLayer, growth: int, u: jax.Array, data: Dataset, residual: jax.Array) -> jax.Array:
    """``S_inf(u) = sum_mu q_mu r_mu phi(T u.x_mu) / T^k``: (n, C) for directions ``u`` (n, d)."""
    features = model.activation(SCALE * (u @ data.x.T)) / SCALE**growth
    return features @ (data.q[:, None] * residual)


@functools.partial(jax.jit, static_argnames=("growth",))
def _max_asymptotic_overlap(key, model: TwoLayer, growth: int, data: Dataset, residual: jax.Array):
    """``max_{|u|=1} |S_inf(u)|^2`` (a lower bound: random search + projected gradient ascent) and its ``u``."""

    def strength(u):
        overlap = _asymptotic_overlap(model, growth, u, data, residual)
        return jnp.sum(overlap * overlap, axis=-1)

    u = jax.random.normal(key, (NUM_DIRECTIONS, data.input_dim), data.x.dtype)
    u = u / jnp.linalg.norm(u, axis=1, keepdims=True)
    values = strength(u)
    u = u[jnp.argsort(-values)[:NUM_REFINE]]
    gradient = jax.vmap(jax.grad(lambda v: strength(v[None])[0]))

    def refine(best, angle):
        u_best, value_best = best
        step = gradient(u_best)
        step = step - jnp.sum(step * u_best, axis=1, keepdims=True) * u_best  # tangent to the sphere
        step_norm = jnp.linalg.norm(step, axis=1, keepdims=True)
        u_new = u_best + angle * step / jnp.where(step_norm > 0, step_norm, 1.0)
        u_new = u_new / jnp.linalg.norm(u_new, axis=1, keepdims=True)
        value_new = strength(u_new)
        better = value_new > value_best
        return (jnp.where(better[:, None], u_new, u_best), jnp.where(better, value_new, value_best)), None

    angles = 0.2 * 0.75 ** jnp.arange(REFINE_STEPS, dtype=u.dtype)  # shrinking steps (radians): 0.2 down to 2e-6
    (u, values), _ = jax.lax.scan(refine, (u, strength(u)), angles)
    best = jnp.argmax(values)
    return values[best], u[best]


def _format(u) -> str:
    return np.array2string(np.asarray(u, dtype=float), precision=3, separator=", ", max_line_width=200, threshold=8)


def runaway_strength(model: TwoLayer, data: Dataset, residual: jax.Array, *, key=None) -> tuple[float, np.ndarray]:
    """For growth 1: ``max_{|u|=1} 2 c sw2 |S_inf(u)|^2`` and the maximising ``u`` (>= 1: non-normalizable)."""
    if model.activation.name == "linear":
        moment = (data.q[:, None] * residual).T @ data.x  # M = sum q r x^T: (C, d)
        eigenvalues, eigenvectors = np.linalg.eigh(np.asarray(moment.T @ moment, dtype=float))
        value, u = eigenvalues[-1], eigenvectors[:, -1]
    else:
        key = jax.random.key(0) if key is None else key
        value, u = _max_asymptotic_overlap(key, model, 1, data, residual)
    return 2.0 * model.coupling * model.sw2 * float(value), np.asarray(u)


def check_normalizable(model: TwoLayer, data: Dataset, residual: jax.Array, *, key=None) -> str:
    """Raise ``NonNormalizableError`` (in words) if ``rho`` has no finite mass for this residual.

    Returns the reason the law exists, in words. A weight penalty ``Gamma`` of degree ``D`` (``model.penalty``)
    beats a tilt ``c |S(t u)|^2 ~ t^(2k)`` whenever ``D > 2k``: then the law exists for every residual.
    """
    growth = model.activation.growth
    if growth == 0:
        return f"the activation {model.activation.name!r} is bounded, so c |S(w)|^2 is bounded: the law always exists"
    penalty = model.penalty
    if penalty is not None and growth is not None and penalty.degree > 2 * growth:
        return (
            f"the weight penalty grows like |w|^{penalty.degree}, faster than the tilt c |S(t u)|^2 ~ t^{2 * growth}: "
            "the law exists for every residual"
        )
    advice = "lower beta or sa2 (or start from a smaller residual, e.g. init='gp' with continuation)"
    if penalty is not None:  # a penalty that does not dominate the tilt: compare the two along rays
        _probe_rays(jax.random.key(0) if key is None else key, model, data, residual, advice)
        return "log rho(t u) falls at large radii along every probed ray (penalty and tilt compared numerically)"
    if growth == 1:
        value, u = runaway_strength(model, data, residual, key=key)
        if not value < 1.0:
            raise NonNormalizableError(
                f"2 c sw2 |S(u)|^2 = {value:.4g} >= 1 along u = {_format(u)} (c = beta^2 sa2 / 2 = {model.coupling:.4g}): "
                f"the tilt c |S(w)|^2 outgrows the prior |w|^2/(2 sw2) along u and the weights run away; {advice}"
            )
        return f"2 c sw2 max_u |S_inf(u)|^2 = {value:.4g} < 1: the Gaussian prior beats the tilt"
    key = jax.random.key(0) if key is None else key
    if growth == 2:
        value, u = _max_asymptotic_overlap(key, model, 2, data, residual)
        scale = float(jnp.sum(data.q * jnp.linalg.norm(data.y, axis=1) * jnp.sum(data.x * data.x, axis=1)))
        if math.sqrt(float(value)) > VANISHING * max(scale, 1e-30):
            raise NonNormalizableError(
                f"|S(u)| = {math.sqrt(float(value)):.4g} > 0 along u = {_format(u)} for an activation growing like z^2: "
                f"c |S(t u)|^2 grows like t^4 and beats the prior's t^2/(2 sw2), so the weights run away; "
                "the law exists only for a residual with vanishing overlap; use a bounded activation or a weight "
                "penalty of degree > 4 (e.g. mft_jax.priors.sextic)"
            )
        return "the overlap vanishes at infinity: the prior alone sets the tails"
    _probe_rays(key, model, data, residual, advice)
    return "log rho(t u) falls at large radii along every probed ray"


def _probe_rays(key, model: TwoLayer, data: Dataset, residual: jax.Array, advice: str) -> None:
    """Unknown growth: non-normalizable if ``log rho(t u)`` still increases at the largest radii."""
    u = jax.random.normal(key, (NUM_DIRECTIONS, data.input_dim), data.x.dtype)
    u = u / jnp.linalg.norm(u, axis=1, keepdims=True)
    radii = math.sqrt(model.sw2) * np.asarray(PROBE_RADII)
    log_rho = np.stack([np.asarray(model.log_density(t * u, data, residual)) for t in radii])  # (radii, n)
    rising = (log_rho[-1] > log_rho[-2]) | ~np.isfinite(log_rho[-1])
    if rising.any():
        best = int(np.argmax(np.where(rising, np.nan_to_num(log_rho[-1], nan=np.inf), -np.inf)))
        raise NonNormalizableError(
            f"log rho(t u) keeps growing along u = {_format(u[best])}: {log_rho[-2, best]:.4g} at t = {radii[-2]:.3g}, "
            f"{log_rho[-1, best]:.4g} at t = {radii[-1]:.3g} (activation {model.activation.name!r} of unknown growth): "
            f"the weights run away; {advice}"
        )
