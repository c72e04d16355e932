"""The two-layer prior and the single-neuron quantities of docs/theory.md sections 2-4.

``f(x) = (1/N) sum_i a_i phi(w_i . x)`` (mean-field scaling; ``1/sqrt(N)`` for standard),
prior ``a ~ N(0, sa2 I_C)``, ``w ~ N(0, sw2 I_d)``, posterior tempered at inverse temperature
``beta``. With ``c = beta^2 sa2 / 2`` and a residual ``r`` on a dataset:

    S(w)    = sum_mu q_mu r_mu phi(w . x_mu)                       overlap, in R^C
    rho(w)  ~ exp(-|w|^2 / (2 sw2) + c |S(w)|^2)                   single-neuron law
    a | w   ~ Normal(beta sa2 S(w), sa2 I_C)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.activations import Activation, get_activation
from mft_jax.data import Dataset
from mft_jax.errors import ConfigError
from mft_jax.priors import make_penalty

SCALINGS = ("mean_field", "standard")
TRACED = ("sa2", "sw2", "beta", "penalty")  # the model's pytree leaves (the penalty's own numeric leaves included)


def _is_concrete(value) -> bool:
    """A Python or NumPy number (validated), as opposed to a tracer or a placeholder inside a JAX transform."""
    return isinstance(value, (int, float, np.number)) or (isinstance(value, np.ndarray) and value.ndim == 0)


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class TwoLayer:
    """Prior of a two-layer network: activation, ``sa2``, ``sw2``, ``beta``, the width scaling, a weight penalty.

    A JAX pytree: ``sa2``, ``sw2``, ``beta`` (and the numeric leaves of ``penalty``) are traced leaves, so a
    jitted map that takes the model compiles once for every value of them (a sweep over beta, a
    ``vmap`` over couplings); ``activation`` and ``scaling`` are static. ``penalty`` is ``None`` or a
    non-Gaussian term ``Gamma(w)`` of the weight prior (``mft_jax.priors``): the prior density of ``w`` is
    ``exp(-|w|^2/(2 sw2) - Gamma(w))`` (docs/theory.md section 7).
    """

    activation: Activation | str = "erf"
    sa2: float = 1.0
    sw2: float = 1.0
    beta: float = 1.0
    scaling: str = "mean_field"
    penalty: Any = None

    def __post_init__(self):
        object.__setattr__(self, "activation", get_activation(self.activation))
        for name in ("sa2", "sw2", "beta"):
            value = getattr(self, name)
            if not _is_concrete(value):
                continue  # traced (inside jit / vmap): validated when the concrete model was built
            if isinstance(value, bool) or not math.isfinite(float(value)) or value <= 0:
                raise ConfigError(f"model {name} must be a finite number > 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.scaling not in SCALINGS:
            raise ConfigError(f"model scaling must be one of {SCALINGS}, got {self.scaling!r}")
        if isinstance(self.penalty, dict):
            object.__setattr__(self, "penalty", make_penalty(self.penalty))  # from settings() / a TOML table
        if self.penalty is not None and not (callable(self.penalty) and isinstance(getattr(self.penalty, "degree", None), int)):
            raise ConfigError(
                f"model penalty must be None or a callable Gamma(w) with an integer `degree` (its growth along rays), "
                f"e.g. mft_jax.priors.sextic(gamma); got {self.penalty!r}"
            )

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_node_class(cls)  # a model with more settings (e.g. SingleIndex) is a pytree too

    def _static_names(self) -> tuple[str, ...]:
        """Every field but the traced leaves: the activation, the scaling and a subclass's own settings."""
        return tuple(f.name for f in dataclasses.fields(self) if f.name not in TRACED)

    def tree_flatten(self):
        static = self._static_names()
        return tuple(getattr(self, name) for name in TRACED), (static, tuple(getattr(self, name) for name in static))

    @classmethod
    def tree_unflatten(cls, aux, leaves):
        model = object.__new__(cls)  # no validation: leaves may be tracers or placeholders
        for name, value in zip(TRACED, leaves):
            object.__setattr__(model, name, value)
        for name, value in zip(*aux):
            object.__setattr__(model, name, value)
        return model

    @property
    def temperature(self) -> float:
        """``T = 1 / beta``."""
        return 1.0 / self.beta

    @property
    def coupling(self) -> float:
        """``c = beta^2 sa2 / 2``, the strength of ``c |S(w)|^2`` in the single-neuron law."""
        return 0.5 * self.beta**2 * self.sa2

    def settings(self) -> dict:
        """The keyword arguments that rebuild this prior (the activation by its registered name)."""
        settings = {"activation": self.activation.name, "sa2": self.sa2, "sw2": self.sw2, "beta": self.beta, "scaling": self.scaling}
        if self.penalty is not None:
            settings["penalty"] = self.penalty.settings()
        return settings

    def replace(self, **changes) -> "TwoLayer":
        return dataclasses.replace(self, **changes)

    def features(self, w: jax.Array, x: jax.Array) -> jax.Array:
        """``phi(w_i . x_mu)``: (M, P) for neurons ``w`` (M, d) and points ``x`` (P, d)."""
        return self.activation(w @ x.T)

    def overlap(self, w: jax.Array, data: Dataset, residual: jax.Array) -> jax.Array:
        """``S(w) = sum_mu q_mu r_mu phi(w . x_mu)``: (M, C)."""
        return self.features(w, data.x) @ (data.q[:, None] * residual)

    def log_prior_w(self, w: jax.Array) -> jax.Array:
        """``-|w|^2 / (2 sw2) - Gamma(w)`` (unnormalised), per neuron."""
        gaussian = -0.5 * jnp.sum(w * w, axis=-1) / self.sw2
        return gaussian if self.penalty is None else gaussian - self.penalty(w)

    def log_tilt(self, w: jax.Array, data: Dataset, residual: jax.Array) -> jax.Array:
        """``c |S(w)|^2``: the log of ``rho / prior`` up to a constant."""
        overlap = self.overlap(w, data, residual)
        return self.coupling * jnp.sum(overlap * overlap, axis=-1)

    def log_density(self, w: jax.Array, data: Dataset, residual: jax.Array) -> jax.Array:
        """Unnormalised ``log rho(w) = -|w|^2/(2 sw2) + c |S(w)|^2``, per neuron."""
        return self.log_prior_w(w) + self.log_tilt(w, data, residual)

    def readout_mean(self, w: jax.Array, data: Dataset, residual: jax.Array) -> jax.Array:
        """``E[a | w] = beta sa2 S(w)``: (M, C)."""
        return self.beta * self.sa2 * self.overlap(w, data, residual)

    def potential(self, a: jax.Array, w: jax.Array, data: Dataset, residual: jax.Array) -> jax.Array:
        """Single-neuron potential ``V(a, w) = - sum_mu q_mu r_mu . a phi(w . x_mu)`` (docs/theory.md section 4)."""
        return -jnp.sum(a * self.overlap(w, data, residual), axis=-1)
