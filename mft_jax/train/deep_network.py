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

from mft_jax.data import Dataset
from mft_jax.deep import Deep
from mft_jax.train import network


def init_deep_network(key: jax.Array, model: Deep, width: int, input_dim: int, output_dim: int = 1) -> dict:
    """Prior draw ``{"a": (N, C), "w": (N, d), "W": (H - 1, N, N)}`` (``Deep.init_params``)."""
    return model.init_params(key, width, input_dim, output_dim)


def preactivations(params: dict, model: Deep, x: jax.Array) -> list:
    """``[h1, .., hH]``, each (P, N) (``Deep.preactivations``)."""
    return model.preactivations(params, x)


def predict(params: dict, model: Deep, x: jax.Array) -> jax.Array:
    """``f(x) = phi(hH(x)) a / N``: (P, C) (``Deep.apply``)."""
    return model.apply(params, x)


def loss(params: dict, model: Deep, data: Dataset) -> jax.Array:
    """``L = 1/2 sum_mu q_mu |f(x_mu) - y_mu|^2`` (``mft_jax.train.network.loss``: any model of the protocol)."""
    return network.loss(params, model, data)


def feature_kernels(params: dict, model: Deep, x: jax.Array) -> jax.Array:
    """``Phi_l = phi(hl) phi(hl)^T / N`` for l = 1..H: (H, P, P) (``Deep.feature_kernels``)."""
    return model.feature_kernels(params, x)
