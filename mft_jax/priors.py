"""Non-Gaussian weight priors: a penalty ``Gamma(w)`` added to the Gaussian (docs/theory.md section 7).

The prior density of a neuron's input weights is ``exp(-|w|^2/(2 sw2) - Gamma(w))``; the single-neuron
law becomes ``rho(w) ~ exp(-|w|^2/(2 sw2) - Gamma(w) + c |S(w)|^2)`` and a Langevin network feels the
same term (its gradient) as weight decay. A penalty is a pytree callable ``Gamma(w: (M, d)) -> (M,)``
whose numeric parameters are traced leaves (a sweep over ``gamma`` compiles once) and whose ``degree``
(static) is the power with which it grows along rays: a penalty of degree ``D`` beats a tilt
``c |S(t u)|^2 ~ t^(2k)`` whenever ``D > 2k``, which makes a square network's law exist.

Built in:

- ``sextic(gamma)``: ``Gamma(w) = (gamma / 6) sum_n w_n^6``, per weight;
- ``fourier_sextic(gamma)``: Rubin, Seroussi & Ringel's decay on the two halves ``w = (u, v)`` of a
  ``2P``-dimensional weight (two-hot modular-addition inputs), ``Gamma = P (gamma/6) sum_k (|u_k|^6 + |v_k|^6)``
  with the Fourier coefficients ``u_k = (1/P) sum_n u_n exp(2 pi i k n / P)`` (so ``u_n = sum_k u_k
  exp(-2 pi i k n / P)``, their convention; ``fourier_coefficients``). The modular-addition theory built on it:
  ``mft_jax.theory.reduced.modular`` (docs/theory.md section 9).

Your own: any ``jax.tree_util`` pytree (e.g. a ``flax.struct.dataclass``) with ``__call__``, an integer
``degree`` and ``settings() -> dict``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from mft_jax.errors import ConfigError


def _check_gamma(gamma):
    if isinstance(gamma, (int, float)) and (isinstance(gamma, bool) or not gamma >= 0):
        raise ConfigError(f"penalty gamma must be a number >= 0, got {gamma!r}")
    return gamma


@struct.dataclass
class Sextic:
    """``Gamma(w) = (gamma / 6) sum_n w_n^6`` (per weight)."""

    gamma: float
    degree: int = struct.field(pytree_node=False, default=6)

    def __call__(self, w: jax.Array) -> jax.Array:
        return (self.gamma / 6.0) * jnp.sum(w**6, axis=-1)

    def settings(self) -> dict:
        return {"name": "sextic", "gamma": float(self.gamma)}


def fourier_coefficients(x: jax.Array) -> jax.Array:
    """``x_k = (1/P) sum_n x_n e^(+2 pi i k n / P)`` along the last axis (so ``x_n = sum_k x_k e^(-2 pi i k n / P)``)."""
    return jnp.fft.ifft(x, axis=-1)


@struct.dataclass
class FourierSextic:
    """``Gamma(w) = P (gamma/6) sum_k (|u_k|^6 + |v_k|^6)`` on the halves ``w = (u, v)``, ``u_k = (1/P) sum_n u_n e^(2 pi i k n/P)``."""

    gamma: float
    degree: int = struct.field(pytree_node=False, default=6)

    def __call__(self, w: jax.Array) -> jax.Array:
        size = w.shape[-1] // 2
        if w.shape[-1] != 2 * size:
            raise ConfigError(f"fourier_sextic needs an even weight dimension 2P (two halves), got {w.shape[-1]}")
        halves = w.reshape(w.shape[:-1] + (2, size))
        power = jnp.abs(fourier_coefficients(halves)) ** 2  # |u_k|^2, |v_k|^2
        return size * (self.gamma / 6.0) * jnp.sum(power**3, axis=(-2, -1))

    def settings(self) -> dict:
        return {"name": "fourier_sextic", "gamma": float(self.gamma)}


def sextic(gamma: float) -> Sextic:
    """The per-weight sextic penalty ``(gamma / 6) sum_n w_n^6``."""
    return Sextic(_check_gamma(gamma))


def fourier_sextic(gamma: float) -> FourierSextic:
    """Rubin et al.'s Fourier-mode sextic penalty on a ``2P``-dimensional weight."""
    return FourierSextic(_check_gamma(gamma))


PENALTIES = {"sextic": sextic, "fourier_sextic": fourier_sextic}


def make_penalty(settings: dict | None):
    """A penalty from its settings (``{"name": "sextic", "gamma": 1e-2}``), or None."""
    if settings is None:
        return None
    if not isinstance(settings, dict) or settings.get("name") not in PENALTIES or set(settings) != {"name", "gamma"}:
        raise ConfigError(
            f"model penalty must be a table {{name = one of {sorted(PENALTIES)}, gamma = number >= 0}}, got {settings!r}"
        )
    return PENALTIES[settings["name"]](settings["gamma"])
