"""Files every job shares: run metadata, neuron clouds and backgrounds.

Output-directory contract (the CLI jobs write and read these):

- ``neurons.npz``: ``w`` (M, d), ``weight`` (M,) summing to 1, optional ``a`` (M, C): a ``NeuronLaw``.
- ``background.npz``: ``x`` (P, d), ``q`` (P,), ``y`` (P, C), ``residual`` (P, C): the data and
  the residual ``r = y - f`` the background imposes on one neuron (docs/theory.md section 4), and
  ``model``: the prior (activation, sa2, sw2, beta, scaling) that residual belongs to.
- ``*.json``: results plus ``meta`` (config, seed, package versions, git commit, time).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

from mft_jax.data import Dataset, make_dataset
from mft_jax.errors import ConfigError
from mft_jax.neurons import NeuronLaw

PACKAGES = ("mft_jax", "jax", "jaxlib", "flax", "optax", "blackjax", "ott-jax", "numpy")


# Where a change makes a result's commit "+dirty": code and configs, not prose (README, docs) or results.
CODE_PATHS = ("mft_jax", "experiments", "benchmarks", "configs")


def git_commit() -> str | None:
    """The commit of the mft_jax checkout (``+dirty`` if a tracked file under ``CODE_PATHS`` is modified), or None
    outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def devices() -> list[str]:
    """The devices JAX runs on (recorded in every result's ``meta`` and printed by every job and benchmark)."""
    import jax

    return [str(device) for device in jax.devices()]


def invocation(argv: list[str] | None = None) -> list[str]:
    """The command that is running, as a list: ``["python", "-m", "experiments.linear", "--quick"]`` under
    ``python -m``, ``["python", "path/to/script.py", ...]`` for a script, ``["mft-jax", ...]`` for the console
    script. ``argv`` (the arguments a ``main(argv)`` was called with) replaces ``sys.argv[1:]`` when given."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    args = list(sys.argv[1:] if argv is None else argv)
    if spec is not None and spec.name not in ("__main__", None):
        name = spec.name.removesuffix(".__main__")
        head = ["python", "-m", name]
    else:
        if not sys.argv or sys.argv[0] in ("", "-c"):
            return ["python", "-c", "..."] + [str(a) for a in args]
        script = Path(sys.argv[0])
        root = Path(__file__).resolve().parent.parent
        if script.suffix == ".py":
            head = ["python", str(script.resolve().relative_to(root)) if script.resolve().is_relative_to(root) else str(script)]
        else:
            head = [script.name]
    return head + [str(a) for a in args]


def run_metadata(config: dict | None = None, seed: int | None = None, argv: list[str] | None = None, *,
                 precision: str | None = None) -> dict:
    """What reproduces a result: the exact command (``argv``, a list, and ``command``, one shell line), the
    config, the seed, package versions, the git commit, the devices, the matmul precision (``precision``, default: the
    current ``mft_jax.precision`` setting) and the time."""
    from mft_jax.precision import current

    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    command = invocation(argv)
    return {
        "argv": command,
        "command": shlex.join(command),
        "config": config,
        "seed": seed,
        "versions": versions,
        "git_commit": git_commit(),
        "devices": devices(),
        "matmul_precision": current() if precision is None else precision,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def write_json(path: str | os.PathLike, payload: dict) -> None:
    """Write ``payload`` (numpy/jax arrays converted to lists) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_jsonable(payload), indent=2, allow_nan=True) + "\n")
    os.replace(tmp, path)


