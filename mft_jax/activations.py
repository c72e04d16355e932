"""Elementwise activations ``phi`` with how fast they grow at infinity.

``growth`` is the degree k with ``|phi(z)| ~ |z|^k`` as ``|z| -> inf`` (0: bounded). It decides
normalizability of the single-neuron law (docs/theory.md section 3): bounded activations always
give a proper law, k = 1 does below a critical coupling, k = 2 needs a vanishing overlap.
``None`` means unknown: the solver then probes the growth numerically.

Add your own in one line::

    register_activation("softplus", jax.nn.softplus, growth=1)

``derivative`` is ``phi'`` written out (elementwise, no autodiff): the fused foreground step
(``mft_jax.train.fused``) evaluates ``phi`` and ``phi'`` inside one kernel. An activation without
one (any user callable unless given) runs the generic autodiff step instead.
"""

from __future__ import annotations

import dataclasses
import math
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
    derivative: Callable[[jax.Array], jax.Array] | None = None  # phi', elementwise; None: autodiff only

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


# phi' written out. At the kinks of ramp / hardtanh / relu (a set of measure zero) these take the
# one-sided value 0; autodiff of jnp.clip takes 1/2 there.
def _ramp_derivative(z):
    return jnp.where((z > 0.0) & (z < 1.0), jnp.ones_like(z), jnp.zeros_like(z))


def _hardtanh_derivative(z):
    return jnp.where((z > -1.0) & (z < 1.0), jnp.ones_like(z), jnp.zeros_like(z))


def _relu_derivative(z):
    return jnp.where(z > 0.0, jnp.ones_like(z), jnp.zeros_like(z))


def _erf_derivative(z):
    return (2.0 / math.sqrt(math.pi)) * jnp.exp(-z * z)


def _tanh_derivative(z):
    t = jnp.tanh(z)
    return 1.0 - t * t


_GELU_C = math.sqrt(2.0 / math.pi)


def _gelu_derivative(z):
    """d/dz of jax.nn.gelu's default (tanh) form 0.5 z (1 + tanh(c (z + 0.044715 z^3)))."""
    t = jnp.tanh(_GELU_C * (z + 0.044715 * z * z * z))
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * _GELU_C * (1.0 + 3.0 * 0.044715 * z * z)


def _linear_derivative(z):
    return jnp.ones_like(z)


def _square_derivative(z):
    return 2.0 * z


_REGISTRY: dict[str, Activation] = {}
BUILTIN_ACTIVATIONS: frozenset[str] = frozenset()  # filled below, after the built-ins are registered


def register_activation(name: str, fn: Callable, growth: int | None = None, derivative: Callable | None = None, *,
                        replace: bool = False) -> Activation:
    """Register ``fn`` under ``name`` so configs can refer to it; returns the ``Activation``.

    A built-in name (``erf``, ``relu``, ...) is refused unless ``replace=True``: a config naming it would
    silently get another function. ``derivative``: ``phi'`` as an elementwise function, which lets the fused
    foreground step run it.
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
    if derivative is not None and not callable(derivative):
        raise ConfigError(f"activation derivative must be a callable phi'(z) or None, got {type(derivative).__name__}")
    activation = Activation(name, fn, growth, derivative)
    _REGISTRY[name] = activation
    return activation


register_activation("ramp", _ramp, growth=0, derivative=_ramp_derivative)
register_activation("hardtanh", _hardtanh, growth=0, derivative=_hardtanh_derivative)
register_activation("erf", jax.scipy.special.erf, growth=0, derivative=_erf_derivative)
register_activation("tanh", jnp.tanh, growth=0, derivative=_tanh_derivative)
register_activation("gelu", jax.nn.gelu, growth=1, derivative=_gelu_derivative)
register_activation("relu", jax.nn.relu, growth=1, derivative=_relu_derivative)
register_activation("linear", _linear, growth=1, derivative=_linear_derivative)
register_activation("square", _square, growth=2, derivative=_square_derivative)
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
