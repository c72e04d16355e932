"""Modular addition from part of the table: test loss and accuracy vs training fraction (networks, GP).

Issue 9 item 5. The setting of ``benchmarks/modular_addition.py`` (square activation, two-hot inputs of
``Z_P``, prior ``exp(-|w|^2/2 - Gamma)`` with ``Gamma = fourier_sextic(gamma)``), trained on a random
fraction of the ``P^2`` pairs (``mft_jax.tasks.make_split``: the training set of ``make_data(n_train=k,
seed=s)`` and the held-out rest, nested in k for one s). The noise is per example: ``beta(n) = beta n/P^2``
at fixed ``sa2 = kappa/beta`` (the posterior ``exp(-sum_mu |r_mu|^2/(2 T_1) - prior)`` of a fixed noise ``T_1``;
``beta`` and ``kappa`` are the full-table values). For each P and fraction, over ``num_seeds`` splits:

1. ``networks``: Langevin square networks with the same prior (``mft_jax.train.joint``); the prediction on the
   held-out pairs is the network output averaged over the recorded steps after the burn-in (the posterior mean).
2. ``gp``: the Gaussian process with the same prior (``mft_jax.modular.prior_gp_predict``: the exact NNGP kernel
   ``E[(w.x)^2 (w.x')^2]`` under the sextic prior).
The exact two-layer theory on the training set (``mft_jax.solver.solve`` with MALA chains in 2P dimensions) is not
run here: at these couplings the chains do not mix (README, modular addition).

Test loss ``1/2 mean_test |f - y|^2`` (relative: over that of f = 0, ``(P-1)/(2P)``) and test accuracy
(``argmax_p f_p = (n + m) mod P``). The transition fraction is where the relative test loss of a split
first falls below 1/2 (linear interpolation on the fraction grid), mean and s.e. over the splits that cross; likewise
where it falls below 1 (better than f = 0) and where the accuracy rises above 1/2.

Run: ``python benchmarks/modular_grokking.py [--quick] [--config configs/modular_grokking.toml]``.
Network points are cached in ``runs/modular_grokking/`` (delete to recompute).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from benchmark_cli import parse  # noqa: E402
from mft_jax.config import load_toml, section  # noqa: E402
from mft_jax.io import run_metadata, write_json  # noqa: E402
from mft_jax.model import TwoLayer  # noqa: E402
from mft_jax.modular import library_couplings, prior_gp_predict, solve_discrepancy  # noqa: E402
from mft_jax.priors import fourier_sextic  # noqa: E402
from mft_jax.tasks import make_split  # noqa: E402
from mft_jax.train.joint import langevin_optimizer, train  # noqa: E402
from mft_jax.train.network import predict  # noqa: E402

NAME = "modular_grokking"


@dataclasses.dataclass(frozen=True)
class GrokkingSection:
    """``[grokking]``: moduli, fractions, the prior and the Langevin networks (library units, mean-field)."""

    moduli: list = dataclasses.field(default_factory=lambda: [11, 23])
    betas: list = dataclasses.field(default_factory=lambda: [3000.0, 3000.0])  # full-table beta, one per modulus
    fractions: list = dataclasses.field(default_factory=lambda: [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98])
    kappa: float = 10.0  # full-table beta sa2
    gamma: float = 10.0
    width: int = 256
    num_seeds: int = 3  # splits, one network each
    steps: int = 3000
    burn_in: int = 1500
    record_every: int = 250
    step_size: float = 0.1
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class CheckSection:
    """``[width_check]``, ``[steps_check]``: the networks of ``[grokking]`` (same splits and keys) at another width and/or
    another number of steps (burn-in scaled alike; 0: as in ``[grokking]``), at one P and a few fractions."""

    modulus: int = 23
    width: int = 0
    steps: int = 0
    fractions: list = dataclasses.field(default_factory=lambda: [0.7, 0.8, 0.9])


def model_at(modulus: int, fraction_points: int, beta_full: float, g: GrokkingSection) -> TwoLayer:
    """Per-example noise: ``beta = beta_full n/P^2``, ``sa2 = kappa/beta_full`` fixed."""
    beta = beta_full * fraction_points / modulus**2
    return TwoLayer("square", sa2=g.kappa / beta_full, sw2=1.0, beta=beta, penalty=fourier_sextic(g.gamma))


def test_metrics(f, test) -> dict:
    """Test loss ``1/2 mean |f - y|^2``, that over f = 0's, and accuracy of ``argmax f``."""
    f, y = np.asarray(f, float), np.asarray(test.y, float)
    modulus = y.shape[1]
    loss = 0.5 * float(np.mean(np.sum((f - y) ** 2, axis=1)))
    return {"test_loss": loss, "test_loss_relative": loss / (0.5 * (modulus - 1) / modulus),
            "test_accuracy": float(np.mean(np.argmax(f, 1) == np.argmax(y, 1)))}


