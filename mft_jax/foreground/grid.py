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
import itertools
import math
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.errors import ConfigError
from mft_jax.foreground import Sampler
from mft_jax.neurons import NeuronLaw
from mft_jax.resources import require

MAX_GRID_DIM = 3
BOUNDARY_MASS_LIMIT = 1e-4  # above this the grid truncates the law noticeably
MIN_NODES = 50  # a law on fewer effective nodes (Kish ESS of the weights) is not resolved


class GridInfo(NamedTuple):
    log_partition: jax.Array  # log E_prior[exp(c |S(w)|^2)] by the same quadrature
    boundary_mass: jax.Array  # weight on the outermost layer of nodes
    ess: jax.Array  # effective number of nodes the law sits on (Kish)


class GridState(NamedTuple):
    w: jax.Array  # (M, d) nodes
    log_cell: jax.Array  # d log h
    on_boundary: jax.Array  # (M,) True on the outermost layer
    info: GridInfo


@dataclasses.dataclass(frozen=True)
class GridSampler(Sampler):
    """The deterministic grid sampler: ``grid_size`` nodes per axis on ``[-grid_extent sqrt(sw2), +]^d``."""

    grid_size: int = 64
    grid_extent: float = 6.0
    name: ClassVar[str] = "grid"

    def __post_init__(self):
        grid_size, grid_extent = self.grid_size, self.grid_extent
        if isinstance(grid_size, bool) or not isinstance(grid_size, (int, np.integer)) or grid_size < 3:
            raise ConfigError(f"grid_size must be an integer >= 3, got {grid_size!r}")
        if isinstance(grid_extent, bool) or not isinstance(grid_extent, (int, float)) or not math.isfinite(grid_extent) or grid_extent <= 0:
            raise ConfigError(f"grid_extent must be a number > 0 (in units of sqrt(sw2)), got {grid_extent!r}")
        object.__setattr__(self, "grid_size", int(grid_size))
        object.__setattr__(self, "grid_extent", float(grid_extent))

    def spacing(self, model) -> float:
        """The distance between neighbouring nodes, ``2 grid_extent sqrt(sw2) / (grid_size - 1)``."""
        return 2 * self.grid_extent * math.sqrt(model.sw2) / (self.grid_size - 1)

    def init(self, key, model, data) -> GridState:
        del key  # deterministic
        dim = data.input_dim
        if dim > MAX_GRID_DIM:
            raise ConfigError(
                f"sampler 'grid' needs input dimension d <= {MAX_GRID_DIM} (grid_size^d nodes), the data has d = {dim}; "
                "use sampler = 'importance' or 'mcmc'"
            )
        nodes = float(self.grid_size) ** dim
        itemsize = np.dtype(data.x.dtype).itemsize
        require(nodes * (4 * data.num_points * data.output_dim + 3 * data.num_points + 2 * dim) * itemsize,
                f"the grid sampler's {self.grid_size}^{dim} = {nodes:.3g} nodes x {data.num_points} data points",
                "[solver] grid_size (or the data size)")
        half = self.grid_extent * math.sqrt(model.sw2)
        axis = np.linspace(-half, half, self.grid_size)
        nodes = np.array(list(itertools.product(axis, repeat=dim)))
        edge = np.any((nodes == axis[0]) | (nodes == axis[-1]), axis=1)
        dtype = data.x.dtype
        log_cell = dim * math.log(axis[1] - axis[0])
        zero = jnp.zeros((), dtype)
        info = GridInfo(zero, zero, jnp.asarray(float(len(nodes)), dtype))
        return GridState(jnp.asarray(nodes, dtype), jnp.asarray(log_cell, dtype), jnp.asarray(edge), info)

    def update(self, state: GridState, model, data, residual):
        log_weight = model.log_density(state.w, data, residual) + state.log_cell
        law = NeuronLaw(state.w, log_weight)
        dim = state.w.shape[1]
        if model.penalty is None:  # the Gaussian prior's normaliser in closed form
            log_prior_mass = 0.5 * dim * jnp.log(2 * jnp.pi * model.sw2)
        else:  # the penalised prior's normaliser by the same quadrature
            log_prior_mass = jax.nn.logsumexp(model.log_prior_w(state.w) + state.log_cell)
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


def grid_sampler(grid_size: int = 64, grid_extent: float = 6.0) -> GridSampler:
    """The deterministic grid sampler: ``grid_size`` nodes per axis on ``[-grid_extent sqrt(sw2), +]^d``."""
    return GridSampler(grid_size, grid_extent)
