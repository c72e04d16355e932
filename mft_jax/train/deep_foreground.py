"""Foreground neurons of any layer of a deep network, trained against the fixed deep background (docs/theory.md 6.8).

At the deep fixed point (``mft_jax.theory.deep.solve_deep``, docs/theory.md 6.3) one neuron of hidden
layer l has the single-site law of its preactivation vector on the data, ``h in R^P``,

    p_l(h) ~ N(h; 0, s_l Phi_(l-1)) exp(-1/2 phi(h)^T Phihat_l phi(h)),

its background being the kernel of the layer below (``Phi_0 = X X^T``) and the conjugate kernel fed
back from the layer above (``Phihat_H = -beta^2 sa2 Q r r^T Q`` for the last layer: the readout
integrated out). A neuron is a parameter vector ``theta`` with ``h = B theta`` and prior
``N(0, v I)``:

    layer 1:  theta = w in R^d (its weights),  B = X,    v = sw2      (h = X w: the weight-space law)
    l >= 2:   theta = z in R^P (whitened),     B = A_l,  v = 1        (A_l A_l^T = s_l Phi_(l-1), Cholesky)

``h = A_l z`` with ``z ~ N(0, I)`` is exactly the prior ``N(0, s_l Phi_(l-1))``, also when ``Phi_(l-1)``
is (nearly) singular, where a density in h does not exist; in z the prior force is isotropic
(``T z``), so one step size suits every direction the prior allows (Langevin in h would need the
preconditioner ``s_l Phi_(l-1)``, which is the same dynamics). ``A_l`` is the solver's own factor
(``mft_jax.linalg.cholesky_factor``), so the foreground and the theory share their coordinates.

The potential of one neuron is ``U(theta) = (1 / (2 beta)) phi(B theta)^T Phihat_l phi(B theta)``: in
the posterior ``exp(-beta N L - prior)`` the other layers act on a layer-l neuron through
``exp(-beta U)``. Langevin at temperature T (``mft_jax.train.langevin``, docs/theory.md section 2),

    theta <- theta - h (grad U(theta) + T theta / v) + sqrt(2 h T) xi,

samples ``exp(-U / T - |theta|^2 / (2 v))``, which at ``T = 1 / beta`` (the default) is ``p_l`` in
these coordinates. Another T multiplies the whole tilt by ``1 / (beta T)`` with the background
frozen; it is not the theory at another beta (that needs a new fixed point). The O(h) bias of
the discretisation is the caller's budget (tests/test_deep_foreground.py removes it by running
at h and h/2, or with the exact law of the discrete chain for the linear activation). ``M``
neurons start from the prior and move independently (one vectorised step), through ``run_loop``
(checkpoints, exact resume, NaN stop). With ``burn_in`` each neuron also keeps the running mean of
``phi(h) phi(h)^T`` over the steps ``t >= burn_in`` (an (M, P, P) accumulator): the neurons stay
independent, so the standard error of the kernel is the spread of these per-neuron means over
``sqrt(M)``, with no autocorrelation estimate needed, and each neuron contributes about
``steps x h T lambda`` effective samples instead of one.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mft_jax.errors import ConfigError
from mft_jax.neurons import NeuronLaw
from mft_jax.protocol import LayerBackground, LayerBackgrounds, Model, site_tilt
from mft_jax.precision import precision_option, uses_precision
from mft_jax.train.langevin import LangevinState, langevin
from mft_jax.train.loop import data_fingerprint, fingerprint, library_versions, run_loop


class LayerNeurons(NamedTuple):
    """``M`` foreground neurons of one layer: final parameters and preactivations, per-neuron kernel moments."""

    layer: int
    theta: jax.Array  # (M, d) weights w (layer 1) or (M, P) whitened z (l >= 2), at the last step
    preactivations: jax.Array  # (M, P) h = B theta at the last step
    moments: jax.Array  # (M, P, P) phi(h) phi(h)^T per neuron: its mean over steps >= burn_in, or at the last step

    @property
    def kernel(self) -> jax.Array:
        """``Phi_l = (1/M) sum_i <phi(h_i) phi(h_i)^T>`` (P, P): the foreground's feature kernel."""
        return jnp.mean(self.moments, axis=0)

    @property
    def kernel_standard_error(self) -> jax.Array:
        """Per-entry standard error of ``kernel``: the spread of the independent neurons' moments over ``sqrt(M)``."""
        return jnp.std(self.moments, axis=0, ddof=1) / np.sqrt(self.moments.shape[0])

    def weight_law(self) -> NeuronLaw:
        """Layer 1 only: the equally weighted law of the weights ``w`` (the two-layer ``rho`` when depth = 2)."""
        if self.layer != 1:
            raise ConfigError(f"weight_law is the law of the layer-1 weights w; these neurons are of layer {self.layer} (whitened z)")
        return NeuronLaw.from_samples(self.theta)


