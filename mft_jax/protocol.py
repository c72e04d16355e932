"""The model protocol: what the solvers, samplers and trainers ask of a network prior (docs/theory.md 2, 6.1, 6.8).

A model is a frozen dataclass registered as a JAX pytree: its numeric hyperparameters (``sa2``, ``sw2``,
``beta``, ``sW2``, a penalty's coefficients) are traced leaves, so one compiled map serves every value of
them (a sweep over beta, a ``vmap`` over couplings); its structure (activation, depth, scaling) is
static. ``TwoLayer`` (depth 2) and ``Deep`` (any depth) implement it; generic code (the network
trainers of ``mft_jax.train.joint``, the ``mft-jax train`` job, the foreground trainer of any layer in
``mft_jax.train.deep_foreground``) asks only for these members:

    structure       activation, depth (weight layers), hidden_layers = depth - 1, scaling
    gains           temperature T = 1/beta;  gain = beta sa2 (f = gain Phi_H Q r on the data);
                    coupling c = beta^2 sa2 / 2 (the last layer's tilt c |S|^2)
    prior sampling  init_params(key, width, input_dim, output_dim) -> params, a draw of the prior;
                    prior_variances() -> {array: s2} and prior_penalties() -> {array: Gamma} or None:
                    the prior density of each parameter array is exp(-|theta|^2 / (2 s2) - Gamma(theta))
    the network     apply(params, x) -> f(x) (P, C);  energy_scale(width): Langevin descends U = energy_scale L
                    feature_kernels(params, x) -> (H, P, P): Phi_l = phi(h_l) phi(h_l)^T / N per hidden layer
    single sites    site_log_density(theta, background)  (the background is the fixed point's:
                    ``solution.layer_background(layer) -> LayerBackground``, a ``LayerBackgrounds``)
    bookkeeping     settings() (the keyword arguments that rebuild it), replace(**changes)

The single-site law of a neuron of hidden layer l, in the coordinates ``theta`` with ``h = B theta`` on
the data and an isotropic prior (docs/theory.md 6.3; for depth 2 it is the two-layer law of section 3
with ``Phihat_1 = -beta^2 sa2 Q r r^T Q``, i.e. ``-1/2 phi^T Phihat phi = c |S(w)|^2``):

    log p_l(theta) = -|theta|^2 / (2 v) - Gamma(theta) - 1/2 phi(B theta)^T Phihat_l phi(B theta)   (+ const)

``Gamma`` is the weight penalty of layer 1 (``TwoLayer.penalty``; none for the hidden layers).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from mft_jax.errors import ConfigError


class LayerBackground(NamedTuple):
    """What a layer-l neuron feels: ``h = basis @ theta``, prior ``N(0, prior_variance I)``, tilt ``Phihat_l``."""

    layer: int
    basis: jax.Array  # B: (P, d) = X for layer 1, (P, P) = A_l for l >= 2 (whitened coordinates)
    prior_variance: jax.Array  # v: sw2 for layer 1, 1 for l >= 2
    phihat: jax.Array  # (P, P) Phihat_l


def readout_background(model, data, residual: jax.Array) -> LayerBackground:
    """The last hidden layer's background at a readout residual ``r``: ``B = X``, ``v = sw2``, ``Phihat = -beta^2 sa2
    Q r r^T Q`` (docs/theory.md 6.3): with it ``-1/2 phi^T Phihat phi = c |S(w)|^2``. Layer 1 of a two-layer fixed point."""
    from mft_jax.resources import require

    require(8.0 * data.num_points**2, f"the conjugate kernel Phihat_1 on {data.num_points} points", "the number of data points")
    weighted = data.q[:, None] * residual  # (P, C)
    phihat = -(model.beta**2 * model.sa2) * weighted @ weighted.T
    return LayerBackground(1, data.x, jnp.asarray(model.sw2, data.x.dtype), phihat)


def tilt_quadratic(features: jax.Array, phihat: jax.Array) -> jax.Array:
    """``t = -1/2 phi^T Phihat phi`` per particle: features (M, P) -> (M,)."""
    return -0.5 * jnp.sum((features @ phihat) * features, axis=-1)


def site_tilt(activation, theta: jax.Array, background: LayerBackground) -> jax.Array:
    """``t_l(theta) = -1/2 phi(B theta)^T Phihat_l phi(B theta)`` per neuron: theta (M, k) -> (M,)."""
    return tilt_quadratic(activation(theta @ background.basis.T), background.phihat)


def site_log_density(activation, theta: jax.Array, background: LayerBackground, penalty=None) -> jax.Array:
    """``-|theta|^2 / (2 v) - Gamma(theta) - 1/2 phi(B theta)^T Phihat phi(B theta)`` per neuron: theta (M, k) -> (M,)."""
    tilt = site_tilt(activation, theta, background)
    log_prior = -0.5 * jnp.sum(theta * theta, axis=-1) / background.prior_variance
    return log_prior + tilt if penalty is None else log_prior - penalty(theta) + tilt


@runtime_checkable
class Model(Protocol):
    """A network prior as the library's generic code uses it (the members listed in the module docstring)."""

    activation: Any
    beta: Any
    sa2: Any
    sw2: Any
    scaling: str
    depth: int

    @property
    def hidden_layers(self) -> int: ...

    @property
    def temperature(self) -> Any: ...

    @property
    def gain(self) -> Any: ...

    @property
    def coupling(self) -> Any: ...

    def init_params(self, key: jax.Array, width: int, input_dim: int, output_dim: int = 1) -> dict: ...

    def prior_variances(self) -> dict: ...

    def prior_penalties(self) -> dict | None: ...

    def apply(self, params: dict, x: jax.Array) -> jax.Array: ...

    def energy_scale(self, width: int) -> float: ...

    def feature_kernels(self, params: dict, x: jax.Array) -> jax.Array: ...

    def site_log_density(self, theta: jax.Array, background: LayerBackground) -> jax.Array: ...

    def settings(self) -> dict: ...

    def replace(self, **changes) -> "Model": ...


def check_width(width: int, input_dim: int, output_dim: int) -> None:
    """Network sizes are positive integers (else a ``ConfigError`` naming the bad one)."""
    for name, value in (("width", width), ("input_dim", input_dim), ("output_dim", output_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"network {name} must be a positive integer, got {value!r}")


@runtime_checkable
class LayerBackgrounds(Protocol):
    """A fixed point that gives the single-site background of each hidden layer (``Solution``, ``DeepSolution``):
    what ``mft_jax.train.deep_foreground`` trains neurons against. The prior does not know its solution."""

    model: Any
    data: Any

    def layer_background(self, layer: int) -> LayerBackground: ...
