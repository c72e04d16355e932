"""The seed's clover experiment: theory vs jointly trained networks vs foreground neurons.

Task ``continuous_xor`` (x ~ N(0, I_2), y = x1 x2) on a Gauss-Hermite quadrature, ``ramp``
activation, ``sa2 = sw2 = 1``, ``beta = 50`` (``configs/clover.toml``). Four stages:

1. theory: the mean-field fixed point (grid sampler) -> ``rho(w)`` and the fixed-point loss;
2. networks: Langevin training of whole networks at T = 1/beta on the same quadrature data,
   at several widths N; their neurons' empirical law against ``rho`` (sliced W2, debiased
   Sinkhorn, energy distance) next to the noise floor, and the measured vs predicted loss;
   the exponent of distance vs N (log-log fit with its standard error);
3. foreground: M independent neurons trained (Langevin, same T) against the largest network's
   background ``r = y - f_net`` -> distance to that network's own neurons (M of them, drawn
   without replacement, so both clouds have size M and share one floor) and to theory.
   The background is ``y - f_net`` averaged over ``snapshots`` times in the network's last
   ``average_steps`` steps (``background = "average"``), not one frozen snapshot: at finite N
   the network function fluctuates by O(N^-1/2), and the single-neuron law
   ``exp(c |S(w)|^2)`` with ``c = beta^2 sa2 / 2 = 1250`` amplifies a frozen fluctuation into a
   visible reweighting of the four leaves (``background = "snapshot"`` shows it);
4. the wrong background: M neurons trained against the GP (NNGP kernel ridge) residual ->
   distance to the GP background's neurons (the prior) and to theory.

Distances and noise floors (the comparison the spec asks for): every empirical cloud of n
neurons is compared with ``theory_draws`` independent size-n samples of the theory law (mean
reported), and the noise floor is the distance between two independent size-n samples of the
same law (``mft_jax.analysis.compare.noise_floor``, mean and spread over ``repeats``): both are
two-sample statistics at the same n, so "at the floor" means "indistinguishable at this n".
For the energy distance the squared floor adds to the squared distance between the laws
(exactly, for the V-statistic), so ``excess = sqrt(max(d^2 - floor^2, 0))`` estimates the
distance between the network's law and the theory law itself.

``make_figures`` redraws every figure from the JSON alone (``make figures``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments._common import CONFIGS, ROOT, results_file, run_name
from mft_jax import io

from mft_jax.analysis import compare
from mft_jax.analysis.stats import batch_means_error
from mft_jax.cli.config import ModelConfig, data_from, load_toml, model_from, section
from mft_jax.errors import ConfigError
from mft_jax.theory.gp import gp_loss, gp_residual
from mft_jax.cli.solve import SolverConfig, make_sampler
from mft_jax.neurons import NeuronLaw
from mft_jax.theory.two_layer import solve
from mft_jax.train import network
from mft_jax.train.foreground import network_loss, train_foreground
from mft_jax.train.joint import langevin_optimizer, train

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


# ----------------------------------------------------------------------------- config


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


# ----------------------------------------------------------------------------- distances


class Distances:
    """Distances between neuron clouds in w-space, with noise floors cached per (law, metric, n)."""

    def __init__(self, theory: NeuronLaw, settings: dict, key: jax.Array):
        self.settings = settings
        self.scale = compare.spread(theory)
        projection_key, self.key = jax.random.split(key)
        self.metrics = {
            "sliced_wasserstein": functools.partial(compare.sliced_wasserstein, key=projection_key, num_projections=settings["num_projections"]),
            "sinkhorn": functools.partial(compare.sinkhorn_distance, epsilon=settings["sinkhorn_epsilon"] * self.scale**2),
            "energy": compare.energy_distance,
        }
        self._floors: dict = {}

    def _next_key(self) -> jax.Array:
        self.key, key = jax.random.split(self.key)
        return key

    def floor(self, law_name: str, law: NeuronLaw, n: int) -> dict:
        """``{metric: (mean, std)}``: distance between two independent size-n samples of ``law``."""
        if (law_name, n) not in self._floors:
            floors = {}
            for name, metric in self.metrics.items():
                result = compare.noise_floor(law, metric, key=self._next_key(), n=n, repeats=self.settings["repeats"])
                floors[name] = (float(result.mean), float(result.std))
            self._floors[law_name, n] = floors
        return self._floors[law_name, n]

    def to_law(self, law_name: str, law: NeuronLaw, cloud: NeuronLaw) -> dict:
        """``cloud`` (n equal-weight neurons) vs ``theory_draws`` independent size-n samples of ``law``, with the floor."""
        n = cloud.num_particles
        draws = [compare.resample(self._next_key(), law, n) for _ in range(self.settings["theory_draws"])]
        floors = self.floor(law_name, law, n)
        return {name: _entry([float(metric(draw, cloud)) for draw in draws], *floors[name]) for name, metric in self.metrics.items()}

    def between(self, cloud1: NeuronLaw, cloud2: NeuronLaw, floor_law_name: str, floor_law: NeuronLaw) -> dict:
        """Two clouds of equal size n; the floor is that of two size-n samples of ``floor_law``."""
        if cloud1.num_particles != cloud2.num_particles:
            raise ConfigError(f"clouds of equal size needed for a floor at one n, got {cloud1.num_particles} and {cloud2.num_particles}")
        floors = self.floor(floor_law_name, floor_law, cloud1.num_particles)
        return {name: _entry([float(metric(cloud1, cloud2))], *floors[name]) for name, metric in self.metrics.items()}


def subsample(key: jax.Array, law: NeuronLaw, n: int) -> NeuronLaw:
    """``n`` of the equally weighted particles of ``law``, drawn without replacement (a size-n sample of the same law)."""
    if n > law.num_particles:
        raise ConfigError(f"cannot take {n} of {law.num_particles} neurons")
    if n == law.num_particles:
        return law
    index = jax.random.choice(key, law.num_particles, shape=(n,), replace=False)
    return NeuronLaw.from_samples(law.w[index], None if law.a is None else law.a[index])


SUMMARY_MOMENTS = {
    "E|w|^2": lambda w: jnp.sum(w * w, axis=-1),
    "P(++)": lambda w: ((w[:, 0] > 0) & (w[:, 1] > 0)).astype(w.dtype),  # the mass of each leaf (quadrant of w);
    "P(+-)": lambda w: ((w[:, 0] > 0) & (w[:, 1] < 0)).astype(w.dtype),  # the clover's symmetries make them equal
    "P(-+)": lambda w: ((w[:, 0] < 0) & (w[:, 1] > 0)).astype(w.dtype),  # in theory (1/4 each up to the grid's
    "P(--)": lambda w: ((w[:, 0] < 0) & (w[:, 1] < 0)).astype(w.dtype),  # zero-coordinate nodes)
}


def summary_moments(law: NeuronLaw, *, quadrature: bool = False) -> dict:
    """``E|w|^2`` and the four leaf masses with standard errors (0 for the grid law: quadrature), JSON-ready."""
    values = compare.moments(law, SUMMARY_MOMENTS, quadrature=quadrature)
    return {name: {"mean": float(m.mean), "stderr": float(m.stderr)} for name, m in values.items()}


def _entry(values: list[float], floor: float, floor_std: float) -> dict:
    distance = float(np.mean(values))
    return {"distance": distance, "values": values, "noise_floor": floor, "noise_floor_std": floor_std,
            "excess": math.sqrt(max(distance**2 - floor**2, 0.0)), "ratio_to_floor": distance / floor}


def width_summary(per_seed: list[dict]) -> dict:
    """Per metric over a width's seeds: mean distance, its error, floor; the error is the seeds' standard
    error when there are >= 2 seeds, else the floor's spread (the sampling spread of one such distance)."""
    summary = {}
    for name in METRICS:
        values = np.array([entry[name]["distance"] for entry in per_seed])
        floor, floor_std = per_seed[0][name]["noise_floor"], per_seed[0][name]["noise_floor_std"]
        error = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size >= 2 else floor_std
        summary[name] = {"distance": float(values.mean()), "error": error, "noise_floor": floor, "noise_floor_std": floor_std,
                         "excess": math.sqrt(max(float(values.mean()) ** 2 - floor**2, 0.0))}
    return summary