def pyplot():
    """``matplotlib.pyplot`` on the off-screen Agg backend: what the benchmarks draw their figures with."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Lay out a pyplot ``figure`` (tight layout unless it has a layout engine), write it to ``path`` (folders made) and close it; returns the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if figure.get_layout_engine() is None:  # a constrained-layout figure lays itself out
        figure.tight_layout()
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path


def write_results(path: str | os.PathLike, results: dict, make_figures, figures_dir) -> list[Path]:
    """A benchmark's last step: write ``results`` to ``path`` (JSON) and draw its figures from them with
    ``make_figures(results, figures_dir)`` (the function ``make figures`` calls too); prints and returns the figure paths."""
    write_json(path, results)
    paths = [Path(p) for p in make_figures(results, figures_dir)]
    print(f"wrote {path}; figures: {', '.join(str(p) for p in paths)}", flush=True)
    return paths


def figure_redrawer(name: str, plot):
    """``make_figures(results, outdir)`` of a benchmark whose one figure is ``plot(results, path)``: it draws
    ``outdir/NAME.png``, or ``outdir/NAME_quick.png`` from a ``--quick`` run's results (``results["quick"]``)."""

    def make_figures(results: dict, outdir) -> list[Path]:
        path = Path(outdir) / (f"{name}_quick.png" if results.get("quick") else f"{name}.png")
        plot(results, path)
        return [path]

    make_figures.__doc__ = f"Redraw ``figures/{name}.png`` from ``results/{name}.json`` (``make figures``)."
    return make_figures


def save_npz(path: str | os.PathLike, **arrays) -> None:
    """``np.savez`` written atomically (a crash never leaves a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **{k: np.asarray(v) for k, v in arrays.items() if v is not None})
    os.replace(tmp, path)


def save_neurons(path: str | os.PathLike, law: NeuronLaw) -> None:
    save_npz(path, w=law.w, weight=law.weights(), log_weight=law.log_weight, a=law.a)


def load_neurons(path: str | os.PathLike) -> NeuronLaw:
    """A ``NeuronLaw`` from ``neurons.npz`` (a file or the directory holding it)."""
    path = Path(path)
    path = path / "neurons.npz" if path.is_dir() else path
    if not path.exists():
        raise ConfigError(f"no neuron file at {str(path)!r}; expected a solve/train/foreground output")
    archive = np.load(path)
    if "w" not in archive.files or "weight" not in archive.files:
        raise ConfigError(f"{str(path)!r} must hold arrays w and weight, it holds {archive.files}")
    weight = archive["weight"]
    log_weight = archive["log_weight"] if "log_weight" in archive.files else np.log(np.maximum(weight, 1e-300))
    return NeuronLaw(archive["w"], log_weight, archive["a"] if "a" in archive.files else None)


def save_background(path: str | os.PathLike, data: Dataset, residual, model=None) -> None:
    """Write the data and residual, and the ``TwoLayer`` model the residual belongs to (as JSON)."""
    recorded = None if model is None else json.dumps(model.settings())
    save_npz(path, x=data.x, q=data.q, y=data.y, residual=residual, model=recorded)


def load_background_model(path: str | os.PathLike) -> dict | None:
    """The model (``TwoLayer`` keyword arguments) a ``background.npz`` was made with, or None if it records none."""
    archive = np.load(_background_file(path))
    return json.loads(str(archive["model"])) if "model" in archive.files else None


def _background_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    path = path / "background.npz" if path.is_dir() else path
    if not path.exists():
        raise ConfigError(f"no background at {str(path)!r}; pass the output directory of `mft-jax solve` or `mft-jax train`")
    return path


def load_background(path: str | os.PathLike) -> tuple[Dataset, np.ndarray]:
    """``(data, residual)`` from ``background.npz`` (a file or the directory holding it)."""
    path = _background_file(path)
    archive = np.load(path)
    missing = {"x", "q", "y", "residual"} - set(archive.files)
    if missing:
        raise ConfigError(f"{str(path)!r} lacks arrays {sorted(missing)}")
    data = make_dataset(archive["x"], archive["y"], archive["q"], name=str(path))
    residual = archive["residual"]
    if residual.shape != data.y.shape or not np.isfinite(residual).all():
        raise ConfigError(f"{str(path)!r}: residual must be finite with the shape of y {data.y.shape}, got {residual.shape}")
    return data, residual
