"""The two-layer prior and the single-neuron quantities of docs/theory.md sections 2-4.

``f(x) = (1/N) sum_i a_i phi(w_i . x)`` (mean-field scaling; ``1/sqrt(N)`` for standard),
prior ``a ~ N(0, sa2 I_C)``, ``w ~ N(0, sw2 I_d)``, posterior tempered at inverse temperature
``beta``. With ``c = beta^2 sa2 / 2`` and a residual ``r`` on a dataset:

    S(w)    = sum_mu q_mu r_mu phi(w . x_mu)                       overlap, in R^C
    rho(w)  ~ exp(-|w|^2 / (2 sw2) + c |S(w)|^2)                   single-neuron law
    a | w   ~ Normal(beta sa2 S(w), sa2 I_C)

``Deep`` is the prior of a deep network (docs/theory.md 6.1) beside it; its per-layer fixed point is
``mft_jax.theory.deep.solve_deep``. Neither prior knows its solver: the single-site background of a layer is
the solution's (``Solution.layer_background``, ``DeepSolution.layer_background``).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.activations import Activation, get_activation
from mft_jax.data import Dataset
from mft_jax.errors import ConfigError
from mft_jax.priors import make_penalty
from mft_jax.protocol import LayerBackground, check_width, readout_background, site_log_density

SCALINGS = ("mean_field", "standard")
TRACED = ("sa2", "sw2", "beta", "penalty")  # the model's pytree leaves (the penalty's own numeric leaves included)


def _is_concrete(value) -> bool:
    """A value to validate, as opposed to a tracer, a JAX array or a placeholder inside a JAX transform."""
    return not (isinstance(value, (jax.core.Tracer, jax.Array)) or type(value) is object)


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
            real = isinstance(value, (int, float, np.integer, np.floating)) or (
                isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf")
            if isinstance(value, (bool, np.bool_)) or not real or not math.isfinite(float(value)) or value <= 0:
                raise ConfigError(f"model {name} must be a finite number > 0, got {value!r} ({type(value).__name__})")
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

    @property
    def gain(self):
        """``beta sa2``: the readout's gain, ``r = (I + beta sa2 K Q)^-1 y`` and ``f = beta sa2 K Q r``."""
        return self.beta * self.sa2

    depth = 2  # weight layers (the model protocol, mft_jax.protocol)
    hidden_layers = 1

    def settings(self) -> dict:
        """The keyword arguments that rebuild this prior (the activation by its registered name)."""
        settings = {"activation": self.activation.name, "sa2": self.sa2, "sw2": self.sw2, "beta": self.beta, "scaling": self.scaling}
        if self.penalty is not None:
            settings["penalty"] = self.penalty.settings()
        return settings

    def replace(self, **changes) -> "TwoLayer":
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ prior sampling and the network
    def init_params(self, key: jax.Array, width: int, input_dim: int, output_dim: int = 1) -> dict:
        """Prior draw ``{"a": (N, C) ~ N(0, sa2), "w": (N, d) ~ N(0, sw2 I)}`` (the Gaussian part of the prior)."""
        check_width(width, input_dim, output_dim)
        return TwoLayerNetwork(self, width, output_dim).init(key, jnp.zeros((1, input_dim)))["params"]

    def prior_variances(self) -> dict:
        """``{"a": sa2, "w": sw2}``: the Gaussian prior variance of each parameter array."""
        return {"a": self.sa2, "w": self.sw2}

    def prior_penalties(self) -> dict | None:
        """``{"w": Gamma}`` when the weight prior carries a penalty, else None."""
        return None if self.penalty is None else {"w": self.penalty}

    def readout_norm(self, width: int) -> float:
        """``N`` (mean-field) or ``sqrt(N)`` (standard): the divisor of the readout sum."""
        return float(width) if self.scaling == "mean_field" else math.sqrt(width)

    def energy_scale(self, width: int) -> float:
        """``N`` (mean-field: Langevin descends ``U = N L``, the posterior ``exp(-beta N L - prior)``) or 1 (standard)."""
        return width if self.scaling == "mean_field" else 1.0

    def apply(self, params: dict, x: jax.Array) -> jax.Array:
        """The network function ``f(x) = N^-p sum_i a_i phi(w_i . x)``: (P, C) for points ``x`` (P, d).

        Written out rather than through the flax module, whose initializers would need concrete ``sa2, sw2``:
        here the model may be traced (one compilation for every beta).
        """
        return self.features(params["w"], x).T @ params["a"] / self.readout_norm(params["a"].shape[0])

    def feature_kernels(self, params: dict, x: jax.Array) -> jax.Array:
        """``Phi_1 = phi(X w^T) phi(X w^T)^T / N``: (1, P, P), the network's empirical kernel."""
        features = self.features(params["w"], x)
        return (features.T @ features / params["w"].shape[0])[None]

    # ------------------------------------------------------------------ the single-site law
    def layer_background(self, solution, layer: int = 1) -> LayerBackground:
        """Deprecated: ``solution.layer_background(layer)`` (the solution knows its background; the prior does not)."""
        warnings.warn("TwoLayer.layer_background(solution, layer) is deprecated: use solution.layer_background(layer)",
                      DeprecationWarning, stacklevel=2)
        if isinstance(layer, bool) or layer != 1:
            raise ConfigError(f"layer must be 1 (the hidden layer of a two-layer model), got {layer!r}")
        return readout_background(self, solution.data, solution.residual)

    def site_log_density(self, theta: jax.Array, background: LayerBackground) -> jax.Array:
        """``-|w|^2/(2 sw2) - Gamma(w) - 1/2 phi(X w)^T Phihat_1 phi(X w)`` per neuron (``mft_jax.protocol``)."""
        return site_log_density(self.activation, theta, background, self.penalty)

    # ------------------------------------------------------------------ one neuron against a residual
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
        return self.gain * self.overlap(w, data, residual)

    def potential(self, a: jax.Array, w: jax.Array, data: Dataset, residual: jax.Array) -> jax.Array:
        """Single-neuron potential ``V(a, w) = - sum_mu q_mu r_mu . a phi(w . x_mu)`` (docs/theory.md section 4)."""
        return -jnp.sum(a * self.overlap(w, data, residual), axis=-1)