class DeepForegroundState(NamedTuple):
    theta: jax.Array  # (M, k)
    langevin: LangevinState
    moment_sum: jax.Array  # (M, P, P) sum of phi phi^T over the steps t >= burn_in ((0,) without burn_in)


def layer_background(solution: LayerBackgrounds, layer: int) -> LayerBackground:
    """The background of hidden layer ``layer`` at the fixed point ``solution`` (``solution.layer_background(layer)``):
    anything with ``model``, ``data`` and ``layer_background(layer)`` (``mft_jax.protocol.LayerBackgrounds``): a
    ``DeepSolution`` (layers 1..H) or a two-layer ``Solution`` (layer 1, ``Phihat_1 = -beta^2 sa2 Q r r^T Q``)."""
    model = getattr(solution, "model", None)
    if not isinstance(model, Model) or not hasattr(solution, "data") or not callable(getattr(solution, "layer_background", None)):
        raise ConfigError("the foreground of a layer needs a fixed point with a model of the protocol and its layer backgrounds "
                          "(mft_jax.protocol.LayerBackgrounds): a DeepSolution (mft_jax.theory.deep.solve_deep) or a Solution "
                          f"(mft_jax.theory.two_layer.solve); got {type(solution).__name__}")
    return solution.layer_background(layer)


def neuron_potential(model: Model, background: LayerBackground, theta: jax.Array) -> jax.Array:
    """``U(theta) = (1 / (2 beta)) phi(h)^T Phihat_l phi(h) = -t_l(theta) / beta``, ``h = B theta``, per neuron: theta (M, k) -> (M,)."""
    return -site_tilt(model.activation, theta, background) / model.beta


def deep_foreground_step(model: Model, background: LayerBackground, transform: optax.GradientTransformation,
                         burn_in: int | None = None):
    """The pure ``step(state, t) -> (state, metrics)`` of ``run_loop``: one ``transform`` step of every neuron.

    The neurons are independent, so the gradient of the summed potential is every neuron's own force.
    With ``burn_in``, ``phi phi^T`` of the new state is added to ``moment_sum`` when ``t >= burn_in``.
    The metric ``potential`` is the mean of U over the neurons before the step.
    """

    def total(theta):
        values = neuron_potential(model, background, theta)
        return jnp.sum(values), jnp.mean(values)

    def step(state: DeepForegroundState, t):
        (_, potential), grad = jax.value_and_grad(total, has_aux=True)(state.theta)
        updates, langevin_state = transform.update({"theta": grad}, state.langevin, {"theta": state.theta})
        theta = optax.apply_updates({"theta": state.theta}, updates)["theta"]
        moment_sum = state.moment_sum
        if burn_in is not None:
            features = model.activation(theta @ background.basis.T)
            moment_sum = moment_sum + (t >= burn_in) * features[:, :, None] * features[:, None, :]
        return DeepForegroundState(theta, langevin_state, moment_sum), {"potential": potential}

    return uses_precision(step)


