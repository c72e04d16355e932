"""Grid quadrature of the single-neuron law (d <= 3).

Nodes: the tensor grid of ``grid_size`` points per axis on ``[-L, L]^d``, ``L = grid_extent
sqrt(sw2)``, cell volume ``h^d``. The law is the quadrature

    log_weight_i = log rho(w_i) + d log h,   rho(w) ~ exp(-|w|^2/(2 sw2) + c |S(w)|^2)

(the uniform rule: spectrally accurate for laws that decay inside the box). Diagnostics:
``log_partition = log E_prior[exp(c |S(w)|^2)]`` by the same quadrature, and
``boundary_mass``, the weight on the outermost layer of nodes: a law that is not contained in
the grid puts mass there (``grid_containment_warning`` says so in words).
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.errors import ConfigError
from mft_jax.foreground import Sampler
from mft_jax.neurons import NeuronLaw

MAX_GRID_DIM = 3
BOUNDARY_MASS_LIMIT = 1e-4  # above this the grid truncates the law noticeably


class GridState(NamedTuple):
    w: jax.Array  # (M, d) nodes
    log_cell: jax.Array  # d log h
    on_boundary: jax.Array  # (M,) True on the outermost layer
    diagnostics: dict


def grid_sampler(grid_size: int = 64, grid_extent: float = 6.0) -> Sampler:
    """The deterministic grid sampler: ``grid_size`` nodes per axis on ``[-grid_extent sqrt(sw2), +]^d``."""
    if isinstance(grid_size, bool) or not isinstance(grid_size, (int, np.integer)) or grid_size < 3:
        raise ConfigError(f"grid_size must be an integer >= 3, got {grid_size!r}")
    if not isinstance(grid_extent, (int, float)) or not math.isfinite(grid_extent) or grid_extent <= 0:
        raise ConfigError(f"grid_extent must be a number > 0 (in units of sqrt(sw2)), got {grid_extent!r}")

    def init(key, model, data) -> GridState:
        del key  # deterministic
        dim = data.input_dim
        if dim > MAX_GRID_DIM:
            raise ConfigError(
                f"sampler 'grid' needs input dimension d <= {MAX_GRID_DIM} (grid_size^d nodes), the data has d = {dim}; "
                "use sampler = 'importance' or 'mcmc'"
            )
        half = grid_extent * math.sqrt(model.sw2)
        axis = np.linspace(-half, half, grid_size)
        nodes = np.array(list(itertools.product(axis, repeat=dim)))
        edge = np.any((nodes == axis[0]) | (nodes == axis[-1]), axis=1)
        dtype = data.x.dtype
        log_cell = dim * math.log(axis[1] - axis[0])
        return GridState(jnp.asarray(nodes, dtype), jnp.asarray(log_cell, dtype), jnp.asarray(edge), _diagnostics(jnp.zeros(()), jnp.zeros(())))

    def update(state: GridState, model, data, residual):
        log_weight = model.log_density(state.w, data, residual) + state.log_cell
        law = NeuronLaw(state.w, log_weight)
        dim = state.w.shape[1]
        log_partition = jax.nn.logsumexp(log_weight) - 0.5 * dim * jnp.log(2 * jnp.pi * model.sw2)
        boundary_mass = jnp.sum(jnp.where(state.on_boundary, law.weights(), 0.0))
        return law, state._replace(diagnostics=_diagnostics(log_partition, boundary_mass))

    return Sampler("grid", init, update)


def _diagnostics(log_partition, boundary_mass) -> dict:
    return {"log_partition": log_partition, "boundary_mass": boundary_mass}


def grid_containment_warning(diagnostics: dict) -> str | None:
    """Words for a law that leaks out of the grid, or None when it is contained."""
    mass = float(diagnostics.get("boundary_mass", 0.0))
    if mass <= BOUNDARY_MASS_LIMIT:
        return None
    return (
        f"the neuron law puts {mass:.2g} of its mass on the boundary of the grid (limit {BOUNDARY_MASS_LIMIT:g}): "
        "it is not contained in the grid; raise grid_extent (and grid_size with it), or the law may not be "
        "normalizable"
    )
