"""Training whole networks, many seeds at once: Langevin (the tempered posterior) or optax (T = 0).

Every update descends the *energy* ``U`` plus a weight decay:

- mean-field scaling: ``U = N L``. Its gradient per neuron is O(1) in the width
  (``grad_{a_i} N L = -sum_mu q_mu r_mu phi(w_i . x_mu)``), so one step size serves every N.
- standard scaling: ``U = L`` (per-neuron gradients O(N^-1/2): the lazy / kernel regime).

Langevin (``langevin_optimizer``), docs/theory.md section 2, with ``T = 1/beta`` and ``s2 = sa2 | sw2``:
``theta <- theta - h (grad U + T theta / s2) + sqrt(2 h T) xi``; stationary law (h -> 0)
``exp(-beta U - |a|^2/(2 sa2) - |w|^2/(2 sw2))``. For mean-field scaling this is the posterior
``exp(-beta N L - prior)`` of docs/theory.md. For standard scaling it is ``exp(-beta L - prior)``, the
Bayesian network in the NNGP parametrisation: as N -> infinity, Gaussian-process regression with
kernel ``sa2 K_prior`` and noise variance ``T / q_mu`` at point mu, i.e. the ``c -> 0`` limit of the
mean-field equations at the same beta (``f = sa2 K Q (T + sa2 K Q)^-1 y``).

SGD / Adam (``optax_optimizer``): descend ``U + sum_theta lambda_theta |theta|^2 / 2`` (coupled L2
decay). ``weight_decay="prior"`` sets ``lambda_a = T/sa2``, ``lambda_w = T/sw2``: the minimiser is
then the MAP point of the tempered posterior (Langevin at T -> 0 with the same prior).

Data: a ``Dataset`` (full batch: a training set or a quadrature of the population; with ``batch_size``,
step t of seed s uses the minibatch ``minibatch(data, minibatch_indices(fold_in(batch_key_s, t), P, batch_size))``
of ``mft_jax.data``: distinct points, weights renormalised), or a ``Task``
with ``batch_size`` (infinite data: step t of seed s uses the fresh minibatch
``task.sample(fold_in(batch_key_s, t), batch_size)``; for Langevin this adds gradient noise, i.e.
stochastic-gradient Langevin). ``batch_key_s = batch_key(key, s)``: ``mft_jax.theory.dynamics`` draws the same
batch sequence from it. Seeds run in one ``vmap``; seed s draws all its randomness from
``fold_in(key, s)``, so adding seeds leaves the earlier ones unchanged.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mft_jax.data import Dataset, check_batch_size, minibatch, minibatch_indices
from mft_jax.distributed import to_host
from mft_jax.errors import ConfigError
from mft_jax.model import TwoLayer
from mft_jax.neurons import NeuronLaw
from mft_jax.protocol import Model
from mft_jax.resources import require
from mft_jax.tasks import Task
from mft_jax.precision import precision_option
from mft_jax.train.gibbs import sample_readouts
from mft_jax.train.langevin import langevin
from mft_jax.train.loop import data_fingerprint, fingerprint, library_versions, run_loop
from mft_jax.train.sharding import spread

Optimizer = Callable[[jax.Array], optax.GradientTransformation]
"""``key -> transform``: the key feeds the Langevin noise of one seed (sgd / adam ignore it)."""

OPTIMIZERS = ("langevin", "sgd", "adam")
GIBBS_STREAM = 0x61  # fold_in tag of the readout draws' keys (distinct from the init / noise / batch splits)


class TrainResult(NamedTuple):
    """``params`` with a leading seed axis (``a`` (S, N, C), ``w`` (S, N, d)); ``history``: ``step`` (R,),
    ``loss`` (R, S), the loss L of each seed at the step (on its minibatch for minibatch runs)."""

    params: dict
    history: dict


def batch_key(key: jax.Array, seed: int = 0) -> jax.Array:
    """The key of seed ``seed``'s minibatch sequence in ``train(key, ..., batch_size=b)`` (step t: ``fold_in(it, t)``)."""
    return jax.random.split(jax.random.fold_in(key, seed), 3)[2]


