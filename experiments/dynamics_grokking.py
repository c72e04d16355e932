"""Grokking in time: the mean-field theory of the training run against Langevin networks on modular addition.

The setting of ``experiments.modular_grokking`` (P = 11, two-hot inputs of Z_P, square activation, ``fourier_sextic(gamma)``
weight penalty, per-example noise ``model_at``: ``beta = beta_full n / P^2``, ``sa2 = kappa / beta_full``), trained on a
fraction of the addition table (``make_split``, split 0) and tested on the rest. Theory: ``solve_dynamics`` on the same
training set (M particles from antithetic prior draws, ``f(., 0) = 0``; windows of ``window`` steps, since the square
network's fast modes make long windows need many sweeps), the held-out loss recorded (``test=``). Networks: the same
Langevin (``langevin_optimizer``, tamed penalty force, step h) from the prior, ``seeds`` seeds at each width, the held-out
loss recorded every ``record_every`` steps (the joint trainer's ``observables`` / ``chunk``). Time t = step x h.

Grokking time: the first time the relative test loss (the held-out loss over that of f = 0, ``test_metrics``) falls below
1 (and below 1/2), by linear interpolation between records (``experiments.modular_grokking.networks.transition``), per
seed; NaN if never within the run. Reported: theory (per M) and networks (mean, s.e. over the seeds that reach the level,
and how many do) per fraction, and the curves.

Run: ``python -m experiments.dynamics grokking [--quick]``; writes ``results/dynamics/grokking.json``
(``grokking_quick.json``) and ``figures/dynamics_grokking.png``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments.modular_grokking.config import GrokkingSection
from experiments.modular_grokking.networks import model_at, transition
from mft_jax.io import pyplot, run_metadata, save_figure, write_json
from mft_jax.tasks import make_split
from mft_jax.theory.dynamics import solve_dynamics
from mft_jax.train.joint import langevin_optimizer, train

DEFAULT = {"modulus": 11, "beta_full": 3000.0, "kappa": 10.0, "gamma": 10.0, "fractions": [0.95, 0.98], "step_size": 0.1,
           "steps": 3000, "record_every": 50, "window": 10, "particles": [1024, 4096], "widths": [256, 1024], "seeds": 8,
           "levels": [1.0, 0.5], "seed": 0}
QUICK = {**DEFAULT, "fractions": [0.98], "steps": 300, "particles": [256], "widths": [64], "seeds": 2}
P23 = {**DEFAULT, "modulus": 23, "fractions": [0.7, 0.9], "particles": [2048], "widths": [256, 1024]}
"""``--modulus 23``: held-out sets of 159 / 53 pairs (P = 11 leaves 6 and 2 at 0.95 / 0.98), at the fractions around
the networks' 3000-step transition there (0.729, ``results/modular_grokking/main.json``) and above the annealed theory's
f_c (``results/modular_grokking/critical_fraction.json``)."""
CHECKS = ("theory_prior_start", "theory_half_step", "networks_half_step", "networks_at_largest_m")
"""``--checks`` (written to ``grokking_checks.json``): what moves the grokking time, per fraction of the run, at the smallest
M and width of the config: the theory from i.i.d. prior draws (the networks' start: ``f(., 0) != 0``) instead of antithetic
pairs, the theory and the networks at half the step size (twice the steps, same times); and networks as wide as the
theory's largest M (the theory is the M-particle system: the same size, another start)."""


def grokking_times(times, curves, levels) -> dict:
    """Per level: the first crossing time of each curve ((records,) or (records, seeds)), NaN if never."""
    curves = np.asarray(curves, dtype=float).reshape(len(times), -1)
    return {f"{level:g}": [transition(list(times), list(curves[:, s]), level) for s in range(curves.shape[1])] for level in levels}


def _stats(values) -> dict:
    values = np.asarray(values, dtype=float)
    reached = values[np.isfinite(values)]
    se = float(reached.std(ddof=1) / np.sqrt(len(reached))) if len(reached) > 1 else float("nan")
    return {"per_seed": values.tolist(), "reached": int(len(reached)), "of": int(len(values)),
            "mean": float(reached.mean()) if len(reached) else float("nan"), "se": se}


def setting(fraction: float, config: dict):
    """The training set, held-out set and model at one fraction of the table (split ``config["seed"]``)."""
    g = GrokkingSection(kappa=config["kappa"], gamma=config["gamma"])
    p = config["modulus"]
    n_train = int(round(fraction * p * p))
    data, test = make_split("modular_addition", modulus=p, n_train=n_train, seed=config["seed"])
    return data, test, model_at(p, n_train, config["beta_full"], g), 0.5 * (p - 1) / p  # the held-out loss of f = 0


def clock_at(config: dict, step_size=None) -> tuple[float, int, int, np.ndarray]:
    """``(h, steps, every, times)`` of a run at step ``h`` (default the config's) over the config's time span: the steps
    and the record interval scaled by ``config["step_size"] / h``, and the record times ``every h, 2 every h, ..``."""
    h = step_size or config["step_size"]
    scale = int(round(config["step_size"] / h))  # steps of h per step of the config's step size
    steps, every = config["steps"] * scale, config["record_every"] * scale
    return h, steps, every, h * np.arange(every, steps + 1, every)


def theory_run(fraction: float, config: dict, key, particles: int, init: str = "antithetic", step_size=None) -> dict:
    """``solve_dynamics`` on the training set: the relative held-out loss at the networks' record times and its crossings."""
    data, test, model, null = setting(fraction, config)
    h, steps, every, times = clock_at(config, step_size)
    clock = time.perf_counter()
    sol = solve_dynamics(data, model, key=key, steps=steps, step_size=h, num_neurons=particles, init=init, test=test,
                         windows=steps // config["window"])
    curve = sol.test_loss[every::every] / null
    crossing = {level: values[0] for level, values in grokking_times(times, curve, config["levels"]).items()}
    out = {"particles": particles, "init": init, "step_size": h, "test_loss_relative": curve, "train_loss": sol.loss[every::every],
           "grokking_time": crossing, "converged": sol.converged, "message": sol.message, "seconds": time.perf_counter() - clock}
    print(f"[grokking {fraction}] theory M = {particles} ({init}, h = {h:g}): {sol.message.split('.')[0]}; relative test loss "
          f"{curve[0]:.3f} -> {curve[-1]:.3f} (min {curve.min():.3f}); grokking time {crossing} ({out['seconds']:.0f} s)", flush=True)
    return out


def network_runs(fraction: float, config: dict, key, width: int, step_size=None) -> dict:
    """``seeds`` Langevin networks from the prior: relative held-out loss curves (records, seeds), mean, s.e., crossings."""
    data, test, model, null = setting(fraction, config)
    h, steps, every, times = clock_at(config, step_size)
    clock = time.perf_counter()
    observe = lambda params: {"test_loss": 0.5 * jnp.mean(jnp.sum((model.apply(params, test.x) - test.y) ** 2, axis=1))}  # noqa: E731
    run = train(key, model, width, data, langevin_optimizer(model, h), steps, num_seeds=config["seeds"], chunk=every,
                observables=observe, progress=False)
    curves = np.asarray(run.history["test_loss"], dtype=float) / null  # (records, seeds)
    crossing = {level: _stats(values) for level, values in grokking_times(times, curves, config["levels"]).items()}
    out = {"width": width, "step_size": h, "test_loss_relative_mean": curves.mean(1),
           "test_loss_relative_se": curves.std(1, ddof=1) / np.sqrt(curves.shape[1]), "test_loss_relative": curves,
           "train_loss_mean": np.asarray(run.history["loss"]).mean(1), "grokking_time": crossing,
           "seconds": time.perf_counter() - clock}
    summary = "; ".join(f"below {level}: {c['mean']:.1f} +- {c['se']:.1f} ({c['reached']}/{c['of']})" for level, c in crossing.items())
    print(f"[grokking {fraction}] networks N = {width} (h = {h:g}): relative test loss -> {curves[-1].mean():.3f}; {summary} "
          f"({out['seconds']:.0f} s)", flush=True)
    return out


def run_fraction(fraction: float, config: dict, key) -> dict:
    data, _, _, _ = setting(fraction, config)
    out = {"fraction": fraction, "n_train": data.num_points, "n_test": config["modulus"] ** 2 - data.num_points,
           "times": clock_at(config)[3]}  # the networks' records: after steps every, 2 every, ..
    out["theory"] = [theory_run(fraction, config, jax.random.fold_in(key, m), m) for m in config["particles"]]
    out["networks"] = [network_runs(fraction, config, jax.random.fold_in(key, 10_000 + i), width) for i, width in enumerate(config["widths"])]
    return out


def end_level_transition(results: dict, level: float = 1.0) -> dict:
    """The fraction at which the relative held-out loss at the end of the run (its mean over the last tenth of the records,
    which smooths the discrete step's spikes) first falls below ``level`` (``transition``:
    linear interpolation on the fraction grid; NaN if never): the theory (largest M) and, per width, each seed's
    crossing (mean and s.e. over the seeds that cross). What ``experiments.modular_grokking`` calls the networks'
    transition fraction, at this run length, predicted by the theory of the training run."""
    fractions = [out["fraction"] for out in results["fractions"]]
    tail = max(1, len(results["fractions"][0]["times"]) // 10)
    end = lambda curve: np.mean(np.asarray(curve)[-tail:], axis=0)  # noqa: E731
    theory = transition(fractions, [float(end(out["theory"][-1]["test_loss_relative"])) for out in results["fractions"]], level)
    networks = []
    for i, first in enumerate(results["fractions"][0]["networks"]):
        ends = np.asarray([end(out["networks"][i]["test_loss_relative"]) for out in results["fractions"]])  # (fractions, seeds)
        per_seed = [transition(fractions, list(ends[:, s]), level) for s in range(ends.shape[1])]
        networks.append({"width": first["width"], **_stats(per_seed),
                         "mean_curve": transition(fractions, list(ends.mean(1)), level)})
    return {"level": level, "fractions": fractions, "tail_records": tail, "theory": theory, "networks": networks}


def plot(results: dict, path) -> Path:
    plt = pyplot()
    fractions = results["fractions"]
    figure, axes = plt.subplots(1, len(fractions), figsize=(6 * len(fractions), 4.5), squeeze=False)
    for ax, out in zip(axes[0], fractions):
        times = np.asarray(out["times"])
        for th in out["theory"]:
            ax.plot(times, th["test_loss_relative"], "-", color="k", lw=2 if th is out["theory"][-1] else 1,
                    alpha=1.0 if th is out["theory"][-1] else 0.5, label=f"theory M = {th['particles']}")
        for net in out["networks"]:
            mean, se = np.asarray(net["test_loss_relative_mean"]), np.asarray(net["test_loss_relative_se"])
            line, = ax.plot(times, mean, lw=1, label=f"networks N = {net['width']} ({len(net['test_loss_relative'][0])} seeds)")
            ax.fill_between(times, mean - 2 * se, mean + 2 * se, color=line.get_color(), alpha=0.25)
        for level in results["config"]["levels"]:
            ax.axhline(level, color="0.6", lw=0.5, ls=":")
        ax.set(title=f"P = {results['config']['modulus']}, fraction {out['fraction']:g} ({out['n_train']} pairs)",
               xlabel="t = step x h", ylabel="held-out loss / that of f = 0")
        ax.legend(fontsize=8)
    return save_figure(figure, path)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m experiments.dynamics grokking", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a CPU smoke run (under a minute)")
    parser.add_argument("--results", default="results/dynamics")
    parser.add_argument("--figures", default="figures")
    parser.add_argument("--modulus", type=int, choices=(11, 23), default=11, help="P: 11 (default) or 23 (larger held-out sets)")
    parser.add_argument("--fractions", type=float, nargs="+", default=None, help="override the preset's fractions of the table")
    parser.add_argument("--sweep", action="store_true",
                        help="name the run grokking[_P23]_sweep and add the fraction at which the end-of-run held-out loss falls below 1")
    parser.add_argument("--checks", action="store_true", help="the step-size and start checks (CHECKS) instead of the main run")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else (P23 if args.modulus == 23 else DEFAULT)
    if args.quick and args.modulus == 23:
        config = {**QUICK, "modulus": 23, "fractions": [0.7]}
    if args.fractions:
        bad = [f for f in args.fractions if not 0 < f < 1]
        if bad:
            parser.error(f"--fractions must lie in (0, 1) (a part of the table, the rest held out); got {bad}")
        config = {**config, "fractions": list(args.fractions)}
    run = ("grokking_quick" if args.quick else "grokking") + ("_P23" if args.modulus == 23 else "") + ("_sweep" if args.sweep else "") + ("_checks" if args.checks else "")
    key = jax.random.key(config["seed"])
    results = {"run": run, "quick": args.quick, "config": config}
    if args.checks:
        results["checks"] = CHECKS
        results["fractions"] = []
        for i, f in enumerate(config["fractions"]):
            k = jax.random.fold_in(key, i)
            half = config["step_size"] / 2
            m, width = config["particles"][0], config["widths"][0]
            results["fractions"].append({
                "fraction": f,
                "theory_prior_start": theory_run(f, config, jax.random.fold_in(k, m), m, init="prior"),
                "theory_half_step": theory_run(f, config, jax.random.fold_in(k, m), m, step_size=half),
                "networks_half_step": network_runs(f, config, jax.random.fold_in(k, 10_000), width, step_size=half),
                "networks_at_largest_m": network_runs(f, config, jax.random.fold_in(k, 20_000), config["particles"][-1])})
    else:
        results["fractions"] = [run_fraction(f, config, jax.random.fold_in(key, i)) for i, f in enumerate(config["fractions"])]
        if args.sweep:
            results["transition"] = end_level_transition(results)
            t = results["transition"]
            print(f"end-of-run transition (relative held-out loss below 1): theory {t['theory']:.3f}; " + "; ".join(
                f"networks N = {n['width']} {n['mean']:.3f} +- {n['se']:.3f} ({n['reached']}/{n['of']})" for n in t["networks"]), flush=True)
    command = "python -m experiments.dynamics grokking " + " ".join(sys.argv[2:] if argv is None else argv)
    results["meta"] = {**run_metadata(config, config["seed"]), "command": command.strip()}
    write_json(Path(args.results) / f"{run}.json", results)
    if args.checks:
        print(f"wrote {Path(args.results) / f'{run}.json'}", flush=True)
        return results
    figure = plot(results, Path(args.figures) / f"dynamics_{run}.png")
    print(f"wrote {Path(args.results) / f'{run}.json'} and {figure}", flush=True)
    return results
