"""``mft-jax solve``: files written, exit codes, errors in words."""

import json

import numpy as np
import pytest

from mft_jax.cli import main

TINY = """
[task]
name = "continuous_xor"
quadrature = 6

[model]
activation = "ramp"
beta = 5.0

[solver]
sampler = "{sampler}"
grid_size = 24
num_samples = 2000
tol = 1e-5
{extra}
"""


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


def test_solve_writes_solution_neurons_and_background(tmp_path):
    out = tmp_path / "run"
    assert main(["solve", write(tmp_path, TINY.format(sampler="grid", extra="")), "--out", str(out), "--no-progress"]) == 0
    solution = json.loads((out / "solution.json").read_text())
    assert solution["converged"] is True
    for key in ("iterations", "loss", "free_energy", "history", "diagnostics", "config", "meta"):
        assert key in solution
    assert solution["config"]["solver"]["grid_size"] == 24 and solution["config"]["model"]["beta"] == 5.0
    assert len(solution["history"]["change"]) == solution["iterations"] + 1
    neurons = np.load(out / "neurons.npz")
    sizes = solution["diagnostics"]["sampler"]["nodes_per_axis"]  # 24 x 24, or the automatic re-grid's ("actions")
    assert (sizes == [24, 24]) == (not solution["actions"])
    assert neurons["w"].shape == (sizes[0] * sizes[1], 2)
    np.testing.assert_allclose(neurons["weight"].sum(), 1.0, rtol=1e-5)  # float32 softmax
    background = np.load(out / "background.npz")
    assert background["x"].shape == (36, 2) and background["residual"].shape == (36, 1)
    np.testing.assert_allclose(0.5 * np.sum(background["q"][:, None] * background["residual"] ** 2), solution["loss"], rtol=1e-5)


def test_newton_from_the_config_reaches_the_anderson_fixed_point(tmp_path):
    """``[solver] newton = true``: every step is Newton's, and the loss is Anderson's (1e-5 relative; the two
    differ at the level of tol)."""
    results = {}
    for name, extra in (("anderson", ""), ("newton", "newton = true")):
        out = tmp_path / name
        assert main(["solve", write(tmp_path, TINY.format(sampler="grid", extra=extra)), "--out", str(out), "--no-progress"]) == 0
        results[name] = json.loads((out / "solution.json").read_text())
    assert set(results["newton"]["history"]["step"]) - {"start"} == {"newton"}  # "start": after a re-grid, if any
    assert "newton" not in results["anderson"]["history"]["step"]
    np.testing.assert_allclose(results["newton"]["loss"], results["anderson"]["loss"], rtol=1e-5)