class TwoLayerNetwork(nn.Module):
    """``f(x) = N^-p sum_i a_i phi(w_i . x)`` with ``p = 1`` (mean-field) or ``1/2`` (standard); x (P, d) -> (P, C).

    Its ``init`` is the prior draw of ``TwoLayer.init_params`` (flax names the keys of ``a`` and ``w``).
    """

    model: TwoLayer
    width: int
    output_dim: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        w = self.param("w", nn.initializers.normal(math.sqrt(self.model.sw2)), (self.width, x.shape[-1]))
        a = self.param("a", nn.initializers.normal(math.sqrt(self.model.sa2)), (self.width, self.output_dim))
        return self.model.apply({"a": a, "w": w}, x)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Deep:
    """Prior of a deep network (docs/theory.md 6.1): ``depth`` weight layers, ``depth - 1`` hidden.

    ``sa2``, ``sW2``, ``sw2``, ``beta`` are traced pytree leaves; ``activation`` and ``depth`` are static.
    """

    activation: Activation | str = dataclasses.field(default="erf", metadata=dict(static=True))
    depth: int = dataclasses.field(default=3, metadata=dict(static=True))
    sa2: float = 1.0
    sW2: float = 1.0
    sw2: float = 1.0
    beta: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "activation", get_activation(self.activation))
        if isinstance(self.depth, bool) or not isinstance(self.depth, (int, np.integer)) or self.depth < 2:
            raise ConfigError(f"model depth must be an integer >= 2 (weight layers; 2 is the two-layer net), got {self.depth!r}")
        object.__setattr__(self, "depth", int(self.depth))
        for name in ("sa2", "sW2", "sw2", "beta"):
            value = getattr(self, name)
            if isinstance(value, (jax.core.Tracer, jax.Array)) or type(value) is object:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"model {name} must be a finite number > 0, got {value!r}")
            object.__setattr__(self, name, float(value))

    scaling = "mean_field"  # the only scaling of the deep theory (1/N readout, 1/sqrt(N) hidden weights)
    penalty = None  # Gaussian weight priors only

    @property
    def temperature(self):
        """``T = 1 / beta``: the Langevin temperature of the networks."""
        return 1.0 / self.beta

    @property
    def hidden_layers(self) -> int:
        """``H = depth - 1``."""
        return self.depth - 1

    @property
    def coupling(self):
        """``c = beta^2 sa2 / 2`` of the last layer's tilt ``c |S(h)|^2``."""
        return 0.5 * self.beta**2 * self.sa2

    @property
    def gain(self):
        """``beta sa2``: the readout's gain, ``r = (I + beta sa2 Phi_H Q)^-1 y`` and ``f = beta sa2 Phi_H Q r``."""
        return self.beta * self.sa2

    def layer_variance(self, layer: int):
        """``s_l``: ``sw2`` for layer 1, ``sW2`` above (prior covariance of layer l is ``s_l Phi_(l-1)``)."""
        return self.sw2 if layer == 1 else self.sW2

    def replace(self, **changes) -> "Deep":
        return dataclasses.replace(self, **changes)

    def settings(self) -> dict:
        return {"activation": self.activation.name, "depth": self.depth, "sa2": float(self.sa2), "sW2": float(self.sW2),
                "sw2": float(self.sw2), "beta": float(self.beta)}

    # ------------------------------------------------------------------ prior sampling and the network (6.1)
    def init_params(self, key: jax.Array, width: int, input_dim: int, output_dim: int = 1) -> dict:
        """Prior draw ``{"a": (N, C) ~ N(0, sa2), "w": (N, d) ~ N(0, sw2), "W": (H - 1, N, N) ~ N(0, sW2)}``."""
        check_width(width, input_dim, output_dim)
        ka, kw, kW = jax.random.split(key, 3)
        dtype = jnp.result_type(float)
        return {
            "a": jnp.sqrt(self.sa2) * jax.random.normal(ka, (width, output_dim), dtype),
            "w": jnp.sqrt(self.sw2) * jax.random.normal(kw, (width, input_dim), dtype),
            "W": jnp.sqrt(self.sW2) * jax.random.normal(kW, (self.hidden_layers - 1, width, width), dtype),
        }

    def prior_variances(self) -> dict:
        """``{"a": sa2, "w": sw2, "W": sW2}``: the prior variance of each parameter array."""
        return {"a": self.sa2, "w": self.sw2, "W": self.sW2}

    def prior_penalties(self) -> None:
        """Gaussian priors only: no penalty."""
        return None

    def energy_scale(self, width: int) -> int:
        """``N``: Langevin descends ``U = N L`` (the posterior ``exp(-beta N L - prior)``)."""
        return width

    def preactivations(self, params: dict, x: jax.Array) -> list:
        """``[h1, .., hH]``, each (P, N): ``h1 = x w^T``, ``h(l+1) = phi(hl) W(l)^T / sqrt(N)``."""
        width = params["w"].shape[0]
        h = x @ params["w"].T
        layers = [h]
        for W in params["W"]:
            h = self.activation(h) @ W.T / jnp.sqrt(width)
            layers.append(h)
        return layers

    def apply(self, params: dict, x: jax.Array) -> jax.Array:
        """``f(x) = phi(hH(x)) a / N``: (P, C)."""
        return self.activation(self.preactivations(params, x)[-1]) @ params["a"] / params["a"].shape[0]

    def feature_kernels(self, params: dict, x: jax.Array) -> jax.Array:
        """``Phi_l = phi(hl) phi(hl)^T / N`` for l = 1..H: (H, P, P), the network's counterpart of ``DeepSolution.kernels``."""
        width = params["w"].shape[0]
        features = [self.activation(h) for h in self.preactivations(params, x)]
        return jnp.stack([phi @ phi.T / width for phi in features])

    # ------------------------------------------------------------------ the single-site law (6.3, 6.8)
    def layer_background(self, solution, layer: int) -> LayerBackground:
        """Deprecated: ``solution.layer_background(layer)`` (the solution knows its background; the prior does not)."""
        warnings.warn("Deep.layer_background(solution, layer) is deprecated: use solution.layer_background(layer)",
                      DeprecationWarning, stacklevel=2)
        if not callable(getattr(solution, "layer_background", None)):
            raise ConfigError(f"a deep layer's background needs a DeepSolution (from mft_jax.theory.deep.solve_deep), got {type(solution).__name__}")
        return solution.layer_background(layer)

    def site_log_density(self, theta: jax.Array, background: LayerBackground) -> jax.Array:
        """``-|theta|^2/(2 v) - 1/2 phi(B theta)^T Phihat_l phi(B theta)`` per neuron (``mft_jax.protocol``)."""
        return site_log_density(self.activation, theta, background)
