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
    assert result["beta_50"]["anderson"]["converged"]


@pytest.mark.slow
def test_clover_beta_sweep_quick(tmp_path):
    out = tmp_path / "sweep.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "clover_beta_sweep.py"), "--quick", "--out", str(out)], check=True, timeout=900)
    result = json.loads(out.read_text())
    assert [row["beta"] for row in result["rows"]] == [1.0, 10.0, 100.0]
    assert all(row["converged"] for row in result["rows"])
