"""Hostile input through the CLI: a generated table of bad configs and files, each exit 2 with one line naming
what is wrong and no traceback; outputs written as a set behind a lock; SIGINT / SIGTERM stop cleanly.

The table (``CASES``, >= 150 entries) mutates small valid configs of every job, key by key over each section's
schema (``dataclasses.fields``): a wrong type for every key, a value out of range for most, plus unknown
sections and keys, files in other encodings, corrupt / truncated / garbage ``.npz`` and ``.json`` inputs,
arrays of the wrong rank, length or dtype, NaN in a neuron cloud, and bad arguments. Every case runs
in-process (``mft_jax.cli.main``) and fails before any real work, so the table takes seconds; only the
signal tests start a process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import typing
import zipfile

import numpy as np
import pytest

from mft_jax import io
from mft_jax.cli import main
from mft_jax.cli.config import ModelConfig
from mft_jax.cli.foreground import ForegroundConfig
from mft_jax.cli.outputs import MARKER, checkpoint_dir
from mft_jax.cli.solve import SolverConfig
from mft_jax.cli.train import TrainConfig
from mft_jax.data import make_dataset
from mft_jax.model import TwoLayer
from mft_jax.neurons import NeuronLaw

TASK = {"name": '"continuous_xor"', "quadrature": "4"}
MODEL = {"activation": '"erf"', "beta": "2.0"}
BASE = {
    "solve": {"task": TASK, "model": MODEL, "solver": {"grid_size": "16", "max_iter": "5"}},
    "train": {"task": TASK, "model": MODEL, "train": {"width": "4", "steps": "2", "step_size": "0.01"}},
    "foreground": {"task": TASK, "model": MODEL, "foreground": {"num_neurons": "4", "steps": "2", "step_size": "0.01"}},
}
SCHEMAS = {"solver": SolverConfig, "train": TrainConfig, "foreground": ForegroundConfig, "model": ModelConfig}
JOB_OF = {"solver": "solve", "train": "train", "foreground": "foreground", "model": "solve"}

# wrong types for each annotation (TOML literals); every one must be refused naming the key
WRONG_TYPES = {
    int: ['"7"', "1.5", "true", "[1]", "18446744073709551616"],
    float: ['"0.5"', "true", "[0.5]", "nan", "inf"],
    str: ["1", "true", "[\"a\"]"],
    bool: ["1", '"yes"'],
    dict: ["1", '"sextic"'],
}
# values of the right type out of range (each names its key in the refusal)
OUT_OF_RANGE = {
    "solver": {"sampler": '"hmc"', "grid_size": "2", "grid_extent": "0.0", "num_samples": "1", "num_chains": "0",
               "mcmc_steps": "0", "step_size": "-0.1", "num_levels": "0", "min_inverse_temperature": "0.0", "pool": "0",
               "init": '"zero"', "tol": "0.0", "max_iter": "0", "damping": "1.5", "anderson": "-1", "continuation": "-1",
               "beta_start": "1e9", "normalizability": '"maybe"', "method": '"newton"', "seed": "-9223372036854775809"},
    "model": {"activation": '"softmax"', "sa2": "0.0", "sw2": "-1.0", "beta": "0.0", "scaling": '"ntk"',
              "penalty": '{name = "quartic", gamma = 1.0}', "depth": "1", "sW2": "0.0"},
    "train": {"width": "0", "steps": "-1", "optimizer": '"rmsprop"', "step_size": "0.0", "learning_rate": "0.1",
              "weight_decay": "0.1", "num_seeds": "0", "batch_size": "0", "eval": '"test"', "chunk": "0",
              "checkpoint_every": "0", "readout_gibbs_every": "0"},
    "foreground": {"num_neurons": "0", "steps": "-1", "step_size": "0.0", "temperature": "-1.0", "batch_size": "100000",
                   "layer": "2", "burn_in": "1", "checkpoint_every": "0", "chunk": "0"},
}
EXPECT_RANGE = {("solver", "init"): "init", ("solver", "method"): "method", ("model", "depth"): "depth",
                ("solver", "min_inverse_temperature"): "min_inverse_temperature", ("train", "learning_rate"): "learning_rate",
                ("train", "weight_decay"): "weight_decay", ("model", "penalty"): "penalty", ("solver", "sampler"): "hmc",
                ("model", "activation"): "softmax", ("train", "optimizer"): "rmsprop"}


def render(sections: dict) -> str:
    lines = []
    for name, entries in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {value}" for key, value in entries.items() if value is not None]
    return "\n".join(lines) + "\n"


def mutate(job: str, section: str, key: str, value: str) -> str:
    sections = {name: dict(entries) for name, entries in BASE[job].items()}
    sections.setdefault(section, {})[key] = value
    return render(sections)


def _kinds(annotation) -> list[type]:
    args = typing.get_args(annotation)
    kinds = [a for a in (args or (annotation,)) if a is not type(None)]
    return [typing.get_origin(k) or k for k in kinds]


def _schema_cases() -> list[tuple]:
    cases = []
    for section, schema in SCHEMAS.items():
        job = JOB_OF[section]
        hints = typing.get_type_hints(schema)
        for field in dataclasses.fields(schema):
            kinds = _kinds(hints[field.name])
            for kind in kinds:
                for value in WRONG_TYPES.get(kind, []):
                    if (kind is int and float in kinds and value == "1.5") or (str in kinds and value.startswith('"')):
                        continue  # a float where `float | ...` is allowed; a string where a str is allowed
                    if kind is str and int in kinds and value == "1":
                        continue
                    cases.append((f"{section}.{field.name}={value}", job, mutate(job, section, field.name, value), field.name))
            if field.name in OUT_OF_RANGE[section]:
                value = OUT_OF_RANGE[section][field.name]
                expected = EXPECT_RANGE.get((section, field.name), field.name)
                cases.append((f"{section}.{field.name} range {value}", job, mutate(job, section, field.name, value), expected))
    return cases


TASK_CASES = [  # ([task] entries replacing the base's, expected text)
    ({"name": '"nope"'}, "nope"), ({"name": "3"}, "name"), ({"quadrature": "0"}, "quadrature"),
    ({"quadrature": "true"}, "quadrature"), ({"quadrature": "1.5"}, "quadrature"), ({"quadrature": '"4"'}, "quadrature"),
    ({"quadrature": "100000"}, "quadrature"), ({"quadrature": "99999999999999999999"}, "64 bits"),
    ({"samples": "10"}, "quadrature"), ({"quadrature": None, "samples": "-3"}, "samples"),
    ({"quadrature": None, "n_train": "[5]"}, "n_train"), ({"seed": '"0"'}, "seed"), ({"seed": "1.5"}, "seed"),
    ({"colour": '"red"'}, "colour"), ({"path": '"x.npz"'}, "path"),
    ({"name": '"teacher_student"', "d": '"8"'}, "d"), ({"name": '"teacher_student"', "d": "1.5"}, "d"),
    ({"name": '"teacher_student"', "d": "4", "teacher": '["a", "b"]'}, "teacher"),
    ({"name": '"teacher_student"', "d": "2", "teacher": "[0.0, 0.0]"}, "teacher"),
    ({"name": '"teacher_student"', "eps": '"big"'}, "eps"), ({"name": '"teacher_student"', "d": "1000000000000"}, "d"),
    ({"name": '"linear_teacher"', "teacher": "[]"}, "teacher"), ({"name": '"linear_teacher"', "teacher": "1.0"}, "teacher"),
    ({"name": '"modular_addition"', "quadrature": None, "modulus": "1"}, "modulus"),
    ({"name": '"modular_addition"', "quadrature": None, "modulus": "100000"}, "modulus"),
    ({"name": '"modular_addition"', "quadrature": None, "modulus": "true"}, "modulus"),
    ({"name": '"digits"', "quadrature": None, "classes": "[0.5, 1]"}, "classes"),
    ({"name": '"digits"', "quadrature": None, "classes": "[3, 3]"}, "classes"),
    ({"name": '"npz"', "quadrature": None}, "path"), ({"name": '"npz"', "quadrature": None, "path": "3"}, "path"),
]

STRUCTURE_CASES = [  # (id, job, config text, expected)
    ("unknown section", "solve", render({**BASE["solve"], "optimizer": {"lr": "1"}}), "[optimizer]"),
    ("section as a value", "solve", 'model = 3\n' + render({"task": TASK}), "model"),
    ("unknown solver key", "solve", mutate("solve", "solver", "grid_sizes", "16"), "grid_sizes"),
    ("unknown train key", "train", mutate("train", "train", "epochs", "3"), "epochs"),
    ("missing width", "train", render({"task": TASK, "model": MODEL, "train": {"steps": "2", "step_size": "0.1"}}), "width"),
    ("no task", "solve", render({"model": MODEL}), "name"),
    ("not TOML", "solve", "[task\nname = 1\n", "not valid TOML"),
    ("duplicate key", "solve", render(BASE["solve"]) + "[task]\nname = \"x\"\n", "not valid TOML"),
    ("a date", "solve", mutate("solve", "solver", "seed", "1979-05-27"), "seed"),
    ("a date in task", "solve", mutate("solve", "task", "seed", "07:32:00"), "seed"),
    ("float 1e400", "solve", mutate("solve", "model", "beta", "1e400"), "beta"),
    ("deep two-layer-only job", "train", mutate("train", "model", "depth", "3") .replace('step_size = 0.01', 'step_size = 0.01\noptimizer = "sgd"'), "learning_rate"),
    ("absurd depth", "solve", mutate("solve", "model", "depth", "300"), "depth"),
    ("absurd width", "train", mutate("train", "train", "width", "1000000000000"), "width"),
    ("absurd seeds", "train", mutate("train", "train", "num_seeds", "1000000000000"), "num_seeds"),
    ("absurd neurons", "foreground", mutate("foreground", "foreground", "num_neurons", "100000000000000"), "num_neurons"),
    ("absurd grid", "solve", mutate("solve", "solver", "grid_size", "1000000"), "grid_size"),
    ("absurd chains", "solve", mutate("solve", "solver", "sampler", '"mcmc"').replace("grid_size = 16", "num_chains = 1000000000000"), "num_chains"),
]


def _table() -> list[tuple]:
    cases = _schema_cases()
    for entries, expected in TASK_CASES:
        task = {**TASK, **entries}
        cases.append((f"task {entries}", "solve", render({"task": task, "model": MODEL, "solver": BASE["solve"]["solver"]}), expected))
    return cases + STRUCTURE_CASES


CASES = _table()


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit:  # argparse
        code = exit.code
    return code, capsys.readouterr().err


def assert_refused(code: int, err: str, expected: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mft-jax ") and " error: " in lines[0], err
    assert expected in lines[0], (expected, lines[0])


def job_argv(job: str, config, out, background) -> list:
    extra = ["--background", "gp", "--no-progress"] if job == "foreground" else ["--no-progress"] if job == "solve" else []
    return [job, config, "--out", out, *extra]


def test_the_table_is_large_enough():
    assert len(CASES) + len(FILE_CASES) >= 150, len(CASES) + len(FILE_CASES)


@pytest.mark.parametrize("name, job, text, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_config_exits_2_in_one_line(tmp_path, capsys, name, job, text, expected):
    config = tmp_path / "config.toml"
    config.write_text(text)
    code, err = run_cli(job_argv(job, config, tmp_path / "out", None), capsys)
    assert_refused(code, err, expected)
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]  # nothing left


# ---- files: configs in other encodings, corrupt archives, wrong arrays, bad JSON --------------------------------


def _good_background(directory):
    x = np.random.default_rng(0).normal(size=(6, 2))
    data = make_dataset(x, x[:, :1] * x[:, 1:])
    io.save_background(directory / "background.npz", data, np.asarray(data.y) * 0.5, TwoLayer("erf", beta=2.0))
    return directory


def _good_neurons(path, rng=np.random.default_rng(1), M=8, d=2):
    io.save_neurons(path, NeuronLaw(rng.normal(size=(M, d)).astype(np.float32), np.zeros(M, np.float32),
                                    rng.normal(size=(M, 1)).astype(np.float32)))
    return path


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _neurons(tmp_path, **changes):
    rng = np.random.default_rng(2)
    arrays = {"w": rng.normal(size=(8, 2)), "weight": np.full(8, 1 / 8), "a": rng.normal(size=(8, 1))}
    arrays.update(changes)
    return _write_npz(tmp_path / "bad_neurons.npz", **{k: v for k, v in arrays.items() if v is not None})


def _background(tmp_path, **changes):
    rng = np.random.default_rng(3)
    arrays = {"x": rng.normal(size=(6, 2)), "q": np.full(6, 1 / 6), "y": rng.normal(size=(6, 1)), "residual": rng.normal(size=(6, 1)),
              "model": np.asarray(json.dumps({"activation": "erf", "beta": 2.0}))}
    arrays.update(changes)
    directory = tmp_path / "bad_background"
    directory.mkdir(exist_ok=True)
    _write_npz(directory / "background.npz", **{k: v for k, v in arrays.items() if v is not None})
    return directory


def _truncated(tmp_path, name="neurons.npz"):
    good = _good_neurons(tmp_path / f"good_{name}")
    data = good.read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) // 2])
    return path


def _bad_crc(tmp_path):
    good = _good_neurons(tmp_path / "good.npz")
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as archive:
        info = archive.getinfo("w.npy")
    extra = int.from_bytes(data[info.header_offset + 28: info.header_offset + 30], "little")  # the local header's
    offset = info.header_offset + 30 + len(info.filename.encode()) + extra + info.compress_size - 4  # in w's last value
    data[offset] ^= 0xFF
    path = tmp_path / "crc.npz"
    path.write_bytes(bytes(data))
    return path


def _compare(tmp_path, theory_path, *extra):
    empirical = _good_neurons(tmp_path / "empirical.npz")
    return ["compare", theory_path, empirical, "--out", tmp_path / "cmp", *extra]


def _foreground(tmp_path, background_dir):
    config = tmp_path / "fg.toml"
    config.write_text(render({"foreground": BASE["foreground"]["foreground"]}))
    return ["foreground", config, "--background", background_dir, "--out", tmp_path / "fgout", "--no-progress"]


def _config_bytes(tmp_path, data: bytes):
    path = tmp_path / "enc.toml"
    path.write_bytes(data)
    return ["solve", path, "--out", tmp_path / "out", "--no-progress"]


def _json_beside(tmp_path, text: str | bytes, name="solution.json"):
    directory = tmp_path / "run"
    directory.mkdir()
    _good_neurons(directory / "neurons.npz")
    (directory / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return _compare(tmp_path, directory)


def _resume_with(tmp_path, checkpoint_bytes: bytes | None = None, **arrays):
    out = tmp_path / "run"
    out.mkdir()
    (out / MARKER).write_text("train\n")
    if checkpoint_bytes is not None:
        (out / "checkpoint.npz").write_bytes(checkpoint_bytes)
    else:
        np.savez(out / "checkpoint.npz", **arrays)
    config = tmp_path / "train.toml"
    config.write_text(render(BASE["train"]))
    return ["train", config, "--out", out, "--resume"]


def _npz_task(tmp_path, **arrays):
    path = _write_npz(tmp_path / "data.npz", **arrays) if arrays else tmp_path / "data.npz"
    config = tmp_path / "npz.toml"
    config.write_text(render({"task": {"name": '"npz"', "path": f'"{path}"'}, "model": MODEL, "solver": BASE["solve"]["solver"]}))
    return ["solve", config, "--out", tmp_path / "out", "--no-progress"]


TOML = render(BASE["solve"])
X = np.random.default_rng(4).normal(size=(6, 2))
FILE_CASES = [  # (id, build(tmp_path) -> argv, expected text)
    ("toml utf-16", lambda t: _config_bytes(t, TOML.encode("utf-16")), "UTF-16"),
    ("toml utf-16 without BOM", lambda t: _config_bytes(t, TOML.encode("utf-16-le")), "UTF-16"),
    ("toml utf-32", lambda t: _config_bytes(t, TOML.encode("utf-32")), "UTF-16/UTF-32"),
    ("toml latin-1", lambda t: _config_bytes(t, (TOML + '# caf\u00e9\n').encode("latin-1")), "not UTF-8"),
    ("toml latin-1 in a value", lambda t: _config_bytes(t, TOML.replace("erf", "\u00e9rf").encode("latin-1")), "not UTF-8"),
    ("toml binary", lambda t: _config_bytes(t, bytes(range(256))), "binary"),
    ("toml gzip", lambda t: _config_bytes(t, b"\x1f\x8b\x08\x00" + os.urandom(64)), "enc.toml"),
    ("toml too big", lambda t: _config_bytes(t, b"# " + b"x" * 2_000_000 + b"\n"), "bytes"),
    ("toml nested deep", lambda t: _config_bytes(t, b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n"), "enc.toml"),
    ("config is a directory", lambda t: ["solve", t, "--out", t / "out"], "not a file"),
    ("neurons garbage", lambda t: _compare(t, (t / "n.npz").write_bytes(os.urandom(300)) and t / "n.npz"), "not an .npz"),
    ("neurons empty file", lambda t: _compare(t, (t / "n.npz").write_bytes(b"") or t / "n.npz"), "n.npz"),
    ("neurons truncated", lambda t: _compare(t, _truncated(t)), "corrupt or truncated"),
    ("neurons bad crc", lambda t: _compare(t, _bad_crc(t)), "corrupt or truncated"),
    ("neurons .npy", lambda t: _compare(t, (np.save(t / "n.npy", X), t / "n.npy")[1]), "single .npy"),
    ("neurons pickled", lambda t: _compare(t, _neurons(t, weight=np.array([object()] * 8, dtype=object))), "bad_neurons.npz"),
    ("neurons nan w", lambda t: _compare(t, _neurons(t, w=np.where(np.eye(8, 2) > 0, np.nan, 1.0))), "NaN"),
    ("neurons inf a", lambda t: _compare(t, _neurons(t, a=np.full((8, 1), np.inf))), "NaN/inf"),
    ("neurons nan weight", lambda t: _compare(t, _neurons(t, weight=np.full(8, np.nan))), "weight"),
    ("neurons complex w", lambda t: _compare(t, _neurons(t, w=np.ones((8, 2)) * (1 + 1j))), "complex"),
    ("neurons text w", lambda t: _compare(t, _neurons(t, w=np.full((8, 2), "a"))), "text"),
    ("neurons bool weight", lambda t: _compare(t, _neurons(t, weight=np.ones(8, bool))), "boolean"),
    ("neurons rank-1 w", lambda t: _compare(t, _neurons(t, w=np.ones(8))), "rank"),
    ("neurons rank-3 w", lambda t: _compare(t, _neurons(t, w=np.ones((8, 2, 1)))), "rank"),
    ("neurons short weight", lambda t: _compare(t, _neurons(t, weight=np.full(7, 1 / 7))), "weight"),
    ("neurons negative weight", lambda t: _compare(t, _neurons(t, weight=np.r_[-0.1, np.full(7, 1.1 / 7)])), "negative"),
    ("neurons zero weights", lambda t: _compare(t, _neurons(t, weight=np.zeros(8))), "all weights are 0"),
    ("neurons no weight", lambda t: _compare(t, _neurons(t, weight=None)), "weight"),
    ("neurons no w", lambda t: _compare(t, _neurons(t, w=None)), "must hold arrays w"),
    ("neurons empty", lambda t: _compare(t, _neurons(t, w=np.zeros((0, 2)), weight=np.zeros(0), a=np.zeros((0, 1)))), "at least one"),
    ("neurons edited weight", lambda t: _compare(t, _neurons(t, log_weight=np.zeros(8), weight=np.r_[0.3, np.full(7, 0.1)])), "disagree"),
    ("neurons nan log_weight", lambda t: _compare(t, _neurons(t, log_weight=np.full(8, np.nan))), "log_weight"),
    ("neurons short a", lambda t: _compare(t, _neurons(t, a=np.ones((3, 1)))), "one row per neuron"),
    ("neurons extra array", lambda t: _compare(t, _neurons(t, junk=np.ones(3))), "unexpected"),
    ("neurons other dimension", lambda t: _compare(t, _neurons(t, w=np.ones((8, 3)))), "different dimensions"),
    ("compare missing", lambda t: _compare(t, t / "absent"), "absent"),
    ("compare aw without a", lambda t: _compare(t, _neurons(t, a=None), "--space", "aw"), "readouts"),
    ("compare repeats", lambda t: _compare(t, _good_neurons(t / "g.npz"), "--repeats", "1000000"), "--repeats"),
    ("compare seed", lambda t: _compare(t, _good_neurons(t / "g.npz"), "--seed", "-1"), "--seed"),
    ("compare huge seed", lambda t: _compare(t, _good_neurons(t / "g.npz"), "--seed", str(2**70)), "--seed"),
    ("compare symmetry", lambda t: _compare(t, _good_neurons(t / "g.npz"), "--symmetry", "mirror"), "mirror"),
    ("solution not json", lambda t: _json_beside(t, "{loss: 0.3"), "not JSON"),
    ("solution a list", lambda t: _json_beside(t, "[1, 2]"), "JSON list"),
    ("solution loss text", lambda t: _json_beside(t, '{"loss": "low"}'), "expected a number"),
    ("solution loss bool", lambda t: _json_beside(t, '{"loss": true}'), "expected a number"),
    ("solution utf-16", lambda t: _json_beside(t, '{"loss": 0.1}'.encode("utf-16")), "UTF-16"),
    ("train json latin-1", lambda t: _json_beside(t, '{"final_loss_mean": "\u00e9"}'.encode("latin-1"), "train.json"), "not UTF-8"),
    ("background garbage", lambda t: _foreground(t, (t / "b").mkdir() or ((t / "b" / "background.npz").write_bytes(os.urandom(500)) and t / "b")), "not an .npz"),
    ("background truncated", lambda t: _foreground(t, (t / "b").mkdir() or (_truncated(t / "b", "background.npz") and t / "b")), "corrupt or truncated"),
    ("background missing", lambda t: _foreground(t, t / "nothing"), "no background"),
    ("background complex residual", lambda t: _foreground(t, _background(t, residual=np.ones((6, 1)) * 1j)), "complex"),
    ("background complex x", lambda t: _foreground(t, _background(t, x=np.ones((6, 2)) * (1 + 2j))), "complex"),
    ("background object y", lambda t: _foreground(t, _background(t, y=np.array([[object()]] * 6, dtype=object))), "background.npz"),
    ("background rank-3 x", lambda t: _foreground(t, _background(t, x=np.ones((6, 2, 1)))), "rank"),
    ("background short y", lambda t: _foreground(t, _background(t, y=np.ones((5, 1)))), "y"),
    ("background residual shape", lambda t: _foreground(t, _background(t, residual=np.ones((6, 3)))), "residual"),
    ("background nan residual", lambda t: _foreground(t, _background(t, residual=np.full((6, 1), np.nan))), "NaN"),
    ("background q sum", lambda t: _foreground(t, _background(t, q=np.ones(6))), "sum to 1"),
    ("background no residual", lambda t: _foreground(t, _background(t, residual=None)), "residual"),
    ("background model not json", lambda t: _foreground(t, _background(t, model=np.asarray("{erf"))), "not JSON"),
    ("background model keys", lambda t: _foreground(t, _background(t, model=np.asarray('{"depth": 3}'))), "keys among"),
    ("background model value", lambda t: _foreground(t, _background(t, model=np.asarray('{"beta": "hot"}'))), "beta"),
    ("background model array", lambda t: _foreground(t, _background(t, model=np.arange(3))), "JSON text"),
    ("background batch too big", lambda t: _foreground(t, _good_background(t)) + [], None),  # replaced below
    ("checkpoint garbage", lambda t: _resume_with(t, os.urandom(400)), "not an .npz"),
    ("checkpoint empty", lambda t: _resume_with(t, b""), "checkpoint"),
    ("checkpoint no step", lambda t: _resume_with(t, leaf_0=np.ones(3)), "step"),
    ("checkpoint text step", lambda t: _resume_with(t, step=np.asarray("ten"), leaf_0=np.ones(3)), "step"),
    ("checkpoint negative step", lambda t: _resume_with(t, step=np.asarray(-5), leaf_0=np.ones(3)), "step"),
    ("checkpoint bad fingerprint", lambda t: _resume_with(t, step=np.asarray(1), fingerprint=np.asarray("{oops")), "fingerprint"),
    ("checkpoint other structure", lambda t: _resume_with(t, step=np.asarray(1), leaf_0=np.ones(3)), "state structure"),
    ("resume with nothing", lambda t: ["train", (t / "c.toml").write_text(render(BASE["train"])) and t / "c.toml", "--out", t / "new", "--resume"], "no checkpoint"),
    ("npz task garbage", lambda t: (t / "data.npz").write_bytes(b"PK\x03\x04" + os.urandom(100)) and _npz_task(t), "data.npz"),
    ("npz task missing", lambda t: _npz_task(t), "no file"),
    ("npz task complex", lambda t: _npz_task(t, x=X * 1j, y=X[:, 0]), "complex"),
    ("npz task object", lambda t: _npz_task(t, x=np.array([[object()] * 2] * 6, dtype=object), y=X[:, 0]), "data.npz"),
    ("npz task text y", lambda t: _npz_task(t, x=X, y=np.array(["a"] * 6)), "y"),
    ("npz task y length", lambda t: _npz_task(t, x=X, y=np.ones(5)), "y"),
    ("npz task rank-1 x", lambda t: _npz_task(t, x=X[:, 0], y=X[:, 0]), "x"),
    ("npz task extra", lambda t: _npz_task(t, x=X, y=X[:, 0], z=X), "x, y"),
    ("npz task q negative", lambda t: _npz_task(t, x=X, y=X[:, 0], q=np.r_[-1.0, np.full(5, 0.4)]), "q"),
    ("out is a file", lambda t: ["solve", (t / "c.toml").write_text(TOML) and t / "c.toml", "--out", (t / "f").write_text("x") and t / "f"], "is a file"),
    ("out under a file", lambda t: ["solve", (t / "c.toml").write_text(TOML) and t / "c.toml", "--out", ((t / "f").write_text("x") and t / "f") / "o"], "--out"),
    ("out a foreign directory", lambda t: ["solve", (t / "c.toml").write_text(TOML) and t / "c.toml", "--out", _foreign(t / "home")], "not an mft-jax output"),
    ("out locked by a live run", lambda t: ["solve", (t / "c.toml").write_text(TOML) and t / "c.toml", "--out", t / "o", *_lock(t / "o", os.getppid())], "in use by process"),
    ("bad argument", lambda t: ["solve", "--frobnicate"], None),
    ("background inside out", lambda t: _foreground(t, _good_background((t / "fgout").mkdir() or t / "fgout")), "lies inside --out"),
    ("compare input inside out", lambda t: _compare(t, _good_neurons((t / "cmp").mkdir() or t / "cmp" / "neurons.npz")), "lies inside --out"),
    ("config inside out", lambda t: ["solve", ((t / "o").mkdir() or (t / "o" / "c.toml").write_text(TOML)) and t / "o" / "c.toml", "--out", t / "o"], "lies inside --out"),
]


def _foreign(directory):
    directory.mkdir()
    (directory / "thesis.tex").write_text("years of work")
    return directory


def _lock(out, pid):
    (out.parent / f"{out.name}.lock").write_text(f"{pid}\n")
    return ["--no-progress"]


def _batch_too_big(t):
    background = _good_background(t / "bg")
    config = t / "fg.toml"
    config.write_text(render({"foreground": {**BASE["foreground"]["foreground"], "batch_size": "7"}}))
    return ["foreground", config, "--background", background, "--out", t / "fgout", "--no-progress"]


FILE_CASES = [case for case in FILE_CASES if case[0] not in ("background batch too big", "bad argument")] + [
    ("minibatch above the dataset", lambda t: (t / "bg").mkdir() or _batch_too_big(t), "batch_size = 7 exceeds the 6 points"),
]


@pytest.mark.parametrize("name, build, expected", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_file_exits_2_in_one_line(tmp_path, capsys, name, build, expected):
    argv = build(tmp_path)
    code, err = run_cli(argv, capsys)
    assert_refused(code, err, expected)
    assert not list(tmp_path.glob(".*.tmp-*")) and not list(tmp_path.glob("*.lock")) or name == "out locked by a live run"
    if name == "out a foreign directory":  # refused, and its files untouched
        assert sorted(p.name for p in (tmp_path / "home").iterdir()) == ["thesis.tex"]


def test_bad_arguments_exit_2_without_a_traceback(capsys):
    code, err = run_cli(["solve", "--frobnicate"], capsys)
    assert code == 2 and "Traceback" not in err and "usage" in err


# ---- --debug ------------------------------------------------------------------------------------------------------


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text(mutate("solve", "model", "beta", "-1.0"))
    code, err = run_cli(["solve", config, "--out", tmp_path / "o", "--debug"], capsys)
    assert code == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("mft-jax solve: error:")
    monkeypatch.setenv("MFT_JAX_DEBUG", "1")
    code, err = run_cli(["solve", config, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "Traceback" in err
    monkeypatch.setenv("MFT_JAX_DEBUG", "0")
    code, err = run_cli(["solve", config, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "Traceback" not in err


def test_an_unexpected_exception_is_one_line_with_exit_4(tmp_path, capsys, monkeypatch):
    """A bug (an exception no validation foresaw) is reported in one line, exit 4, never as exit 2 or a traceback."""
    import mft_jax.cli.solve as solve_job

    monkeypatch.setattr(solve_job, "load_toml", lambda *a: {}["boom"])
    code, err = run_cli(["solve", tmp_path / "c.toml", "--out", tmp_path / "o"], capsys)
    assert code == 4 and "Traceback" not in err and "internal error: KeyError" in err and "--debug" in err


# ---- outputs as a set, locks ---------------------------------------------------------------------------------------


TRAIN_TOML = render({"task": TASK, "model": MODEL, "train": {"width": "4", "steps": "6", "step_size": "0.01", "chunk": "2",
                                                             "checkpoint_every": "2"}})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One real (tiny) train run: an output directory to replace, lock and recover."""
    root = tmp_path_factory.mktemp("trained")
    config = root / "train.toml"
    config.write_text(TRAIN_TOML)
    assert main(["train", str(config), "--out", str(root / "out")]) == 0
    return root


