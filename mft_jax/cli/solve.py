"""``mft-jax solve CONFIG --out DIR``: the mean-field fixed point of a TOML config.

Sections: ``[task]`` (``config.data_from``), ``[model]`` (``config.model_from``) and ``[solver]``
(``SolverConfig``). Writes ``DIR/solution.json`` (converged, iterations, loss, free energy,
history, diagnostics, resolved config, meta), ``DIR/neurons.npz`` (the neuron law) and
``DIR/background.npz`` (data and fixed-point residual). ``[model] depth >= 3`` solves the deep
theory (``mft_jax.theory.deep.solve_deep``, docs/theory.md section 6) and writes ``DIR/kernels.npz`` (the
data, the residual and every layer's kernel ``Phi_l``) instead of the neuron law. Exit 0 converged,
1 not converged (with a hint), 2 bad config, 3 non-normalizable law.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import jax

from mft_jax import io
from mft_jax.cli.config import DEEP_METHODS, data_from, load_toml, model_from, schedule_from, section, solver_from  # noqa: F401
from mft_jax.model import Deep
from mft_jax.theory.deep import solve_deep
from mft_jax.theory.samplers.layers import gaussian_layers, grid_layers, importance_layers, mcmc_layers
from mft_jax.errors import ConfigError
from mft_jax.theory.samplers import Sampler
from mft_jax.theory.samplers.grid import grid_sampler
from mft_jax.theory.samplers.importance import importance_sampler
from mft_jax.theory.samplers.mcmc import mcmc_sampler
from mft_jax.theory.samplers.pooled import pooled_sampler
from mft_jax.theory.samplers.tempered import tempered_sampler
from mft_jax.theory.two_layer import solve

SECTIONS = ("task", "model", "solver")
SAMPLERS = ("grid", "importance", "mcmc", "tempered")
DEEP_SAMPLERS = ("grid", "importance", "gaussian", "mcmc")  # depth >= 3 (mft_jax.theory.samplers.layers.LayerSampler)


@dataclasses.dataclass(frozen=True)
class SolverConfig:
    """``[solver]``: the sampler of the neuron law and the fixed-point iteration (``mft_jax.theory.two_layer.solve``)."""

    sampler: str = "grid"
    grid_size: int = 64  # grid: nodes per axis
    grid_extent: float = 6.0  # grid: half-width in units of sqrt(sw2)
    num_samples: int = 100_000  # importance: fixed prior draws
    num_chains: int = 1024  # mcmc
    mcmc_steps: int = 100  # mcmc: steps per fixed-point iteration
    step_size: float = 0.1  # mcmc
    num_levels: int = 8  # tempered: replicas per chain (mft_jax.theory.samplers.tempered)
    min_inverse_temperature: float = 0.1  # tempered: the hottest replica's b
    pool: int = 1  # mcmc / tempered: each law = the union of the last `pool` laws (mft_jax.theory.samplers.pooled; 1: off)
    init: str = "gp"  # gp | feature
    tol: float = 1e-5
    max_iter: int = 300
    damping: float = 0.5
    anderson: int = 5
    continuation: int = 0
    beta_start: float | None = None
    normalizability: str = "check"  # check | metastable (skip the runaway check: the well at the origin)
    auto: bool = True  # escalate by itself (continuation, damping) when the start is refused or the iteration stalls
    adapt_grid: bool = True  # re-grid a law the grid does not resolve or contain
    newton: bool = False  # start with Newton ascent on the free energy (grid / importance; auto switches to it on a stall)
    method: str | None = None  # two-layer: anderson (default) | damped | ascent; deep (depth >= 3): newton (default) | anderson | damped
    seed: int = 0

    def __post_init__(self):
        """Ranges every sampler shares, checked where the config enters (a key the chosen sampler ignores included;
        the sampler's name is checked by ``make_sampler`` / ``make_layer_sampler``, which know the depth)."""
        for name, low in (("grid_size", 3), ("num_samples", 2), ("num_chains", 1), ("mcmc_steps", 1), ("num_levels", 2),
                          ("pool", 1), ("max_iter", 0), ("anderson", 0), ("continuation", 0)):
            if getattr(self, name) < low:
                raise ConfigError(f"[solver] {name} must be an integer >= {low}, got {getattr(self, name)!r}")
        for name in ("grid_extent", "step_size", "tol") + (("beta_start",) if self.beta_start is not None else ()):
            if not getattr(self, name) > 0:
                raise ConfigError(f"[solver] {name} must be a number > 0, got {getattr(self, name)!r}")
        if not 0 < self.damping <= 1:
            raise ConfigError(f"[solver] damping must be in (0, 1], got {self.damping!r}")
        if not 0 < self.min_inverse_temperature < 1:
            raise ConfigError(f"[solver] min_inverse_temperature must be in (0, 1) (the hottest replica's b), got {self.min_inverse_temperature!r}")
        for name, allowed in (("init", ("gp", "feature")), ("normalizability", ("check", "metastable"))):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"[solver] {name} = {getattr(self, name)!r} is unknown; allowed: {', '.join(allowed)}")
        if self.method is not None and self.method not in DEEP_METHODS:
            raise ConfigError(f"[solver] method = {self.method!r} is unknown; allowed: {', '.join(DEEP_METHODS)} (deep nets)")


