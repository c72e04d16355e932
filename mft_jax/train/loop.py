"""The one long-run loop every trainer uses: jitted chunks of ``lax.scan``, checkpoints,
resume, and a stop on NaN/inf that names the step and keeps the last good checkpoint.

A trainer supplies a pure ``step(state, t) -> (state, metrics)``; randomness must come from
``jax.random.fold_in(key, t)`` with the *global* step ``t`` so that a resumed run is
bit-for-bit the run that was never interrupted (chunking does not change the arithmetic).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from mft_jax.distributed import to_host
from mft_jax.precision import current, uses_precision
from mft_jax.errors import ConfigError, NonFiniteError
from mft_jax.io import read_npz, save_npz

CHECKPOINT = "checkpoint.npz"
HISTORY = "history."  # prefix of the checkpoint's metric arrays


def _all_finite(tree) -> jax.Array:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.array(True)


def _is_key(leaf) -> bool:
    return jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def fingerprint(**parts) -> dict:
    """What defines a run, JSON-normalised: arrays become SHA-256 digests of their bytes, numbers plain floats.

    Stored with each checkpoint; ``--resume`` refuses a checkpoint whose fingerprint differs (the number
    of steps is not part of it: a resume may extend a run).
    """

    def normal(value):
        if isinstance(value, dict):
            return {str(k): normal(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [normal(v) for v in value]
        if isinstance(value, (jax.Array, np.ndarray)):
            array = np.asarray(jax.random.key_data(value) if _is_key(value) else value)
            return f"sha256:{hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]} {array.dtype}{list(array.shape)}"
        if isinstance(value, (bool, str)) or value is None:
            return value
        if isinstance(value, (int, float, np.number)):
            return float(value)
        return repr(value)

    return normal(parts)


def data_fingerprint(data) -> dict:
    """A ``Dataset`` by the digests of its arrays; a ``Task`` (infinite data) by its name, table and sizes."""
    if hasattr(data, "sample"):
        return {"task": data.name, "input_dim": data.input_dim, "output_dim": data.output_dim, "table": data.table}
    return {"x": data.x, "q": data.q, "y": data.y}


def library_versions() -> dict:
    """The versions a checkpoint's arithmetic depends on."""
    import importlib.metadata

    def version(name):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:  # e.g. a source checkout on PYTHONPATH
            return "not installed"

    return {name: version(name) for name in ("jax", "jaxlib", "mft_jax")}


def save_checkpoint(directory: str | os.PathLike, state, step: int, history: dict[str, list], run: dict | None = None) -> Path:
    """Write ``state`` (any pytree, typed PRNG keys included), the step, the metric history and the run's
    ``fingerprint`` atomically."""
    leaves = to_host([jax.random.key_data(x) if _is_key(x) else x for x in jax.tree.leaves(state)])  # every process
    arrays = {f"leaf_{i}": np.asarray(x) for i, x in enumerate(leaves)}
    arrays.update({HISTORY + name: np.asarray(values) for name, values in history.items()})  # binary, one array per metric
    path = Path(directory) / CHECKPOINT
    save_npz(path, step=np.asarray(step), fingerprint=np.asarray(json.dumps(run or {})), **arrays)
    return path


class _Archive(dict):
    """The arrays of a checkpoint, with ``np.load``'s ``files``."""

    @property
    def files(self) -> list[str]:
        return list(self)


def _history(archive) -> dict[str, list]:
    """The metric history of a checkpoint: one binary array per metric (rows = records), or the JSON text of
    older checkpoints (which made each save re-serialise the whole history as text)."""
    if "history" in archive.files:
        return json.loads(str(archive["history"]))
    return {key[len(HISTORY):]: list(archive[key]) for key in archive.files if key.startswith(HISTORY)}


def changed_keys(stored: dict, current: dict, prefix: str = "") -> list[str]:
    """The keys (dotted paths) whose values differ between two fingerprints."""
    keys = []
    for key in sorted(set(stored) | set(current)):
        a, b = stored.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key} ({a!r} in the checkpoint, {b!r} now)")
    return keys


