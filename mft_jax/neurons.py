"""``NeuronLaw``: the law of one neuron as weighted particles.

One type for grid quadrature, importance sampling, MCMC chains and trained neurons: particles
``w`` (M, d) with log-weights (M,); optional readouts ``a`` (M, C) for empirical neurons
(for theory laws ``a | w`` is Gaussian in closed form, ``TwoLayer.readout_mean``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class NeuronLaw(NamedTuple):
    """Weighted particles ``(w, log_weight)`` and, for trained neurons, their readouts ``a``."""

    w: jax.Array
    log_weight: jax.Array
    a: jax.Array | None = None

    @classmethod
    def from_samples(cls, w: jax.Array, a: jax.Array | None = None) -> "NeuronLaw":
        """Equally weighted particles, e.g. the neurons of a trained network or MCMC samples."""
        return cls(w, jnp.zeros(w.shape[0], jax.dtypes.canonicalize_dtype(w.dtype)), a)

    @property
    def num_particles(self) -> int:
        return self.w.shape[0]

    def weights(self) -> jax.Array:
        """Normalised weights (M,), summing to 1."""
        return jax.nn.softmax(self.log_weight)

    def effective_sample_size(self) -> jax.Array:
        """Kish's ``1 / sum weight^2``: M for equal weights, 1 for a single dominant particle."""
        weights = self.weights()
        return 1.0 / jnp.sum(weights * weights)

    def expectation(self, values: jax.Array) -> jax.Array:
        """``E[g] = sum_i weight_i g_i`` over the particle axis (axis 0)."""
        return jnp.tensordot(self.weights(), values, axes=1)
