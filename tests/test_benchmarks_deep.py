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