def test_importance_sampler_runs(tmp_path):
    out = tmp_path / "run"
    assert main(["solve", write(tmp_path, TINY.format(sampler="importance", extra="")), "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "solution.json").read_text())["diagnostics"]["ess"] > 100


def test_unknown_key_exits_2_naming_it(tmp_path, capsys):
    code = main(["solve", write(tmp_path, TINY.format(sampler="grid", extra="gridsize = 3")), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "gridsize" in capsys.readouterr().err


def test_unknown_sampler_exits_2(tmp_path, capsys):
    assert main(["solve", write(tmp_path, TINY.format(sampler="metropolis", extra="")), "--out", str(tmp_path / "o")]) == 2
    assert "grid, importance, mcmc" in capsys.readouterr().err


def test_non_normalizable_exits_3_in_words(tmp_path, capsys):
    text = """
[task]
name = "linear_teacher"
teacher = [3.0]
quadrature = 3

[model]
activation = "linear"
beta = 100.0

[solver]
grid_size = 16
"""
    assert main(["solve", write(tmp_path, text), "--out", str(tmp_path / "o"), "--no-progress"]) == 3
    err = capsys.readouterr().err
    assert ">= 1 along u" in err and "weights run away" in err


def test_square_network_is_refused_unless_the_metastable_law_is_asked_for(tmp_path, capsys):
    text = """
[task]
name = "modular_addition"
modulus = 5

[model]
activation = "square"
beta = 2.0

[solver]
sampler = "importance"
num_samples = 4096
max_iter = 50
{extra}
"""
    out = str(tmp_path / "o")
    assert main(["solve", write(tmp_path, text.format(extra="")), "--out", out, "--no-progress"]) == 3
    assert "t^4" in capsys.readouterr().err  # the quartic runaway, in words
    metastable = text.format(extra='normalizability = "metastable"')
    assert main(["solve", write(tmp_path, metastable), "--out", out, "--no-progress"]) == 0  # converges in the well
    solution = json.loads((tmp_path / "o" / "solution.json").read_text())
    assert solution["converged"] and solution["config"]["solver"]["normalizability"] == "metastable"
    assert solution["diagnostics"]["ess"] > 1000  # the prior draws stay in the well: the estimate is usable


def test_not_converged_exits_1_with_hint(tmp_path, capsys):
    text = TINY.format(sampler="grid", extra="max_iter = 1\nanderson = 0\ndamping = 0.1")
    assert main(["solve", write(tmp_path, text), "--out", str(tmp_path / "o"), "--no-progress"]) == 1
    assert "Hint" in capsys.readouterr().err


DEEP = """
[task]
name = "linear_teacher"
teacher = [1.0, -0.5]
quadrature = 3

[model]
depth = 3
activation = "erf"
beta = 5.0
{model}

[solver]
sampler = "{sampler}"
num_samples = 4096
tol = 1e-5
"""


def _deep_importance_reference(tmp_path):
    """The depth-3 solve at beta = 20 by importance layers; returns (solution.json, kernels.npz, the config maker)."""
    reference = tmp_path / "importance"
    strong = lambda sampler: DEEP.format(sampler=sampler, model="").replace("beta = 5.0", "beta = 20.0")  # noqa: E731
    assert main(["solve", write(tmp_path, strong("importance")), "--out", str(reference), "--no-progress"]) == 0
    return json.loads((reference / "solution.json").read_text()), np.load(reference / "kernels.npz"), strong


def test_deep_solve_writes_every_layer_kernel(tmp_path):
    """Importance layers write every layer's kernel, consistent with the loss, at a fixed point that learnt (power:
    its loss is more than 10% below the NNGP start's)."""
    theirs, kernels, _ = _deep_importance_reference(tmp_path)
    assert theirs["converged"] is True and theirs["config"]["model"]["depth"] == 3
    assert kernels["phi_1"].shape == (9, 9) and kernels["phi_2"].shape == (9, 9) and "phi_3" not in kernels
    np.testing.assert_allclose(0.5 * np.sum(kernels["q"][:, None] * kernels["residual"] ** 2), theirs["loss"], rtol=1e-5)
    # the fixed point learnt: its residual is below the NNGP's
    assert theirs["loss"] < 0.9 * 0.5 * np.sum(kernels["q"][:, None] * kernels["y"] ** 2)
    assert abs(theirs["history"]["loss"][0] / theirs["loss"] - 1) > 0.1


@pytest.mark.slow  # ~20 s on 2 cores (default-suite budget); the mcmc layer sampler's physics is in tests/test_deep_mcmc.py
def test_deep_solve_by_mcmc_reaches_the_importance_fixed_point(tmp_path):
    """``[solver] sampler = "mcmc"`` (particles per layer: ``num_chains``) with ``method = "newton"`` reaches the
    fixed point importance sampling reaches at beta = 20 (losses within 2%: both are Monte Carlo estimates with
    1024 and 4096 draws; measured 0.14% apart), while the NNGP start's loss is more than 10% away (power)."""
    theirs, _, strong = _deep_importance_reference(tmp_path)
    config = strong("mcmc") + 'num_chains = 1024\nmcmc_steps = 20\nmethod = "newton"\n'
    out = tmp_path / "mcmc"
    assert main(["solve", write(tmp_path, config), "--out", str(out), "--no-progress"]) == 0
    ours = json.loads((out / "solution.json").read_text())
    assert ours["converged"] and ours["config"]["solver"]["method"] == "newton"
    assert np.load(out / "kernels.npz")["phi_2"].shape == (9, 9)
    assert abs(ours["loss"] / theirs["loss"] - 1) < 0.02
    assert abs(theirs["history"]["loss"][0] / theirs["loss"] - 1) > 0.1


def test_deep_settings_that_do_not_apply_exit_2_naming_them(tmp_path, capsys):
    assert main(["solve", write(tmp_path, DEEP.format(sampler="metropolis", model="")), "--out", str(tmp_path / "a"), "--no-progress"]) == 2
    assert "not available for deep nets; allowed: grid, importance, gaussian, mcmc" in capsys.readouterr().err
    bad_method = DEEP.format(sampler="importance", model="") + 'method = "bisection"\n'
    assert main(["solve", write(tmp_path, bad_method), "--out", str(tmp_path / "c"), "--no-progress"]) == 2
    assert "method = 'bisection' is unknown; allowed: newton, anderson, damped" in capsys.readouterr().err
    two_layer = DEEP.format(sampler="grid", model="").replace("depth = 3", "depth = 2") + 'method = "newton"\n'
    assert main(["solve", write(tmp_path, two_layer), "--out", str(tmp_path / "d"), "--no-progress"]) == 2
    assert "method = 'newton' is unknown for a two-layer net; allowed: anderson, damped, ascent" in capsys.readouterr().err
    penalised = DEEP.format(sampler="importance", model='penalty = {name = "sextic", gamma = 0.1}')
    assert main(["solve", write(tmp_path, penalised), "--out", str(tmp_path / "b"), "--no-progress"]) == 2
    assert "deep nets take Gaussian priors" in capsys.readouterr().err