def make_sampler(config: SolverConfig) -> Sampler:
    """The ``Sampler`` a ``[solver]`` section names."""
    if config.sampler == "grid":
        sampler = grid_sampler(config.grid_size, config.grid_extent)
    elif config.sampler == "importance":
        sampler = importance_sampler(config.num_samples)
    elif config.sampler == "mcmc":
        sampler = mcmc_sampler(config.num_chains, config.mcmc_steps, config.step_size)
    elif config.sampler == "tempered":
        sampler = tempered_sampler(config.num_chains, config.mcmc_steps, num_levels=config.num_levels,
                                   min_inverse_temperature=config.min_inverse_temperature)
    else:
        raise ConfigError(f"[solver] sampler = {config.sampler!r} is unknown; allowed: {', '.join(SAMPLERS)}")
    return sampler if config.pool == 1 else pooled_sampler(sampler, config.pool)


def make_layer_sampler(config: SolverConfig):
    """The deep solver's ``LayerSampler`` a ``[solver]`` section names (``[model] depth >= 3``)."""
    if config.sampler == "grid":
        return grid_layers(config.grid_size, config.grid_extent, config.num_samples)
    if config.sampler == "importance":
        return importance_layers(config.num_samples)
    if config.sampler == "gaussian":
        return gaussian_layers()
    if config.sampler == "mcmc":
        return mcmc_layers(config.num_chains, config.mcmc_steps)
    raise ConfigError(f"[solver] sampler = {config.sampler!r} is not available for deep nets; allowed: {', '.join(DEEP_SAMPLERS)}")


def add_arguments(parser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    raw = load_toml(args.config, SECTIONS)
    config = section(SolverConfig, raw.get("solver"), "solver")
    model = model_from(raw, deep=True)
    data = data_from(raw)
    if isinstance(model, Deep):
        return run_deep(args, raw, config, model, data)
    solver = solver_from(config.method, damping=config.damping, anderson=config.anderson, newton=config.newton)
    sampler = make_sampler(config)
    solution = solve(
        data, model, sampler, key=jax.random.key(config.seed), solver=solver,
        schedule=schedule_from(config.continuation, config.beta_start), init=config.init, auto=config.auto,
        tol=config.tol, max_iter=config.max_iter, progress=not args.no_progress,
        normalizability=config.normalizability, adapt_grid=config.adapt_grid,
    )
    for action in solution.actions:
        print(f"mft-jax solve: automatic step: {action}")
    out = staging(args)
    write_solution(out, solution, raw, config, model, solution.actions)
    io.save_neurons(out / "neurons.npz", solution.law)
    io.save_background(out / "background.npz", data, solution.residual, model)
    print(f"mft-jax solve: {solution.message}; loss {solution.loss:.6g}, free energy {solution.free_energy}; wrote {args.out}")
    if not solution.converged:
        print(f"mft-jax solve: {solution.message}", file=sys.stderr)
        return 1
    return 0


def staging(args) -> Path:
    """Where a job writes its files: the staging directory ``main`` made (renamed to ``--out`` when complete)."""
    return Path(getattr(args, "staging", None) or args.out)


def write_solution(out: Path, solution, raw: dict, config: SolverConfig, model, actions) -> None:
    """``solution.json``: the verdict, loss, free energy, history and diagnostics, with the resolved config and run metadata."""
    resolved = {"task": dict(raw.get("task") or {}), "model": model.settings(), "solver": dataclasses.asdict(config)}
    io.write_json(out / "solution.json", {
        "converged": solution.converged,
        "iterations": solution.iterations,
        "loss": solution.loss,
        "free_energy": solution.free_energy,
        "message": solution.message,
        "actions": list(actions),
        "history": solution.history,
        "diagnostics": solution.diagnostics,
        "config": resolved,
        "meta": io.run_metadata(resolved, config.seed),
    })


def solve_deep_config(config: SolverConfig, model: Deep, data, *, progress: bool, job: str = "solve"):
    """``solve_deep`` with the settings of a ``[solver]`` section, its automatic steps and warnings printed."""
    sampler = make_layer_sampler(config)
    if config.init != "gp":
        raise ConfigError(f"[solver] init = {config.init!r}: deep nets start from the NNGP (init = 'gp')")
    if progress:  # the first iteration waits for the compilation of the whole depth (experiments/deep_depth_cost.py)
        print(f"mft-jax {job}: depth {model.depth}: compiling the layer-by-layer map (one block per layer; its cost grows "
              "with the depth) ...", flush=True)
    solver = solver_from(config.method, damping=config.damping, deep=True)
    callback = None if not progress else (lambda i, change, beta: print(
        f"mft-jax {job}: iteration {i}, beta {beta:.4g}, relative change {change:.3e}", flush=True))
    solution = solve_deep(
        data, model, sampler, key=jax.random.key(config.seed), solver=solver,
        schedule=schedule_from(config.continuation, config.beta_start), auto=config.auto, tol=config.tol,
        max_iter=config.max_iter, callback=callback,
    )
    for action in solution.actions:
        print(f"mft-jax {job}: automatic step: {action}")
    for warning in solution.diagnostics["warnings"]:
        print(f"mft-jax {job}: warning: {warning}", file=sys.stderr)
    return solution


def run_deep(args, raw: dict, config: SolverConfig, model: Deep, data) -> int:
    """``[model] depth >= 3``: the per-layer fixed point of docs/theory.md section 6."""
    solution = solve_deep_config(config, model, data, progress=not args.no_progress)
    out = staging(args)
    write_solution(out, solution, raw, config, model, solution.actions)
    kernels = {f"phi_{layer}": kernel for layer, kernel in enumerate(solution.kernels, start=1)}
    io.save_npz(out / "kernels.npz", x=data.x, q=data.q, y=data.y, residual=solution.residual, **kernels)
    print(f"mft-jax solve: depth {model.depth}: {solution.message}; loss {solution.loss:.6g}, "
          f"free energy {solution.free_energy:.6g}; wrote {args.out}")
    if not solution.converged:
        print(f"mft-jax solve: {solution.message}", file=sys.stderr)
        return 1
    return 0
