"""Two processes on localhost (JAX's multi-controller runtime, CPU collectives: gloo) run a train job and a foreground
job through the CLI, and their outputs match a one-process run over two host devices: the seeds and the foreground
neurons are sharded over the 2 global devices either way, process 0 writes the outputs (mft_jax.distributed).

Error budget: both runs execute the same per-device programs on the same shards, so the numbers agree to float
reordering (rtol 1e-5, far below the differences a wrong shard assignment makes: the two seeds' weights differ by > 0.1).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mft_jax.distributed import environment_kind

ROOT = Path(__file__).resolve().parent.parent
TRAIN = """[task]\nname = "continuous_xor"\nquadrature = 4\n[model]\nactivation = "ramp"\nbeta = 20.0
[train]\nwidth = 8\nsteps = 20\noptimizer = "langevin"\nstep_size = 0.02\nnum_seeds = 2\nchunk = 10\ncheckpoint_every = 10
"""
FOREGROUND = """[task]\nname = "continuous_xor"\nquadrature = 4\n[model]\nactivation = "ramp"\nbeta = 20.0
[foreground]\nnum_neurons = 4\nsteps = 20\nstep_size = 0.02\nchunk = 10\ncheckpoint_every = 10
"""
TIMEOUT = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _environment(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COORDINATOR", "JAX_NUM_PROC", "JAX_PROCESS", "SLURM_"))}
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split() if "force_host_platform_device_count" not in f)
    env.update(extra)
    return env


def _jobs(config_dir: Path, out: Path) -> list[list[str]]:
    python = [sys.executable, "-m", "mft_jax.cli.main"]
    return [python + ["train", str(config_dir / "train.toml"), "--out", str(out / "train")],
            python + ["foreground", str(config_dir / "foreground.toml"), "--out", str(out / "foreground"), "--background", "gp"]]


def _run_two_processes(job: list[str]) -> None:
    port = _free_port()
    processes = [subprocess.Popen(job, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=_environment(JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES="2",
                                                   JAX_PROCESS_ID=str(i)))
                 for i in range(2)]
    outputs = [p.communicate(timeout=TIMEOUT)[0] for p in processes]
    for p, text in zip(processes, outputs):
        assert p.returncode == 0, text[-3000:]


def _read(out: Path) -> dict:
    train = json.loads((out / "train" / "train.json").read_text())
    foreground = json.loads((out / "foreground" / "foreground.json").read_text())
    neurons = np.load(out / "foreground" / "neurons.npz")
    return {"train_loss": np.asarray(train["final_loss_per_seed"]), "curve": np.asarray(train["loss_curve"]["loss_per_seed"]),
            "network": np.load(out / "train" / "network.npz")["w"], "fg_w": neurons["w"],
            "fg_potential": foreground["mean_potential"], "processes": train["meta"]["devices"]}


def test_environment_detection_is_quiet_without_a_launcher():
    assert environment_kind({}) is None
    assert environment_kind({"JAX_COORDINATOR_ADDRESS": "h:1"}) == "explicit"
    assert environment_kind({"SLURM_JOB_ID": "7", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) is None  # one task
    assert environment_kind({"SLURM_JOB_ID": "7", "SLURM_PROCID": "0", "SLURM_NTASKS": "4"}) == "slurm"
    assert environment_kind({"TPU_WORKER_HOSTNAMES": "a,b"}) == "tpu_pod"


# in the default suite (issue 26 asks for it in make test): ~1 min on 2 cores, four CLI runs, two of them as two processes
def test_two_processes_match_one_process_with_two_devices(tmp_path):
    (tmp_path / "train.toml").write_text(TRAIN)
    (tmp_path / "foreground.toml").write_text(FOREGROUND)
    single, multi = tmp_path / "single", tmp_path / "multi"
    for job in _jobs(tmp_path, single):
        done = subprocess.run(job, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
                              env=_environment(XLA_FLAGS="--xla_force_host_platform_device_count=2"))
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for job in _jobs(tmp_path, multi):
        _run_two_processes(job)
    one, two = _read(single), _read(multi)
    assert len(one["train_loss"]) == 2 and np.abs(one["network"][0] - one["network"][1]).max() > 0.1  # distinct seeds
    for name in ("train_loss", "curve", "network", "fg_w"):
        np.testing.assert_allclose(two[name], one[name], rtol=1e-5, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(two["fg_potential"], one["fg_potential"], rtol=1e-5)
