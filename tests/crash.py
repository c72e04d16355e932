"""A run killed by a crash: start a CLI job, wait for its first checkpoint, kill it (for the resume tests)."""

import subprocess
import sys
import time


def kill_after_first_checkpoint(args: list, out_dir, timeout: float = 240.0) -> None:
    """Run ``python -m mft_jax.cli.main *args``, wait until ``out_dir/checkpoint.npz`` exists, let it run 0.5 s more, kill it."""
    process = subprocess.Popen([sys.executable, "-m", "mft_jax.cli.main", *map(str, args)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while not (out_dir / "checkpoint.npz").exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, f"no checkpoint within {timeout:g} s"
        time.sleep(0.05)
    time.sleep(0.5)  # let it run on past the first checkpoint
    process.kill()
    process.wait()