def load_checkpoint(directory: str | os.PathLike, template, run: dict | None = None) -> tuple[Any, int, dict[str, list]]:
    """``(state, step, history)`` from a checkpoint, with the structure, dtypes and shardings of ``template``.

    ``run``: this run's ``fingerprint``; a checkpoint written by a run with a different one is refused,
    naming the keys that differ.
    """
    path = Path(directory) / CHECKPOINT
    if not path.exists():
        raise ConfigError(f"--resume: no checkpoint at {str(path)!r}")
    archive = _Archive(read_npz(path, "--resume: checkpoint"))
    step = archive.get("step")
    if step is None or step.shape != () or step.dtype.kind not in "iu" or int(step) < 0:
        raise ConfigError(f"--resume: {str(path)!r} holds no valid step (a non-negative integer scalar); it is not a checkpoint")
    if run is not None and "fingerprint" in archive.files:
        try:
            stored = json.loads(str(archive["fingerprint"]))
        except ValueError:
            stored = None
        if not isinstance(stored, dict):
            raise ConfigError(f"--resume: {str(path)!r} has an unreadable run fingerprint; it is corrupt")
        changed = changed_keys(stored, run)
        if changed:
            raise ConfigError(
                f"--resume: {str(path)!r} was written by a different run: {'; '.join(changed)}. A resume continues the "
                "same run (only the number of steps may grow); use a new output directory for a new run"
            )
    leaves, treedef = jax.tree.flatten(template)
    if sum(k.startswith("leaf_") for k in archive.files) != len(leaves):
        raise ConfigError(f"--resume: {str(path)!r} does not match this config (different state structure)")
    restored = []
    for i, leaf in enumerate(leaves):
        value = archive.get(f"leaf_{i}")
        if value is None:
            raise ConfigError(f"--resume: {str(path)!r} lacks leaf_{i}; it is corrupt or not a checkpoint of this config")
        if _is_key(leaf):
            expected = jax.random.key_data(leaf)
            if value.shape != expected.shape or value.dtype != expected.dtype:
                raise ConfigError(f"--resume: {str(path)!r} holds a PRNG key of shape {value.shape}, dtype {value.dtype}; "
                                  f"this config needs {expected.shape}, {expected.dtype}")
            value = jax.random.wrap_key_data(value, impl=jax.random.key_impl(leaf))
        if value.shape != leaf.shape:
            raise ConfigError(f"--resume: {str(path)!r} has shape {value.shape} where this config needs {leaf.shape}")
        if not _is_key(leaf) and value.dtype != np.dtype(leaf.dtype):
            raise ConfigError(f"--resume: {str(path)!r} has dtype {value.dtype} where this config needs {leaf.dtype}")
        restored.append(jax.device_put(value, getattr(leaf, "sharding", None)))
    return jax.tree.unflatten(treedef, restored), int(archive["step"]), _history(archive)


def chunk_program(step: Callable[[Any, jax.Array], tuple[Any, dict]]) -> Callable:
    """``(state, steps) -> (state, (metrics, finite))``: ``step`` scanned over ``steps``, jitted, at the library's
    matmul precision (``mft_jax.precision``). ``run_loop`` runs this; ``finite`` flags a NaN/inf state or metric."""

    def scan_chunk(state, steps):
        def body(state, t):
            state, metrics = step(state, t)
            return state, (metrics, _all_finite((state, metrics)))

        return jax.lax.scan(body, state, steps)

    return uses_precision(jax.jit(scan_chunk))