def residual(params: dict, model: Model, data: Dataset) -> jax.Array:
    """``r = y - f(x)`` on the data: (P, C), the residual a trained network imposes on one neuron (``model.apply``)."""
    return data.y - model.apply(params, data.x)


def loss(params: dict, model: Model, data: Dataset) -> jax.Array:
    """``L = 1/2 sum_mu q_mu |f(x_mu) - y_mu|^2``; any model of the protocol (``TwoLayer``, ``Deep``)."""
    r = residual(params, model, data)
    return 0.5 * jnp.sum(data.q[:, None] * r * r)


def network_law(params: dict) -> NeuronLaw:
    """The network's neurons as equally weighted particles ``(w_i, a_i)``; a seed axis is flattened in."""
    a, w = params["a"], params["w"]
    return NeuronLaw.from_samples(w.reshape(-1, w.shape[-1]), a.reshape(-1, a.shape[-1]))


def energy(params: dict, model: Model, data: Dataset) -> jax.Array:
    """``U = N L`` (mean-field scaling) or ``U = L`` (standard scaling): ``model.energy_scale(N) L``."""
    return _energy_and_loss(params, model, data)[0]


def _energy_and_loss(params, model, data):
    value = loss(params, model, data)
    return model.energy_scale(params["a"].shape[0]) * value, value


def _described(optimizer: Optimizer, **settings) -> Optimizer:
    """Attach the settings that define an optimizer (they go into the resume fingerprint)."""
    optimizer.settings = settings
    return optimizer


def langevin_optimizer(model: Model, step_size: float) -> Optimizer:
    """Langevin at ``T = 1/beta`` with decay ``T/s2`` and the penalty's force on each parameter array (the prior:
    ``model.prior_variances()``, ``model.prior_penalties()``)."""
    transform = lambda key: langevin(step_size, model.temperature, model.prior_variances(), key, penalty=model.prior_penalties())  # noqa: E731
    return _described(transform, name="langevin", step_size=step_size, temperature=model.temperature)


def prior_weight_decay(model: TwoLayer) -> dict:
    """``{"a": T/sa2, "w": T/sw2}``: the decay whose minimiser of ``U + decay`` is the posterior's MAP point."""
    return {"a": model.temperature / model.sa2, "w": model.temperature / model.sw2}


def optax_optimizer(name: str, learning_rate: float, weight_decay: float | dict = 0.0) -> Optimizer:
    """``sgd`` or ``adam`` on ``U + sum lambda |theta|^2 / 2``; ``weight_decay`` is a number or ``{"a": .., "w": ..}``."""
    if name not in ("sgd", "adam"):
        raise ConfigError(f"optax optimizer must be 'sgd' or 'adam', got {name!r}")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
        raise ConfigError(f"learning_rate must be a number > 0, got {learning_rate!r}")
    decay = weight_decay if isinstance(weight_decay, dict) else {"a": weight_decay, "w": weight_decay}
    if set(decay) != {"a", "w"} or not all(isinstance(v, (int, float)) and v >= 0 for v in decay.values()):
        raise ConfigError(f"weight_decay must be a number >= 0 or {{'a': .., 'w': ..}} of them, got {weight_decay!r}")
    descent = optax.sgd(learning_rate) if name == "sgd" else optax.adam(learning_rate)
    masks = {"a": {"a": True, "w": False}, "w": {"a": False, "w": True}}
    transform = optax.chain(*(optax.add_decayed_weights(float(decay[k]), mask=masks[k]) for k in ("a", "w")), descent)
    return _described(lambda key: transform, name=name, learning_rate=learning_rate, weight_decay=decay)


