"""Finite networks against the mean-field theory of the whole training run (mft_jax.theory.dynamics).

For each setting (clover: ``continuous_xor`` on a 4 x 4 Gauss-Hermite quadrature, gelu; teacher-student: ``teacher_student``
d = 4 on 32 training points with 1024 held-out points, erf) the theory's self-consistent run ``solve_dynamics`` (M particles
from the prior, Langevin at T = 1/beta, step h) and networks of widths N trained from the prior by the same Langevin
(``mft_jax.train.joint.train`` with ``langevin_optimizer(model, h)``, mean-field scaling: step k is time k h, seeds
vmapped). The theory's particles start as antithetic pairs (``f(., 0) = 0`` exactly, as for infinite width). Recorded
at the theory's times: the loss (and test loss) mean and standard error over seeds; the z-score ``(network - theory) /
s.e.`` at each time (s.e. of the seed mean and of the theory's own M particles, see ``summary``); the energy distance in ``(a, w)`` between the networks' pooled neurons and the
theory's particles at an early, middle and late time with its noise floor (``mft_jax.analysis.compare.noise_floor``, same
sample size); the width trend of the late-time loss gap (expected O(1/N)).

Grokking in time (modular addition, theory and networks): ``python -m experiments.dynamics grokking [--quick]``
(``experiments/dynamics_grokking.py``).

Minibatch (SGD) noise in time: ``python -m experiments.dynamics --minibatch [--quick]`` (``experiments/dynamics_minibatch.py``).

Run: ``python -m experiments.dynamics [--quick] [--results results/dynamics] [--figures figures]``; writes
``results/dynamics/<run>.json`` (``run`` = ``default`` or ``quick``; the command, config, commit and versions in
``meta``) and ``figures/dynamics.png`` (``dynamics_quick.png``).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.analysis import compare
from mft_jax.data import Dataset
from mft_jax.io import pyplot, run_metadata, save_figure, write_json
from mft_jax.model import TwoLayer
from mft_jax.neurons import NeuronLaw
from mft_jax.tasks import get_task, make_data
from mft_jax.theory.dynamics import solve_dynamics
from mft_jax.train.joint import langevin_optimizer, train
from mft_jax.train.joint import loss as network_loss

DEFAULT = {
    "step_size": 0.05, "steps": 400, "record_every": 10, "particles": 131072, "widths": [64, 256, 1024, 4096], "seeds": 16,
    "extrapolate_widths": [256, 1024, 4096],
    "law_times": [2.5, 10.0, 20.0], "law_sample": 2048, "law_reference": 8192, "floor_repeats": 10, "seed": 0,
    "settings": {
        "clover": {"task": {"name": "continuous_xor", "quadrature": 4},
                   "model": {"activation": "gelu", "sa2": 4.0, "sw2": 1.0, "beta": 4.0}},
        "teacher_student": {"task": {"name": "teacher_student", "d": 4, "n_train": 32, "test": 1024},
                            "model": {"activation": "erf", "sa2": 4.0, "sw2": 1.0, "beta": 4.0}},
    },
}
QUICK = {**DEFAULT, "steps": 40, "particles": 256, "widths": [32, 128], "extrapolate_widths": [32, 128], "seeds": 4, "law_times": [0.5, 1.0, 2.0],
         "law_sample": 128, "floor_repeats": 2}


def datasets(task: dict, seed: int) -> tuple[Dataset, Dataset | None]:
    options = {k: v for k, v in task.items() if k not in ("name", "test")}
    data = make_data(task["name"], seed=seed, **options)
    if "test" not in task:
        return data, None
    factory = {k: v for k, v in options.items() if k not in ("quadrature", "samples", "n_train")}
    return data, get_task(task["name"], **factory).sample(jax.random.key(seed + 1), task["test"])


def networks(key, model, data, test, width, config):
    """``seeds`` networks of width N by Langevin at step h; training (and test) loss of each at every record, and
    their neurons at the records (seeds, N, .)."""
    every = config["record_every"]
    observe = lambda params: {"a": params["a"], "w": params["w"]}  # noqa: E731
    run = train(key, model, width, data, langevin_optimizer(model, config["step_size"]), config["steps"],
                num_seeds=config["seeds"], chunk=every, progress=False, observables=observe)
    a, w = (np.asarray(run.history[k]) for k in ("a", "w"))  # (records, seeds, N, .): after steps every, 2 every, ..
    init = jax.vmap(lambda k: model.init_params(jax.random.split(k, 3)[0], width, data.input_dim, data.output_dim))(
        jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(config["seeds"])))
    a = np.concatenate([np.asarray(init["a"])[None], a])
    w = np.concatenate([np.asarray(init["w"])[None], w])
    losses = jax.vmap(jax.vmap(lambda a_, w_, d: network_loss({"a": a_, "w": w_}, model, d), (0, 0, None)), (0, 0, None))
    train_loss = np.asarray(losses(a, w, data))
    test_loss = None if test is None else np.asarray(losses(a, w, test))
    return {"a": a, "w": w, "loss": train_loss, "test_loss": test_loss}


def summary(curves: np.ndarray, theory: np.ndarray, width: int, particles: int) -> dict:
    """Mean and s.e. over seeds of ``curves`` (records, seeds) and ``z = (mean - theory) / s.e.``. The theory is one run of
    M particles, itself a width-M network: its own error is estimated as one width-N network's spread scaled by N / M
    (fluctuations of a width-N network are O(1/N) in variance) and added in quadrature (``theory_se``)."""
    spread = curves.std(1, ddof=1)
    mean, error = curves.mean(1), spread / np.sqrt(curves.shape[1])
    theory_error = spread * np.sqrt(width / particles)
    z = (mean - theory) / np.maximum(np.hypot(error, theory_error), 1e-300)
    return {"mean": mean, "se": error, "theory_se": theory_error, "z": z, "max_abs_z": float(np.abs(z).max()),
            "fraction_within_2se": float(np.mean(np.abs(z) < 2))}


def extrapolate(points: list[dict], quantity: str, theory: np.ndarray, particles: int) -> dict:
    """Per recorded time, the weighted least-squares fit ``f_N = f_inf + b / N`` of the seed means over ``points``' widths
    (weights 1 / s.e.^2): ``f_inf`` and its s.e., ``b``, the fit's chi^2 (``len(points) - 2`` degrees of freedom), and
    ``z = (f_inf - theory) / hypot(s.e., theory's own error)``, the theory's error estimated as in ``summary`` from the
    largest width (``spread sqrt(N / M)``). ``theory_bias`` = ``b / M``: the O(1/M) offset a width-M network would have
    (the theory is the M-particle system), for scale."""
    inverse = np.array([1.0 / p["width"] for p in points])
    means = np.stack([np.asarray(p[quantity]["mean"]) for p in points])  # (widths, times)
    errors = np.stack([np.asarray(p[quantity]["se"]) for p in points])
    design = np.stack([np.ones_like(inverse), inverse], axis=1)
    f_inf, slope, f_se, chi2 = (np.empty(means.shape[1]) for _ in range(4))
    for k in range(means.shape[1]):
        weights = 1.0 / np.maximum(errors[:, k], 1e-300) ** 2
        normal = design.T @ (weights[:, None] * design)
        coefficients = np.linalg.solve(normal, design.T @ (weights * means[:, k]))
        f_inf[k], slope[k] = coefficients
        f_se[k] = np.sqrt(np.linalg.inv(normal)[0, 0])
        chi2[k] = float(np.sum(weights * (means[:, k] - design @ coefficients) ** 2))
    largest = points[-1]
    theory_error = np.asarray(largest[quantity]["theory_se"])  # spread sqrt(N / M) at the largest N
    z = (f_inf - theory) / np.maximum(np.hypot(f_se, theory_error), 1e-300)
    return {"widths": [p["width"] for p in points], "f_inf": f_inf, "se": f_se, "slope": slope, "chi2": chi2,
            "theory_se": theory_error, "theory_bias": slope / particles, "z": z, "max_abs_z": float(np.abs(z).max()),
            "fraction_within_2se": float(np.mean(np.abs(z) < 2)), "median_chi2": float(np.median(chi2))}


def law_distance(key, theory: NeuronLaw, a, w, n: int, repeats: int) -> dict:
    """Energy distance in (a, w) between ``n`` pooled network neurons and the theory's particles, and the floor of an
    exact ``n``-sample of the theory's law (``noise_floor`` with ``reference`` the law)."""
    pooled = NeuronLaw.from_samples(jnp.asarray(w.reshape(-1, w.shape[-1])), jnp.asarray(a.reshape(-1, a.shape[-1])))
    subset = compare.resample(key, pooled, n) if pooled.num_particles > n else pooled
    metric = functools.partial(compare.energy_distance, space="aw")
    value = float(metric(theory, subset))
    floor = compare.noise_floor(theory, metric, key=jax.random.fold_in(key, 1), n=subset.num_particles, repeats=repeats,
                                reference=theory)
    return {"distance": value, "floor": float(floor.mean), "floor_std": float(floor.std), "n": subset.num_particles,
            "z_over_floor": float((value - floor.mean) / max(float(floor.std), 1e-300))}


def run_setting(name: str, setting: dict, config: dict, key) -> dict:
    model = TwoLayer(**setting["model"])
    data, test = datasets(setting["task"], config["seed"])
    h, steps, every = config["step_size"], config["steps"], config["record_every"]
    start = time.perf_counter()
    law_steps = [int(round(t / h)) for t in config["law_times"]]
    theory = solve_dynamics(data, model, key=jax.random.fold_in(key, 0), steps=steps, step_size=h,
                            num_neurons=config["particles"], init="antithetic", save_every=every, test=test)
    seconds = time.perf_counter() - start
    print(f"[{name}] theory: {theory.message} ({seconds:.0f} s); loss {theory.loss[0]:.4f} -> {theory.loss[-1]:.4f}", flush=True)
    recorded = np.arange(0, steps + 1, every)
    out = {"times": theory.times[recorded], "theory": {"loss": theory.loss[recorded], "converged": theory.converged,
           "message": theory.message, "seconds": seconds, "settings": theory.settings},
           "networks": [], "data": {"points": data.num_points, "test_points": None if test is None else test.num_points}}
    if test is not None:
        out["theory"]["test_loss"] = theory.test_loss[recorded]
    for index, width in enumerate(config["widths"]):
        start = time.perf_counter()
        net = networks(jax.random.fold_in(key, 100 + index), model, data, test, width, config)
        scale = (width, theory.settings["num_neurons"])
        point = {"width": width, "seconds": time.perf_counter() - start, "loss": summary(net["loss"], theory.loss[recorded], *scale)}
        if test is not None:
            point["test_loss"] = summary(net["test_loss"], theory.test_loss[recorded], *scale)
        late = slice(len(recorded) // 2, None)
        gaps = (net["loss"][late].mean(0) - theory.loss[recorded][late].mean())
        point["late_gap"] = {"mean": float(gaps.mean()), "se": float(gaps.std(ddof=1) / np.sqrt(len(gaps)))}
        point["laws"] = []
        for t, k in zip(config["law_times"], law_steps):
            record = k // every
            law = theory.laws[record]  # the energy distance is quadratic in the sample sizes: the theory's law resampled
            if law.num_particles > config["law_reference"]:
                law = compare.resample(jax.random.fold_in(key, 5000 + k), law, config["law_reference"])
            point["laws"].append({"time": t, **law_distance(jax.random.fold_in(key, 1000 * index + k), law, net["a"][record],
                                                            net["w"][record], config["law_sample"], config["floor_repeats"])})
        out["networks"].append(point)
        if width == config["widths"][-1]:
            fitted = [p for p in out["networks"] if p["width"] in config["extrapolate_widths"]]
            m = theory.settings["num_neurons"]
            out["extrapolated"] = {"loss": extrapolate(fitted, "loss", theory.loss[recorded], m)}
            if test is not None:
                out["extrapolated"]["test_loss"] = extrapolate(fitted, "test_loss", theory.test_loss[recorded], m)
            for quantity, fit in out["extrapolated"].items():
                print(f"[{name}] {quantity} extrapolated over N = {fit['widths']}: max |z| {fit['max_abs_z']:.2f}, within 2 s.e. "
                      f"at {100 * fit['fraction_within_2se']:.0f}% of times; median chi2 {fit['median_chi2']:.2f}", flush=True)
        laws = ", ".join(f"t={p['time']:g}: {p['distance']:.4f} (floor {p['floor']:.4f} +- {p['floor_std']:.4f})" for p in point["laws"])
        print(f"[{name}] N = {width}: loss max |z| {point['loss']['max_abs_z']:.2f}, within 2 s.e. at "
              f"{100 * point['loss']['fraction_within_2se']:.0f}% of times; late gap {point['late_gap']['mean']:+.5f} +- "
              f"{point['late_gap']['se']:.5f}; energy distance {laws} ({point['seconds']:.0f} s)", flush=True)
    return out


def plot(results: dict, path) -> Path:
    plt = pyplot()
    names = list(results["settings"])
    figure, axes = plt.subplots(len(names), 3, figsize=(14, 4 * len(names)), squeeze=False)
    for row, name in zip(axes, names):
        out = results["settings"][name]
        times = np.asarray(out["times"])
        row[0].plot(times, out["theory"]["loss"], "k-", lw=2, label="theory (train)")
        if "test_loss" in out["theory"]:
            row[0].plot(times, out["theory"]["test_loss"], "k--", lw=2, label="theory (test)")
        for point in out["networks"]:
            mean, se = np.asarray(point["loss"]["mean"]), np.asarray(point["loss"]["se"])
            line, = row[0].plot(times, mean, lw=1, label=f"N = {point['width']}")
            row[0].fill_between(times, mean - se, mean + se, color=line.get_color(), alpha=0.3)
            if "test_loss" in point:
                row[0].plot(times, point["test_loss"]["mean"], "--", lw=1, color=line.get_color())
            row[1].plot(times, point["loss"]["z"], lw=1, color=line.get_color(), label=f"N = {point['width']}")
        row[0].set(title=f"{name}: loss vs time (t = step x h)", xlabel="t", ylabel="loss")
        row[0].legend(fontsize=8)
        if "extrapolated" in out:
            fit = out["extrapolated"]["loss"]
            row[1].plot(times, fit["z"], "k-", lw=2, label=f"f_inf (fit over N = {fit['widths']})")
            row[1].legend(fontsize=8)
        row[1].axhspan(-2, 2, color="0.85")
        row[1].set(title="(network mean - theory) / s.e. over seeds", xlabel="t", ylabel="z")
        inverse = [1.0 / p["width"] for p in out["networks"]]
        row[2].errorbar(inverse, [p["late_gap"]["mean"] for p in out["networks"]], [p["late_gap"]["se"] for p in out["networks"]],
                        fmt="o-", label="late loss gap")
        row[2].axhline(0.0, color="k", lw=0.5)
        row[2].set(title="late-time loss gap vs 1/N", xlabel="1/N", ylabel="network - theory")
    return save_figure(figure, path)


def summarise(results: dict) -> str:
    """A markdown table of the measured agreement, from a results file (the docs page docs/results/dynamics.md is generated
    from the same file by ``python -m experiments.report``)."""
    lines = [f"From `{results['meta']['command']}` (commit {results['meta']['git_commit']}); z = (network mean - theory) / "
             "s.e. (seeds, and the theory's own M-particle error) at the recorded times; law distances: energy distance in (a, w), value / floor +- spread.", "",
             "| setting | N | loss: max abs z | loss: times within 2 s.e. | test loss: max abs z | late gap (net - theory) | law distance early / middle / late |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, out in results["settings"].items():
        for point in out["networks"]:
            test = point.get("test_loss")
            test_z = "-" if test is None else f"{test['max_abs_z']:.2f}"
            laws = " / ".join(f"{p['distance']:.4f} ({p['floor']:.4f} +- {p['floor_std']:.4f})" for p in point["laws"])
            lines.append(f"| {name} | {point['width']} | {point['loss']['max_abs_z']:.2f} | "
                         f"{100 * point['loss']['fraction_within_2se']:.0f}% | {test_z} | "
                         f"{point['late_gap']['mean']:+.5f} +- {point['late_gap']['se']:.5f} | {laws} |")
        for quantity, fit in out.get("extrapolated", {}).items():
            lines.append(f"| {name} {quantity} f_inf (N = {fit['widths']}) | 1/N fit | {fit['max_abs_z']:.2f} | "
                         f"{100 * fit['fraction_within_2se']:.0f}% | | | median chi2 {fit['median_chi2']:.2f} |")
        theory = out["theory"]
        lines.append(f"| {name} theory | M = {theory['settings']['num_neurons']} | loss {theory['loss'][0]:.4f} -> "
                     f"{theory['loss'][-1]:.4f} | | | | {theory['message'].split('.')[0]} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["grokking"]:  # modular addition in time: experiments/dynamics_grokking.py
        from experiments import dynamics_grokking

        return dynamics_grokking.main(argv[1:])
    if "--minibatch" in argv:  # SGD on minibatches against the theory of their batch sequences: experiments/dynamics_minibatch.py
        from experiments import dynamics_minibatch

        return dynamics_minibatch.main([a for a in argv if a != "--minibatch"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a CPU smoke run (well under a minute)")
    parser.add_argument("--results", default="results/dynamics")
    parser.add_argument("--figures", default="figures")
    parser.add_argument("--summary", action="store_true", help="print the table of a finished run's results file and exit")
    args = parser.parse_args(argv)
    if args.summary:
        import json

        results = json.loads((Path(args.results) / ("quick.json" if args.quick else "default.json")).read_text())
        print(summarise(results))
        return results
    config = QUICK if args.quick else DEFAULT
    run = "quick" if args.quick else "default"
    print(f"devices: {jax.devices()}", flush=True)
    key = jax.random.key(config["seed"])
    results = {"run": run, "quick": args.quick, "config": config, "settings": {}}
    for index, (name, setting) in enumerate(config["settings"].items()):
        results["settings"][name] = run_setting(name, setting, config, jax.random.fold_in(key, index))
    command = "python -m experiments.dynamics " + " ".join(argv)
    results["meta"] = {**run_metadata(config, config["seed"]), "command": command.strip()}
    write_json(Path(args.results) / f"{run}.json", results)
    figure = plot(results, Path(args.figures) / ("dynamics_quick.png" if args.quick else "dynamics.png"))
    print(f"wrote {Path(args.results) / f'{run}.json'} and {figure}", flush=True)
    return results


if __name__ == "__main__":
    main()