def exponent_fits(widths: list[int], summaries: list[dict]) -> dict:
    """``distance ~ A N^k`` and ``floor ~ A N^k`` per metric (``compare.fit_power_law``, errors as weights)."""
    fits = {}
    if len(widths) < 2:
        return fits
    for name in METRICS:
        distance = [s[name]["distance"] for s in summaries]
        errors = [max(s[name]["error"], 1e-12) for s in summaries]
        floor = [s[name]["noise_floor"] for s in summaries]
        floor_errors = [max(s[name]["noise_floor_std"], 1e-12) for s in summaries]
        fit, floor_fit = compare.fit_power_law(widths, distance, errors), compare.fit_power_law(widths, floor, floor_errors)
        fits[name] = {"exponent": fit.exponent, "exponent_stderr": fit.exponent_stderr, "prefactor": fit.prefactor,
                      "floor_exponent": floor_fit.exponent, "floor_exponent_stderr": floor_fit.exponent_stderr,
                      "floor_prefactor": floor_fit.prefactor}
    return fits


# ----------------------------------------------------------------------------- the pipeline


def train_with_snapshots(key, model, width, data, optimizer, steps: int, boundaries: list[int], *, num_seeds: int, chunk: int, progress: bool):
    """``train`` for ``steps`` steps, stopping at each of ``boundaries`` (< steps) on the way: ``(result, [params at each])``.

    The run is resumed from its checkpoint after each stop (``run_loop``'s exact resume), so the
    final state is that of one uninterrupted run of ``steps`` steps.
    """
    import tempfile

    if not boundaries:
        return train(key, model, width, data, optimizer, steps, num_seeds=num_seeds, chunk=chunk, progress=progress), []
    snapshots = []
    with tempfile.TemporaryDirectory() as out_dir:
        for index, stop in enumerate([*boundaries, steps]):
            result = train(key, model, width, data, optimizer, stop, num_seeds=num_seeds, chunk=chunk, out_dir=out_dir,
                           checkpoint_every=steps, resume=index > 0, progress=progress)
            if stop != steps:
                snapshots.append(result.params)
    return result, snapshots + [result.params]


