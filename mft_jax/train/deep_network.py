"""A finite-width deep network and the kernels the deep theory predicts for it (docs/theory.md 6.1).

    h1 = x w^T,   h(l+1) = phi(hl) W(l)^T / sqrt(N),   f = phi(hH) a / N        (H = depth - 1 hidden layers)
    Phi_l = phi(hl) phi(hl)^T / N                                              (P x P, layer l's feature kernel)

Parameters are a plain pytree ``{"a": (N, C), "w": (N, d), "W": (H - 1, N, N)}`` drawn from the
prior ``a ~ N(0, sa2)``, ``w ~ N(0, sw2)``, ``W ~ N(0, sW2)``; a batch of networks (seeds) has a
leading seed axis. ``mft_jax.train.joint.train`` trains them (Langevin: the posterior
``exp(-beta N L - prior)``, whose N -> infinity kernels are ``mft_jax.deep.solve_deep``'s).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mft_jax.data import Dataset
from mft_jax.deep import Deep
from mft_jax.errors import ConfigError


def init_deep_network(key: jax.Array, model: Deep, width: int, input_dim: int, output_dim: int = 1) -> dict:
    """Prior draw ``{"a": (N, C), "w": (N, d), "W": (H - 1, N, N)}``."""
    for name, value in (("width", width), ("input_dim", input_dim), ("output_dim", output_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"network {name} must be a positive integer, got {value!r}")
    ka, kw, kW = jax.random.split(key, 3)
    dtype = jnp.result_type(float)
    return {
        "a": jnp.sqrt(model.sa2) * jax.random.normal(ka, (width, output_dim), dtype),
        "w": jnp.sqrt(model.sw2) * jax.random.normal(kw, (width, input_dim), dtype),
        "W": jnp.sqrt(model.sW2) * jax.random.normal(kW, (model.hidden_layers - 1, width, width), dtype),
    }


def preactivations(params: dict, model: Deep, x: jax.Array) -> list:
    """``[h1, .., hH]``, each (P, N)."""
    width = params["w"].shape[0]
    h = x @ params["w"].T
    layers = [h]
    for W in params["W"]:
        h = model.activation(h) @ W.T / jnp.sqrt(width)
        layers.append(h)
    return layers


def predict(params: dict, model: Deep, x: jax.Array) -> jax.Array:
    """``f(x) = phi(hH(x)) a / N``: (P, C)."""
    return model.activation(preactivations(params, model, x)[-1]) @ params["a"] / params["a"].shape[0]


def loss(params: dict, model: Deep, data: Dataset) -> jax.Array:
    """``L = 1/2 sum_mu q_mu |f(x_mu) - y_mu|^2``."""
    r = data.y - predict(params, model, data.x)
    return 0.5 * jnp.sum(data.q[:, None] * r * r)


def feature_kernels(params: dict, model: Deep, x: jax.Array) -> jax.Array:
    """``Phi_l = phi(hl) phi(hl)^T / N`` for l = 1..H: (H, P, P), the network's counterpart of ``DeepSolution.kernels``."""
    width = params["w"].shape[0]
    return jnp.stack([model.activation(h) @ model.activation(h).T / width for h in preactivations(params, model, x)])
