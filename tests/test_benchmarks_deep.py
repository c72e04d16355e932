"""Slow smoke tests of the deep benchmarks (--quick, end to end): the JSON each writes and its figures."""

import json

import pytest



@pytest.mark.slow
def test_deep_digits_writes_alignment_noise_floor_and_mean_squared_entries(tmp_path):
    from experiments import deep_digits

    out = tmp_path / "deep_digits.json"
    deep_digits.main(["--quick", "--out", str(out), "--figure", str(tmp_path / "deep.png"), "--runs", str(tmp_path / "runs")])
    results = json.loads(out.read_text())
    for layer in ("layer1", "layer2"):
        assert 0.5 < results["alignment"][layer] <= 1.0 + 1e-12
        assert 0.5 < results["alignment_half_sets"][layer] <= 1.0 + 1e-12
        assert results["widths"][-1]["distance_noise_floor"][layer] > 0
        assert results["learned_part"][layer]["nngp"] == {"distance": 1.0, "alignment": 0.0}
        assert results["learned_part"][layer]["theory"]["distance"] >= 0 and results["learned_part"][layer]["distance_floor"] > 0
        assert results["mean_sq_entries"][layer]["theory"] > 0 and results["mean_sq_entries"][layer]["networks"] > 0
    assert results["quick"] and [row["width"] for row in results["widths"]] == [64, 256]
    assert deep_digits.make_figures(results, str(tmp_path))[0].is_file()


@pytest.mark.slow
def test_deep_speed_quick_writes_finite_positive_timings_and_ess(tmp_path):
    """``deep_speed --quick`` at two small P: every timing, FLOP count and ESS is finite and positive, the ESS
    of each layer is at most its particle count, the scaling exponent is finite, and the figure redraws."""
    import math

    from benchmarks import deep_speed

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


@pytest.mark.slow
def test_deep_composition_writes_losses_of_gp_theory_and_networks(tmp_path):
    """``deep_composition`` at toy size: losses of GP, two- and three-layer theory and networks (mean and s.e.),
    per-layer kernel comparisons and neuron-overlap laws are written, and the figure redraws."""
    import math

    from experiments import deep_composition

    out = tmp_path / "deep_composition.json"
    deep_composition.main(["--quick", "--train-points", "16", "--test-points", "64", "--steps", "200", "--width", "32",
                           "--num-samples", "1024", "--out", str(out), "--figure", str(tmp_path / "comp.png"),
                           "--runs", str(tmp_path / "runs")])
    results = json.loads(out.read_text())
    for name in ("gp_depth2", "gp_depth3", "mft_depth2", "mft_depth3", "networks_depth2", "networks_depth3"):
        entry = results["losses"][name]
        assert math.isfinite(entry["train"]) and math.isfinite(entry["test"]) and entry["test"] > 0
    for depth, layers in (("depth2", ["layer1"]), ("depth3", ["layer1", "layer2"])):
        assert sorted(results["layers"][depth]) == layers
        for layer in layers:
            entry = results["layers"][depth][layer]
            assert -1.0 - 1e-6 <= entry["alignment"]["theory"] <= 1.0 + 1e-6 and entry["distance"]["theory"] >= 0
            assert entry["overlap"]["theory_sd"] > 0 and entry["overlap"]["networks_sd"] > 0
            assert entry["distance"]["noise_floor"] > 0 and entry["distance"]["ratio_to_floor"] > 0
            assert entry["learned_part"]["nngp"]["distance"] == 1.0 and entry["learned_part"]["theory"]["distance"] >= 0
        assert results["losses"]["networks_" + depth]["test_sem"] >= 0
        assert len(results["losses"]["networks_" + depth]["train_halves"]) == 2
    assert deep_composition.make_figures(results, str(tmp_path))[0].is_file()
    # the theory by resample-move layer laws (--sampler mcmc), one depth
    out = tmp_path / "deep_composition_mcmc.json"
    deep_composition.main(["--quick", "--train-points", "16", "--test-points", "64", "--steps", "200", "--width", "32",
                           "--num-samples", "1024", "--sampler", "mcmc", "--depths", "3", "--beta", "20", "--out", str(out),
                           "--figure", str(tmp_path / "comp_mcmc.png"), "--runs", ""])
    results = json.loads(out.read_text())
    assert results["sampler"] == "mcmc" and sorted(results["theory"]) == ["depth3"]
    assert results["theory"]["depth3"]["converged"] and results["theory"]["depth3"]["sampler"] == "mcmc"


@pytest.mark.slow
def test_deep_solver_methods_quick_reach_one_fixed_point(tmp_path):
    """``deep_solver_methods --quick`` (P = 32, beta = 8): Newton and Anderson (which stalls here and hands
    the stage to Newton-Krylov, said in its message) reach the same fixed point: losses within 1e-3
    relative (tol 1e-5 on the iterate; 2^12 fixed draws, so the same map), free energies within 1e-3."""
    from benchmarks import deep_solver_methods

    out = tmp_path / "methods.json"
    deep_solver_methods.main(["--quick", "--out", str(out)])
    row = json.loads(out.read_text())["rows"][0]
    newton, anderson = row["newton"], row["anderson"]
    assert newton["converged"] and anderson["converged"]
    assert abs(newton["loss"] - anderson["loss"]) <= 1e-3 * newton["loss"]
    assert abs(newton["free_energy"] - anderson["free_energy"]) <= 1e-3 * abs(newton["free_energy"])
    assert "Newton-Krylov from the stage start" in anderson["message"] and row["seconds_ratio_newton_over_anderson"] > 0


@pytest.mark.slow
def test_deep_mcmc_quick_writes_both_samplers_and_the_gelu_margins(tmp_path):
    """``deep_mcmc --quick`` (P = 32): erf at beta 8 and 20 by importance and MCMC (both converge to one fixed
    point, every ESS at most the particle count), the NNGP test loss, and the gelu continuation with a positive
    margin per layer at each beta, falling with beta in layer 2."""
    import math

    from experiments import deep_mcmc

    out = tmp_path / "deep_mcmc.json"
    deep_mcmc.main(["--quick", "--out", str(out)])
    results = json.loads(out.read_text())
    assert [row["beta"] for row in results["erf"]] == [8.0, 20.0]
    for row in results["erf"]:
        assert math.isfinite(row["nngp"]["test_loss"])
        for name in ("importance", "mcmc key 0"):
            entry = row[name]
            assert entry["converged"], entry["message"]
            assert all(0 < e <= results["num_samples"] * (1 + 1e-4) for e in entry["ess"])
            assert math.isfinite(entry["test_loss"]) and math.isfinite(entry["free_energy"])
        # one fixed point: the two samplers' losses agree to 2% (Monte Carlo estimates; measured 0-0.2%)
        assert abs(row["mcmc key 0"]["train_loss"] / row["importance"]["train_loss"] - 1) < 0.02
    gelu = results["gelu_continuation"]
    assert [entry["beta"] for entry in gelu] == [8.0, 13.0]
    assert all(entry["converged"] and all(m > 0 for m in entry["normalizability_margin"]) for entry in gelu)
    # the layer-2 law moves towards the edge of normalizability as beta grows (measured 0.49 -> 0.39)
    assert gelu[1]["normalizability_margin"][1] < gelu[0]["normalizability_margin"][1]
