"""Slow smoke test: benchmarks/deep_digits.py end to end at toy size writes the JSON the issue names and redraws."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


@pytest.mark.slow
def test_deep_digits_writes_alignment_noise_floor_and_mean_squared_entries(tmp_path):
    import deep_digits

    out = tmp_path / "deep_digits.json"
    deep_digits.main(["--widths", "32", "64", "--steps", "300", "--seeds", "2", "--num-samples", "4096",
                      "--out", str(out), "--figure", str(tmp_path / "deep.png"), "--runs", str(tmp_path / "runs")])
    results = json.loads(out.read_text())
    for layer in ("layer1", "layer2"):
        assert 0.5 < results["alignment"][layer] <= 1.0 + 1e-12
        assert 0.5 < results["alignment_noise_floor"][layer] <= 1.0 + 1e-12
        assert results["mean_sq_entries"][layer]["theory"] > 0 and results["mean_sq_entries"][layer]["networks"] > 0
    assert [row["width"] for row in results["widths"]] == [32, 64]
    assert deep_digits.make_figures(results, str(tmp_path))[0].is_file()


@pytest.mark.slow
def test_deep_speed_quick_writes_finite_positive_timings_and_ess(tmp_path):
    """``deep_speed --quick`` at two small P: every timing, FLOP count and ESS is finite and positive, the ESS
    of each layer is at most its particle count, the scaling exponent is finite, and the figure redraws."""
    import math

    import deep_speed

    out = tmp_path / "deep_speed.json"
    deep_speed.main(["--quick", "--points", "32", "64", "--repeats", "2", "--newton-repeats", "1",
                     "--out", str(out), "--figure", str(tmp_path / "speed.png")])
    results = json.loads(out.read_text())
    assert {"points", "exponent", "matmul_peak_flops", "machine", "meta", "samples", "timing_samples"} <= set(results)
    assert {"device", "jax", "load_average"} <= set(results["machine"])
    assert math.isfinite(results["exponent"]) and results["matmul_peak_flops"] > 0
    assert [row["P"] for row in results["points"]] == [32, 64]
    for row in results["points"]:
        for key in ("map_seconds", "flops", "fraction_of_peak", "memory_estimate_bytes", "newton_seconds"):
            assert math.isfinite(row[key]) and row[key] > 0, (key, row[key])
        assert row["compile_seconds"] >= 0
        for where in ("ess_nngp", "ess_fixed_point"):
            assert set(row[where]) == {str(m) for m in results["samples"]}
            for samples, per_layer in row[where].items():
                draws = row["particles"][samples]
                assert len(per_layer) == 2 and all(0 < e <= m * (1 + 1e-4) for e, m in zip(per_layer, draws)), (where, per_layer)
        assert row["solve"]["converged"]
    assert deep_speed.make_figures(results, str(tmp_path))[0].is_file()