@precision_option
def train(
    key: jax.Array,
    model: Model,
    width: int,
    data: Dataset | Task,
    optimizer: Optimizer,
    num_steps: int,
    *,
    num_seeds: int = 1,
    batch_size: int | None = None,
    chunk: int = 100,
    out_dir=None,
    checkpoint_every: int = 1000,
    resume: bool = False,
    progress: bool = True,
    observables: Callable[[dict], dict] | None = None,
    init_params: dict | None = None,
    readout_gibbs_every: int | None = None,
    precision: str | None = None,
) -> TrainResult:
    """Train ``num_seeds`` independent networks of width ``width`` from the prior for ``num_steps`` steps.

    ``model``: any model of the protocol (``mft_jax.protocol``): it draws the parameters
    (``init_params``), computes ``f`` (``apply``) and sets the prior force (``prior_variances``,
    ``prior_penalties``): a ``TwoLayer`` (params ``a``, ``w``) or a ``Deep`` prior (also the stacked hidden weights ``W``).

    Full batch on a ``Dataset`` (or minibatches of ``batch_size`` of its points, module docstring); fresh minibatches
    of ``batch_size`` from a ``Task``. Runs through
    ``run_loop`` (checkpoints in ``out_dir``, exact ``resume``, ``NonFiniteError`` naming the step).
    ``history`` records, once per ``chunk`` steps, the loss of each seed and each array of
    ``observables(params_of_one_network) -> dict`` (shapes (records, seeds, ...)): the time series a
    caller averages after its burn-in. ``init_params`` (``a`` (S, N, C), ``w`` (S, N, d)) replaces the prior
    draws as the starting point (e.g. neurons placed on a teacher direction), seed s starting from row s.

    ``readout_gibbs_every=K`` (Langevin on a ``Dataset`` only): before every K-th step (t = 0, K, 2K, ..) the
    readouts are replaced by an exact draw from their Gaussian conditional law given the other parameters
    (``mft_jax.train.gibbs``). Both moves leave the tempered posterior invariant, so the stationary law is
    Langevin's; the readouts' slow relaxation (rate ``T / sa2`` along directions the data do not pin) is gone.
    An equilibrium sampler of the posterior, not a model of training dynamics.

    ``precision``: ``"highest"`` (float32-exact matmuls) or ``"fast"`` (the backend's default: TF32 / bf16 passes, see
    ``mft_jax.precision``); None: the current setting (``"highest"`` by default).
    """
    if isinstance(num_seeds, bool) or not isinstance(num_seeds, int) or num_seeds < 1:
        raise ConfigError(f"num_seeds must be a positive integer, got {num_seeds!r}")
    if not isinstance(data, (Task, Dataset)):
        raise ConfigError(f"data must be a Dataset or a Task, got {type(data).__name__}")
    if isinstance(data, Task) and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"training on a task (infinite data) needs batch_size, a positive integer; got {batch_size!r}")
    if isinstance(data, Dataset):
        check_batch_size(batch_size, data.num_points, " on a Dataset")

    if readout_gibbs_every is not None:
        if isinstance(readout_gibbs_every, bool) or not isinstance(readout_gibbs_every, int) or readout_gibbs_every < 1:
            raise ConfigError(f"readout_gibbs_every must be None or a positive integer (steps between draws), got {readout_gibbs_every!r}")
        name = getattr(optimizer, "settings", {}).get("name")
        if name != "langevin":
            raise ConfigError(f"readout_gibbs_every samples the posterior: it needs the langevin optimizer, got {name!r}")
        if not isinstance(data, Dataset) or batch_size is not None:
            raise ConfigError("readout_gibbs_every needs the whole likelihood: a Dataset (full batch), not minibatches")
        if "a" in (model.prior_penalties() or {}):
            raise ConfigError("readout_gibbs_every needs a Gaussian readout prior; this model puts a penalty on 'a'")

    if isinstance(width, int) and not isinstance(width, bool) and width > 0:
        points = batch_size if batch_size is not None else data.num_points
        hidden = (model.hidden_layers - 1) * width * (width + 2 * points)  # W, its gradient, h
        require(4.0 * num_seeds * width * points * data.output_dim * 4 + 8.0 * num_seeds * (width * (data.input_dim + data.output_dim) + hidden) * 4,
                f"training {num_seeds} network(s) of width {width} on {points} points per step",
                "[train] num_seeds, width or batch_size")

    def batch_at(batch_key, t):
        if batch_size is None:
            return data
        key = jax.random.fold_in(batch_key, t)
        if isinstance(data, Task):
            return data.sample(key, batch_size)
        return minibatch(data, minibatch_indices(key, data.num_points, batch_size))

    def init_seed(seed_key):
        init_key, noise_key, _ = jax.random.split(seed_key, 3)
        params = model.init_params(init_key, width, data.input_dim, data.output_dim)  # validates width
        return params, optimizer(noise_key).init(params)

    def step_seed(params, opt_state, seed_key, t):
        _, noise_key, batch_key = jax.random.split(seed_key, 3)
        batch = batch_at(batch_key, t)
        (_, value), grads = jax.value_and_grad(_energy_and_loss, has_aux=True)(params, model, batch)
        updates, opt_state = optimizer(noise_key).update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    def gibbs_seed(params, seed_key, t):
        key = jax.random.fold_in(jax.random.fold_in(seed_key, GIBBS_STREAM), t)
        return {**params, "a": sample_readouts(key, model, params, data)}

    def step(state, t):
        params, opt_state, seed_keys = state
        if readout_gibbs_every is not None:
            refresh = lambda p: jax.vmap(gibbs_seed, in_axes=(0, 0, None))(p, seed_keys, t)  # noqa: E731
            params = jax.lax.cond(t % readout_gibbs_every == 0, refresh, lambda p: p, params)
        params, opt_state, losses = jax.vmap(step_seed, in_axes=(0, 0, 0, None))(params, opt_state, seed_keys, t)
        recorded = jax.vmap(observables)(params) if observables else {}
        return (params, opt_state, seed_keys), {"loss": losses, **recorded}

    seed_keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(num_seeds))
    params, opt_state = jax.jit(jax.vmap(init_seed))(seed_keys)
    if init_params is not None:
        expected = jax.tree.map(jnp.shape, params)
        given = jax.tree.map(lambda v: tuple(np.shape(v)), dict(init_params))
        if given != expected:
            raise ConfigError(f"init_params must have the shapes {expected} (seeds, width, ...), got {given}")
        params = jax.tree.map(lambda v, ref: jnp.asarray(v, ref.dtype), dict(init_params), params)
        opt_state = jax.jit(jax.vmap(lambda p, k: optimizer(jax.random.split(k, 3)[1]).init(p)))(params, seed_keys)
    params, opt_state, seed_keys = spread((params, opt_state, seed_keys), num_seeds)  # seeds over all devices
    run = fingerprint(
        trainer="joint", model=model.settings(), width=width, num_seeds=num_seeds, batch_size=batch_size,
        data=data_fingerprint(data), optimizer=getattr(optimizer, "settings", repr(optimizer)), key=key,
        init_params=None if init_params is None else dict(init_params), versions=library_versions(),
        **({} if readout_gibbs_every is None else {"readout_gibbs_every": readout_gibbs_every}),
    )
    (params, _, _), history = run_loop(
        step, (params, opt_state, seed_keys), num_steps, chunk=chunk, out_dir=out_dir,
        checkpoint_every=checkpoint_every, resume=resume, progress=progress, description=f"train: {num_seeds} seed(s)",
        run=run,
    )
    history = {**history, "loss": np.asarray(history.get("loss", np.zeros((0, num_seeds)))).reshape(-1, num_seeds)}
    return TrainResult(to_host(params), history)  # gathered from every process in a multi-process job