def _cloud(law: NeuronLaw, digits: int = 4) -> list:
    return np.round(np.asarray(law.w, np.float64), digits).tolist()


def _theory_density(law: NeuronLaw, grid_size: int) -> dict:
    """The grid law as an image: axis (G,) and weights (G, G) indexed [i, j] = w = (axis[i], axis[j])."""
    w = np.asarray(law.w, np.float64)
    weights = np.asarray(law.weights(), np.float64)
    if w.shape[1] != 2 or w.shape[0] != grid_size**2:
        return {}
    axis = np.unique(w[:, 0])
    image = weights.reshape(grid_size, grid_size)
    return {"axis": np.round(axis, 6).tolist(), "weights": [[float(f"{v:.4g}") for v in row] for row in image]}


def solve_theory(config: dict, data, model, key):
    """The mean-field fixed point with the ``[solver]`` settings (grid sampler for the clover)."""
    settings = SolverConfig(**config["solver"])
    return solve(data, model, make_sampler(settings), key=key, init=settings.init, damping=settings.damping,
                 anderson=settings.anderson, tol=settings.tol, max_iter=settings.max_iter,
                 continuation=settings.continuation, beta_start=settings.beta_start, throw=True)


def run_benchmark(config: dict, *, progress: bool = False) -> dict:
    """Run the four stages (module docstring); returns the JSON-ready results (with ``timings``)."""
    timings: dict = {}
    results: dict = {"name": config["benchmark"]["name"], "config": config, "timings": timings}
    seed = config["benchmark"]["seed"]
    theory_key, network_key, foreground_key, gp_key, compare_key, prior_key = jax.random.split(jax.random.key(seed), 6)
    nets, fg, cmp = config["networks"], config["foreground"], config["compare"]

    with stage("solve", timings):
        model, data = model_from(config), data_from(config)
        solution = solve_theory(config, data, model, theory_key)
        theory = solution.law
        results["theory"] = {
            "loss": float(solution.loss), "free_energy": solution.free_energy, "converged": bool(solution.converged),
            "iterations": int(solution.iterations), "message": solution.message, "diagnostics": solution.diagnostics,
            "num_particles": theory.num_particles, "spread": compare.spread(theory),
            "moments": summary_moments(theory, quadrature=config["solver"]["sampler"] == "grid"),
            "density": _theory_density(theory, config["solver"]["grid_size"]) if config["solver"]["sampler"] == "grid" else {},
            "gp_loss": float(gp_loss(data, model)),
        }

    distances = Distances(theory, cmp, compare_key)
    results["networks"] = []
    largest = None
    background_width = max(nets["widths"])
    for width, num_seeds in zip(nets["widths"], nets["seeds"]):
        with stage("train", timings):
            boundaries = []
            if width == background_width and fg["background"] == "average":
                spacing = fg["average_steps"] / fg["snapshots"]
                boundaries = [int(round(nets["steps"] - fg["average_steps"] + k * spacing)) for k in range(1, fg["snapshots"])]
            trained, snapshots = train_with_snapshots(
                jax.random.fold_in(network_key, width), model, width, data, langevin_optimizer(model, nets["step_size"]),
                nets["steps"], boundaries, num_seeds=num_seeds, chunk=nets["chunk"], progress=progress)
            steps = np.asarray(trained.history["step"])
            losses = np.asarray(trained.history["loss"])  # (R, S): the loss at the end of each chunk
            tail = steps > nets["average_from"] * nets["steps"]
            seeds = []
            for s in range(num_seeds):
                params = jax.tree.map(lambda p: p[s], trained.params)
                seeds.append({"params": params, "law": network.network_law(params), "final_loss": float(network.loss(params, model, data)),
                              "mean_loss": float(losses[tail, s].mean())})
        with stage("compare", timings):
            per_seed = [distances.to_law("theory", theory, entry["law"]) for entry in seeds]
        tail_means = np.array([entry["mean_loss"] for entry in seeds])
        record = {
            "width": width, "num_seeds": num_seeds,
            # the time-and-seed-averaged loss; its error from batch means (5 blocks per seed: the loss is correlated over ~500 steps)
            "loss": float(tail_means.mean()),
            "loss_error": batch_means_error(losses[tail]),
            "final_loss": [entry["final_loss"] for entry in seeds],
            "loss_trace": {"step": steps.tolist(), "loss": losses.T.tolist()},
            "distances_per_seed": per_seed,
            "moments": [summary_moments(entry["law"]) for entry in seeds],
            "summary": width_summary(per_seed),
        }
        results["networks"].append(record)
        if width == background_width:
            largest = (width, seeds[0])
            # the background a neuron of this network feels: y - f_net of seed 0, time-averaged over the snapshots
            residuals = [network.residual(jax.tree.map(lambda p: p[0], params), model, data) for params in snapshots] or [
                network.residual(seeds[0]["params"], model, data)]
            background_residual = jnp.mean(jnp.stack(residuals), axis=0)
    results["fits"] = exponent_fits(nets["widths"], [r["summary"] for r in results["networks"]])
    width, net = largest
    results["clouds"] = {"network": _cloud(net["law"]), "network_width": width}

    with stage("foreground", timings):
        foreground = train_foreground(foreground_key, model, data, background_residual, num_neurons=fg["num_neurons"], steps=fg["steps"],
                                      step_size=fg["step_size"], chunk=fg["chunk"], progress=progress)
        gp_foreground = train_foreground(gp_key, model, data, gp_residual(data, model), num_neurons=fg["num_neurons"],
                                         steps=fg["steps"], step_size=fg["step_size"], chunk=fg["chunk"], progress=progress)
    with stage("compare", timings):
        prior_pool = NeuronLaw.from_samples(math.sqrt(model.sw2) * jax.random.normal(prior_key, (cmp["prior_samples"], data.input_dim)))
        gp_neurons = compare.resample(jax.random.fold_in(prior_key, 1), prior_pool, fg["num_neurons"])
        net_law = net["law"]
        results["foreground"] = {
            "num_neurons": fg["num_neurons"], "background_width": width, "background": fg["background"],
            "background_snapshots": len(residuals), "background_residual_loss": float(0.5 * jnp.sum(data.q[:, None] * background_residual**2)),
            "loss": float(network_loss(model, foreground, data)), "background_loss": net["final_loss"],
            "to_theory": distances.to_law("theory", theory, foreground),
            "moments": summary_moments(foreground),
            "to_background": distances.between(foreground, subsample(jax.random.fold_in(prior_key, 2), net_law, foreground.num_particles),
                                               "theory", theory),
        }
        results["gp_foreground"] = {
            "num_neurons": fg["num_neurons"],
            "loss": float(network_loss(model, gp_foreground, data)), "background_loss": results["theory"]["gp_loss"],
            "to_theory": distances.to_law("theory", theory, gp_foreground),
            "moments": summary_moments(gp_foreground),
            "to_background": distances.to_law("prior", prior_pool, gp_foreground),
        }
        results["clouds"].update(foreground=_cloud(foreground), gp_foreground=_cloud(gp_foreground), gp_background=_cloud(gp_neurons))
    results["distance_scale"] = distances.scale
    return results


