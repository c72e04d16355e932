"""Elementwise activations ``phi`` with how fast they grow at infinity.

``growth`` is the degree k with ``|phi(z)| ~ |z|^k`` as ``|z| -> inf`` (0: bounded). It decides
normalizability of the single-neuron law (docs/theory.md section 3): bounded activations always
give a proper law, k = 1 does below a critical coupling, k = 2 needs a vanishing overlap.
``None`` means unknown: the solver then probes the growth numerically.

Add your own in one line::

    register_activation("softplus", jax.nn.softplus, growth=1)
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from mft_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Activation:
    """A named elementwise function ``phi``; hashable so it can be a static jit argument."""

    name: str
    fn: Callable[[jax.Array], jax.Array]
    growth: int | None = None

    def __call__(self, z: jax.Array) -> jax.Array:
        return self.fn(z)


def _ramp(z):
    return jnp.clip(z, 0.0, 1.0)


def _hardtanh(z):
    return jnp.clip(z, -1.0, 1.0)


def _linear(z):
    return z


def _square(z):
    return z * z


_REGISTRY: dict[str, Activation] = {}
BUILTIN_ACTIVATIONS: frozenset[str] = frozenset()  # filled below, after the built-ins are registered


def register_activation(name: str, fn: Callable, growth: int | None = None, *, replace: bool = False) -> Activation:
    """Register ``fn`` under ``name`` so configs can refer to it; returns the ``Activation``.

    A built-in name (``erf``, ``relu``, ...) is refused unless ``replace=True``: a config naming it would
    silently get another function.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"an activation name must be a non-empty string, got {name!r}")
    if not callable(fn):
        raise ConfigError(f"activation {name!r} must be callable, got {type(fn).__name__}")
    if name in BUILTIN_ACTIVATIONS and not replace:
        raise ConfigError(f"activation {name!r} is built in; registering another under its name needs replace=True "
                          "(or choose another name)")
    if isinstance(growth, bool) or (growth is not None and growth not in (0, 1, 2)):
        raise ConfigError(f"activation growth must be 0 (bounded), 1, 2 or None (unknown); got {growth!r}")
    activation = Activation(name, fn, growth)
    _REGISTRY[name] = activation
    return activation


register_activation("ramp", _ramp, growth=0)
register_activation("hardtanh", _hardtanh, growth=0)
register_activation("erf", jax.scipy.special.erf, growth=0)
register_activation("tanh", jnp.tanh, growth=0)
register_activation("gelu", jax.nn.gelu, growth=1)
register_activation("relu", jax.nn.relu, growth=1)
register_activation("linear", _linear, growth=1)
register_activation("square", _square, growth=2)
BUILTIN_ACTIVATIONS = frozenset(_REGISTRY)


def available_activations() -> list[str]:
    return sorted(_REGISTRY)


def get_activation(spec: str | Callable | Activation) -> Activation:
    """An ``Activation`` from a registered name, an ``Activation``, or any callable (growth unknown)."""
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        if spec not in _REGISTRY:
            raise ConfigError(f"unknown activation {spec!r}; allowed: {', '.join(available_activations())} or a callable")
        return _REGISTRY[spec]
    if callable(spec):
        return Activation(getattr(spec, "__name__", "custom"), spec, None)
    raise ConfigError(f"activation must be a name or a callable, got {type(spec).__name__}")
