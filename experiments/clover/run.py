"""``python -m experiments.clover``: theory, networks, foreground neurons, comparison; the results file and table."""

from __future__ import annotations

import argparse
import math
import jax
import jax.numpy as jnp
import numpy as np

from experiments._common import ROOT, results_file, run_name
from mft_jax import io
from mft_jax.analysis import compare
from mft_jax.analysis.stats import batch_means_error
from mft_jax.cli.config import data_from, model_from
from mft_jax.theory.gp import gp_loss, gp_residual
from mft_jax.cli.solve import SolverConfig, make_sampler
from mft_jax.neurons import NeuronLaw
from mft_jax.theory.two_layer import solve
from mft_jax.train import joint as network  # loss, residual, network_law
from mft_jax.train.foreground import network_loss, train_foreground
from mft_jax.train.joint import langevin_optimizer, train
from experiments.clover.config import CONFIG, METRICS, METRIC_LABELS, QUICK_CONFIG, load_config, stage
from experiments.clover.figures import make_figures
from experiments.clover.measure import Distances, SUMMARY_MOMENTS, _cloud, _theory_density, exponent_fits, subsample, summary_moments, width_summary


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
