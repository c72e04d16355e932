"""Smoke tests of the solver benchmarks' ``--quick`` runs (slow: each a minute or more on 2 cores)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_solver_speed_quick(tmp_path):
    out = tmp_path / "speed.json"
    subprocess.run([sys.executable, "-m", "benchmarks.solver_speed", "--quick", "--out", str(out)], check=True, timeout=900, cwd=ROOT)
    result = json.loads(out.read_text())
    assert result["sweep"]["traced"]["compilations"] == 1 and result["sweep"]["per_beta"]["compilations"] == 16
    assert result["sweep"]["traced"]["losses"] == pytest.approx(result["sweep"]["per_beta"]["losses"], rel=1e-5)
    # the iteration settles on the quick run's fixed 48^2 grid (which does not resolve the law: not "converged")
    assert result["beta_50"]["anderson"]["settled"]


@pytest.mark.slow
def test_clover_beta_sweep_quick(tmp_path):
    out = tmp_path / "sweep.json"
    subprocess.run([sys.executable, "-m", "experiments.clover_beta_sweep", "--quick", "--out", str(out)], check=True, timeout=900, cwd=ROOT)
    result = json.loads(out.read_text())
    assert [row["beta"] for row in result["rows"]] == [1.0, 10.0, 100.0, 500.0]
    assert all(row["converged"] and row["resolved"] for row in result["rows"])
    assert any(action.startswith("Newton ascent") for action in result["rows"][-1]["actions"])


@pytest.mark.slow
def test_neuron_throughput_quick(tmp_path):
    out = tmp_path / "throughput.json"
    subprocess.run([sys.executable, "-m", "benchmarks.neuron_throughput", "--quick", "--out", str(out)], check=True, timeout=900, cwd=ROOT)
    result = json.loads(out.read_text())
    assert set(result["gradient_evaluations_per_second_by_block"]) == {"16", "256"}
    assert result["neuron_updates_per_second"]["jax_vmap"] > 0 and result["ratio_jax_over_numpy_loop"] > 0


@pytest.mark.slow
def test_neuron_throughput_device_mode_quick(tmp_path):
    """The device mode runs end to end on a CPU (--device --quick) and records every measurement it promises."""
    out = tmp_path / "device.json"
    subprocess.run([sys.executable, "-m", "benchmarks.neuron_throughput", "--device", "--quick", "--out", str(out)],
                   check=True, timeout=900, cwd=ROOT)
    result = json.loads(out.read_text())
    assert set(result["matmul_peak_flops"]) == {"highest", "default"}
    rates = result["foreground_d2"]["neuron_updates_per_second"]
    assert all(rates[k] > 0 for k in ("library_reference", "library_fused", "direct_jnp"))
    assert result["foreground_d2"]["library_fused_step"].startswith("fused Pallas kernel")
    assert {"highest", "default"} <= set(result["foreground_d150"]) and "matmul step" in result["foreground_d150"]["highest"]["step"]
    assert "one matmul (seeds folded into its rows)" in result["joint"]["layout"]
