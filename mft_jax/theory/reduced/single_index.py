"""Exact infinite-width theory of a single-index task, reduced by its rotation symmetry (docs/theory.md section 8).

Inputs ``x ~ N(0, I_d)``, target ``y = target(z)`` with ``z = w*.x``, ``|w*| = 1``. The prior, the data
law and the target are invariant under the rotations that fix ``w*``, so the fixed point is: the
neuron law depends on ``w`` only through ``(q, rho) = (w.w*, |w_perp|)`` and the residual on ``x`` only
through ``(z, s) = (w*.x, |x_perp|)``. On invariant functions the mean-field equations of section 3
hold verbatim with

    features      phibar(q, rho; z, s) = E_t[ phi(q z + rho s t) ],   t ~ (1 - t^2)^((d-4)/2) on [-1, 1]
    prior (q, rho) ~ exp(-(q^2 + rho^2)/(2 sw2)) |rho|^(d-2)          (rho on the whole line, even law)
    data  (z, s)  :  z ~ N(0, 1),  s^2 ~ chi^2_(d-1),  independent

(``t`` is the cosine between ``w_perp`` and ``x_perp``, uniform directions in d-1 dimensions.) The
quadratures: Gauss-Jacobi in t, Gauss-Hermite in z, generalised Gauss-Laguerre in ``s^2/2``, and a
tensor grid in ``(q, rho)``. ``SingleIndex`` is a ``TwoLayer`` whose particles are ``(q, rho)`` and whose
data points are ``(z, s)``; ``reduced_grid_sampler`` is its law on the grid. The solver, the free
energy, ``solve_branches`` and the predictions work on it unchanged; exact at any d >= 3.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from mft_jax.theory.background import predict
from mft_jax.data import Dataset, make_dataset
from mft_jax.errors import ConfigError
from mft_jax.theory.samplers import Sampler
from mft_jax.theory.samplers.grid import GridInfo, GridSampler, GridState
from mft_jax.model import TwoLayer
from mft_jax.neurons import NeuronLaw


@dataclasses.dataclass(frozen=True)
class SingleIndex(TwoLayer):
    """``TwoLayer`` in reduced coordinates: particles ``w = (q, rho)`` (M, 2), points ``x = (z, s)`` (P, 2).

    ``dim``: the input dimension d (>= 3); ``angle_nodes``: Gauss-Jacobi nodes of the angle average.
    """

    dim: int = 3
    angle_nodes: int = 16

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.dim, bool) or not isinstance(self.dim, (int, np.integer)) or self.dim < 3:
            raise ConfigError(f"SingleIndex dim (the input dimension d) must be an integer >= 3, got {self.dim!r}")
        if isinstance(self.angle_nodes, bool) or not isinstance(self.angle_nodes, (int, np.integer)) or self.angle_nodes < 2:
            raise ConfigError(f"SingleIndex angle_nodes must be an integer >= 2, got {self.angle_nodes!r}")

    def settings(self) -> dict:
        return {**super().settings(), "dim": self.dim, "angle_nodes": self.angle_nodes}

    def features(self, w: jax.Array, x: jax.Array) -> jax.Array:
        """``phibar(q, rho; z, s) = sum_k t_weight_k phi(q z + rho s t_k)``: (M, P)."""
        nodes, weights = angle_rule(self.dim, self.angle_nodes)
        nodes = jnp.asarray(nodes, w.dtype)
        weights = jnp.asarray(weights, w.dtype)
        along = w[:, 0:1] * x[None, :, 0]  # (M, P)
        across = w[:, 1:2] * x[None, :, 1]
        return jnp.einsum("mpk,k->mp", self.activation(along[..., None] + across[..., None] * nodes), weights)

    def log_prior_w(self, w: jax.Array) -> jax.Array:
        """``-(q^2 + rho^2)/(2 sw2) + (d - 2) log|rho|`` (unnormalised; the Jacobian of ``w_perp -> rho``)."""
        return -0.5 * jnp.sum(w * w, axis=-1) / self.sw2 + (self.dim - 2) * jnp.log(jnp.abs(w[:, 1]))


def angle_rule(dim: int, num: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Jacobi rule for ``t`` with density ``~ (1 - t^2)^((d-4)/2)`` on [-1, 1]; weights sum to 1."""
    a = 0.5 * (dim - 4)
    nodes, weights = special.roots_jacobi(num, a, a)
    return nodes, weights / weights.sum()


