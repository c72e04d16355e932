"""Networks and the GP on part of the table: runs per split (cached), held-out metrics, the transition in the
training fraction, the width trend and the full-table networks."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import jax
import numpy as np

from pathlib import Path
from mft_jax.analysis.stats import mean_se
from experiments.modular_addition import NetworkSection, network_point as full_table_point
from mft_jax.model import TwoLayer
from mft_jax.theory.reduced.modular import prior_gp_predict, sample_neurons
from mft_jax.priors import fourier_sextic
from mft_jax.tasks import make_split
from mft_jax.train.joint import langevin_optimizer, train
from experiments.modular_grokking.config import FullTableSection, GrokkingSection, WidthTrendSection


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


def network_point(key, modulus: int, n_train: int, split: int, beta_full: float, g: GrokkingSection, cache: Path,
                  start_coupling: float | None = None) -> dict:
    """One Langevin network on one split: time-averaged held-out output after the burn-in; cached as JSON.
    ``start_coupling``: first-layer weights drawn from the per-mode single-neuron law at this coupling
    (``mft_jax.theory.reduced.modular.sample_neurons``; the full-table theory's, so the modes start learned), readouts from the prior;
    None: the prior."""
    tag = "" if start_coupling is None else f"_start{start_coupling:.4g}"
    path = cache / f"P{modulus}_beta{beta_full:g}_n{n_train}_s{split}_N{g.width}_T{g.steps}_h{g.step_size:g}{tag}.json"
    if path.is_file():
        return json.loads(path.read_text())
    data, test = make_split("modular_addition", modulus=modulus, n_train=n_train, seed=g.seed + split)
    model = model_at(modulus, n_train, beta_full, g)
    observe = lambda p: {"test_output": model.apply(p, test.x)}
    init_params = None
    if start_coupling is not None:
        rng = np.random.default_rng([g.seed, modulus, n_train, split, g.width])
        w = sample_neurons(rng, start_coupling, g.gamma, modulus, g.width, points=300)
        init_params = {"a": math.sqrt(model.sa2) * rng.standard_normal((1, g.width, modulus)), "w": w.reshape(1, g.width, 2 * modulus)}
    clock = time.perf_counter()
    result = train(key, model, g.width, data, langevin_optimizer(model, g.step_size), g.steps, num_seeds=1,
                   chunk=g.record_every, observables=observe, progress=False, init_params=init_params)
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


def split_points(key, modulus: int, fraction: float, beta_full: float, g: GrokkingSection, cache: Path) -> list[dict]:
    """The networks of every split at one fraction of ``g.fractions`` (keys fixed by the fraction's place there, so every
    section that varies ``g`` runs the same splits from the same keys)."""
    i = list(g.fractions).index(fraction)
    n_train = int(round(fraction * modulus**2))
    return [network_point(jax.random.fold_in(key, 100_000 * modulus + 100 * i + s), modulus, n_train, s, beta_full, g, cache)
            for s in range(g.num_seeds)]


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


def summarise(fractions, per_split: list[list[dict]]) -> dict:
    """``per_split[i][s]``: metrics at fraction i, split s -> mean and s.e. per fraction, and the transition fraction."""
    out = {"fractions": list(fractions)}
    for metric in ("test_loss", "test_loss_relative", "test_accuracy"):
        stats = [mean_se([point[metric] for point in points]) for points in per_split]
        out[metric] = [m for m, _ in stats]
        out[metric + "_se"] = [s for _, s in stats]
    splits = len(per_split[0])
    series = lambda metric, s: [per_split[i][s][metric] for i in range(len(fractions))]  # noqa: E731
    for name, metric, level, falling in (("loss_below_1", "test_loss_relative", 1.0, True), ("loss_below_half", "test_loss_relative", 0.5, True),
                                         ("accuracy_above_half", "test_accuracy", 0.5, False)):
        crossings = [transition(fractions, series(metric, s), level, falling) for s in range(splits)]
        mean, se = mean_se(crossings)
        out["transition_" + name] = {"per_split": crossings, "mean": mean, "se": se, "found": int(np.sum(np.isfinite(crossings)))}
    return out


def width_trend(trend: WidthTrendSection, g: GrokkingSection, key, cache: Path) -> dict:
    """Relative test loss of the ``[grokking]`` networks (same keys and splits) at each width of ``trend.widths``."""
    beta_full = float(g.betas[list(g.moduli).index(trend.modulus)])
    rows = []
    for fraction in trend.fractions:
        for width in [g.width] + list(trend.widths):
            points = split_points(key, trend.modulus, fraction, beta_full, dataclasses.replace(g, width=width), cache)
            loss, loss_se = mean_se([p["test_loss_relative"] for p in points])
            rows.append({"fraction": fraction, "width": width, "test_loss_relative": loss, "test_loss_relative_se": loss_se,
                         "train_loss": float(np.mean([p["train_loss"] for p in points])),
                         "per_split": [p["test_loss_relative"] for p in points]})
            print(f"width trend P = {trend.modulus}, fraction {fraction:.2f}, N = {width}: relative test loss {loss:.3f} +- {loss_se:.2g} "
                  f"(train loss {rows[-1]['train_loss']:.3g}) [{sum(p['seconds'] for p in points):.0f} s]", flush=True)
    return {"P": trend.modulus, "rows": rows}


def full_table_networks(ft: FullTableSection, g: GrokkingSection, key, cache: Path) -> dict:
    """``[full_table_networks]``: per width, run length and start, the networks' discrepancy ``a`` (second half of the
    run), its halves, the fraction of (neuron, mode) pairs past the barrier, against the exact theory's."""
    beta_full = float(g.betas[list(g.moduli).index(ft.modulus)])
    rows = []
    for width, steps, step_size, start in zip(ft.widths, ft.steps, ft.step_sizes, ft.starts):
        net = NetworkSection(moduli=[ft.modulus], betas=[beta_full], kappa=g.kappa, gamma=g.gamma, width=width,
                             num_seeds=ft.num_seeds, steps=steps, burn_in=steps // 2, record_every=max(steps // 12, 1),
                             step_size=step_size, seed=g.seed)
        # one key per width
        p = full_table_point(jax.random.fold_in(key, 7_000_000 + width), ft.modulus, beta_full, net, cache, start=start)
        rows.append({"width": width, "steps": steps, "step_size": step_size, "time": steps * step_size, "start": start,
                     **{k: p[k] for k in ("a", "a_se", "a_first_half", "a_second_half", "learned", "learned_se", "top_mode_share",
                                          "seconds")},
                     "finite_width_ratio": p["theory"]["finite_width_ratio"], "a_trace": p["a_trace"],
                     "learned_trace": p["learned_trace"], "steps_recorded": p["steps_recorded"]})
        theory = p["theory"]
        print(f"full table P = {ft.modulus}, beta = {beta_full:g}, N = {width}, {steps} x {step_size:g} steps from the {start}: a = "
              f"{p['a']:.4f} +- {p['a_se']:.2g} (halves {p['a_first_half']:.4f} / {p['a_second_half']:.4f}), past the barrier "
              f"{p['learned']:.3f}; theory a = {theory['a']:.4f}, past the barrier {theory['learned']:.3f} [{p['seconds']:.0f} s]", flush=True)
    return {"P": ft.modulus, "beta": beta_full, "theory": {k: theory[k] for k in ("a", "a_gp", "learned", "phase")},
            "rows": rows}
