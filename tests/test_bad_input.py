"""Malformed configs and inputs, table-driven: each exits with its code and names what is wrong.

Every case runs the CLI in-process (``mft_jax.cli.main``) and asserts the exit code (2: bad input) and
that the message names the offending key or value. Absurd sizes are refused by the memory guards
(``mft_jax.resources``) before anything is allocated.
"""

import numpy as np
import pytest

from mft_jax.cli import main

TASK = {"name": '"continuous_xor"', "quadrature": "6"}
MODEL = {"activation": '"erf"', "sa2": "1.0", "sw2": "1.0", "beta": "5.0"}
SOLVER = {"sampler": '"grid"', "grid_size": "24", "max_iter": "30"}
TRAIN = {"width": "8", "steps": "10", "optimizer": '"langevin"', "step_size": "0.01", "num_seeds": "1"}


def render(sections: dict) -> str:
    lines = []
    for name, entries in sections.items():
        if entries is None:
            continue
        lines.append(f"[{name}]")
        lines += [f"{key} = {value}" for key, value in entries.items() if value is not None]
    return "\n".join(lines) + "\n"


def config(job="solve", task=None, model=None, solver=None, train=None, extra=""):
    sections = {"task": {**TASK, **(task or {})}, "model": {**MODEL, **(model or {})}}
    if job == "solve":
        sections["solver"] = {**SOLVER, **(solver or {})}
    else:
        sections["train"] = {**TRAIN, **(train or {})}
    return render(sections) + extra


CASES = [
    # (id, job, config text, expected text in the message)
    ("unknown model key", "solve", config(model={"betta": "1.0"}), "betta"),
    ("negative beta", "solve", config(model={"beta": "-1.0"}), "beta"),
    ("beta as text", "solve", config(model={"beta": '"hot"'}), "beta"),
    ("beta nan", "solve", config(model={"beta": "nan"}), "beta"),
    ("beta inf", "solve", config(model={"beta": "inf"}), "beta"),
    ("zero sa2", "solve", config(model={"sa2": "0.0"}), "sa2"),
    ("boolean sw2", "solve", config(model={"sw2": "true"}), "sw2"),
    ("unknown activation", "solve", config(model={"activation": '"softmax"'}), "softmax"),
    ("unknown scaling", "solve", config(model={"scaling": '"ntk"'}), "scaling"),
    ("unknown penalty", "solve", config(model={"penalty": '{name = "quartic", gamma = 1.0}'}), "penalty"),
    ("negative penalty gamma", "solve", config(model={"penalty": '{name = "sextic", gamma = -1.0}'}), "gamma"),
    ("unknown task", "solve", config(task={"name": '"nope"'}), "nope"),
    ("task without name", "solve", config(task={"name": None}), "name"),
    ("zero quadrature", "solve", config(task={"quadrature": "0"}), "quadrature"),
    ("fractional quadrature", "solve", config(task={"quadrature": "1.5"}), "quadrature"),
    ("absurd quadrature", "solve", config(task={"quadrature": "100000"}), "quadrature"),
    ("two data sizes", "solve", config(task={"samples": "100"}), "quadrature"),
    ("unknown sampler", "solve", config(solver={"sampler": '"hmc"'}), "hmc"),
    ("absurd grid", "solve", config(solver={"grid_size": "100000"}), "grid_size"),
    ("tiny grid", "solve", config(solver={"grid_size": "2"}), "grid_size"),
    ("negative grid extent", "solve", config(solver={"grid_extent": "-1.0"}), "grid_extent"),
    ("damping above 1", "solve", config(solver={"damping": "1.5"}), "damping"),
    ("negative anderson", "solve", config(solver={"anderson": "-1"}), "anderson"),
    ("zero tol", "solve", config(solver={"tol": "0.0"}), "tol"),
    ("zero max_iter", "solve", config(solver={"max_iter": "0"}), "max_iter"),
    ("unknown init", "solve", config(solver={"init": '"random"'}), "init"),
    ("unknown normalizability", "solve", config(solver={"normalizability": '"maybe"'}), "normalizability"),
    ("beta_start above beta", "solve", config(solver={"beta_start": "10.0"}), "beta_start"),
    ("absurd importance draws", "solve", config(solver={"sampler": '"importance"', "num_samples": "100000000000"}), "num_samples"),
    ("absurd deep importance draws", "solve", config(model={"depth": "3"}, solver={"sampler": '"importance"', "num_samples": "100000000000"}),
     "lower num_samples to at most"),
    ("absurd mcmc chains", "solve", config(solver={"sampler": '"mcmc"', "num_chains": "100000000000"}), "num_chains"),
    ("auto as text", "solve", config(solver={"auto": '"yes"'}), "auto"),
    ("unknown section", "solve", config(extra="[solverr]\ntol = 1.0\n"), "solverr"),
    ("invalid toml", "solve", config() + "[model\n", "not valid TOML"),
    ("zero width", "train", config("train", train={"width": "0"}), "width"),
    ("absurd seeds x width", "train", config("train", train={"width": "100000", "num_seeds": "100000"}), "num_seeds"),
    ("unknown optimizer", "train", config("train", train={"optimizer": '"lbfgs"'}), "lbfgs"),
    ("negative step size", "train", config("train", train={"step_size": "-0.1"}), "step_size"),
]


