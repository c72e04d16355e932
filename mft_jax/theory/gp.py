"""The Gaussian-process (NNGP) baseline: the small-coupling limit of the mean-field equations.

With ``rho = prior`` (``c |S|^2 -> 0``, docs/theory.md section 3) the data kernel is the NNGP kernel

    K(x, x') = E_{w ~ N(0, sw2 I)}[ phi(w . x) phi(w . x') ]

and the prediction is kernel ridge regression in the theory's weighted convention:

    r    = (I + beta sa2 K Q)^(-1) y,     Q = diag(q)       residual on the data
    f(x) = beta sa2 sum_nu K(x, x_nu) q_nu r_nu              prediction anywhere
    L    = 1/2 sum_mu q_mu |r_mu|^2                          training loss

(the same formula is the posterior mean of a standard-scaling network, so it does not depend on
``TwoLayer.scaling``).

``(w . x, w . x')`` is Gaussian with covariance ``[[q11, q12], [q12, q22]]``, ``q = sw2 x . x'``.
Closed forms (docs/theory.md section 5) are used for the registered ``erf``, ``relu``, ``square`` and
``linear``; every other activation goes through a tensor Gauss-Hermite rule on the symmetric square
root of that covariance (``nodes`` per dimension, default 64, so 4096 evaluations of ``phi`` per pair).
Accuracy of the generic rule (measured against the closed forms in float64, see tests/test_gp.py):
exact for polynomial ``phi`` of degree < ``nodes``; exponentially convergent for smooth ``phi``
as long as ``phi`` varies on the scale of the Gaussian (erf at 64 nodes: < 1e-15 for
``sw2 |x|^2 <= 1``, ~1e-8 at ``sw2 |x|^2 = 4``); for activations with kinks (relu, ramp,
hardtanh) the error decays only like ``1 / nodes`` (relu at 64 nodes: ~4e-3 of ``K(x, x)``), so
raise ``nodes`` when that matters. Cost: ``nodes^2`` evaluations of ``phi`` per pair.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.activations import Activation, get_activation
from mft_jax.theory.background import loss, predict_from_kernel, residual_from_kernel
from mft_jax.data import Dataset
from mft_jax.errors import ConfigError
from mft_jax.model import TwoLayer
from mft_jax.precision import uses_precision

DEFAULT_NODES = 64


def _second_moments(sw2, x1, x2):
    """``q11`` (P1,), ``q22`` (P2,), ``q12`` (P1, P2) of the Gaussian pair ``(w . x, w . x')``."""
    return sw2 * jnp.sum(x1 * x1, -1), sw2 * jnp.sum(x2 * x2, -1), sw2 * (x1 @ x2.T)


def _cosine(q11, q22, q12):
    """``q12 / sqrt(q11 q22)`` clipped to [-1, 1]; 1 where a point is the origin (the kernel vanishes there)."""
    norm = jnp.sqrt(q11[:, None] * q22[None, :])
    return jnp.clip(jnp.where(norm > 0, q12 / jnp.where(norm > 0, norm, 1.0), 1.0), -1.0, 1.0), norm


def _erf_kernel(q11, q22, q12):
    """``(2/pi) arcsin(2 q12 / sqrt((1 + 2 q11)(1 + 2 q22)))``."""
    return (2.0 / jnp.pi) * jnp.arcsin(2.0 * q12 / jnp.sqrt((1.0 + 2.0 * q11[:, None]) * (1.0 + 2.0 * q22[None, :])))


def _relu_kernel(q11, q22, q12):
    """``sqrt(q11 q22) (sin theta + (pi - theta) cos theta) / (2 pi)``, ``cos theta = q12 / sqrt(q11 q22)``."""
    cosine, norm = _cosine(q11, q22, q12)
    theta = jnp.arccos(cosine)
    return norm * (jnp.sin(theta) + (jnp.pi - theta) * cosine) / (2.0 * jnp.pi)


def _square_kernel(q11, q22, q12):
    """``q11 q22 + 2 q12^2`` (Isserlis)."""
    return q11[:, None] * q22[None, :] + 2.0 * q12 * q12


def _linear_kernel(q11, q22, q12):
    """``q12 = sw2 x . x'``."""
    return q12


CLOSED_FORMS = {"erf": _erf_kernel, "relu": _relu_kernel, "square": _square_kernel, "linear": _linear_kernel}


def _closed_form(activation: Activation):
    """The closed form for a *registered* activation (a user callable that is merely named "relu" gets none)."""
    if activation.name in CLOSED_FORMS and get_activation(activation.name) is activation:
        return CLOSED_FORMS[activation.name]
    return None


@uses_precision
def gauss_hermite_kernel(activation, sw2: float, x1: jax.Array, x2: jax.Array, nodes: int = DEFAULT_NODES) -> jax.Array:
    """``E[phi(z1) phi(z2)]`` for every pair by tensor Gauss-Hermite on the symmetric square root.

    ``(z1, z2) = Sigma^(1/2) (u, v)`` with ``u, v ~ N(0, 1)`` on ``nodes`` x ``nodes`` Gauss-Hermite
    nodes and ``Sigma = [[q11, q12], [q12, q22]]``; ``Sigma^(1/2) = (Sigma + s I) / t``, ``s = sqrt(det)``,
    ``t = sqrt(tr + 2 s)``. The symmetric root (unlike a Cholesky factor) makes the rule symmetric
    under ``x <-> x'``, so the kernel matrix is exactly symmetric. Accuracy: module docstring.
    Rows of ``x1`` are processed in batches to bound memory.
    """
    activation = get_activation(activation)
    if isinstance(nodes, bool) or not isinstance(nodes, (int, np.integer)) or nodes < 1:
        raise ConfigError(f"gp kernel nodes must be a positive integer, got {nodes!r}")
    return _gauss_hermite_kernel(activation, int(nodes), sw2, jnp.asarray(x1), jnp.asarray(x2))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _gauss_hermite_kernel(activation, nodes, sw2, x1, x2):
    abscissae, weights = np.polynomial.hermite_e.hermegauss(nodes)
    u = jnp.asarray(abscissae, x1.dtype)
    weights = jnp.asarray(weights / weights.sum(), x1.dtype)
    q11, q22, q12 = _second_moments(sw2, x1, x2)

    def row(args):
        q11_i, q12_i = args  # scalar, (P2,)
        root_det = jnp.sqrt(jnp.maximum(q11_i * q22 - q12_i * q12_i, 0.0))
        trace = jnp.sqrt(q11_i + q22 + 2.0 * root_det)
        scale = jnp.where(trace > 0, 1.0 / jnp.where(trace > 0, trace, 1.0), 0.0)
        a, b, c = (q11_i + root_det) * scale, q12_i * scale, (q22 + root_det) * scale  # Sigma^(1/2) = [[a, b], [b, c]]
        z1 = a[:, None, None] * u[None, :, None] + b[:, None, None] * u[None, None, :]
        z2 = b[:, None, None] * u[None, :, None] + c[:, None, None] * u[None, None, :]
        return (activation(z1) * activation(z2)) @ weights @ weights

    batch = max(1, min(x1.shape[0], 2**21 // max(1, x2.shape[0] * nodes * nodes)))
    return jax.lax.map(row, (q11, q12), batch_size=batch)


@uses_precision
def nngp_kernel(activation, sw2: float, x1: jax.Array, x2: jax.Array, nodes: int = DEFAULT_NODES) -> jax.Array:
    """NNGP kernel ``K(x, x') = E_{w ~ N(0, sw2 I)}[phi(w . x) phi(w . x')]``: (P1, P2).

    Closed form for the registered ``erf``, ``relu``, ``square``, ``linear``; Gauss-Hermite with
    ``nodes`` per dimension (``gauss_hermite_kernel``) for any other activation or callable.
    """
    activation = get_activation(activation)
    if isinstance(sw2, bool) or not isinstance(sw2, (int, float)) or not math.isfinite(sw2) or sw2 <= 0:
        raise ConfigError(f"gp kernel sw2 must be a finite number > 0, got {sw2!r}")
    x1, x2 = jnp.asarray(x1), jnp.asarray(x2)
    if x1.ndim != 2 or x2.ndim != 2 or x1.shape[1] != x2.shape[1]:
        raise ConfigError(f"gp kernel inputs must be (P1, d) and (P2, d) with the same d, got {x1.shape} and {x2.shape}")
    closed_form = _closed_form(activation)
    if closed_form is None:
        return gauss_hermite_kernel(activation, sw2, x1, x2, nodes)
    return closed_form(*_second_moments(sw2, x1, x2))


def _check(data: Dataset, model: TwoLayer):
    if not isinstance(model, TwoLayer):
        raise ConfigError(f"gp: model must be a TwoLayer, got {type(model).__name__}")
    if not isinstance(data, Dataset):
        raise ConfigError(f"gp: data must be a Dataset (see mft_jax.data.make_dataset), got {type(data).__name__}")


@uses_precision
def gp_residual(data: Dataset, model: TwoLayer, nodes: int = DEFAULT_NODES) -> jax.Array:
    """GP residual on the data ``r = (I + beta sa2 K Q)^(-1) y`` (P, C), with ``K`` the NNGP kernel."""
    _check(data, model)
    return residual_from_kernel(model, data, nngp_kernel(model.activation, model.sw2, data.x, data.x, nodes))


@uses_precision
def gp_predict(data: Dataset, model: TwoLayer, x_new: jax.Array, nodes: int = DEFAULT_NODES) -> jax.Array:
    """GP prediction ``f(x) = beta sa2 sum_nu K(x, x_nu) q_nu r_nu`` at the points ``x_new`` (M, d): (M, C)."""
    residual = gp_residual(data, model, nodes)
    kernel = nngp_kernel(model.activation, model.sw2, x_new, data.x, nodes)
    return predict_from_kernel(model, data, residual, kernel)


@uses_precision
def gp_loss(data: Dataset, model: TwoLayer, nodes: int = DEFAULT_NODES) -> jax.Array:
    """GP training loss ``L = 1/2 sum_mu q_mu |r_mu|^2`` (``r = y - f`` on the data)."""
    return loss(data, gp_residual(data, model, nodes))