def _check(num_neurons, step_size, temperature, burn_in):
    if burn_in is not None and (isinstance(burn_in, bool) or not isinstance(burn_in, (int, np.integer)) or burn_in < 0):
        raise ConfigError(f"burn_in must be None (kernel from the last step) or an integer >= 0, got {burn_in!r}")
    if isinstance(num_neurons, bool) or not isinstance(num_neurons, (int, np.integer)) or num_neurons < 1:
        raise ConfigError(f"num_neurons must be a positive integer, got {num_neurons!r}")
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float)) or not np.isfinite(step_size) or step_size <= 0:
        raise ConfigError(f"step_size must be a finite number > 0, got {step_size!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not np.isfinite(temperature) or temperature < 0:
        raise ConfigError(f"temperature must be a finite number >= 0 (0: gradient descent), got {temperature!r}")


def _background_and_model(solution, layer, model):
    """``(background, model, data)`` from a fixed point with layer backgrounds, or from a bare ``LayerBackground`` and
    its ``model`` (then ``data`` is ``None``: the background's basis and ``Phihat`` stand for it)."""
    if isinstance(solution, LayerBackground):
        if model is None or not isinstance(model, Model):
            raise ConfigError("training against a bare LayerBackground needs its prior: model=TwoLayer(...) or Deep(...)")
        if isinstance(layer, bool) or layer != solution.layer:
            raise ConfigError(f"layer must be the background's own layer ({solution.layer}), got {layer!r}")
        return solution, model, None
    return layer_background(solution, layer), solution.model, solution.data


def init_deep_foreground(key: jax.Array, solution: LayerBackgrounds | LayerBackground, layer: int, *, num_neurons: int,
                         step_size: float, temperature: float | None = None, burn_in: int | None = None, model=None):
    """``(step, state, background)``: prior neurons of ``layer``; ``run_loop(step, state, steps)`` trains them.
    ``solution``: a fixed point with ``layer_background(layer)``, or a ``LayerBackground`` with its ``model``."""
    background, model, _ = _background_and_model(solution, layer, model)
    temperature = float(model.temperature) if temperature is None else temperature
    _check(num_neurons, step_size, temperature, burn_in)
    init_key, noise_key = jax.random.split(key)
    shape = (int(num_neurons), background.basis.shape[1])
    theta = jnp.sqrt(background.prior_variance) * jax.random.normal(init_key, shape, background.basis.dtype)
    penalties = model.prior_penalties() if background.layer == 1 else None  # a weight penalty acts on layer 1 only
    penalty = None if penalties is None else {"theta": penalties["w"]}
    transform = langevin(float(step_size), float(temperature), {"theta": background.prior_variance}, noise_key, penalty=penalty)
    P = background.basis.shape[0]
    moment_sum = jnp.zeros((0,) if burn_in is None else (shape[0], P, P), theta.dtype)
    state = DeepForegroundState(theta, transform.init({"theta": theta}), moment_sum)
    return deep_foreground_step(model, background, transform, burn_in), state, background


@precision_option
def train_deep_foreground(
    key: jax.Array,
    solution: LayerBackgrounds | LayerBackground,
    layer: int,
    *,
    model=None,
    num_neurons: int,
    steps: int,
    step_size: float,
    temperature: float | None = None,
    burn_in: int | None = None,
    chunk: int = 100,
    out_dir=None,
    checkpoint_every: int = 1000,
    resume: bool = False,
    progress: bool = True,
    precision: str | None = None,
) -> LayerNeurons:
    """Train ``num_neurons`` independent neurons of hidden layer ``layer`` (1..H) against ``solution``: a fixed point
    with ``layer_background(layer)`` (``DeepSolution``, ``Solution``), or a bare ``LayerBackground`` with its ``model``.

    ``temperature`` defaults to ``1 / beta`` (the theory's single-site law ``p_l``). ``burn_in``:
    average each neuron's ``phi phi^T`` over the steps ``burn_in .. steps - 1`` (None: the last step only). With
    ``out_dir`` the run checkpoints every ``checkpoint_every`` steps and ``resume=True`` continues
    it exactly; NaN/inf stops it with ``NonFiniteError`` naming the step. Returns the neurons; their
    ``kernel`` is the foreground's ``Phi_l``, to compare with ``solution.kernels[layer - 1]``.
    ``precision``: ``"highest"`` (float32-exact matmuls) or ``"fast"`` (the backend's default: TF32 / bf16 passes, see
    ``mft_jax.precision``); None: the current setting (``"highest"`` by default).
    """
    step, state, background = init_deep_foreground(key, solution, layer, num_neurons=num_neurons, step_size=step_size,
                                                   temperature=temperature, burn_in=burn_in, model=model)
    if burn_in is not None and burn_in >= steps:
        raise ConfigError(f"burn_in ({burn_in}) must be below steps ({steps}): no step would be averaged")
    _, model, data = _background_and_model(solution, layer, model)
    run = fingerprint(
        trainer="deep_foreground", model=model.settings(), data=None if data is None else data_fingerprint(data),
        layer=int(layer),
        basis=background.basis, phihat=background.phihat, num_neurons=num_neurons, step_size=step_size,
        temperature=float(model.temperature) if temperature is None else temperature, burn_in=burn_in, key=key,
        versions=library_versions(),
    )
    state, _ = run_loop(step, state, steps, chunk=chunk, out_dir=out_dir, checkpoint_every=checkpoint_every,
                        resume=resume, progress=progress, description=f"foreground layer {int(layer)}", run=run)
    h = state.theta @ background.basis.T
    if burn_in is None:
        features = model.activation(h)
        moments = features[:, :, None] * features[:, None, :]
    else:
        moments = state.moment_sum / (steps - burn_in)
    return LayerNeurons(int(layer), state.theta, h, moments)
