"""A finite-width deep network and the kernels the deep theory predicts for it (docs/theory.md 6.1).

    h1 = x w^T,   h(l+1) = phi(hl) W(l)^T / sqrt(N),   f = phi(hH) a / N        (H = depth - 1 hidden layers)
    Phi_l = phi(hl) phi(hl)^T / N                                              (P x P, layer l's feature kernel)

Parameters are a plain pytree ``{"a": (N, C), "w": (N, d), "W": (H - 1, N, N)}`` drawn from the
prior ``a ~ N(0, sa2)``, ``w ~ N(0, sw2)``, ``W ~ N(0, sW2)``; a batch of networks (seeds) has a
leading seed axis. ``mft_jax.train.joint.train`` trains them (Langevin: the posterior
``exp(-beta N L - prior)``, whose N -> infinity kernels are ``mft_jax.theory.deep.solve_deep``'s).
"""

from __future__ import annotations

import jax

from mft_jax.theory.deep import Deep


def preactivations(params: dict, model: Deep, x: jax.Array) -> list:
    """``[h1, .., hH]``, each (P, N) (``Deep.preactivations``)."""
    return model.preactivations(params, x)


def predict(params: dict, model: Deep, x: jax.Array) -> jax.Array:
    """``f(x) = phi(hH(x)) a / N``: (P, C) (``Deep.apply``)."""
    return model.apply(params, x)


def feature_kernels(params: dict, model: Deep, x: jax.Array) -> jax.Array:
    """``Phi_l = phi(hl) phi(hl)^T / N`` for l = 1..H: (H, P, P) (``Deep.feature_kernels``)."""
    return model.feature_kernels(params, x)