def run_loop(
    step: Callable[[Any, jax.Array], tuple[Any, dict]],
    state,
    num_steps: int,
    *,
    chunk: int = 100,
    out_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 1000,
    resume: bool = False,
    progress: bool = True,
    description: str = "train",
    run: dict | None = None,
) -> tuple[Any, dict[str, np.ndarray]]:
    """Run ``state <- step(state, t)`` for ``t = 0 .. num_steps - 1``; returns ``(state, history)``.

    ``history`` holds each metric (a scalar, or an array such as one value per seed) recorded
    once per chunk (its value at the chunk's last step) with the global ``step`` it belongs to; chunks end at
    multiples of ``chunk`` (a run resumed mid-chunk first completes that chunk), so the recorded steps do
    not depend on where a run was interrupted. With ``out_dir`` a checkpoint is written every
    ``checkpoint_every`` steps (rounded up to whole chunks) and at the end; ``resume=True`` starts
    from it, refusing a checkpoint of a run with another ``run`` fingerprint (``fingerprint``). If the state
    or a metric turns NaN/inf the run stops with ``NonFiniteError`` naming the first bad step, and the
    checkpoint on disk is the last good one.
    """
    if num_steps < 0 or chunk < 1 or checkpoint_every < 1:
        raise ConfigError(f"need num_steps >= 0, chunk >= 1, checkpoint_every >= 1; got {num_steps}, {chunk}, {checkpoint_every}")
    run = None if run is None else {**run, "precision": current()}  # a resumed run keeps its matmul precision
    history: dict[str, list] = {"step": []}
    start = 0
    if resume:
        if out_dir is None:
            raise ConfigError("resume=True needs an out_dir holding a checkpoint")
        state, start, history = load_checkpoint(out_dir, state, run)
        if start > num_steps:
            raise ConfigError(
                f"--resume: the checkpoint is at step {start}, beyond the {num_steps} steps asked for; a resume only "
                f"extends a run (steps >= {start}); for a shorter run use a new output directory"
            )
        if start % chunk and history["step"] and history["step"][-1] == start:
            # the checkpointed run ended mid-chunk and recorded its last step; the uninterrupted run records
            # only at chunk ends, so that entry goes (the resumed run records the chunk's end instead)
            history = {name: values[:-1] for name, values in history.items()}

    scan_chunk = chunk_program(step)
    last_saved = start
    bar = tqdm(total=num_steps, initial=start, desc=description, disable=not progress, leave=False)
    # (state, step, records): replaced in one assignment once a chunk's bookkeeping is complete, so an interrupt
    # (KeyboardInterrupt / SIGTERM, raised between any two bytecodes) always finds a consistent point to checkpoint
    committed = (state, start, len(history["step"]))
    try:
        while committed[1] < num_steps:
            state, t, _ = committed
            size = min(chunk - t % chunk, num_steps - t)  # chunks end at multiples of chunk
            new_state, (metrics, finite) = scan_chunk(state, jnp.arange(t, t + size))
            metrics, finite = to_host((metrics, finite))  # gathered from every process in a multi-process job
            finite = np.asarray(finite)
            if not finite.all():
                bad = t + int(np.argmin(finite))
                kept = f"the last good checkpoint (step {last_saved}) is {str(Path(out_dir) / CHECKPOINT)!r}" if out_dir else "no checkpoint was kept (no out_dir)"
                raise NonFiniteError(
                    f"{description}: NaN/inf at step {bad}; stopped. {kept}. "
                    "Lower the learning rate / step size or the temperature, or check the data."
                )
            history["step"].append(t + size)
            for name, values in metrics.items():
                history.setdefault(name, []).append(np.array(values[-1]))  # a scalar, or e.g. one value per seed
            committed = (new_state, t + size, len(history["step"]))
            state, t, _ = committed
            bar.update(size)
            bar.set_postfix({k: f"{np.mean(v[-1]):.4g}" for k, v in history.items() if k != "step"}, refresh=False)
            if out_dir is not None and (t - last_saved >= checkpoint_every or t == num_steps):
                save_checkpoint(out_dir, state, t, history, run)
                last_saved = t
    except KeyboardInterrupt:
        state, t, records = committed
        if out_dir is not None and t > last_saved:
            save_checkpoint(out_dir, state, t, {k: v[:records] for k, v in history.items()}, run)
        raise
    finally:
        bar.close()
    state = committed[0]
    return state, {k: np.asarray(v) for k, v in history.items()}
