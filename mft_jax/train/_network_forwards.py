"""What ``mft_jax.train.network`` and ``mft_jax.train.deep_network`` held in 0.1: one-line forwards to the model's
methods, kept importable at their old paths for one release (``mft_jax._moved``, with a ``DeprecationWarning``).

``init_network(key, model, ...)`` is ``model.init_params(key, ...)``; ``predict(params, model, x)`` is
``model.apply(params, x)``; ``preactivations`` / ``feature_kernels`` are ``Deep``'s methods; ``loss``, ``residual``
and ``network_law`` live in ``mft_jax.train.joint``.
"""

from __future__ import annotations

from mft_jax.model import TwoLayerNetwork  # noqa: F401  (the flax module, importable here in 0.1)
from mft_jax.train.joint import loss, network_law, residual  # noqa: F401


def init_network(key, model, width: int, input_dim: int, output_dim: int = 1) -> dict:
    """``model.init_params(key, width, input_dim, output_dim)``."""
    return model.init_params(key, width, input_dim, output_dim)


def predict(params: dict, model, x):
    """``model.apply(params, x)``: the network function ``f(x)``."""
    return model.apply(params, x)


def preactivations(params: dict, model, x) -> list:
    """``model.preactivations(params, x)`` (``Deep``)."""
    return model.preactivations(params, x)


def feature_kernels(params: dict, model, x):
    """``model.feature_kernels(params, x)``."""
    return model.feature_kernels(params, x)
