"""The samplers of the single-neuron law, in one namespace (``mft_jax.samplers.grid_sampler``, ...).

Two-layer (``Sampler``: a residual ``r`` to the law ``rho(w)``, ``mft_jax.theory.samplers``): ``grid_sampler``,
``importance_sampler``, ``mcmc_sampler``, ``tempered_sampler``, ``pooled_sampler``. Deep (``LayerSampler``: per-layer
statistics, ``mft_jax.theory.samplers.layers``): ``gaussian_layers``, ``importance_layers``, ``grid_layers``,
``mcmc_layers``.
"""

from mft_jax.theory.samplers import Sampler
from mft_jax.theory.samplers.grid import GridSampler, grid_sampler
from mft_jax.theory.samplers.importance import ImportanceSampler, importance_sampler
from mft_jax.theory.samplers.layers import (GaussianLayers, GridLayers, ImportanceLayers, LayerSampler, MCMCLayers,
                                            gaussian_layers, grid_layers, importance_layers, mcmc_layers)
from mft_jax.theory.samplers.mcmc import MCMCSampler, mcmc_sampler
from mft_jax.theory.samplers.pooled import PooledSampler, pooled_sampler
from mft_jax.theory.samplers.tempered import TemperedSampler, tempered_sampler

__all__ = [
    "GaussianLayers", "GridLayers", "GridSampler", "ImportanceLayers", "ImportanceSampler", "LayerSampler", "MCMCLayers",
    "MCMCSampler", "PooledSampler", "Sampler", "TemperedSampler", "gaussian_layers", "grid_layers", "grid_sampler",
    "importance_layers", "importance_sampler", "mcmc_layers", "mcmc_sampler", "pooled_sampler", "tempered_sampler",
]
