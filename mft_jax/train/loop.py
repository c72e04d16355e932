"""The one long-run loop every trainer uses: jitted chunks of ``lax.scan``, checkpoints,
resume, and a stop on NaN/inf that names the step and keeps the last good checkpoint.

A trainer supplies a pure ``step(state, t) -> (state, metrics)``; randomness must come from
``jax.random.fold_in(key, t)`` with the *global* step ``t`` so that a resumed run is
bit-for-bit the run that was never interrupted (chunking does not change the arithmetic).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from mft_jax.errors import ConfigError, NonFiniteError
from mft_jax.io import save_npz

CHECKPOINT = "checkpoint.npz"


def _all_finite(tree) -> jax.Array:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.array(True)


def _is_key(leaf) -> bool:
    return jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def save_checkpoint(directory: str | os.PathLike, state, step: int, history: dict[str, list]) -> Path:
    """Write ``state`` (any pytree, typed PRNG keys included), the step and the metric history atomically."""
    leaves = jax.tree.leaves(state)
    arrays = {f"leaf_{i}": np.asarray(jax.random.key_data(x) if _is_key(x) else x) for i, x in enumerate(leaves)}
    path = Path(directory) / CHECKPOINT
    save_npz(path, step=np.asarray(step), history=np.asarray(json.dumps(history)), **arrays)
    return path


def load_checkpoint(directory: str | os.PathLike, template) -> tuple[Any, int, dict[str, list]]:
    """``(state, step, history)`` from a checkpoint, with the structure, dtypes and shardings of ``template``."""
    path = Path(directory) / CHECKPOINT
    if not path.exists():
        raise ConfigError(f"--resume: no checkpoint at {str(path)!r}")
    archive = np.load(path)
    leaves, treedef = jax.tree.flatten(template)
    if sum(k.startswith("leaf_") for k in archive.files) != len(leaves):
        raise ConfigError(f"--resume: {str(path)!r} does not match this config (different state structure)")
    restored = []
    for i, leaf in enumerate(leaves):
        value = archive[f"leaf_{i}"]
        value = jax.random.wrap_key_data(value, impl=jax.random.key_impl(leaf)) if _is_key(leaf) else value
        if value.shape != leaf.shape:
            raise ConfigError(f"--resume: {str(path)!r} has shape {value.shape} where this config needs {leaf.shape}")
        restored.append(jax.device_put(value, getattr(leaf, "sharding", None)))
    return jax.tree.unflatten(treedef, restored), int(archive["step"]), json.loads(str(archive["history"]))


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
) -> tuple[Any, dict[str, np.ndarray]]:
    """Run ``state <- step(state, t)`` for ``t = 0 .. num_steps - 1``; returns ``(state, history)``.

    ``history`` holds each metric (a scalar, or an array such as one value per seed) recorded
    once per chunk (its value at the chunk's last step) with the global ``step`` it belongs to. With ``out_dir`` a checkpoint is written every
    ``checkpoint_every`` steps (rounded up to whole chunks) and at the end; ``resume=True`` starts
    from it. If the state or a metric turns NaN/inf the run stops with ``NonFiniteError`` naming
    the first bad step, and the checkpoint on disk is the last good one.
    """
    if num_steps < 0 or chunk < 1 or checkpoint_every < 1:
        raise ConfigError(f"need num_steps >= 0, chunk >= 1, checkpoint_every >= 1; got {num_steps}, {chunk}, {checkpoint_every}")
    history: dict[str, list] = {"step": []}
    start = 0
    if resume:
        if out_dir is None:
            raise ConfigError("resume=True needs an out_dir holding a checkpoint")
        state, start, history = load_checkpoint(out_dir, state)

    def scan_chunk(state, steps):
        def body(state, t):
            state, metrics = step(state, t)
            return state, (metrics, _all_finite((state, metrics)))

        return jax.lax.scan(body, state, steps)

    scan_chunk = jax.jit(scan_chunk)
    last_saved = start
    bar = tqdm(total=num_steps, initial=start, desc=description, disable=not progress, leave=False)
    try:
        t = start
        while t < num_steps:
            size = min(chunk, num_steps - t)
            new_state, (metrics, finite) = scan_chunk(state, jnp.arange(t, t + size))
            finite = np.asarray(finite)
            if not finite.all():
                bad = t + int(np.argmin(finite))
                kept = f"the last good checkpoint (step {last_saved}) is {str(Path(out_dir) / CHECKPOINT)!r}" if out_dir else "no checkpoint was kept (no out_dir)"
                raise NonFiniteError(
                    f"{description}: NaN/inf at step {bad}; stopped. {kept}. "
                    "Lower the learning rate / step size or the temperature, or check the data."
                )
            state, t = new_state, t + size
            history["step"].append(t)
            for name, values in metrics.items():
                history.setdefault(name, []).append(np.asarray(values)[-1].tolist())  # a scalar, or e.g. one value per seed
            bar.update(size)
            bar.set_postfix({k: f"{np.mean(v[-1]):.4g}" for k, v in history.items() if k != "step"}, refresh=False)
            if out_dir is not None and (t - last_saved >= checkpoint_every or t == num_steps):
                save_checkpoint(out_dir, state, t, history)
                last_saved = t
    except KeyboardInterrupt:
        if out_dir is not None and t > last_saved:
            save_checkpoint(out_dir, state, t, history)
        raise
    finally:
        bar.close()
    return state, {k: np.asarray(v) for k, v in history.items()}