def _snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_a_run_publishes_a_marked_complete_set_and_leaves_nothing_beside_it(trained):
    out = trained / "out"
    assert {"network.npz", "neurons.npz", "background.npz", "train.json", "checkpoint.npz", MARKER} == set(_snapshot(out))
    assert sorted(p.name for p in trained.iterdir()) == ["out", "train.toml"]  # no lock, staging, partial or old dirs


def test_a_run_failing_midway_keeps_the_previous_output_whole(trained, tmp_path, capsys, monkeypatch):
    """The job dies while writing its files (here: the disk fills at background.npz): --out is untouched, byte for
    byte, and neither the staging directory nor the lock is left behind."""
    import shutil
    import mft_jax.cli.train as train_job

    out = tmp_path / "out"
    shutil.copytree(trained / "out", out)
    before = _snapshot(out)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", "background.npz")

    monkeypatch.setattr(train_job, "save_background", full_disk)
    code, err = run_cli(["train", trained / "train.toml", "--out", out], capsys)
    assert code == 2 and "No space left" in err and "Traceback" not in err
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.partial", "out"]  # the failed run's last checkpoint
    assert (checkpoint_dir(out) / "checkpoint.npz").exists()


def test_a_live_lock_refuses_a_second_run_before_any_work(trained, tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "out.lock").write_text(f"{holder.pid}\n")
        start = time.monotonic()
        code, err = run_cli(["train", trained / "train.toml", "--out", tmp_path / "out"], capsys)
        assert time.monotonic() - start < 10  # refused before any work
        assert_refused(code, err, f"in use by process {holder.pid}")
        assert (tmp_path / "out.lock").read_text() == f"{holder.pid}\n"  # not taken
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_is_taken_over_with_a_message(trained, tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "out.lock").write_text(f"{dead.pid}\n")
    code, err = run_cli(["train", trained / "train.toml", "--out", tmp_path / "out"], capsys)
    assert code == 0 and f"taking over the stale lock" in err and str(dead.pid) in err
    assert not (tmp_path / "out.lock").exists() and (tmp_path / "out" / MARKER).exists()
    for name in ("network.npz", "neurons.npz"):  # the same run as the fixture's: same bytes
        np.testing.assert_array_equal(np.load(tmp_path / "out" / name)["w"], np.load(trained / "out" / name)["w"])


