"""Memory guards: refuse an impossible size before allocating it, naming the setting to lower.

``require(nbytes, what, setting)`` compares an estimate with the memory the computation may use:
the default device's memory limit on an accelerator (``device.memory_stats()["bytes_limit"]``), or
80% of the host's available memory (``MemAvailable``) on the CPU. The estimates live next to what
they guard (samplers, tasks, trainers) and count the largest arrays a step holds at once.
"""

from __future__ import annotations

import os

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
    """``(bytes, where)``: what one computation may allocate on the default device."""
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]), f"{device.device_kind} memory"
    return int(HOST_FRACTION * _host_available()), "80% of the host's available memory"


def format_bytes(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(nbytes) < 1024 or unit == "PiB":
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1024
    return f"{nbytes:.3g} PiB"


def require(nbytes: float, what: str, setting: str) -> None:
    """Raise ``ConfigError`` if ``nbytes`` exceeds ``memory_limit()``, naming ``what`` needs it and the ``setting`` to lower."""
    limit, where = memory_limit()
    if nbytes > limit:
        raise ConfigError(
            f"{what} needs about {format_bytes(nbytes)}, more than the {format_bytes(limit)} available ({where}); "
            f"lower {setting}"
        )
