"""The foreground experiment: independent single neurons trained against a fixed background.

Against a background with residual ``r`` on data ``(x, q, y)`` one neuron ``(a, w)`` feels
(docs/theory.md section 4)

    V(a, w) = - sum_mu q_mu r_mu . a phi(w . x_mu)

and Langevin at temperature ``T`` (section 2),

    theta <- theta - h (grad_theta V + T theta / s2) + sqrt(2 h T) xi,

samples ``exp(-V / T - |a|^2 / (2 sa2) - |w|^2 / (2 sw2))``, whose w-marginal is the solver's
``rho(w)`` when ``T = 1 / beta``; ``T = 0`` is gradient descent. ``M`` neurons start from the
prior and take one vmapped, jitted step per iteration with the neuron axis sharded over all
devices (``mft_jax.train.sharding``); the loop is ``run_loop`` (checkpoints, exact resume,
NaN stop).

The residual is an array on the data points (a trained network's ``y - f_net`` or a solver's
``r``, e.g. from ``background.npz``) or a function ``residual(batch) -> (B, C)`` of a batch
``Dataset``, e.g. ``prediction_residual(solution.predict)``: at a fresh point of a population
task the residual of a predictor ``f`` is ``y(x) - f(x)``. With ``batch_size`` each step uses a
fresh minibatch: ``batch_size`` points drawn with probabilities ``q`` from a ``Dataset`` (weights
``1 / batch_size``, so ``S(w)`` is unbiased), or ``task.sample`` when the data is a ``Task``.

``step`` chooses how ``S(w)`` and ``dV/dw`` are computed (``mft_jax.train.fused``): ``"auto"`` (the
fused step on a GPU/TPU where the activation has a written-out derivative, the reference step on a
CPU), ``"fused"`` or ``"reference"``; the blocks come from the device and its free memory. Which
step ran is the step function's ``choice`` (a ``StepChoice``) and, with ``record=``, the run's record.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mft_jax.data import Dataset
from mft_jax.distributed import to_host
from mft_jax.errors import ConfigError
from mft_jax.model import TwoLayer
from mft_jax.neurons import NeuronLaw
from mft_jax.tasks import Task
from mft_jax.resources import device_memory, require
from mft_jax.precision import lax_precision, precision_option, uses_precision
from mft_jax.train import fused
from mft_jax.train.langevin import LangevinState, langevin
from mft_jax.train.loop import data_fingerprint, fingerprint, library_versions, run_loop
from mft_jax.train.sharding import NEURON_AXIS, check_num_neurons, neuron_mesh, replicate, shard_neurons

Residual = jax.Array | np.ndarray | Callable[[Dataset], jax.Array]


class ForegroundState(NamedTuple):
    """Neurons ``{"a": (M, C), "w": (M, d)}``, the Langevin noise state, and the minibatch key."""

    neurons: dict
    langevin: LangevinState
    batch_key: jax.Array


def prediction_residual(predict: Callable[[jax.Array], jax.Array]) -> Callable[[Dataset], jax.Array]:
    """``r(x) = y(x) - f(x)`` for a predictor ``f`` (a solver ``Solution.predict``, a trained network)."""
    return lambda batch: batch.y - predict(batch.x)


def minibatch(key: jax.Array, data: Dataset, residual: jax.Array, batch_size: int) -> tuple[Dataset, jax.Array]:
    """``batch_size`` points drawn i.i.d. with probabilities ``q``, weights ``1 / batch_size``, and their residuals.

    ``sum_b r_b phi(w . x_b) / batch_size`` is then an unbiased estimate of ``S(w)``.
    """
    index = jax.random.categorical(key, jnp.log(data.q), shape=(batch_size,))
    weights = jnp.full((batch_size,), 1.0 / batch_size, data.q.dtype)
    return Dataset(data.x[index], weights, data.y[index]), jnp.asarray(residual)[index]


def init_neurons(key: jax.Array, model: TwoLayer, num_neurons: int, input_dim: int, output_dim: int, dtype=None) -> dict:
    """Prior draws ``a ~ N(0, sa2 I_C)``, ``w ~ N(0, sw2 I_d)`` for ``num_neurons`` neurons."""
    dtype = dtype or jnp.result_type(float)
    key_a, key_w = jax.random.split(key)
    return {
        "a": jnp.sqrt(model.sa2) * jax.random.normal(key_a, (num_neurons, output_dim), dtype),
        "w": jnp.sqrt(model.sw2) * jax.random.normal(key_w, (num_neurons, input_dim), dtype),
    }


def neuron_potential(model: TwoLayer, a: jax.Array, w: jax.Array, data: Dataset, residual: jax.Array) -> jax.Array:
    """``V(a, w)`` of one neuron (``a`` (C,), ``w`` (d,)): ``model.potential`` on a particle axis of one."""
    return model.potential(a[None], w[None], data, residual)[0]


def network_loss(model: TwoLayer, law: NeuronLaw, data: Dataset) -> jax.Array:
    """``L = 1/2 sum_mu q_mu |f(x_mu) - y_mu|^2`` of the network ``f(x) = sum_i weight_i a_i phi(w_i . x)``.

    With equal weights this is the mean-field network ``(1/M) sum_i a_i phi(w_i . x)`` made of the
    neurons; compare with the background's own loss ``1/2 sum_mu q_mu |r_mu|^2``.
    """
    if law.a is None:
        raise ConfigError("network_loss needs neurons with readouts `a` (a trained or foreground NeuronLaw)")
    features = model.features(law.w, data.x)  # (M, P)
    prediction = jnp.einsum("i,ip,ic->pc", law.weights(), features, law.a)
    return 0.5 * jnp.sum(data.q * jnp.sum((prediction - data.y) ** 2, axis=-1))


def _background_batches(data: Dataset | Task, residual: Residual, batch_size: int | None):
    """``batch(key) -> (Dataset, residual)``: the fixed background, a minibatch of it, or a fresh task sample."""
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise ConfigError(f"batch_size must be a positive integer or None (full batch), got {batch_size!r}")
    if isinstance(data, Task):
        if not callable(residual):
            raise ConfigError("a Task background needs the residual as a function of a batch (e.g. prediction_residual(predict)), not an array")
        if batch_size is None:
            raise ConfigError(f"a Task background ({data.name!r}) has no finite data: give batch_size (points per step)")
        return lambda key: (batch := data.sample(key, batch_size), residual(batch))
    if not isinstance(data, Dataset):
        raise ConfigError(f"data must be a Dataset or a Task, got {type(data).__name__}")
    fixed = jnp.asarray(residual(data) if callable(residual) else residual, data.y.dtype)  # r on the data points
    if fixed.shape != data.y.shape:
        raise ConfigError(f"residual must have the shape of y {tuple(data.y.shape)}, got {tuple(fixed.shape)}")
    if not bool(jnp.all(jnp.isfinite(fixed))):
        raise ConfigError("residual has NaN/inf entries; a background residual must be finite")
    if batch_size is None:
        return lambda key: (data, fixed)
    if batch_size > data.num_points:
        raise ConfigError(f"batch_size = {batch_size} exceeds the {data.num_points} points of the background; a minibatch "
                          f"is drawn from them (batch_size <= {data.num_points}), or omit batch_size for the full batch")
    return lambda key: minibatch(key, data, fixed, batch_size)


NEURON_BLOCK = fused.CPU_NEURON_BLOCK  # neurons per vmapped block on a CPU: (block, P) intermediates stay in cache (swept in benchmarks/neuron_throughput.py)


def neuron_gradients(model: TwoLayer, mesh: Mesh | None = None, block: int = NEURON_BLOCK):
    """``(a, w, data, r) -> (V, (dV/da, dV/dw))`` per neuron: ``vmap(value_and_grad(V))`` over blocks of neurons.

    ``lax.map`` walks the neuron axis ``block`` neurons at a time (each block one vmapped call), so
    the (block, P) intermediates fit in cache instead of streaming (M, P) arrays through memory;
    with a ``mesh`` each device walks its own shard (``shard_map``), the data replicated.
    """
    one = jax.value_and_grad(lambda a, w, data, r: neuron_potential(model, a, w, data, r), argnums=(0, 1))

    def blocks(a, w, data, residual):
        return jax.lax.map(lambda neuron: one(*neuron, data, residual), (a, w), batch_size=block)

    if mesh is None:
        return uses_precision(blocks)
    neurons, whole = PartitionSpec(NEURON_AXIS), PartitionSpec()
    return uses_precision(jax.shard_map(blocks, mesh=mesh, in_specs=(neurons, neurons, whole, whole), out_specs=(neurons, (neurons, neurons))))


def step_gradients(model: TwoLayer, path: str, blocks: fused.Blocks, mesh: Mesh | None = None, precision=None, backend: str = "cpu"):
    """``(a, w, data, r) -> (V, (dV/da, dV/dw))`` of ``path`` (kernel | matmul | reference) blocked as ``blocks``.

    With a ``mesh`` each device runs its own shard of neurons (``shard_map``), the data replicated; the
    kernel runs in Pallas interpret mode on a CPU ``backend``.
    """
    if path == "reference":
        return neuron_gradients(model, mesh, blocks.neuron_block)
    if path == "kernel":
        local = fused.kernel_gradients(model.activation, blocks.neuron_block, blocks.point_block, blocks.point_chunk,
                                       interpret=backend == "cpu", backend=backend)
    else:
        local = fused.matmul_gradients(model.activation, blocks.neuron_block, jax.lax.Precision.HIGHEST if precision is None else precision)
    if mesh is None:
        return local
    neurons, whole = PartitionSpec(NEURON_AXIS), PartitionSpec()
    return jax.shard_map(local, mesh=mesh, in_specs=(neurons, neurons, whole, whole), out_specs=(neurons, (neurons, neurons)), check_vma=False)


def foreground_step(model: TwoLayer, batches, transform: optax.GradientTransformation, mesh: Mesh | None = None, gradients=None):
    """The pure ``step(state, t) -> (state, metrics)`` of ``run_loop``: one ``transform`` step of every neuron.

    The minibatch of step ``t`` comes from ``fold_in(batch_key, t)``; the metric ``potential`` is the
    mean of ``V`` over the neurons on that batch, before the step. ``gradients``: a per-neuron
    ``(a, w, data, r) -> (V, (dV/da, dV/dw))`` (default: the reference ``neuron_gradients``).
    """
    per_neuron = neuron_gradients(model, mesh) if gradients is None else gradients
    sharding = None if mesh is None else NamedSharding(mesh, PartitionSpec(NEURON_AXIS))

    def step(state: ForegroundState, t):
        data, residual = batches(jax.random.fold_in(state.batch_key, t))
        potential, (grad_a, grad_w) = per_neuron(state.neurons["a"], state.neurons["w"], data, residual)
        updates, langevin_state = transform.update({"a": grad_a, "w": grad_w}, state.langevin, state.neurons)
        neurons = optax.apply_updates(state.neurons, updates)
        if sharding is not None:
            neurons = jax.lax.with_sharding_constraint(neurons, sharding)
        return ForegroundState(neurons, langevin_state, state.batch_key), {"potential": jnp.mean(potential)}

    return uses_precision(step)


def init_foreground(
    key: jax.Array,
    model: TwoLayer,
    data: Dataset | Task,
    residual: Residual,
    *,
    num_neurons: int,
    step_size: float,
    temperature: float | None = None,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    step: str = "auto",
    precision: str | None = None,
):
    """``(step, state)`` of the foreground run (arguments as ``train_foreground``): prior neurons sharded on ``mesh``.

    ``run_loop(step, state, steps)`` trains them; ``train_foreground`` does exactly that. The
    returned step function carries ``choice``: the ``StepChoice`` (path, blocks, words) that runs.
    """
    if step not in fused.STEPS:
        raise ConfigError(f"step must be one of {', '.join(map(repr, fused.STEPS))}, got {step!r}")
    mesh = neuron_mesh() if mesh is None else mesh
    device = device_memory()
    path, reason = fused.choose_step(step, device.backend, model.activation, data.input_dim)
    blocks = None
    if isinstance(num_neurons, (int, np.integer)) and not isinstance(num_neurons, bool) and num_neurons > 0:
        points = batch_size if batch_size is not None else getattr(data, "num_points", 0)
        itemsize = jnp.dtype(data.x.dtype if isinstance(data, Dataset) else jnp.result_type(float)).itemsize
        blocks = fused.plan_blocks(device.backend, device.free_bytes, max(1, num_neurons // mesh.devices.size), points,
                                   data.input_dim, data.output_dim, path, itemsize)
        require(blocks.memory_bytes * mesh.devices.size if device.backend == "cpu" else blocks.memory_bytes,
                f"training {num_neurons} foreground neurons on {points} points per step ({path} step)",
                "[foreground] num_neurons or batch_size", available=device)
    temperature = model.temperature if temperature is None else temperature
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0 or not np.isfinite(temperature):
        raise ConfigError(f"temperature must be a finite number >= 0 (0: gradient descent), got {temperature!r}")
    if not (isinstance(step_size, (int, float)) and not isinstance(step_size, bool) and np.isfinite(step_size) and step_size > 0):
        raise ConfigError(f"step_size must be a finite number > 0, got {step_size!r}")
    num_neurons = check_num_neurons(num_neurons, mesh)
    if isinstance(data, Dataset):
        data = replicate(data, mesh)
    batches = _background_batches(data, residual, batch_size)
    dtype = data.x.dtype if isinstance(data, Dataset) else jnp.result_type(float)

    init_key, noise_key, batch_key = jax.random.split(key, 3)
    neurons = shard_neurons(init_neurons(init_key, model, num_neurons, data.input_dim, data.output_dim, dtype), mesh)
    transform = langevin(float(step_size), float(temperature), model.prior_variances(), noise_key, penalty=model.prior_penalties())
    matmul = lax_precision(precision)  # the fused matmul path's explicit precision: the setting's (HIGHEST by default)
    gradients = step_gradients(model, path, blocks, mesh, matmul, device.backend)
    if step == "auto" and path != "reference":  # a kernel the backend cannot compile falls back, saying why
        failure = _compile_failure(gradients, neurons, batches(batch_key))
        if failure is not None:
            reason = f"{reason}; the fused step did not compile ({failure}), so the reference step runs"
            path, blocks = "reference", fused.plan_blocks(device.backend, device.free_bytes, max(1, num_neurons // mesh.devices.size),
                                                          points, data.input_dim, data.output_dim, "reference", itemsize)
            require(blocks.memory_bytes, f"training {num_neurons} foreground neurons on {points} points per step (reference step)",
                    "[foreground] num_neurons or batch_size", available=device)
            gradients = step_gradients(model, path, blocks, mesh)
    step_fn = foreground_step(model, batches, transform, mesh, gradients)
    step_fn.choice = fused.StepChoice(step, path, blocks, fused.describe(path, blocks, reason, matmul))
    return step_fn, ForegroundState(neurons, transform.init(neurons), batch_key)


def _compile_failure(gradients, neurons: dict, batch) -> str | None:
    """None if ``gradients`` compiles for these shapes, else the first line of the error."""
    data, residual = batch
    try:
        jax.jit(gradients).lower(neurons["a"], neurons["w"], data, residual).compile()
    except Exception as error:  # noqa: BLE001 - any lowering / compile error means: use the reference step
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]
    return None


@precision_option
def train_foreground(
    key: jax.Array,
    model: TwoLayer,
    data: Dataset | Task,
    residual: Residual,
    *,
    num_neurons: int,
    steps: int,
    step_size: float,
    temperature: float | None = None,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    chunk: int = 100,
    out_dir=None,
    checkpoint_every: int = 1000,
    resume: bool = False,
    progress: bool = True,
    step: str = "auto",
    precision: str | None = None,
    record: dict | None = None,
) -> NeuronLaw:
    """Train ``num_neurons`` independent neurons on ``V`` from the prior; the equally weighted ``NeuronLaw``.

    ``temperature`` defaults to ``1 / model.beta`` (the single-neuron law of the theory); ``0`` is
    gradient descent. ``batch_size=None`` uses the whole background every step. The neuron axis
    is sharded over ``mesh`` (default: all devices); ``num_neurons`` must divide evenly. With
    ``out_dir`` the run checkpoints every ``checkpoint_every`` steps and ``resume=True`` continues
    it exactly; NaN/inf stops it with ``NonFiniteError`` naming the step. ``precision``: ``"highest"`` (float32-exact
    matmuls) or ``"fast"`` (the backend's default: TF32 / bf16 passes, see ``mft_jax.precision``); None: the current
    setting (``"highest"`` by default). ``step``: ``"auto" | "fused" | "reference"`` (module docstring); a ``record``
    dict receives ``step`` (the words saying which step ran and why) and ``step_path``.
    """
    step, state = init_foreground(
        key, model, data, residual, num_neurons=num_neurons, step_size=step_size,
        temperature=temperature, batch_size=batch_size, mesh=mesh, step=step, precision=precision,
    )
    if record is not None:
        record.update(step=step.choice.description, step_path=step.choice.path)
    run = fingerprint(
        trainer="foreground", model=model.settings(), data=data_fingerprint(data),
        residual=getattr(residual, "__qualname__", type(residual).__name__) if callable(residual) else residual, num_neurons=num_neurons,
        step_size=step_size, temperature=model.temperature if temperature is None else temperature,
        batch_size=batch_size, key=key, versions=library_versions(),
    )
    state, _ = run_loop(
        step, state, steps, chunk=chunk, out_dir=out_dir, checkpoint_every=checkpoint_every,
        resume=resume, progress=progress, description="foreground", run=run,
    )
    neurons = to_host(state.neurons)  # gathered from every process in a multi-process job
    return NeuronLaw.from_samples(jnp.asarray(neurons["w"]), jnp.asarray(neurons["a"]))
