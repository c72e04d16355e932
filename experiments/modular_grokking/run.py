"""``python -m experiments.modular_grokking``: every section of the config, the results file and figure.

Subcommands: ``branches`` (both branches of the theory on a partial table, the kernel check, the two-start networks;
``branches_run.branches_main``, ``--help`` for its options), ``critical`` (the theory's grokking fraction from the annealed
per-mode theory and its quenched check; ``critical.critical_main``) and ``summary RUN.json ... [--annealed ANNEALED.json]``
(``critical_fraction.json``; ``summary.summary_main``)."""

from __future__ import annotations

import dataclasses
import sys

import jax
import numpy as np

from experiments._common import parse
from mft_jax.analysis.stats import mean_se
from mft_jax.cli.config import load_toml, section
from mft_jax.io import run_metadata, write_results
from mft_jax.theory.reduced.modular import library_couplings, solve_discrepancy
from experiments.modular_grokking.config import CheckSection, FullTableSection, GrokkingSection, NAME, ROOT, TheorySection, TheoryStartSection, WidthTrendSection
from experiments.modular_grokking.figures import make_figures
from experiments.modular_grokking.networks import full_table_networks, gp_point, split_points, summarise, width_trend
from experiments.modular_grokking.theory import check_theory_moduli, theory_section, theory_start


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["branches"]:
        from experiments.modular_grokking.branches_run import branches_main

        return branches_main(argv[1:])
    if argv[:1] == ["summary"]:
        from experiments.modular_grokking.summary import summary_main

        return summary_main(argv[1:])
    if argv[:1] == ["critical"]:
        from experiments.modular_grokking.critical import critical_main

        return critical_main(argv[1:])
    args = parse(NAME, __doc__.splitlines()[0], argv)
    raw = load_toml(args.config, {"grokking", "theory", "width_trend", "full_table_networks", "theory_start", "width_check", "steps_check"})
    g = section(GrokkingSection, raw.get("grokking"), "grokking")
    t = section(TheorySection, raw["theory"], "theory") if "theory" in raw else None
    if t is not None:
        check_theory_moduli(t, g)  # before the networks run
    cache = ROOT / "runs" / NAME
    key = jax.random.key(g.seed)
    results = {"networks": {}, "gp": {}, "full_table_theory": {}}
    for index, modulus in enumerate(g.moduli):
        beta_full = float(g.betas[index])
        u, kappa = library_couplings(modulus, g.kappa / beta_full, beta_full)
        full = solve_discrepancy(u, kappa, g.gamma, modulus, points=200)
        results["full_table_theory"][str(modulus)] = {"a": full.a, "g": full.g, "phase": full.phase, "learned": full.learned,
                                                       "a_gp": 1 / (1 + 4 * kappa / modulus**2), "beta": beta_full, "sa2": g.kappa / beta_full}
        nets, gps, raw_points = [], [], []
        for fraction in g.fractions:
            n_train = int(round(fraction * modulus**2))
            points = split_points(key, modulus, fraction, beta_full, g, cache)
            gp = [gp_point(modulus, n_train, s, beta_full, g) for s in range(g.num_seeds)]
            nets.append(points)
            gps.append(gp)
            raw_points.append({"fraction": fraction, "n_train": n_train, "networks": [{k: v for k, v in p.items() if k != "trace"} for p in points],
                               "gp": gp})
            net_loss, net_se = mean_se([p["test_loss_relative"] for p in points])
            acc, acc_se = mean_se([p["test_accuracy"] for p in points])
            gp_loss, gp_se = mean_se([p["test_loss_relative"] for p in gp])
            gp_acc, _ = mean_se([p["test_accuracy"] for p in gp])
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
    if t is not None:
        results["theory"] = theory_section(t, g, results, cache)
    if "width_trend" in raw:
        results["width_trend"] = width_trend(section(WidthTrendSection, raw["width_trend"], "width_trend"), g, key, cache)
    if "full_table_networks" in raw:
        results["full_table_networks"] = full_table_networks(section(FullTableSection, raw["full_table_networks"], "full_table_networks"),
                                                             g, key, cache)
    if "theory_start" in raw:
        results["theory_start"] = theory_start(section(TheoryStartSection, raw["theory_start"], "theory_start"), g, results, key, cache)
    for name in ("width_check", "steps_check"):
        if name not in raw:
            continue
        check = section(CheckSection, raw[name], name)
        steps = check.steps or g.steps
        varied = dataclasses.replace(g, width=check.width or g.width, steps=steps, burn_in=g.burn_in * steps // g.steps)
        beta_full = float(g.betas[list(g.moduli).index(check.modulus)])
        per_fraction = []
        for fraction in check.fractions:
            points = split_points(key, check.modulus, fraction, beta_full, varied, cache)  # same keys and splits as [grokking]
            per_fraction.append(points)
            loss, loss_se = mean_se([p["test_loss_relative"] for p in points])
            late, late_se = mean_se([p["second_half"]["test_loss_relative"] for p in points])
            acc, acc_se = mean_se([p["test_accuracy"] for p in points])
            print(f"{name} P = {check.modulus}, N = {varied.width}, {varied.steps} steps, fraction {fraction:.2f}: networks relative test loss "
                  f"{loss:.3f} +- {loss_se:.2g} (second half {late:.3f} +- {late_se:.2g}), accuracy {acc:.3f} +- {acc_se:.2g} "
                  f"[{sum(p['seconds'] for p in points):.0f} s]", flush=True)
        results[name] = {"P": check.modulus, "width": varied.width, "steps": varied.steps, **summarise(check.fractions, per_fraction),
                         "second_half_test_loss_relative": [mean_se([p["second_half"]["test_loss_relative"] for p in points]) for points in per_fraction],
                         "points": [[{k: v for k, v in p.items() if k != "trace"} for p in points] for points in per_fraction]}
    results["config"] = raw
    results["meta"] = run_metadata(raw, g.seed)
    write_results(args.out, results, make_figures, args.figures)
    return results