def network_point(key, modulus: int, n_train: int, split: int, beta_full: float, g: GrokkingSection, cache: Path) -> dict:
    """One Langevin network on one split: time-averaged held-out output after the burn-in; cached as JSON."""
    path = cache / f"P{modulus}_beta{beta_full:g}_n{n_train}_s{split}_N{g.width}_T{g.steps}_h{g.step_size:g}.json"
    if path.is_file():
        return json.loads(path.read_text())
    data, test = make_split("modular_addition", modulus=modulus, n_train=n_train, seed=g.seed + split)
    model = model_at(modulus, n_train, beta_full, g)
    observe = lambda p: {"test_output": predict(p, model, test.x)}
    clock = time.perf_counter()
    result = train(key, model, g.width, data, langevin_optimizer(model, g.step_size), g.steps, num_seeds=1,
                   chunk=g.record_every, observables=observe, progress=False)
    seconds = time.perf_counter() - clock
    steps = np.asarray(result.history["step"])
    outputs = np.asarray(result.history["test_output"], float)[:, 0]  # (records, n_test, P)
    kept = steps > g.burn_in
    late = steps > (g.burn_in + g.steps) / 2
    record = {"P": modulus, "n_train": n_train, "split": split, "beta": model.beta, "sa2": model.sa2, "width": g.width,
              "seconds": seconds, "load_average": os.getloadavg()[0],
              "train_loss": float(np.asarray(result.history["loss"], float)[kept].mean()),
              **test_metrics(outputs[kept].mean(0), test),
              "second_half": test_metrics(outputs[late].mean(0), test),
              "trace": [test_metrics(o, test) for o in outputs]}
    record["steps_recorded"] = steps.tolist()
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return record


def gp_point(modulus: int, n_train: int, split: int, beta_full: float, g: GrokkingSection) -> dict:
    """The GP with the same prior (exact sextic-prior NNGP kernel) on the same split."""
    data, test = make_split("modular_addition", modulus=modulus, n_train=n_train, seed=g.seed + split)
    model = model_at(modulus, n_train, beta_full, g)
    return test_metrics(prior_gp_predict(data, model, test.x, g.gamma), test)


def transition(fractions, values, level: float, falling: bool = True) -> float:
    """First fraction at which ``values`` cross ``level`` (falling below it, or rising above it with ``falling=False``),
    by linear interpolation between grid fractions; the first fraction if already past there (then an upper bound); NaN if never."""
    sign = 1.0 if falling else -1.0
    past = [sign * (level - v) > 0 for v in values]
    if past[0]:
        return float(fractions[0])
    for i in range(1, len(fractions)):
        if past[i]:
            lo, hi = values[i - 1], values[i]
            return float(fractions[i - 1] + (lo - level) / (lo - hi) * (fractions[i] - fractions[i - 1]))
    return float("nan")


def _mean_se(values) -> tuple[float, float]:
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")


