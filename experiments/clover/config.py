"""The clover experiment's config (``[benchmark]``, ``[networks]``, ``[foreground]``, ``[compare]`` over the theory's
TOML) and its stages."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time

from pathlib import Path
from experiments._common import CONFIGS, ROOT
from mft_jax.cli.config import ModelConfig, data_from, load_toml, model_from, section
from mft_jax.errors import ConfigError
from mft_jax.cli.solve import SolverConfig


CONFIG = CONFIGS / "clover_benchmark.toml"


QUICK_CONFIG = CONFIGS / "clover_quick.toml"


SECTIONS = ("benchmark", "task", "model", "solver", "networks", "foreground", "compare")


METRICS = ("sliced_wasserstein", "sinkhorn", "energy")


BACKGROUNDS = ("average", "snapshot")


METRIC_LABELS = {"sliced_wasserstein": "sliced W2", "sinkhorn": "Sinkhorn", "energy": "energy"}


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """``[benchmark]``: where the theory's ``[task]``/``[model]``/``[solver]`` come from, the seed, the output name."""

    theory: str = "configs/clover.toml"  # its sections, overridden key by key by this file's
    name: str = "clover"  # results/NAME.json, figures/NAME_*.png
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class NetworksConfig:
    """``[networks]``: Langevin training of whole networks at T = 1/beta (full batch on the task's dataset)."""

    widths: list = dataclasses.field(default_factory=lambda: [256, 1024, 4096])
    seeds: list = dataclasses.field(default_factory=lambda: [2, 1, 1])  # independent networks per width
    steps: int = 3000
    step_size: float = 0.1
    average_from: float = 0.5  # the loss is time-averaged over steps >= average_from * steps
    chunk: int = 100


@dataclasses.dataclass(frozen=True)
class ForegroundConfig:
    """``[foreground]``: M independent neurons, Langevin at T = 1/beta against a fixed background."""

    num_neurons: int = 2048
    steps: int = 3000
    step_size: float = 0.1
    chunk: int = 100
    background: str = "average"  # the network's residual: "average" over its last steps, or the final "snapshot"
    average_steps: int = 1000  # "average": the last average_steps of training ...
    snapshots: int = 10  # ... sampled at this many evenly spaced times


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """``[compare]``: distance settings (module docstring)."""

    num_projections: int = 256  # sliced W2 directions
    sinkhorn_epsilon: float = 0.05  # in units of the theory law's squared RMS radius (compare.spread)
    repeats: int = 5  # sample pairs per noise floor
    theory_draws: int = 2  # theory samples each empirical cloud is compared with
    prior_samples: int = 50_000  # the GP background's neurons: i.i.d. prior draws resampled from this pool


class StageError(RuntimeError):
    """A benchmark stage failed; ``stage`` names it (solve, train, foreground, compare, figure)."""

    def __init__(self, stage: str, error: BaseException):
        super().__init__(f"stage {stage!r} failed: {type(error).__name__}: {error}")
        self.stage = stage


@contextlib.contextmanager
def stage(name: str, timings: dict):
    """Time a stage into ``timings[name]`` and re-raise its failure as ``StageError(name)``."""
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        yield
    except StageError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure is reported with its stage
        raise StageError(name, error) from error
    finally:
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        timings[name] = timings.get(name, 0.0) + elapsed
        timings[f"{name}_cpu"] = timings.get(f"{name}_cpu", 0.0) + cpu
        print(f"  [{name}] {elapsed:.0f} s wall, {cpu:.0f} s cpu", file=sys.stderr, flush=True)


def _positive_ints(values, key: str) -> list[int]:
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ConfigError(f"{key} must be a non-empty list of positive integers, got {values!r}")
    return list(values)


def load_config(path: str | Path) -> dict:
    """The benchmark config: this file's sections over those of ``[benchmark] theory`` (resolved, validated)."""
    path = Path(path)
    raw = load_toml(path, SECTIONS)
    bench = section(BenchmarkConfig, raw.get("benchmark"), "benchmark")
    theory_path = Path(bench.theory)
    theory_path = theory_path if theory_path.is_absolute() else ROOT / theory_path
    theory = load_toml(theory_path, ("task", "model", "solver"))
    merged = {name: {**(theory.get(name) or {}), **(raw.get(name) or {})} for name in ("task", "model", "solver")}
    config = {
        "benchmark": dataclasses.asdict(bench),
        "task": merged["task"],
        "model": dataclasses.asdict(section(ModelConfig, merged["model"], "model")),
        "solver": dataclasses.asdict(section(SolverConfig, merged["solver"], "solver")),
        "networks": dataclasses.asdict(section(NetworksConfig, raw.get("networks"), "networks")),
        "foreground": dataclasses.asdict(section(ForegroundConfig, raw.get("foreground"), "foreground")),
        "compare": dataclasses.asdict(section(CompareConfig, raw.get("compare"), "compare")),
    }
    model_from(config)  # the prior's own checks (activation name, positive variances) before any work
    data_from(config)  # the task's checks (name, options, sizes); cheap for quadrature data
    networks = config["networks"]
    widths = _positive_ints(networks["widths"], "[networks] widths")
    seeds = _positive_ints(networks["seeds"], "[networks] seeds")
    if len(seeds) != len(widths):
        raise ConfigError(f"[networks] seeds must give one count per width: {len(widths)} widths {widths}, {len(seeds)} seeds {seeds}")
    if not 0.0 <= networks["average_from"] < 1.0:
        raise ConfigError(f"[networks] average_from must be in [0, 1), got {networks['average_from']!r}")
    for name, key in (("networks", "steps"), ("foreground", "steps"), ("foreground", "num_neurons"), ("compare", "repeats"),
                      ("compare", "theory_draws"), ("compare", "prior_samples"), ("compare", "num_projections")):
        _positive_ints([config[name][key]], f"[{name}] {key}")
    if config["foreground"]["num_neurons"] > max(widths):
        raise ConfigError(f"[foreground] num_neurons = {config['foreground']['num_neurons']} must be <= the largest width {max(widths)} "
                          "(the background network's neurons are subsampled to M for a floor at one n)")
    if config["foreground"]["background"] not in BACKGROUNDS:
        raise ConfigError(f"[foreground] background = {config['foreground']['background']!r}; allowed: {', '.join(BACKGROUNDS)}")
    _positive_ints([config["foreground"]["snapshots"]], "[foreground] snapshots")
    if not 0 < config["foreground"]["average_steps"] < networks["steps"]:
        raise ConfigError(f"[foreground] average_steps must be in (0, [networks] steps = {networks['steps']}), got {config['foreground']['average_steps']!r}")
    if config["compare"]["repeats"] < 2:
        raise ConfigError(f"[compare] repeats must be >= 2 (a spread needs two), got {config['compare']['repeats']}")
    return config
