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

from mft_jax.distributed import is_writer, to_host
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
    """Write ``payload`` (numpy/jax arrays converted to lists) atomically; in a multi-process job, process 0 only
    (arrays sharded over processes are gathered first, by every process)."""
    payload = to_host(payload)
    if not is_writer():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(_jsonable(payload), indent=2, allow_nan=True) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
    """``np.savez`` written atomically (a crash never leaves a half-written file; a failed write leaves no temporary); in a multi-process job, process 0
    only (arrays sharded over processes are gathered first, by every process)."""
    arrays = to_host(arrays)
    if not is_writer():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    try:
        np.savez(tmp, **{k: np.asarray(v) for k, v in arrays.items() if v is not None})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_npz(path: str | os.PathLike, what: str) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, read whole (so a truncated or corrupt archive fails here, by CRC).

    Raises ``ConfigError`` naming the file and ``what`` it should be for a missing file, a directory, a file
    that is not an ``.npz`` archive, a corrupt or truncated one, or pickled (object) arrays.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what}: no file {str(path)!r}")
    if not path.is_file():
        raise ConfigError(f"{what}: {str(path)!r} is not a file")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ConfigError(f"{what}: {str(path)!r} is a single .npy array, not an .npz archive of named arrays")
        with archive:
            return {name: archive[name] for name in archive.files}
    except ConfigError:
        raise
    except OSError as error:
        if isinstance(error, PermissionError):
            raise ConfigError(f"{what}: cannot read {str(path)!r}: {error.strerror or error}") from None
        raise ConfigError(f"{what}: {str(path)!r} is not an .npz archive ({_first_line(error)})") from None
    except Exception as error:  # BadZipFile, a bad CRC, EOFError, a pickled array, a bad header
        raise ConfigError(f"{what}: {str(path)!r} is corrupt or truncated, or not an .npz archive "
                          f"({type(error).__name__}: {_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def check_array(array: np.ndarray, label: str, *, ndim: int | tuple[int, ...], finite: bool = True) -> np.ndarray:
    """``array`` if it is a real (integer or floating) array of rank ``ndim`` with (``finite``) no NaN/inf; else
    ``ConfigError`` naming ``label``, what it holds and what is allowed. Complex values are refused (never cast)."""
    array = np.asarray(array)
    ranks = (ndim,) if isinstance(ndim, int) else ndim
    if array.dtype.kind not in "iuf":
        kind = {"c": "complex", "b": "boolean", "O": "object", "U": "text", "S": "bytes", "V": "structured"}.get(array.dtype.kind, str(array.dtype))
        raise ConfigError(f"{label} has dtype {array.dtype} ({kind}); real numbers (integer or floating) are allowed")
    if array.ndim not in ranks:
        raise ConfigError(f"{label} has shape {array.shape} (rank {array.ndim}); rank {' or '.join(map(str, ranks))} is allowed")
    if finite and array.dtype.kind == "f":
        bad = ~np.isfinite(array)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ConfigError(f"{label} has {int(bad.sum())} NaN/inf entries (first at index {index}); all entries must be finite")
    return array


def save_neurons(path: str | os.PathLike, law: NeuronLaw) -> None:
    save_npz(path, w=law.w, weight=law.weights(), log_weight=law.log_weight, a=law.a)


NEURON_ARRAYS = ("w", "weight", "log_weight", "a")


def load_neurons(path: str | os.PathLike) -> NeuronLaw:
    """A ``NeuronLaw`` from ``neurons.npz`` (a file or the directory holding it).

    Checked as it is read: ``w`` (M, d) finite reals, ``weight`` (M,) finite and >= 0 with a positive sum (a
    particle of weight 0 carries no mass; a negative weight is refused, never clipped), optional ``log_weight``
    (M,) (no NaN or +inf; -inf is weight 0) agreeing with ``weight``, optional ``a`` (M, C) finite reals.
    """
    path = Path(path)
    path = path / "neurons.npz" if path.is_dir() else path
    if not path.exists():
        raise ConfigError(f"no neuron file at {str(path)!r}; expected a solve/train/foreground output")
    arrays = read_npz(path, "neuron law")
    name = str(path)
    if "w" not in arrays or "weight" not in arrays:
        raise ConfigError(f"{name!r} must hold arrays w and weight, it holds {sorted(arrays)}")
    unknown = sorted(set(arrays) - set(NEURON_ARRAYS))
    if unknown:
        raise ConfigError(f"{name!r} holds unexpected arrays {unknown}; a neuron file holds {', '.join(NEURON_ARRAYS)}")
    w = check_array(arrays["w"], f"{name!r}: w", ndim=2)
    M = w.shape[0]
    if M < 1 or w.shape[1] < 1:
        raise ConfigError(f"{name!r}: w has shape {w.shape}; at least one neuron of dimension d >= 1 is needed")
    weight = check_array(arrays["weight"], f"{name!r}: weight", ndim=1)
    if weight.shape != (M,):
        raise ConfigError(f"{name!r}: weight has shape {weight.shape}; it needs one entry per neuron, ({M},)")
    if (weight < 0).any():
        raise ConfigError(f"{name!r}: weight has {int((weight < 0).sum())} negative entries (min {weight.min():g}); "
                          "weights must be >= 0 (they are probabilities)")
    if not weight.sum() > 0:
        raise ConfigError(f"{name!r}: all weights are 0; a law needs a positive total weight")
    with np.errstate(divide="ignore"):
        fallback = np.log(weight.astype(np.float64) / weight.sum())
    if "log_weight" in arrays:
        log_weight = check_array(arrays["log_weight"], f"{name!r}: log_weight", ndim=1, finite=False)
        if log_weight.shape != (M,) or np.isnan(log_weight).any() or (log_weight == np.inf).any() or not np.isfinite(log_weight).any():
            raise ConfigError(f"{name!r}: log_weight must be ({M},) with no NaN or +inf and some finite entry, got shape "
                              f"{log_weight.shape}")
        shifted = np.exp(log_weight.astype(np.float64) - log_weight.max())
        normal = shifted / shifted.sum()
        scale = float(weight.sum())
        if not np.allclose(normal, weight / scale, rtol=1e-3, atol=1e-6 * float(normal.max())):
            raise ConfigError(f"{name!r}: weight and log_weight disagree (largest difference "
                              f"{np.abs(normal - weight / scale).max():.3g} of the normalised weights); one was edited")
    else:
        log_weight = fallback
    a = None
    if "a" in arrays:
        a = check_array(arrays["a"], f"{name!r}: a", ndim=2)
        if a.shape[0] != M:
            raise ConfigError(f"{name!r}: a has shape {a.shape}; it needs one row per neuron, ({M}, C)")
    return NeuronLaw(w, log_weight, a)


def save_background(path: str | os.PathLike, data: Dataset, residual, model=None) -> None:
    """Write the data and residual, and the ``TwoLayer`` model the residual belongs to (as JSON)."""
    recorded = None if model is None else json.dumps(model.settings())
    save_npz(path, x=data.x, q=data.q, y=data.y, residual=residual, model=recorded)


MODEL_KEYS = ("activation", "sa2", "sw2", "beta", "scaling", "penalty")


def load_background_model(path: str | os.PathLike) -> dict | None:
    """The model (``TwoLayer`` keyword arguments) a ``background.npz`` was made with, or None if it records none."""
    path = _background_file(path)
    arrays = read_npz(path, "background")
    if "model" not in arrays:
        return None
    text = arrays["model"]
    if text.dtype.kind != "U" or text.ndim != 0:
        raise ConfigError(f"{str(path)!r}: model must be a JSON text (a 0-d string array), got dtype {text.dtype}, shape {text.shape}")
    try:
        model = json.loads(str(text))
    except ValueError as error:
        raise ConfigError(f"{str(path)!r}: model is not JSON ({error})") from None
    if not isinstance(model, dict) or set(model) - set(MODEL_KEYS):
        found = sorted(model) if isinstance(model, dict) else type(model).__name__
        raise ConfigError(f"{str(path)!r}: model must be a JSON object with keys among {', '.join(MODEL_KEYS)}, got {found}")
    return model


def _background_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    path = path / "background.npz" if path.is_dir() else path
    if not path.exists():
        raise ConfigError(f"no background at {str(path)!r}; pass the output directory of `mft-jax solve` or `mft-jax train`")
    return path


def load_background(path: str | os.PathLike) -> tuple[Dataset, np.ndarray]:
    """``(data, residual)`` from ``background.npz`` (a file or the directory holding it)."""
    path = _background_file(path)
    arrays = read_npz(path, "background")
    missing = {"x", "q", "y", "residual"} - set(arrays)
    if missing:
        raise ConfigError(f"{str(path)!r} lacks arrays {sorted(missing)}")
    label = f"{str(path)!r}:"
    x = check_array(arrays["x"], f"{label} x", ndim=2)
    y = check_array(arrays["y"], f"{label} y", ndim=(1, 2))
    q = check_array(arrays["q"], f"{label} q", ndim=1)
    residual = check_array(arrays["residual"], f"{label} residual", ndim=(1, 2))
    data = make_dataset(x, y, q, name=str(path))
    if residual.ndim == 1:
        residual = residual[:, None]
    if residual.shape != data.y.shape:
        raise ConfigError(f"{str(path)!r}: residual must be finite with the shape of y {data.y.shape}, got {residual.shape}")
    return data, residual
