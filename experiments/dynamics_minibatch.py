"""Minibatch (SGD) noise in time: networks trained on minibatches against the theory of their batch sequences.

Clover (``continuous_xor`` on a 4 x 4 Gauss-Hermite quadrature, P = 16, gelu, ``sa2 = 4``), plain SGD (``T = 0``,
step h, mean-field scaling: step k is time k h) on minibatches of b points (``mft_jax.train.joint.train`` with
``batch_size``: weights restricted and renormalised). Every width uses the same training key, so seed s has the same
batch sequence at every width (``mft_jax.train.joint.batch_key(key, s)``); the theory is solved once per sequence
(``solve_dynamics(batch_size=b, batch_key=batch_key(key, s))``, M antithetic particles). Recorded at the theory's
times (loss on all 16 points):

- ``paired``: network seed s minus the theory of its own sequence, mean and s.e. over seeds, and ``z`` (the theory's
  own M-particle error added as in ``experiments.dynamics.summary``): finite-width error only, no batch noise;
- ``averaged``: the networks' seed mean against the theory averaged over the sequences, ``z`` with both s.e.;
- ``spread``: the standard deviation over seeds of the networks' loss and over sequences of the theory's (the size of
  the minibatch noise), and the full-batch theory's distance from the sequence average in its s.e. (the noise's
  systematic effect).

Run: ``python -m experiments.dynamics --minibatch [--quick]``; writes ``results/dynamics/minibatch.json``
(``minibatch_quick.json``; the command, config, commit and versions in ``meta``) and ``figures/dynamics_minibatch.png``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.io import pyplot, run_metadata, save_figure, write_json
from mft_jax.model import TwoLayer
from mft_jax.tasks import make_data
from mft_jax.theory.dynamics import solve_dynamics
from mft_jax.train.joint import batch_key, optax_optimizer, train
from mft_jax.train.joint import loss as network_loss

DEFAULT = {"task": {"name": "continuous_xor", "quadrature": 4}, "model": {"activation": "gelu", "sa2": 4.0, "sw2": 1.0, "beta": 4.0},
           "batch_size": 4, "step_size": 0.05, "steps": 200, "record_every": 5, "particles": 4096, "widths": [64, 256, 1024],
           "seeds": 8, "seed": 0}
QUICK = {**DEFAULT, "steps": 40, "particles": 256, "widths": [32, 128], "seeds": 4}


def networks(key, model, data, width: int, config: dict) -> np.ndarray:
    """``seeds`` networks of width N trained by SGD on minibatches: the loss on all the data at the records (records, seeds)."""
    every = config["record_every"]
    run = train(key, model, width, data, optax_optimizer("sgd", config["step_size"]), config["steps"], num_seeds=config["seeds"],
                batch_size=config["batch_size"], chunk=every, progress=False,
                observables=lambda params: {"full_loss": network_loss(params, model, data)})
    init = jax.vmap(lambda k: model.init_params(jax.random.split(k, 3)[0], width, data.input_dim, data.output_dim))(
        jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(config["seeds"])))
    first = np.asarray(jax.vmap(lambda a, w: network_loss({"a": a, "w": w}, model, data))(init["a"], init["w"]))
    return np.concatenate([first[None], np.asarray(run.history["full_loss"])])


def run(config: dict, key) -> dict:
    model = TwoLayer(**config["model"])
    data = make_data(config["task"]["name"], seed=config["seed"], quadrature=config["task"]["quadrature"])
    h, steps, every, m = config["step_size"], config["steps"], config["record_every"], config["particles"]
    recorded = np.arange(0, steps + 1, every)
    train_key = jax.random.fold_in(key, 100)
    options = dict(steps=steps, step_size=h, temperature=0.0, num_neurons=m, init="antithetic")
    start = time.perf_counter()
    theories = [solve_dynamics(data, model, key=jax.random.fold_in(key, s), batch_size=config["batch_size"],
                               batch_key=batch_key(train_key, s), **options) for s in range(config["seeds"])]
    full = solve_dynamics(data, model, key=jax.random.fold_in(key, 0), **options)
    seconds = time.perf_counter() - start
    converged = all(t.converged for t in theories) and full.converged
    theory = np.stack([t.loss[recorded] for t in theories], axis=1)  # (records, sequences)
    sequences = theory.shape[1]
    theory_mean, theory_se = theory.mean(1), theory.std(1, ddof=1) / np.sqrt(sequences)
    full_z = (full.loss[recorded] - theory_mean) / np.maximum(theory_se, 1e-300)
    print(f"[minibatch] theory: {sequences} sequences and full batch, converged {converged} ({seconds:.0f} s); loss "
          f"{theory_mean[0]:.4f} -> {theory_mean[-1]:.4f} +- {theory_se[-1]:.4f} (full batch -> {full.loss[-1]:.4f}, "
          f"max |z| {np.abs(full_z).max():.1f})", flush=True)
    out = {"times": full.times[recorded], "config": config,
           "theory": {"loss": theory, "mean": theory_mean, "se": theory_se, "spread": theory.std(1, ddof=1),
                      "full_batch_loss": full.loss[recorded], "full_batch_z": full_z, "converged": converged,
                      "messages": [t.message for t in theories] + [full.message], "seconds": seconds},
           "networks": []}
    for width in config["widths"]:
        start = time.perf_counter()
        curves = networks(train_key, model, data, width, config)
        spread = curves.std(1, ddof=1)
        own = spread * np.sqrt(width / m)  # the theory's own M-particle error, as experiments.dynamics.summary
        difference = curves - theory
        paired_mean, paired_se = difference.mean(1), difference.std(1, ddof=1) / np.sqrt(sequences)
        paired_z = paired_mean / np.maximum(np.hypot(paired_se, own), 1e-300)
        mean, se = curves.mean(1), spread / np.sqrt(curves.shape[1])
        averaged_z = (mean - theory_mean) / np.maximum(np.hypot(se, theory_se), 1e-300)
        point = {"width": width, "seconds": time.perf_counter() - start, "loss": curves, "mean": mean, "se": se,
                 "paired": {"mean": paired_mean, "se": paired_se, "z": paired_z, "max_abs_z": float(np.abs(paired_z).max()),
                            "fraction_within_2se": float(np.mean(np.abs(paired_z) < 2))},
                 "averaged": {"z": averaged_z, "max_abs_z": float(np.abs(averaged_z).max()),
                              "fraction_within_2se": float(np.mean(np.abs(averaged_z) < 2))},
                 "spread": {"networks": spread, "ratio_to_theory_late": float(spread[len(spread) // 2:].mean()
                                                                             / theory.std(1, ddof=1)[len(spread) // 2:].mean())}}
        out["networks"].append(point)
        print(f"[minibatch] N = {width}: paired max |z| {point['paired']['max_abs_z']:.2f} (within 2 s.e. at "
              f"{100 * point['paired']['fraction_within_2se']:.0f}% of times), mean paired gap at the end "
              f"{paired_mean[-1]:+.5f} +- {paired_se[-1]:.5f}; averaged max |z| {point['averaged']['max_abs_z']:.2f}; "
              f"late spread networks / theory {point['spread']['ratio_to_theory_late']:.2f} ({point['seconds']:.0f} s)", flush=True)
    return out


def plot(out: dict, path) -> Path:
    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(14, 4), squeeze=False)
    row = axes[0]
    times = np.asarray(out["times"])
    theory = out["theory"]
    row[0].plot(times, np.asarray(theory["loss"]), color="0.7", lw=0.7)
    row[0].plot(times, theory["mean"], "k-", lw=2, label="theory, mean over sequences")
    row[0].plot(times, theory["full_batch_loss"], "k:", lw=2, label="theory, full batch")
    for point in out["networks"]:
        mean, se = np.asarray(point["mean"]), np.asarray(point["se"])
        line, = row[0].plot(times, mean, lw=1, label=f"N = {point['width']}")
        row[0].fill_between(times, mean - se, mean + se, color=line.get_color(), alpha=0.3)
        row[1].plot(times, point["paired"]["z"], lw=1, color=line.get_color(), label=f"N = {point['width']}")
        row[2].plot(times, point["spread"]["networks"], lw=1, color=line.get_color(), label=f"N = {point['width']}")
    row[2].plot(times, theory["spread"], "k-", lw=2, label="theory")
    row[0].set(title="clover, SGD on minibatches: loss vs time", xlabel="t = step x h", ylabel="loss (all data)")
    row[1].axhspan(-2, 2, color="0.85")
    row[1].set(title="(network - theory of its sequence) / s.e.", xlabel="t", ylabel="z")
    row[2].set(title="spread of the loss over batch sequences", xlabel="t", ylabel="standard deviation")
    for axis in row:
        axis.legend(fontsize=8)
    return save_figure(figure, path)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m experiments.dynamics --minibatch", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a CPU smoke run (well under a minute)")
    parser.add_argument("--results", default="results/dynamics")
    parser.add_argument("--figures", default="figures")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else DEFAULT
    name = "minibatch_quick" if args.quick else "minibatch"
    out = run(config, jax.random.key(config["seed"]))
    command = "python -m experiments.dynamics --minibatch " + " ".join(argv or [])
    out["meta"] = {**run_metadata(config, config["seed"]), "command": command.strip()}
    write_json(Path(args.results) / f"{name}.json", out)
    figure = plot(out, Path(args.figures) / f"dynamics_{name}.png")
    print(f"wrote {Path(args.results) / f'{name}.json'} and {figure}", flush=True)
    return out
