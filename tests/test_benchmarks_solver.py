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
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "solver_speed.py"), "--quick", "--out", str(out)], check=True, timeout=900)
    result = json.loads(out.read_text())
    assert result["sweep"]["traced"]["compilations"] == 1 and result["sweep"]["per_beta"]["compilations"] == 16
    assert result["sweep"]["traced"]["losses"] == pytest.approx(result["sweep"]["per_beta"]["losses"], rel=1e-5)
    # the iteration settles on the quick run's fixed 48^2 grid (which does not resolve the law: not "converged")
    assert result["beta_50"]["anderson"]["settled"]


@pytest.mark.slow
def test_clover_beta_sweep_quick(tmp_path):
    out = tmp_path / "sweep.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "clover_beta_sweep.py"), "--quick", "--out", str(out)], check=True, timeout=900)
    result = json.loads(out.read_text())
    assert [row["beta"] for row in result["rows"]] == [1.0, 10.0, 100.0, 500.0]
    assert all(row["converged"] and row["resolved"] for row in result["rows"])
    assert any(action.startswith("Newton ascent") for action in result["rows"][-1]["actions"])


@pytest.mark.slow
def test_neuron_throughput_quick(tmp_path):
    out = tmp_path / "throughput.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "neuron_throughput.py"), "--quick", "--out", str(out)], check=True, timeout=900)
    result = json.loads(out.read_text())
    assert set(result["gradient_evaluations_per_second_by_block"]) == {"16", "256"}
    assert result["neuron_updates_per_second"]["jax_vmap"] > 0 and result["ratio_jax_over_numpy_loop"] > 0
