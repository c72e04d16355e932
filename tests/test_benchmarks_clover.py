"""The clover benchmark, `make demo` and `make figures`: config handling, summaries, figures, smoke runs."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from mft_jax.errors import ConfigError

from experiments import clover, demo, figures
from experiments._common import CONFIGS


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- config


def test_config_inherits_the_theory_config_and_overrides_key_by_key():
    config = clover.load_config(CONFIGS / "clover_demo.toml")
    # from configs/clover.toml (not repeated in the demo config)
    assert config["task"]["name"] == "continuous_xor"
    assert config["model"]["activation"] == "ramp" and config["model"]["beta"] == 50.0
    assert config["solver"]["sampler"] == "grid"
    # overridden by the demo config
    assert config["task"]["quadrature"] == 16
    assert config["solver"]["grid_size"] == 144
    assert config["networks"]["widths"] == [512] and config["foreground"]["num_neurons"] == 512


@pytest.mark.parametrize("config_name", ["clover_benchmark.toml", "clover_quick.toml", "clover_demo.toml"])
def test_shipped_configs_are_valid(config_name):
    config = clover.load_config(CONFIGS / config_name)
    assert len(config["networks"]["widths"]) == len(config["networks"]["seeds"])


@pytest.mark.parametrize(
    "text, words",
    [
        ("[networks]\nwidht = [1]\n", "widht"),
        ("[networks]\nwidths = [64, 256]\nseeds = [1]\n", "one count per width"),
        ("[networks]\nwidths = [64, -1]\nseeds = [1, 1]\n", "widths"),
        ("[networks]\naverage_from = 1.5\n", "average_from"),
        ("[compare]\nrepeats = 1\n", "repeats"),
        ("[foreground]\nbackground = 'mean'\n", "background"),
        ("[foreground]\naverage_steps = 5000\n", "average_steps"),
        ("[foreground]\nnum_neurons = 8192\n", "num_neurons"),
        ("[model]\nactivation = 'no_such_activation'\n", "no_such_activation"),
        ("[plots]\nx = 1\n", "[plots]"),
        ("[benchmark]\ntheory = 'configs/nowhere.toml'\n", "nowhere.toml"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, text, words):
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        clover.load_config(path)


# ----------------------------------------------------------------------------- summaries


def entry(distance, floor, floor_std):
    return {name: clover._entry([distance], floor, floor_std) for name in clover.METRICS}


def test_excess_removes_the_floor_in_quadrature():
    # d^2 = D^2 + floor^2 for the energy distance (module docstring): 5^2 = 4^2 + 3^2
    value = clover._entry([5.0], 3.0, 0.1)
    assert value["excess"] == pytest.approx(4.0, rel=1e-12)
    assert value["ratio_to_floor"] == pytest.approx(5.0 / 3.0, rel=1e-12)
    assert clover._entry([2.0], 3.0, 0.1)["excess"] == 0.0  # below the floor: no measurable excess


def test_width_summary_errors():
    one_seed = clover.width_summary([entry(0.2, 0.1, 0.01)])
    assert one_seed["energy"]["error"] == 0.01  # a single seed: the floor's spread is the sampling spread
    two_seeds = clover.width_summary([entry(0.2, 0.1, 0.01), entry(0.4, 0.1, 0.01)])
    assert two_seeds["energy"]["distance"] == pytest.approx(0.3)
    assert two_seeds["energy"]["error"] == pytest.approx(np.std([0.2, 0.4], ddof=1) / math.sqrt(2))


def test_exponent_fit_recovers_an_exact_power_law():
    widths = [256, 1024, 4096]
    summaries = [
        {name: {"distance": 2.0 * n**-0.5, "error": 0.1 * n**-0.5, "noise_floor": 1.5 * n**-1.0, "noise_floor_std": 0.1 * n**-1.0}
         for name in clover.METRICS}
        for n in widths
    ]
    fits = clover.exponent_fits(widths, summaries)
    for name in clover.METRICS:
        # exact data: the fit is exact to float64 round-off
        assert fits[name]["exponent"] == pytest.approx(-0.5, abs=1e-9)
        assert fits[name]["prefactor"] == pytest.approx(2.0, rel=1e-9)
        assert fits[name]["floor_exponent"] == pytest.approx(-1.0, abs=1e-9)
    assert clover.exponent_fits([512], summaries[:1]) == {}  # one width: nothing to fit


def test_theory_density_round_trip():
    import jax.numpy as jnp

    from mft_jax.neurons import NeuronLaw

    axis = np.linspace(-1.0, 1.0, 5)
    w = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    log_weight = -np.sum((w - 0.3) ** 2, axis=1)
    law = NeuronLaw(jnp.asarray(w), jnp.asarray(log_weight))
    density = clover._theory_density(law, 5)
    back = clover._law_from_density(density)
    np.testing.assert_allclose(np.asarray(back.w), w, atol=1e-6)  # axis stored to 6 decimals
    np.testing.assert_allclose(np.asarray(back.weights()), np.asarray(law.weights()), rtol=1e-3)  # weights stored to 4 digits


def test_subsample_draws_distinct_neurons():
    import jax
    import jax.numpy as jnp

    from mft_jax.neurons import NeuronLaw

    law = NeuronLaw.from_samples(jnp.arange(20.0).reshape(10, 2), jnp.arange(10.0)[:, None])
    part = clover.subsample(jax.random.key(0), law, 6)
    rows = {tuple(map(float, row)) for row in np.asarray(part.w)}
    assert len(rows) == 6 and rows <= {tuple(map(float, row)) for row in np.asarray(law.w)}
    np.testing.assert_array_equal(np.asarray(part.a)[:, 0] * 2, np.asarray(part.w)[:, 0])  # a stays with its w
    with pytest.raises(ConfigError, match="cannot take 11"):
        clover.subsample(jax.random.key(0), law, 11)


@pytest.mark.slow  # default-suite budget: moved to make test-slow (2026-12-01, suite 12:19 on this machine)
def test_training_in_segments_is_the_uninterrupted_run():
    import jax

    from mft_jax import TwoLayer, make_data
    from mft_jax.train.joint import langevin_optimizer

    data = make_data("continuous_xor", quadrature=4)
    model = TwoLayer("ramp", 1.0, 1.0, 5.0)
    args = (jax.random.key(3), model, 8, data, langevin_optimizer(model, 0.05), 30)
    whole, none = clover.train_with_snapshots(*args, [], num_seeds=2, chunk=7, progress=False)
    parts, snapshots = clover.train_with_snapshots(*args, [12], num_seeds=2, chunk=7, progress=False)
    assert none == [] and len(snapshots) == 2
    for name in ("a", "w"):  # exact resume: same arithmetic, bit for bit up to XLA's fusion choices
        np.testing.assert_allclose(np.asarray(parts.params[name]), np.asarray(whole.params[name]), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(snapshots[-1][name]), np.asarray(parts.params[name]))
        assert not np.allclose(np.asarray(snapshots[0][name]), np.asarray(snapshots[1][name]))  # distinct times


# ----------------------------------------------------------------------------- figures


def synthetic_results(widths=(64, 256)):
    rng = np.random.default_rng(0)
    axis = np.linspace(-2.0, 2.0, 21)
    w = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1)
    density = np.exp(-np.sum(w**2, axis=-1))
    summary = {name: {"distance": 0.1, "error": 0.01, "noise_floor": 0.09, "noise_floor_std": 0.01, "excess": 0.04}
               for name in clover.METRICS}
    return {
        "name": "clover_synthetic",
        "theory": {"density": {"axis": axis.tolist(), "weights": (density / density.sum()).tolist()}},
        "networks": [{"width": n, "summary": {k: {**v, "distance": v["distance"] * (n / 64) ** -0.5} for k, v in summary.items()}}
                     for n in widths],
        "clouds": {key: rng.normal(size=(50, 2)).tolist() for key in ("network", "foreground", "gp_foreground", "gp_background")}
        | {"network_width": widths[-1]},
    }


def test_make_figures_from_json_content_only(tmp_path):
    results = json.loads(json.dumps(synthetic_results()))  # what make figures reads back
    paths = clover.make_figures(results, tmp_path)
    names = sorted(Path(p).name for p in paths)
    assert names == sorted(f"clover_synthetic_{kind}.png" for kind in ("density", "foreground", "foreground_gp", "distance"))
    for path in paths:
        assert Path(path).stat().st_size > 10_000  # a drawn PNG, not an empty canvas


def test_make_figures_one_width_has_no_distance_plot(tmp_path):
    paths = clover.make_figures(synthetic_results(widths=(512,)), tmp_path)
    assert not any("distance" in p for p in paths) and len(paths) == 3


def test_figures_redraws_from_json_and_skips_what_is_absent(tmp_path, capsys):
    results_dir, figures_dir = tmp_path / "results", tmp_path / "figures"
    results_dir.mkdir()
    results = synthetic_results()
    results["name"] = "clover"
    (results_dir / "clover").mkdir()
    (results_dir / "clover" / "main.json").write_text(json.dumps(results))
    status, paths = figures.redraw("clover", results_dir, figures_dir)
    assert status == "redrawn" and len(paths) == 4 and all(Path(p).is_file() for p in paths)
    assert figures.redraw("not_a_benchmark", results_dir, figures_dir) == ("skipped: not in this checkout", [])
    # a missing JSON with --no-run is skipped, not run
    assert figures.main(["--only", "clover", "--no-run", "--results", str(tmp_path / "empty"), "--figures", str(figures_dir)]) == 0
    assert "missing (--no-run)" in capsys.readouterr().out


# ----------------------------------------------------------------------------- smoke runs (slow)


@pytest.mark.slow
def test_clover_quick_end_to_end(tmp_path):
    assert clover.main(["--quick", "--results", str(tmp_path), "--figures", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "clover" / "quick.json").read_text())
    assert results["theory"]["converged"]
    assert {"config", "seed", "versions", "git_commit"} <= set(results["meta"])
    assert [r["width"] for r in results["networks"]] == results["config"]["networks"]["widths"]
    for record in results["networks"]:
        for name in clover.METRICS:
            value = record["summary"][name]
            assert math.isfinite(value["distance"]) and value["noise_floor"] > 0
    assert set(results["fits"]) == set(clover.METRICS)
    assert len(list(tmp_path.glob("clover_quick_*.png"))) == 4


@pytest.mark.slow
def test_demo_runs_and_reports_a_failing_stage(tmp_path, capsys):
    assert demo.main(["--config", str(clover.QUICK_CONFIG), "--results", str(tmp_path), "--figures", str(tmp_path)]) == 0
    assert "figures:" in capsys.readouterr().out
    bad = write(tmp_path / "bad.toml", "[benchmark]\nname = 'bad'\n[model]\nactivation = 'no_such_activation'\n")
    assert demo.main(["--config", str(bad), "--results", str(tmp_path), "--figures", str(tmp_path)]) == 2
