"""A finite-width two-layer network (flax) and what the theory reads off it (docs/theory.md section 2).

    f(x) = (1/N) sum_i a_i phi(w_i . x)        mean-field scaling (1/sqrt(N) for ``scaling="standard"``)
    L    = 1/2 sum_mu q_mu |f(x_mu) - y_mu|^2    on a ``Dataset``
    r    = y - f                                 the residual a trained network imposes on one neuron

Parameters are a plain pytree ``{"a": (N, C), "w": (N, d)}`` drawn from the prior
``a ~ N(0, sa2 I_C)``, ``w ~ N(0, sw2 I_d)``; a batch of independent networks (seeds) is the same
pytree with a leading seed axis, made with ``jax.vmap``.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from mft_jax.data import Dataset
from mft_jax.errors import ConfigError
from mft_jax.model import TwoLayer
from mft_jax.neurons import NeuronLaw


class TwoLayerNetwork(nn.Module):
    """``f(x) = N^-p sum_i a_i phi(w_i . x)`` with ``p = 1`` (mean-field) or ``1/2`` (standard); x (P, d) -> (P, C)."""

    model: TwoLayer
    width: int
    output_dim: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        w = self.param("w", nn.initializers.normal(math.sqrt(self.model.sw2)), (self.width, x.shape[-1]))
        a = self.param("a", nn.initializers.normal(math.sqrt(self.model.sa2)), (self.width, self.output_dim))
        return self.model.features(w, x).T @ a / readout_norm(self.model, self.width)


def readout_norm(model: TwoLayer, width: int) -> float:
    """``N`` (mean-field) or ``sqrt(N)`` (standard): the divisor of the readout sum."""
    return float(width) if model.scaling == "mean_field" else math.sqrt(width)


def init_network(key: jax.Array, model: TwoLayer, width: int, input_dim: int, output_dim: int = 1) -> dict:
    """Prior draw ``{"a": (N, C) ~ N(0, sa2), "w": (N, d) ~ N(0, sw2 I)}``."""
    for name, value in (("width", width), ("input_dim", input_dim), ("output_dim", output_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"network {name} must be a positive integer, got {value!r}")
    module = TwoLayerNetwork(model, width, output_dim)
    return module.init(key, jnp.zeros((1, input_dim)))["params"]


def predict(params: dict, model: TwoLayer, x: jax.Array) -> jax.Array:
    """The network function ``f(x)``: (P, C) for points ``x`` (P, d)."""
    width, output_dim = params["a"].shape
    return TwoLayerNetwork(model, width, output_dim).apply({"params": params}, x)


def residual(params: dict, model: TwoLayer, data: Dataset) -> jax.Array:
    """``r = y - f(x)`` on the data: (P, C)."""
    return data.y - predict(params, model, data.x)


def loss(params: dict, model: TwoLayer, data: Dataset) -> jax.Array:
    """``L = 1/2 sum_mu q_mu |f(x_mu) - y_mu|^2``."""
    r = residual(params, model, data)
    return 0.5 * jnp.sum(data.q[:, None] * r * r)


def network_law(params: dict) -> NeuronLaw:
    """The network's neurons as equally weighted particles ``(w_i, a_i)``; a seed axis is flattened in."""
    a, w = params["a"], params["w"]
    return NeuronLaw.from_samples(w.reshape(-1, w.shape[-1]), a.reshape(-1, a.shape[-1]))
