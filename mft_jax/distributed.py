"""Past one machine: JAX's multi-controller runtime (``jax.distributed``), started from the standard environment.

Every process runs the same program; ``jax.devices()`` then lists the devices of all processes, and the trainers'
sharded axes (seeds, chains, foreground neurons: ``mft_jax.train.sharding``) span them all. Outputs are written by
process 0 only (``mft_jax.io``). ``initialize_from_environment()`` (called by the CLI and the benchmarks before any
computation) starts the runtime only when the environment describes a multi-process job:

- ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``: any launcher;
- SLURM with more than one task (``srun``: ``SLURM_JOB_ID``, ``SLURM_NTASKS`` > 1, ``SLURM_PROCID``): JAX detects the
  rest;
- a Cloud TPU pod slice (``TPU_WORKER_HOSTNAMES`` listing more than one worker): JAX detects the rest.

Otherwise nothing happens: a single process on one machine needs no runtime. docs/guide/precision.md has the launch
recipes (a SLURM GPU cluster, a TPU pod).
"""

from __future__ import annotations

import os

import jax

from mft_jax.errors import ConfigError

EXPLICIT = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def environment_kind(environ=None) -> str | None:
    """``"explicit"``, ``"slurm"``, ``"tpu_pod"`` or None: which multi-process environment this process runs in."""
    env = os.environ if environ is None else environ
    if "JAX_COORDINATOR_ADDRESS" in env:
        return "explicit"
    if "SLURM_JOB_ID" in env and "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1") or 1) > 1:
        return "slurm"
    if len([h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]) > 1:
        return "tpu_pod"
    return None


def initialize_from_environment() -> bool:
    """Start ``jax.distributed`` if the environment describes a multi-process job (module docstring); True if running."""
    if jax.distributed.is_initialized():
        return True
    kind = environment_kind()
    if kind is None:
        return False
    if kind == "explicit":
        missing = [name for name in EXPLICIT[1:] if name not in os.environ]
        if missing:
            raise ConfigError(f"JAX_COORDINATOR_ADDRESS is set but {', '.join(missing)} is not: a multi-process job needs "
                              f"all of {', '.join(EXPLICIT)}")
        try:
            count, index = int(os.environ["JAX_NUM_PROCESSES"]), int(os.environ["JAX_PROCESS_ID"])
        except ValueError:
            raise ConfigError(f"JAX_NUM_PROCESSES and JAX_PROCESS_ID must be integers, got "
                              f"{os.environ['JAX_NUM_PROCESSES']!r} and {os.environ['JAX_PROCESS_ID']!r}") from None
        if not 0 <= index < count:
            raise ConfigError(f"JAX_PROCESS_ID = {index} must be in 0 .. JAX_NUM_PROCESSES - 1 = {count - 1}")
        jax.distributed.initialize(os.environ["JAX_COORDINATOR_ADDRESS"], num_processes=count, process_id=index)
    else:
        jax.distributed.initialize()
    return True


def is_writer() -> bool:
    """Whether this process writes the outputs: process 0 (every process of a single-process run)."""
    return jax.process_index() == 0


def to_host(tree):
    """Every leaf of ``tree`` as a NumPy array on this host: an array sharded over several processes is gathered
    (``multihost_utils.process_allgather``, a collective: every process must call it), any other leaf converted."""
    from jax.experimental import multihost_utils

    def leaf(value):
        if isinstance(value, jax.Array) and not value.is_fully_addressable:
            return multihost_utils.process_allgather(value, tiled=True)
        return value

    return jax.tree.map(leaf, tree)