def test_a_crash_between_the_renames_is_repaired_by_the_next_run(trained, tmp_path, capsys):
    """A run killed after renaming the old output aside and before renaming the new one in leaves no --out; the
    next run on it puts the previous output back (and says so) and removes the dead run's staging directory."""
    import shutil

    shutil.copytree(trained / "out", tmp_path / ".out.old-99999-abcd")
    (tmp_path / ".out.tmp-99999-ef01").mkdir()
    (tmp_path / ".out.tmp-99999-ef01" / "neurons.npz").write_bytes(b"half")
    config = tmp_path / "bad.toml"
    config.write_text(mutate("train", "train", "width", "0"))
    code, err = run_cli(["train", config, "--out", tmp_path / "out"], capsys)
    assert code == 2 and "restored the previous output" in err
    assert _snapshot(tmp_path / "out") == _snapshot(trained / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml", "out"]


def test_a_resume_that_would_shrink_the_run_is_refused(trained, tmp_path, capsys):
    import shutil

    shutil.copytree(trained / "out", tmp_path / "out")
    config = tmp_path / "short.toml"
    config.write_text(TRAIN_TOML.replace("steps = 6", "steps = 4"))
    code, err = run_cli(["train", config, "--out", tmp_path / "out", "--resume"], capsys)
    assert_refused(code, err, "the checkpoint is at step 6, beyond the 4 steps asked for")
    assert _snapshot(tmp_path / "out") == _snapshot(trained / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "short.toml"]


# ---- signals -------------------------------------------------------------------------------------------------------


def _interrupt(tmp_path, signum):
    """Start `mft-jax train` of an endless run, wait for its first checkpoint, send ``signum``; (code, stderr)."""
    config = tmp_path / "run.toml"
    config.write_text(TRAIN_TOML.replace("steps = 6", "steps = 100000000").replace("checkpoint_every = 2", "checkpoint_every = 20"))
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "mft_jax.cli", "train", str(config), "--out", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (checkpoint_dir(out) / "checkpoint.npz").exists():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    return process.returncode, err, config, out


def test_ctrl_c_keeps_the_checkpoint_and_prints_the_resume_command_which_resumes_exactly(tmp_path, capsys):
    """SIGINT mid-run: exit 130, one line (no traceback) naming the checkpoint and the exact command; that
    command (with the config's steps set to a finite number) ends bit for bit where an uninterrupted run ends."""
    code, err, config, out = _interrupt(tmp_path, signal.SIGINT)
    lines = [line for line in err.strip().splitlines() if "it/s" not in line and line.strip()]
    assert code == 130 and "Traceback" not in err, err
    assert lines[-1].startswith("mft-jax train: interrupted (SIGINT)") and "Resume with: " in lines[-1], err
    command = shlex.split(lines[-1].split("Resume with: ")[1])
    assert command == ["mft-jax", "train", str(config), "--out", str(out), "--resume"]
    step = int(np.load(checkpoint_dir(out) / "checkpoint.npz")["step"])
    assert step >= 20 and f"(step {step})" in lines[-1] and not out.exists()  # interrupted: nothing published
    config.write_text(TRAIN_TOML.replace("steps = 6", f"steps = {step + 10}").replace("checkpoint_every = 2", "checkpoint_every = 20"))
    assert main(command[1:]) == 0
    full = tmp_path / "full.toml"
    full.write_text(config.read_text())
    assert main(["train", str(full), "--out", str(tmp_path / "full")]) == 0
    for name in ("a", "w"):
        np.testing.assert_array_equal(np.load(out / "network.npz")[name], np.load(tmp_path / "full" / "network.npz")[name])
    assert not checkpoint_dir(out).exists() and not (tmp_path / "out.lock").exists()


def test_sigterm_keeps_the_checkpoint_and_exits_143(tmp_path):
    code, err, config, out = _interrupt(tmp_path, signal.SIGTERM)
    assert code == 143 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("mft-jax train: interrupted (SIGTERM)") and f"Resume with: mft-jax train {config} --out {out} --resume" in last
    assert (checkpoint_dir(out) / "checkpoint.npz").exists() and not out.exists() and not (tmp_path / "out.lock").exists()
    assert not list(tmp_path.glob(".out.tmp-*"))


# ---- the Python API: values checked where they enter -------------------------------------------------------------


@pytest.mark.parametrize("build, expected", [
    (lambda: TwoLayer("ramp", sa2="1"), "sa2"),
    (lambda: TwoLayer("ramp", sw2=np.array([1.0, 2.0])), "sw2"),
    (lambda: TwoLayer("ramp", beta=1 + 0j), "beta"),
    (lambda: TwoLayer("ramp", beta=None), "beta"),
    (lambda: TwoLayer("ramp", beta=np.bool_(True)), "beta"),
    (lambda: __import__("mft_jax.tasks", fromlist=["make_data"]).make_data("continuous_xor", quadrature=True), "quadrature"),
    (lambda: __import__("mft_jax.tasks", fromlist=["make_data"]).make_data("continuous_xor", samples=8, seed="1"), "seed"),
    (lambda: __import__("mft_jax.tasks", fromlist=["make_data"]).make_data("teacher_student", samples=8, d="3"), "d"),
    (lambda: make_dataset(X * (1 + 1j), X[:, 0]), "complex"),
    (lambda: make_dataset(X, X[:, 0].astype(object)), "real numbers"),
])
def test_python_api_refuses_wrong_kinds(build, expected):
    from mft_jax.errors import ConfigError

    with pytest.raises(ConfigError, match=expected):
        build()


def test_a_model_inside_jax_transforms_is_still_traced():
    """The stricter checks leave traced values alone: a jitted function of the model and a vmap over beta work."""
    import jax
    import jax.numpy as jnp

    assert float(jax.jit(lambda model: model.beta * 2)(TwoLayer("erf", beta=2.0))) == 4.0
    couplings = jax.vmap(lambda beta: TwoLayer("erf", beta=beta).coupling)(jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(couplings, [TwoLayer("erf", beta=1.0).coupling, TwoLayer("erf", beta=2.0).coupling])


def test_registering_under_a_built_in_name_needs_replace():
    import jax.numpy as jnp
    from mft_jax import activations, tasks
    from mft_jax.errors import ConfigError

    with pytest.raises(ConfigError, match="'erf' is built in"):
        activations.register_activation("erf", jnp.tanh, growth=0)
    with pytest.raises(ConfigError, match="'continuous_xor' is built in"):
        tasks.register_task("continuous_xor", tasks.xor_product)
    with pytest.raises(ConfigError, match="'npz'"):
        tasks.register_task("npz", tasks.xor_product, replace=True)
    with pytest.raises(ConfigError, match="callable"):
        activations.register_activation("mine", 3.0)
    original_activation, original_task = activations.get_activation("erf"), tasks._TASKS["continuous_xor"]
    try:
        assert activations.register_activation("erf", jnp.tanh, growth=0, replace=True).fn is jnp.tanh
        tasks.register_task("continuous_xor", tasks.xor_product, replace=True)
        assert tasks.get_task("continuous_xor").input_dim == 4
    finally:
        activations._REGISTRY["erf"] = original_activation
        tasks._TASKS["continuous_xor"] = original_task
    assert activations.get_activation("erf") is original_activation and tasks.get_task("continuous_xor").input_dim == 2
