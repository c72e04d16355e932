"""Grid quadrature of the single-neuron law (d <= 3).

Nodes: the tensor grid of ``grid_size`` points per axis on ``[-L, L]^d``, ``L = grid_extent
sqrt(sw2)``, cell volume ``h^d``. The law is the quadrature

    log_weight_i = log rho(w_i) + d log h,   rho(w) ~ exp(-|w|^2/(2 sw2) + c |S(w)|^2)

(the uniform rule: spectrally accurate for laws that decay inside the box). Diagnostics:
``log_partition = log E_prior[exp(c |S(w)|^2)]`` by the same quadrature, and
``boundary_mass``, the weight on the outermost layer of nodes (a law that is not contained in
the grid puts mass there), and ``ess``, the effective number of nodes the law sits on (a law
narrower than the spacing is not resolved); ``GridSampler.warnings`` says either in words.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.errors import ConfigError
from mft_jax.theory.samplers import Sampler
from mft_jax.neurons import NeuronLaw
from mft_jax.resources import require

MAX_GRID_DIM = 3
BOUNDARY_MASS_LIMIT = 1e-4  # above this the grid truncates the law noticeably
TARGET_NODES = 400  # a re-grid aims at this effective number of nodes
MAX_ENTRIES = 2**26  # a re-grid keeps nodes x data points below this (256 MiB of float32 features)
MIN_NODES = 50  # a law on fewer effective nodes (Kish ESS of the weights) is not resolved


class GridInfo(NamedTuple):
    log_partition: jax.Array  # log E_prior[exp(c |S(w)|^2)] by the same quadrature
    boundary_mass: jax.Array  # weight on the outermost layer of nodes
    ess: jax.Array  # effective number of nodes the law sits on (Kish)


class GridState(NamedTuple):
    w: jax.Array  # (M, d) nodes
    log_cell: jax.Array  # log cell volume of each node (M,)
    on_boundary: jax.Array  # (M,) True on the outermost layer
    info: GridInfo


@dataclasses.dataclass(frozen=True)
class GridSampler(Sampler):
    """The deterministic grid sampler: ``grid_size`` nodes per axis on ``[-grid_extent sqrt(sw2), +]^d``.

    ``axes``: instead, explicit node coordinates per axis (a tuple of ``d`` increasing tuples, in units of
    ``w``): a non-uniform tensor grid, each node weighted by its cell volume ``prod_k (z_(i+1) - z_(i-1))/2``
    (the solver's automatic re-grid builds these to follow the law's marginals).
    """

    grid_size: int = 64
    grid_extent: float = 6.0
    axes: tuple | None = None
    name: ClassVar[str] = "grid"

    def __post_init__(self):
        grid_size, grid_extent = self.grid_size, self.grid_extent
        if isinstance(grid_size, bool) or not isinstance(grid_size, (int, np.integer)) or grid_size < 3:
            raise ConfigError(f"grid_size must be an integer >= 3, got {grid_size!r}")
        if isinstance(grid_extent, bool) or not isinstance(grid_extent, (int, float)) or not math.isfinite(grid_extent) or grid_extent <= 0:
            raise ConfigError(f"grid_extent must be a number > 0 (in units of sqrt(sw2)), got {grid_extent!r}")
        object.__setattr__(self, "grid_size", int(grid_size))
        object.__setattr__(self, "grid_extent", float(grid_extent))
        if self.axes is not None:
            axes = tuple(tuple(float(z) for z in axis) for axis in self.axes)
            if not axes or any(len(axis) < 3 or np.any(np.diff(axis) <= 0) for axis in axes):
                raise ConfigError("grid axes must be increasing sequences of at least 3 node coordinates, one per input dimension")
            object.__setattr__(self, "axes", axes)

    def axis_nodes(self, model, dim: int) -> list[np.ndarray]:
        """The node coordinates of each axis."""
        if self.axes is not None:
            if len(self.axes) != dim:
                raise ConfigError(f"the grid has {len(self.axes)} axes, the data d = {dim}")
            return [np.asarray(axis) for axis in self.axes]
        half = self.grid_extent * math.sqrt(model.sw2)
        return [np.linspace(-half, half, self.grid_size)] * dim

    def spacing(self, model, dim: int = 1) -> float:
        """The smallest distance between neighbouring nodes."""
        return float(min(np.min(np.diff(axis)) for axis in self.axis_nodes(model, dim)))

    def init(self, key, model, data) -> GridState:
        del key  # deterministic
        dim = data.input_dim
        if dim > MAX_GRID_DIM:
            raise ConfigError(
                f"sampler 'grid' needs input dimension d <= {MAX_GRID_DIM} (grid_size^d nodes), the data has d = {dim}; "
                "use sampler = 'importance' or 'mcmc'"
            )
        sizes = [len(axis) for axis in self.axes] if self.axes is not None else [self.grid_size] * dim
        nodes = float(np.prod(np.asarray(sizes, dtype=float)))
        itemsize = np.dtype(data.x.dtype).itemsize
        require(nodes * (4 * data.num_points * data.output_dim + 3 * data.num_points + 2 * dim) * itemsize,
                f"the grid sampler's {' x '.join(map(str, sizes))} = {nodes:.3g} nodes x {data.num_points} data points",
                "[solver] grid_size (or the data size)")
        axes = self.axis_nodes(model, dim)
        cells = [np.log(_cell_widths(axis)) for axis in axes]
        nodes = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, dim)
        log_cell = sum(np.meshgrid(*cells, indexing="ij")).reshape(-1)
        edge = np.zeros(len(nodes), dtype=bool)
        for k, axis in enumerate(axes):
            edge |= (nodes[:, k] == axis[0]) | (nodes[:, k] == axis[-1])
        dtype = data.x.dtype
        zero = jnp.zeros((), dtype)
        info = GridInfo(zero, zero, jnp.asarray(float(len(nodes)), dtype))
        return GridState(jnp.asarray(nodes, dtype), jnp.asarray(log_cell, dtype), jnp.asarray(edge), info)

    def update(self, state: GridState, model, data, residual):
        log_weight = model.log_density(state.w, data, residual) + state.log_cell
        law = NeuronLaw(state.w, log_weight)
        log_prior_mass = jax.nn.logsumexp(model.log_prior_w(state.w) + state.log_cell)  # the prior's normaliser, same rule
        log_partition = jax.nn.logsumexp(log_weight) - log_prior_mass
        boundary_mass = jnp.sum(jnp.where(state.on_boundary, law.weights(), 0.0))
        return law, state._replace(info=GridInfo(log_partition, boundary_mass, law.effective_sample_size()))

    def warnings(self, info: GridInfo, law) -> list[str]:
        """Words for a law that leaks out of the grid or sits on too few nodes."""
        ess, mass = float(info.ess), float(info.boundary_mass)
        if ess < MIN_NODES:
            return [
                f"the neuron law sits on {ess:.1f} grid nodes (effective number, < {MIN_NODES}): it is narrower than the "
                "grid spacing and not resolved; raise grid_size (or use sampler 'mcmc')"
            ]
        if mass > BOUNDARY_MASS_LIMIT:
            return [
                f"the neuron law puts {mass:.2g} of its mass on the boundary of the grid (limit {BOUNDARY_MASS_LIMIT:g}): "
                "it is not contained in the grid; raise grid_extent (and grid_size with it), or the law may not be "
                "normalizable"
            ]
        return []


    def refined(self, law: NeuronLaw, info: GridInfo, model, data) -> "GridSampler":
        """A tensor grid whose axes follow the law's marginals.

        A law that leaks out of the box gets a uniform box 1.5 x wider, same spacing. Otherwise each axis spans
        the marginal's support (nodes of weight > 1e-10 x the largest, plus two old cells) with ``n`` nodes,
        half spaced uniformly, half at the quantiles of the marginal (its mass spread over each old cell), so
        nodes crowd where the law lives: a clover's four lobes sit on the product of two such axes (the grid owns its
        adaptation: the solver asks any sampler for ``refined`` and never its type).
        ``n`` grows so the effective number of nodes would reach ``TARGET_NODES`` (ESS scales like
        ``n^d`` at fixed support), never past ``MAX_ENTRIES / P`` nodes in all.
        """
        dim = data.input_dim
        axes = self.axis_nodes(model, dim)
        w, weight = np.asarray(law.w, dtype=float), np.asarray(law.weights(), dtype=float)
        size = max(len(axis) for axis in axes)
        max_size = max(3, int((MAX_ENTRIES / data.num_points) ** (1 / dim)))
        if float(info.boundary_mass) > BOUNDARY_MASS_LIMIT:
            half = 1.5 * max(np.abs(axis).max() for axis in axes)
            grow = min(max_size, int(math.ceil(1.5 * size)))
            return GridSampler(axes=tuple(tuple(np.linspace(-half, half, grow)) for _ in range(dim)))
        size = min(max_size, max(size, int(math.ceil(size * (TARGET_NODES / max(float(info.ess), 1.0)) ** (1 / dim)))))
        new_axes = []
        for k, axis in enumerate(axes):
            index = np.searchsorted(axis, w[:, k])
            marginal = np.bincount(np.clip(index, 0, len(axis) - 1), weights=weight, minlength=len(axis))
            widths = np.diff(axis).min() if len(axis) > 1 else 1.0
            held = np.flatnonzero(marginal > 1e-10 * marginal.max())
            low, high = axis[held[0]] - 2 * widths, axis[held[-1]] + 2 * widths
            edges = np.concatenate([[axis[0] - 0.5 * (axis[1] - axis[0])], 0.5 * (axis[1:] + axis[:-1]),
                                    [axis[-1] + 0.5 * (axis[-1] - axis[-2])]])
            cdf = np.concatenate([[0.0], np.cumsum(marginal)]) / marginal.sum()
            quantiles = np.interp((np.arange(size // 2) + 0.5) / (size // 2), cdf, edges)
            nodes = np.unique(np.concatenate([np.linspace(low, high, size - size // 2), quantiles]))
            kept = [nodes[0]]
            for node in nodes[1:]:  # merge nodes closer than a quarter of the uniform spacing to the last kept one
                if node - kept[-1] > 0.25 * (high - low) / size:
                    kept.append(node)
            new_axes.append(tuple(kept))
        return GridSampler(axes=tuple(new_axes))

    def describe(self, model, data) -> str:
        """The nodes in words: ``36 x 36 nodes on [-4.5, 4.5], [-4.5, 4.5], finest spacing 0.257, ...``."""
        axes = self.axis_nodes(model, data.input_dim)
        shape = " x ".join(str(len(axis)) for axis in axes)
        spans = ", ".join(f"[{axis[0]:.3g}, {axis[-1]:.3g}]" for axis in axes)
        return (f"{shape} nodes on {spans}, finest spacing {self.spacing(model, data.input_dim):.3g}, "
                "nodes crowded where the law's marginals are")

    def summary(self, model, data) -> dict:
        """As JSON: the name, nodes per axis and their spans."""
        axes = self.axis_nodes(model, data.input_dim)
        return {"name": self.name, "nodes_per_axis": [len(axis) for axis in axes],
                "spans": [[float(axis[0]), float(axis[-1])] for axis in axes]}


def _cell_widths(axis: np.ndarray) -> np.ndarray:
    """The quadrature weight of each node of an axis: half the distance between its neighbours (one-sided at the ends)."""
    padded = np.concatenate([[axis[0] - (axis[1] - axis[0])], axis, [axis[-1] + (axis[-1] - axis[-2])]])
    return 0.5 * (padded[2:] - padded[:-2])


def grid_sampler(grid_size: int = 64, grid_extent: float = 6.0) -> GridSampler:
    """The deterministic grid sampler: ``grid_size`` nodes per axis on ``[-grid_extent sqrt(sw2), +]^d``."""
    return GridSampler(grid_size, grid_extent)