# ----------------------------------------------------------------------------- output


def _fmt(entry: dict) -> str:
    return f"{entry['distance']:.4f} ({entry['noise_floor']:.4f}±{entry['noise_floor_std']:.4f})"


def table(results: dict) -> str:
    """The headline numbers as an aligned plain-text table."""
    theory, cfg = results["theory"], results["config"]
    lines = [
        f"{results['name']}: {cfg['task'].get('name')} (quadrature {cfg['task'].get('quadrature')}), {cfg['model']['activation']}, "
        f"sa2 = {cfg['model']['sa2']:g}, sw2 = {cfg['model']['sw2']:g}, beta = {cfg['model']['beta']:g}",
        f"theory: loss {theory['loss']:.5f}, free energy {theory['free_energy']:.4f}, {theory['message']}; GP loss {theory['gp_loss']:.5f}",
        "distances in w-space: value (noise floor ± spread at the same n)",
        f"{'N':>6} {'seeds':>5} {'loss (theory ' + format(theory['loss'], '.4f') + ')':>22} "
        + " ".join(f"{METRIC_LABELS[m]:>26}" for m in METRICS),
    ]
    for record in results["networks"]:
        loss = f"{record['loss']:.5f} ± {record['loss_error']:.5f}"
        lines.append(f"{record['width']:>6} {record['num_seeds']:>5} {loss:>22} "
                     + " ".join(f"{_fmt(record['summary'][m]):>26}" for m in METRICS))
    for name, fit in results["fits"].items():
        lines.append(f"fit {METRIC_LABELS[name]:>10}: distance ~ N^({fit['exponent']:.3f} ± {fit['exponent_stderr']:.3f}), "
                     f"floor ~ N^({fit['floor_exponent']:.3f} ± {fit['floor_exponent_stderr']:.3f})")
    fg, gp = results["foreground"], results["gp_foreground"]
    rows = [(f"foreground (M={fg['num_neurons']}) vs its background (N={fg['background_width']})", fg["to_background"]),
            ("foreground vs theory", fg["to_theory"]),
            ("GP-background foreground vs GP neurons (prior)", gp["to_background"]),
            ("GP-background foreground vs theory", gp["to_theory"])]
    lines.append(f"{'':48} " + " ".join(f"{METRIC_LABELS[m]:>26}" for m in METRICS))
    for label, entry in rows:
        if entry is not None:
            lines.append(f"{label:48} " + " ".join(f"{_fmt(entry[m]):>26}" for m in METRICS))
    lines.append("moments (± standard error): " + "  ".join(f"{name:>14}" for name in SUMMARY_MOMENTS))
    moment_rows = [("theory (grid quadrature)", theory["moments"]),
                   *[(f"network N={r['width']} (seed 0)", r["moments"][0]) for r in results["networks"]],
                   ("foreground", fg["moments"]), ("GP-background foreground", gp["moments"])]
    for label, values in moment_rows:
        lines.append(f"{label:27}" + "  ".join(f"{values[n]['mean']:7.4f}±{values[n]['stderr']:.4f}" for n in SUMMARY_MOMENTS))
    lines.append(f"losses: foreground network {fg['loss']:.5f} vs its background network {fg['background_loss']:.5f}; "
                 f"GP-background foreground {gp['loss']:.5f} vs GP {gp['background_loss']:.5f}")
    timings = results["timings"]
    lines.append("timings, wall (cpu) s: " + ", ".join(f"{k} {v:.0f} ({timings.get(k + '_cpu', float('nan')):.0f})"
                                                      for k, v in timings.items() if not k.endswith("_cpu")))
    return "\n".join(lines)


