"""A finite-width two-layer network (flax) and what the theory reads off it (docs/theory.md section 2).

    f(x) = (1/N) sum_i a_i phi(w_i . x)        mean-field scaling (1/sqrt(N) for ``scaling="standard"``)
    L    = 1/2 sum_mu q_mu |f(x_mu) - y_mu|^2    on a ``Dataset``
    r    = y - f                                 the residual a trained network imposes on one neuron

Parameters are a plain pytree ``{"a": (N, C), "w": (N, d)}`` drawn from the prior
``a ~ N(0, sa2 I_C)``, ``w ~ N(0, sw2 I_d)``; a batch of independent networks (seeds) is the same
pytree with a leading seed axis, made with ``jax.vmap``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mft_jax.data import Dataset
from mft_jax.model import TwoLayer, TwoLayerNetwork  # noqa: F401  (TwoLayerNetwork: the flax module, kept importable here)
from mft_jax.neurons import NeuronLaw


def init_network(key: jax.Array, model: TwoLayer, width: int, input_dim: int, output_dim: int = 1) -> dict:
    """Prior draw ``{"a": (N, C) ~ N(0, sa2), "w": (N, d) ~ N(0, sw2 I)}`` (``TwoLayer.init_params``)."""
    return model.init_params(key, width, input_dim, output_dim)


def predict(params: dict, model: TwoLayer, x: jax.Array) -> jax.Array:
    """The network function ``f(x)``: (P, C) for points ``x`` (P, d) (``TwoLayer.apply``)."""
    return model.apply(params, x)


def residual(params: dict, model: TwoLayer, data: Dataset) -> jax.Array:
    """``r = y - f(x)`` on the data: (P, C); any model of the protocol (``model.apply``)."""
    return data.y - predict(params, model, data.x)


def loss(params: dict, model: TwoLayer, data: Dataset) -> jax.Array:
    """``L = 1/2 sum_mu q_mu |f(x_mu) - y_mu|^2``; any model of the protocol (``TwoLayer``, ``Deep``)."""
    r = residual(params, model, data)
    return 0.5 * jnp.sum(data.q[:, None] * r * r)


def network_law(params: dict) -> NeuronLaw:
    """The network's neurons as equally weighted particles ``(w_i, a_i)``; a seed axis is flattened in."""
    a, w = params["a"], params["w"]
    return NeuronLaw.from_samples(w.reshape(-1, w.shape[-1]), a.reshape(-1, a.shape[-1]))
