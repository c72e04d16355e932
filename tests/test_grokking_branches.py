"""``python -m experiments.modular_grokking branches``: the crossing fraction and spinodals from branch rows (fast logic)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from experiments import modular_grokking


def _rows(diffs, errors, learned_gen, learned_mem, fractions=(0.3, 0.5, 0.7, 0.9)):
    return [{"fraction": f, "free_energy_difference": d, "free_energy_difference_se": e,
             "generalising_learned_fraction": lg, "memorising_learned_fraction": lm}
            for f, d, e, lg, lm in zip(fractions, diffs, errors, learned_gen, learned_mem)]


def test_critical_fraction_interpolates_the_sign_change_and_propagates_the_error():
    rows = _rows([0.4, 0.2, -0.2, -0.6], [0.02, 0.02, 0.02, 0.02], [0.1, 0.8, 0.9, 0.9], [0.0, 0.0, 0.1, 0.7])
    stored = {"networks": {"11": {"transition_loss_below_1": {"mean": 0.925, "se": 0.003}}}}
    out = modular_grokking.critical_fraction(rows, stored, 11, SimpleNamespace(learned=0.9))
    assert out["theory"] == pytest.approx(0.6)  # 0.2 -> -0.2 between 0.5 and 0.7
    assert out["theory_err"] == pytest.approx(math.hypot(0.02, 0.02) / 2.0)  # slope -2 per unit fraction
    assert out["spinodals"] == {"generalising_lost_below": 0.3, "memorising_lost_above": 0.9}
    assert (out["networks"], out["networks_err"]) == (0.925, 0.003)


def test_critical_fraction_is_nan_without_a_crossing_or_free_energies():
    rows = _rows([0.4, 0.2, 0.1, 0.05], [0.01] * 4, [0.9] * 4, [0.0] * 4)
    out = modular_grokking.critical_fraction(rows, {}, 23, SimpleNamespace(learned=0.9))
    assert math.isnan(out["theory"]) and out["networks"] is None
    rows = _rows([float("nan")] * 4, [float("nan")] * 4, [0.9] * 4, [0.0] * 4)
    assert math.isnan(modular_grokking.critical_fraction(rows, {}, 23, SimpleNamespace(learned=0.9))["theory"])


def test_branches_and_summary_write_their_results_files(tmp_path):
    """End to end at P = 7 (the quick config's modulus, tiny draws): ``branches`` writes both branches' free energies and
    the kernel check with its command, ``summary`` reads that run and writes ``critical_fraction.json`` (~20 s on 2 cores)."""
    import json
    import shutil

    from experiments._common import CONFIGS, RESULTS

    (tmp_path / "modular_grokking").mkdir()
    shutil.copy(RESULTS / "modular_grokking" / "main.json", tmp_path / "modular_grokking" / "main.json")
    argv = ["branches", "--config", str(CONFIGS / "modular_grokking_quick.toml"), "--moduli", "7", "--fractions", "0.5", "0.9",
            "--repeats", "2", "--draws", "100", "--max-iter", "3", "--run", "smoke", "--results", str(tmp_path), "--figures", str(tmp_path)]
    out = modular_grokking.main(argv)
    saved = json.loads((tmp_path / "modular_grokking" / "smoke.json").read_text())
    assert saved["meta"]["argv"][-len(argv):] == argv
    rows = out["points"]["7"]
    assert [r["fraction"] for r in rows] == [0.5, 0.9]
    for row in rows:
        for branch in ("memorising", "generalising"):
            assert all(math.isfinite(r[branch]["free_energy"]) for r in row["repeats"])
            assert 0.0 <= row[f"{branch}_learned_fraction"] <= 1.0
        assert math.isfinite(row["free_energy_difference"]) and row["free_energy_difference_se"] >= 0
    assert [c["fraction"] for c in out["kernel_check"]["7"]] == [0.5, 0.9]
    assert (tmp_path / "modular_grokking_branches_smoke.png").is_file()
    summary = modular_grokking.main(["summary", str(tmp_path / "modular_grokking" / "smoke.json"), "--results", str(tmp_path),
                                     "--figures", str(tmp_path)])
    assert summary["inputs"] == ["smoke.json"] and "7" in summary["critical_fraction"]
    assert json.loads((tmp_path / "modular_grokking" / "critical_fraction.json").read_text())["meta"]["argv"][-1] == str(tmp_path)


def test_critical_and_summary_annealed_write_the_theory_fraction(tmp_path):
    """End to end at P = 7 (tiny): ``critical`` writes the annealed f_c (exact and saddle), the quenched check with its
    crossings and the kinetics at the stored networks' transition, with its command; ``summary --annealed`` makes that f_c
    the ``theory`` with a non-negative error and its components."""
    import json
    import shutil

    from experiments._common import CONFIGS, RESULTS

    (tmp_path / "modular_grokking").mkdir()
    main = json.loads((RESULTS / "modular_grokking" / "main.json").read_text())
    main["networks"]["7"] = main["networks"]["11"]  # a stored transition for P = 7's kinetics
    (tmp_path / "modular_grokking" / "main.json").write_text(json.dumps(main))
    argv = ["critical", "--config", str(CONFIGS / "modular_grokking.toml"), "--moduli", "7", "--quenched", "7", "--fractions", "0.3", "0.6",
            "0.9", "--splits", "2", "--draws", "300", "--points", "150", "--tol", "1e-2", "--run", "smoke", "--results", str(tmp_path)]
    out = modular_grokking.main(argv)
    saved = json.loads((tmp_path / "modular_grokking" / "smoke.json").read_text())
    assert saved["meta"]["argv"][-len(argv):] == argv
    annealed = out["annealed"]["7"]
    assert 0 < annealed["exact"]["gmfl1"] < 1 and 0 < annealed["saddle"]["gmfl1"] < 1
    rows = out["quenched"]["7"]["rows"]
    assert [r["fraction"] for r in rows] == [0.3, 0.6, 0.9] and all(r["tilt_ratio"] > 0 and r["map_mismatch"] >= 0 for r in rows)
    assert out["kinetics"]["7"]["run_length_natural_units"] > 0
    summary = modular_grokking.main(["summary", str(tmp_path / "modular_grokking" / "smoke.json"), "--annealed",
                                     str(tmp_path / "modular_grokking" / "smoke.json"), "--results", str(tmp_path), "--figures", str(tmp_path)])
    entry = summary["critical_fraction"]["7"]
    assert entry["theory"] == annealed["exact"]["gmfl1"] and entry["theory_err"] >= abs(annealed["exact_minus_saddle"])
    assert set(entry["theory_err_components"]) >= {"exact_minus_saddle", "quenched_shift", "quenched_se"}