def summarise(fractions, per_split: list[list[dict]]) -> dict:
    """``per_split[i][s]``: metrics at fraction i, split s -> mean and s.e. per fraction, and the transition fraction."""
    out = {"fractions": list(fractions)}
    for metric in ("test_loss", "test_loss_relative", "test_accuracy"):
        stats = [_mean_se([point[metric] for point in points]) for points in per_split]
        out[metric] = [m for m, _ in stats]
        out[metric + "_se"] = [s for _, s in stats]
    splits = len(per_split[0])
    series = lambda metric, s: [per_split[i][s][metric] for i in range(len(fractions))]  # noqa: E731
    for name, metric, level, falling in (("loss_below_1", "test_loss_relative", 1.0, True), ("loss_below_half", "test_loss_relative", 0.5, True),
                                         ("accuracy_above_half", "test_accuracy", 0.5, False)):
        crossings = [transition(fractions, series(metric, s), level, falling) for s in range(splits)]
        mean, se = _mean_se(crossings)
        out["transition_" + name] = {"per_split": crossings, "mean": mean, "se": se, "found": int(np.sum(np.isfinite(crossings)))}
    return out


def main(argv=None) -> dict:
    args = parse(NAME, __doc__.splitlines()[0], argv)
    raw = load_toml(args.config, {"grokking", "width_check", "steps_check"})
    g = section(GrokkingSection, raw.get("grokking"), "grokking")
    cache = ROOT / "runs" / NAME
    key = jax.random.key(g.seed)
    results = {"networks": {}, "gp": {}, "full_table_theory": {}}
    for index, modulus in enumerate(g.moduli):
        beta_full = float(g.betas[index])
        u, kappa = library_couplings(modulus, g.kappa / beta_full, beta_full)
        full = solve_discrepancy(u, kappa, g.gamma, modulus, points=200)
        results["full_table_theory"][str(modulus)] = {"a": full.a, "phase": full.phase, "learned": full.learned,
                                                       "a_gp": 1 / (1 + 4 * kappa / modulus**2), "beta": beta_full, "sa2": g.kappa / beta_full}
        nets, gps, raw_points = [], [], []
        for i, fraction in enumerate(g.fractions):
            n_train = int(round(fraction * modulus**2))
            points = [network_point(jax.random.fold_in(key, 100_000 * modulus + 100 * i + s), modulus, n_train, s, beta_full, g, cache)
                      for s in range(g.num_seeds)]
            gp = [gp_point(modulus, n_train, s, beta_full, g) for s in range(g.num_seeds)]
            nets.append(points)
            gps.append(gp)
            raw_points.append({"fraction": fraction, "n_train": n_train, "networks": [{k: v for k, v in p.items() if k != "trace"} for p in points],
                               "gp": gp})
            net_loss, net_se = _mean_se([p["test_loss_relative"] for p in points])
            acc, acc_se = _mean_se([p["test_accuracy"] for p in points])
            gp_loss, gp_se = _mean_se([p["test_loss_relative"] for p in gp])
            gp_acc, _ = _mean_se([p["test_accuracy"] for p in gp])
            print(f"P = {modulus}, fraction {fraction:.2f} (n = {n_train}, beta = {points[0]['beta']:.3g}): networks relative test loss "
                  f"{net_loss:.3f} +- {net_se:.2g}, accuracy {acc:.3f} +- {acc_se:.2g} (train loss {np.mean([p['train_loss'] for p in points]):.3g}); "
                  f"GP {gp_loss:.3f} +- {gp_se:.2g}, accuracy {gp_acc:.3f} [{sum(p['seconds'] for p in points):.0f} s]", flush=True)
        results["networks"][str(modulus)] = {**summarise(g.fractions, nets), "points": raw_points}
        results["gp"][str(modulus)] = summarise(g.fractions, gps)
        for name in ("networks", "gp"):
            r = results[name][str(modulus)]
            print(f"P = {modulus}: {name} transitions (fraction; mean +- s.e. over the splits that cross): " + "; ".join(
                f"{k[len('transition_'):]} {v['mean']:.3f} +- {v['se']:.2g} ({v['found']} of {g.num_seeds})"
                for k, v in r.items() if k.startswith("transition_")), flush=True)
    for name in ("width_check", "steps_check"):
        if name not in raw:
            continue
        check = section(CheckSection, raw[name], name)
        steps = check.steps or g.steps
        varied = dataclasses.replace(g, width=check.width or g.width, steps=steps, burn_in=g.burn_in * steps // g.steps)
        beta_full = float(g.betas[list(g.moduli).index(check.modulus)])
        per_fraction = []
        for fraction in check.fractions:
            i = list(g.fractions).index(fraction)  # same keys and splits as the [grokking] point
            n_train = int(round(fraction * check.modulus**2))
            points = [network_point(jax.random.fold_in(key, 100_000 * check.modulus + 100 * i + s), check.modulus, n_train, s, beta_full, varied, cache)
                      for s in range(g.num_seeds)]
            per_fraction.append(points)
            loss, loss_se = _mean_se([p["test_loss_relative"] for p in points])
            late, late_se = _mean_se([p["second_half"]["test_loss_relative"] for p in points])
            acc, acc_se = _mean_se([p["test_accuracy"] for p in points])
            print(f"{name} P = {check.modulus}, N = {varied.width}, {varied.steps} steps, fraction {fraction:.2f}: networks relative test loss "
                  f"{loss:.3f} +- {loss_se:.2g} (second half {late:.3f} +- {late_se:.2g}), accuracy {acc:.3f} +- {acc_se:.2g} "
                  f"[{sum(p['seconds'] for p in points):.0f} s]", flush=True)
        results[name] = {"P": check.modulus, "width": varied.width, "steps": varied.steps, **summarise(check.fractions, per_fraction),
                         "second_half_test_loss_relative": [_mean_se([p["second_half"]["test_loss_relative"] for p in points]) for points in per_fraction],
                         "points": [[{k: v for k, v in p.items() if k != "trace"} for p in points] for points in per_fraction]}
    results["config"] = raw
    results["meta"] = run_metadata(raw, g.seed)
    write_json(Path(args.results) / f"{NAME}.json", results)
    paths = make_figures(results, args.figures)
    print("figures:", ", ".join(str(p) for p in paths))
    return results


def make_figures(results: dict, outdir="figures") -> list:
    """Relative test loss and test accuracy vs training fraction: networks and GP; one colour per P."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    for i, (modulus, nets) in enumerate(results["networks"].items()):
        gp = results["gp"][modulus]
        for ax, metric in zip(axes, ("test_loss_relative", "test_accuracy")):
            ax.errorbar(nets["fractions"], nets[metric], nets[metric + "_se"], fmt="o-", color=f"C{i}", label=f"networks P = {modulus}")
            ax.errorbar(gp["fractions"], gp[metric], gp[metric + "_se"], fmt="s:", color=f"C{i}", mfc="none", label=f"GP P = {modulus}")
    markers = {"width_check": "D", "steps_check": "v"}
    for name, marker in markers.items():
        check = results.get(name)
        if not check:
            continue
        colour = f"C{list(results['networks']).index(str(check['P']))}"
        for ax, metric in zip(axes, ("test_loss_relative", "test_accuracy")):
            ax.errorbar(check["fractions"], check[metric], check[metric + "_se"], fmt=marker, color=colour, mfc="none", ms=8,
                        label=f"networks P = {check['P']}, N = {check['width']}, {check['steps']} steps")
    axes[0].axhline(0.5, color="gray", lw=0.8, ls="--")
    axes[0].axhline(1.0, color="gray", lw=0.8, ls=":")
    axes[0].set(xlabel="training fraction of the P^2 pairs", ylabel="test loss / test loss of f = 0", title="held-out pairs: loss")
    axes[1].set(xlabel="training fraction of the P^2 pairs", ylabel="test accuracy", title="held-out pairs: accuracy")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = outdir / f"{NAME}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]


if __name__ == "__main__":
    main()
