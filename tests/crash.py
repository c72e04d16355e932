"""A run killed by a crash: start a CLI job, wait for its first checkpoint, kill it (for the resume tests)."""

import subprocess
import sys
import time

from mft_jax.cli.outputs import checkpoint_dir


def kill_after_first_checkpoint(args: list, out_dir, timeout: float = 240.0) -> None:
    """Run ``python -m mft_jax.cli *args``, wait until the run's checkpoint exists (``.NAME.partial/checkpoint.npz``
    beside ``out_dir``: a run keeps its checkpoints there until it completes), let it run 0.5 s more, kill it."""
    process = subprocess.Popen([sys.executable, "-m", "mft_jax.cli", *map(str, args)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while not (checkpoint_dir(out_dir) / "checkpoint.npz").exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, f"no checkpoint within {timeout:g} s"
        time.sleep(0.05)
    time.sleep(0.5)  # let it run on past the first checkpoint
    process.kill()
    process.wait()