def reduced_population(dim: int, target: Callable[[np.ndarray], np.ndarray], *, num_z: int = 40, num_s: int = 10) -> Dataset:
    """The law of ``(z, s)`` as a quadrature: Gauss-Hermite (z ~ N(0,1)) x generalised Gauss-Laguerre
    (``s^2/2 ~ Gamma((d-1)/2)``), with targets ``target(z)`` ((P,) or (P, C))."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 3:
        raise ConfigError(f"reduced_population: dim must be an integer >= 3, got {dim!r}")
    z, wz = np.polynomial.hermite_e.hermegauss(num_z)
    half_s2, ws = _gamma_rule(num_s, 0.5 * (dim - 3))
    s = np.sqrt(2 * half_s2)
    zz, ss = np.meshgrid(z, s, indexing="ij")
    q = np.outer(wz / wz.sum(), ws / ws.sum()).reshape(-1)
    x = np.stack([zz.reshape(-1), ss.reshape(-1)], axis=1)
    y = np.asarray(target(x[:, 0]), dtype=float)
    return make_dataset(x, y, q / q.sum(), name=f"single-index population (d = {dim})")


def _gamma_rule(num: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss rule for the weight ``u^alpha e^-u`` (generalised Laguerre) by Golub-Welsch on its Jacobi matrix
    (diagonal ``2i + alpha + 1``, off-diagonal ``sqrt(i (i + alpha))``): no Gamma function, so no overflow at large alpha."""
    i = np.arange(num)
    off = np.sqrt(i[1:] * (i[1:] + alpha))
    nodes, vectors = np.linalg.eigh(np.diag(2 * i + alpha + 1.0) + np.diag(off, 1) + np.diag(off, -1))
    return nodes, vectors[0] ** 2


def reduce_inputs(x, w_star) -> np.ndarray:
    """``(z, s) = (w*.x, |x - (w*.x) w*|)`` for points x (n, d): (n, 2), to predict at real inputs."""
    x = np.asarray(x, dtype=float)
    w_star = np.asarray(w_star, dtype=float) / np.linalg.norm(w_star)
    z = x @ w_star
    return np.stack([z, np.linalg.norm(x - z[:, None] * w_star, axis=1)], axis=1)


def reduce_weights(w, w_star) -> np.ndarray:
    """``(q, rho)`` of full weight vectors w (M, d)."""
    return reduce_inputs(w, w_star)


@dataclasses.dataclass(frozen=True)
class ReducedGridSampler(Sampler):
    """Tensor grid in ``(q, rho)``: ``num_q`` nodes on ``[-q_max, q_max]``; ``num_rho`` nodes on
    ``mode +- rho_width sd`` of the prior's ``rho`` (``mode = sqrt(sw2 (d-2))``, ``sd = sqrt(sw2/2)``), or
    midpoints of ``(0, mode + rho_width sd]`` where that reaches 0. A ``GridSampler`` with these axes: the law
    is normalised against the prior on the same grid, so ``log_partition = log E_prior[exp(c |S|^2)]``
    carries no grid constant, and the grid's warnings (resolution, containment) apply."""

    num_q: int = 241
    q_max: float = 1.6
    num_rho: int = 32
    rho_width: float = 10.0
    name: ClassVar[str] = "reduced_grid"

    def __post_init__(self):
        for name, low in (("num_q", 3), ("num_rho", 3)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ConfigError(f"reduced_grid_sampler: {name} must be an integer >= {low}, got {value!r}")
        if not (self.q_max > 0 and self.rho_width > 0):
            raise ConfigError(f"reduced_grid_sampler: q_max and rho_width must be > 0, got {self.q_max!r}, {self.rho_width!r}")

    def grid(self, model) -> GridSampler:
        """The ``GridSampler`` on this model's ``(q, rho)`` axes."""
        if not isinstance(model, SingleIndex):
            raise ConfigError("reduced_grid_sampler needs a SingleIndex model (particles (q, rho))")
        q = np.linspace(-self.q_max, self.q_max, self.num_q)
        mode, sd = math.sqrt(model.sw2 * (model.dim - 2)), math.sqrt(model.sw2 / 2)
        if mode - self.rho_width * sd > 0:
            rho = np.linspace(mode - self.rho_width * sd, mode + self.rho_width * sd, self.num_rho)
        else:
            rho = (np.arange(self.num_rho) + 0.5) * (mode + self.rho_width * sd) / self.num_rho
        return GridSampler(axes=(tuple(q), tuple(rho)))

    def init(self, key, model, data) -> GridState:
        return self.grid(model).init(key, model, data)

    def update(self, state: GridState, model, data, residual):
        return GridSampler.update(self, state, model, data, residual)

    def warnings(self, info: GridInfo, law) -> list[str]:
        return GridSampler.warnings(self, info, law)


def reduced_grid_sampler(num_q: int = 241, q_max: float = 1.6, num_rho: int = 32, rho_width: float = 10.0) -> ReducedGridSampler:
    """The reduced ``(q, rho)`` grid sampler (``ReducedGridSampler``)."""
    return ReducedGridSampler(num_q, float(q_max), num_rho, float(rho_width))


def hermite_components(law: NeuronLaw, model: SingleIndex, data: Dataset, residual) -> np.ndarray:
    """Coefficients ``f_k = E[f H_k(z)] / k!`` of the mean predictor for k = 1, 3, on the population (exact quadrature
    of the (z, s) law). Returns ``(f_1, f_3)``: the target has ``(1, eps)``."""
    f = np.asarray(predict(model, law, data, residual, data.x))[:, 0]
    z = np.asarray(data.x[:, 0])
    q = np.asarray(data.q)
    return np.array([np.sum(q * f * z), np.sum(q * f * (z**3 - 3 * z)) / 6.0])