def _law_from_density(density: dict) -> NeuronLaw:
    axis = np.asarray(density["axis"])
    weights = np.asarray(density["weights"]).reshape(-1)
    w = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    return NeuronLaw(jnp.asarray(w), jnp.log(jnp.maximum(jnp.asarray(weights), 1e-300)))


def make_figures(results: dict, outdir: str | Path = "figures") -> list[str]:
    """Redraw the clover figures from the results JSON alone; returns the PNG paths."""
    from mft_jax.analysis import plots

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    name, clouds = results["name"], results["clouds"]
    paths = []
    cloud = lambda key: NeuronLaw.from_samples(jnp.asarray(clouds[key]))  # noqa: E731
    if results["theory"].get("density"):
        plt = io.pyplot()
        law = _law_from_density(results["theory"]["density"])
        figure, axes = plt.subplots(1, 2, figsize=(10.5, 4.4), constrained_layout=True)
        # log colour scale: rho is sharply peaked, and a linear scale hides the tails the neurons populate
        plots.neuron_density(law, ax=axes[0], log=True, title=r"theory: $\rho(w)$ at the fixed point (log scale)")
        plots.neuron_density(law, neurons=cloud("network"), ax=axes[1], log=True,
                             title="with the neurons of a Langevin network")
        path = outdir / f"{name}_density.png"
        io.save_figure(figure, path, dpi=150)
        paths.append(path)
    path = outdir / f"{name}_foreground.png"
    plots.foreground_vs_background(cloud("network"), cloud("foreground"), path=path,
                                   labels=(f"background: network neurons (N = {clouds['network_width']})", "foreground: independent neurons"),
                                   title="foreground (independent neurons) vs its background")
    paths.append(path)
    path = outdir / f"{name}_foreground_gp.png"
    plots.foreground_vs_background(cloud("gp_background"), cloud("gp_foreground"), path=path,
                                   labels=("background: GP (prior neurons)", "foreground: trained on the GP residual"),
                                   title="foreground on the wrong (GP) background")
    paths.append(path)
    if len(results["networks"]) >= 2:
        plt = io.pyplot()
        widths = [r["width"] for r in results["networks"]]
        figure, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.8), constrained_layout=True)
        for ax, metric in zip(axes, METRICS):
            summaries = [r["summary"][metric] for r in results["networks"]]
            plots.distance_vs_width(widths, [s["distance"] for s in summaries], [s["error"] for s in summaries],
                                    [s["noise_floor"] for s in summaries], fit=True, ax=ax,
                                    label="network vs theory", ylabel=f"{METRIC_LABELS[metric]} distance to rho(w)")
        path = outdir / f"{name}_distance.png"
        io.save_figure(figure, path, dpi=150)
        paths.append(path)
    return [str(p) for p in paths]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help=f"benchmark config (default {CONFIG.relative_to(ROOT)}; --quick: {QUICK_CONFIG.relative_to(ROOT)})")
    parser.add_argument("--quick", action="store_true", help="the reduced run (experiments/configs/clover_quick.toml)")
    parser.add_argument("--results", default=str(ROOT / "results"), help="results directory (the run writes clover/RUN.json in it, RUN from [benchmark] name)")
    parser.add_argument("--figures", default=str(ROOT / "figures"), help="directory for the PNGs")
    parser.add_argument("--progress", action="store_true", help="progress bars")
    args = parser.parse_args(argv)
    config_path = args.config or (QUICK_CONFIG if args.quick else CONFIG)
    config = load_config(config_path)
    results = run_benchmark(config, progress=args.progress)
    results["meta"] = io.run_metadata(config, config["benchmark"]["seed"])
    json_path = results_file(args.results, "clover", run_name("clover", results["name"]))
    io.write_json(json_path, results)
    with stage("figure", results["timings"]):
        paths = make_figures(results, args.figures)
    print(table(results))
    print(f"wrote {json_path} and " + ", ".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