@pytest.mark.parametrize("job, text, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_malformed_config_exits_2_naming_the_key(tmp_path, capsys, job, text, expected):
    path = tmp_path / "config.toml"
    path.write_text(text)
    code = main([job, str(path), "--out", str(tmp_path / "out")] + (["--no-progress"] if job == "solve" else []))
    message = capsys.readouterr().err
    assert code == 2, message
    assert expected in message, message


def test_missing_config_file(tmp_path, capsys):
    assert main(["solve", str(tmp_path / "absent.toml"), "--out", str(tmp_path / "out")]) == 2
    assert "absent.toml" in capsys.readouterr().err


def test_unwritable_output_is_refused_before_the_run(tmp_path, capsys):
    path = tmp_path / "config.toml"
    path.write_text(config())
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    assert main(["solve", str(path), "--out", str(blocker / "out"), "--no-progress"]) == 2
    assert "--out" in capsys.readouterr().err


def test_an_earlier_run_survives_a_failed_one(tmp_path, capsys):
    """Outputs are written to a temporary name and renamed: a run refused later leaves the earlier files whole."""
    out = tmp_path / "out"
    good = tmp_path / "good.toml"
    good.write_text(config())
    assert main(["solve", str(good), "--out", str(out), "--no-progress"]) == 0
    before = (out / "solution.json").read_bytes()
    bad = tmp_path / "bad.toml"
    bad.write_text(config(model={"beta": "-1.0"}))
    assert main(["solve", str(bad), "--out", str(out), "--no-progress"]) == 2
    assert (out / "solution.json").read_bytes() == before
    assert not list(out.glob("*.tmp*"))


@pytest.mark.parametrize("problem, expected", [("nan", "NaN/inf"), ("missing", "path"), ("shape", "x")])
def test_bad_npz_data(tmp_path, capsys, problem, expected):
    x = np.random.default_rng(0).normal(size=(10, 2))
    y = x[:, :1] * x[:, 1:]
    if problem == "nan":
        x[3, 1] = np.nan
    if problem == "shape":
        x = x[:, :, None]
    path = tmp_path / "data.npz"
    if problem != "missing":
        np.savez(path, x=x, y=y)
    text = config(task={"name": '"npz"', "quadrature": None, "path": f'"{path}"'})
    config_path = tmp_path / "config.toml"
    config_path.write_text(text)
    assert main(["solve", str(config_path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert expected in capsys.readouterr().err
