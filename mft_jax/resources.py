"""Memory guards: refuse an impossible size before allocating it, naming the setting to lower.

``require(nbytes, what, setting)`` compares an estimate with the memory the computation may use:
the default device's memory limit on an accelerator (``device.memory_stats()["bytes_limit"]``), or
80% of the host's available memory (``MemAvailable``) on the CPU. The estimates live next to what
they guard (samplers, tasks, trainers) and count the largest arrays a step holds at once.

``device_memory()`` describes the default device for sizing decisions (the foreground block policy,
``mft_jax.train.fused``): its backend and the bytes still free on it (the limit less what is in use on
an accelerator; the host's share on the CPU). A policy that sizes blocks to fit ``free_bytes`` and a
guard ``require(nbytes, ..., available=device_memory())`` then use the same numbers.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax

from mft_jax.errors import ConfigError

HOST_FRACTION = 0.8  # of MemAvailable: leave room for Python, XLA and the OS


def _host_available() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def memory_limit() -> tuple[int, str]:
    """``(bytes, where)``: what one computation may allocate on this process's first device (a multi-process job's
    ``jax.devices()[0]`` may belong to another process)."""
    device = jax.local_devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]), f"{device.device_kind} memory"
    return int(HOST_FRACTION * _host_available()), "80% of the host's available memory"


class DeviceMemory(NamedTuple):
    """The default device as a sizing decision sees it: ``backend`` (cpu | gpu | tpu), ``free_bytes``, ``where`` (words)."""

    backend: str
    free_bytes: int
    where: str


def device_memory() -> DeviceMemory:
    """``DeviceMemory`` of the default device: ``bytes_limit - bytes_in_use`` on an accelerator, else ``memory_limit()``."""
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
            return DeviceMemory(device.platform, free, f"free {device.device_kind} memory")
    limit, where = memory_limit()
    return DeviceMemory(device.platform, limit, where)


def format_bytes(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(nbytes) < 1024 or unit == "PiB":
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1024
    return f"{nbytes:.3g} PiB"


def require(nbytes: float, what: str, setting: str, available: DeviceMemory | None = None) -> None:
    """Raise ``ConfigError`` if ``nbytes`` exceeds ``memory_limit()`` (or ``available.free_bytes``), naming ``what`` needs it and the ``setting`` to lower."""
    limit, where = memory_limit() if available is None else (available.free_bytes, available.where)
    if nbytes > limit:
        raise ConfigError(
            f"{what} needs about {format_bytes(nbytes)}, more than the {format_bytes(limit)} available ({where}); "
            f"lower {setting}"
        )


def matmul_peak(size: int = 2048, repeats: int = 5, precision=None) -> float:
    """Measured float32 FLOP/s of a ``size``-square matmul on the default device, best of ``repeats`` (compile
    excluded), at ``precision`` (``"highest"``, ``"default"``, a ``jax.lax.Precision``; None: the backend's default):
    the peak the speed reports divide by."""
    import time

    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    product = jax.jit(lambda a: jnp.dot(a, a, precision=precision))
    product(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product(a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best
