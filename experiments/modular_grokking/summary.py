"""``python -m experiments.modular_grokking summary RUN.json ...``: the crossing fraction, spinodals and hysteresis
assembled from ``branches`` runs, written to ``results/modular_grokking/critical_fraction.json``, and its figure."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from experiments._common import RESULTS, results_file
from mft_jax.analysis.stats import mean_se
from mft_jax.io import pyplot, run_metadata, save_figure, write_json
from experiments.modular_grokking.config import NAME, ROOT
from experiments.modular_grokking.networks import transition


def summary_main(argv) -> dict:
    """``python -m experiments.modular_grokking summary RUN.json ...``: ``"critical_fraction": {P: {"theory", "theory_err",
    "networks", "networks_err", "spinodals", "hysteresis"}}`` assembled from ``branches`` runs (``results/modular_grokking/``)
    and the networks of ``results/modular_grokking/main.json``, written to ``results/modular_grokking/critical_fraction.json``.

    ``theory``: with ``--annealed ANNEALED.json`` (``critical``), the annealed per-mode theory's f_c with its error
    (``_annealed_theory``); without it, the fraction where the held-out loss of kernel regression with the full-table theory's law (the
    generalising branch's kernel, exact per-mode draws; ``kernel_check``) falls below that of f = 0, per set of draws,
    mean and s.e. over them (the free-energy crossing needs both branches' free energies, which no run here gave: see
    ``theory_free_energy_crossing``). ``networks``: prior-start networks, the same criterion. ``spinodals``: from the
    MALA branch runs (the memorising branch ceases to exist where its chains reach the learned wells). ``hysteresis``:
    the gap between the two network starts at the end of the ``--two-starts`` runs."""
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{NAME} summary", description=summary_main.__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN.json", help="results files of `branches` runs")
    parser.add_argument("--results", default=str(RESULTS), help=f"results directory (reads {NAME}/main.json, writes {NAME}/RUN.json)")
    parser.add_argument("--annealed", nargs="+", default=None, metavar="ANNEALED.json",
                        help="results of `critical` runs (the annealed f_c and its quenched check; later files win per P): becomes `theory`")
    parser.add_argument("--run", default="critical_fraction")
    parser.add_argument("--figures", default=str(ROOT / "figures"))
    args = parser.parse_args(argv)
    runs = {Path(p).name: json.loads(Path(p).read_text()) for p in args.runs}
    stored = json.loads(results_file(args.results, NAME, "main").read_text())
    out = {"inputs": sorted(runs), "critical_fraction": {}}
    moduli = sorted({int(m) for r in runs.values() for key in ("kernel_check", "points", "two_starts") for m in r.get(key, {})})
    annealed = None
    if args.annealed:
        annealed = {"annealed": {}, "quenched": {}, "kinetics": {}}
        for name in args.annealed:
            part = json.loads(Path(name).read_text())
            for key in annealed:
                annealed[key].update(part.get(key, {}))
            out["inputs"].append(Path(name).name)
        moduli = sorted(set(moduli) | {int(m) for m in annealed["annealed"]})
    for modulus in moduli:
        entry = {"theory": None, "theory_err": None, "networks": None, "networks_err": None, "spinodals": None, "hysteresis": None}
        checks = [c for r in runs.values() for c in r.get("kernel_check", {}).get(str(modulus), []) if "full_table_law_kernel_repeats" in c]
        checks = sorted({c["fraction"]: c for c in checks if len(c["full_table_law_kernel_repeats"]) > 1}.values(), key=lambda c: c["fraction"])
        if checks:
            fractions = [c["fraction"] for c in checks]
            repeats = min(len(c["full_table_law_kernel_repeats"]) for c in checks)
            crossings = [transition(fractions, [c["full_table_law_kernel_repeats"][r]["test_loss_relative"] for c in checks], 1.0) for r in range(repeats)]
            entry["theory"], entry["theory_err"] = mean_se(crossings)
            entry["theory_per_draws"] = crossings
            entry["theory_grid"] = fractions
            entry["theory_curve"] = {"test_loss_relative": [c["full_table_law_kernel"]["test_loss_relative"] for c in checks],
                                     "test_loss_relative_se": [c["full_table_law_kernel"]["test_loss_relative_se"] for c in checks],
                                     "test_accuracy": [c["full_table_law_kernel"]["test_accuracy"] for c in checks],
                                     "gp_test_loss_relative": [c["gp"]["test_loss_relative"] for c in checks]}
        entry["theory_definition"] = ("held-out loss below that of f = 0 for kernel regression with the full-table theory's "
                                      "single-neuron law (the generalising branch's kernel, frozen; grid interpolation, "
                                      "s.e. over independent draws; the grid step is a further error)")
        entry["theory_free_energy_crossing"] = None
        entry["theory_free_energy_note"] = ("not computed: importance weights from exact draws of each well collapse (ESS 1 at "
                                            "P = 11, beta = 3000) and MALA chains give no log partition")
        nets = stored.get("networks", {}).get(str(modulus), {}).get("transition_loss_below_1", {})
        entry["networks"], entry["networks_err"] = nets.get("mean"), nets.get("se")
        entry["networks_definition"] = "prior-start networks (N = 256, 3000 steps): held-out loss below that of f = 0"
        branch_rows = [row for r in runs.values() for row in r.get("points", {}).get(str(modulus), [])]
        if branch_rows:
            full_learned = stored["full_table_theory"][str(modulus)]["learned"] if str(modulus) in stored.get("full_table_theory", {}) else 0.9
            crossed = [row["fraction"] for row in branch_rows if row["memorising_learned_fraction"] > 0.5 * full_learned]
            lost = [row["fraction"] for row in branch_rows if row["generalising_learned_fraction"] < 0.5 * full_learned]
            entry["spinodals"] = {"memorising_lost_at_or_above": min(crossed) if crossed else None,
                                  "generalising_lost_at_or_below": max(lost) if lost else None,
                                  "fractions_run": sorted(row["fraction"] for row in branch_rows),
                                  "branches": [{k: row[k] for k in row if k != "repeats"} for row in branch_rows]}
        starts = [row for r in runs.values() for row in r.get("two_starts", {}).get(str(modulus), [])]
        if starts:
            entry["hysteresis"] = {f"{row['fraction']:g}": {"gap_last_record": row["gap_last_record"], "prior_trace": row["prior"]["trace"],
                                                           "learned_trace": row["learned"]["trace"], "steps": row["steps"], "width": row["width"],
                                                           "step_size": row["step_size"]} for row in starts}
            entry["hysteresis_note"] = ("gap between the prior and the learned start at the last record of the two-start networks, as "
                                        "stored: neither trace is stationary, so this is not an equilibrium hysteresis width")
        if annealed and str(modulus) in annealed["annealed"]:
            _annealed_theory(entry, annealed, str(modulus))
        out["critical_fraction"][str(modulus)] = entry
        print(f"P = {modulus}: theory f_c {entry['theory']} +- {entry['theory_err']}; networks {entry['networks']} +- {entry['networks_err']}; "
              f"spinodals {None if not entry['spinodals'] else {k: v for k, v in entry['spinodals'].items() if k != 'branches'}}; "
              f"hysteresis {None if not entry['hysteresis'] else {k: v['gap_last_record'] for k, v in entry['hysteresis'].items()}}", flush=True)
    out["meta"] = run_metadata(None, None, argv=["summary", *argv])
    path = results_file(args.results, NAME, args.run)
    write_json(path, out)
    plot_critical(out, Path(args.figures) / f"{NAME}_{args.run}.png", stored)
    print(f"wrote {path}", flush=True)
    return out


def _annealed_theory(entry: dict, annealed: dict, modulus: str) -> None:
    """``theory``: the annealed f_c (``critical``); the frozen-kernel crossing it replaces moves to ``generalising_kernel_crossing``.

    ``theory_err`` is the approximation's error, not the bisection's: the quadrature sum of (i) the exact-vs-saddle
    difference, (ii) the shift from ``f_c`` of the quenched departure (the fraction where the held-out loss of the exact map
    at the annealed law, on actual training sets, falls below the GP's on the same split: the quenched counterpart of
    leaving the GP phase), (iii) that fraction's s.e. over splits. The crossings of the annealed level ``a(f_c)^2`` and of
    1 are kept beside it. Without a quenched check (P = 41, 97) only (i) is known, and where a split's quenched loss never reaches the
level in the grid (ii) is only bounded below (grid end minus f_c): ``theory_err`` is then a lower bound (said so)."""
    if entry["theory"] is not None:
        entry["generalising_kernel_crossing"] = {"value": entry["theory"], "err": entry["theory_err"], "definition": entry["theory_definition"],
                                                 "grid": entry.get("theory_grid"), "curve": entry.get("theory_curve")}
    record = annealed["annealed"][modulus]
    fc = record["exact"]["gmfl1"]
    components = {"exact_minus_saddle": record["exact_minus_saddle"], "quenched_shift": None, "quenched_se": None}
    quenched = annealed.get("quenched", {}).get(modulus)
    if quenched:
        # f_c marks where the fixed point leaves the memorising (GP) phase: below it the annealed held-out loss is the GP's
        # (a_GP^2). Its quenched counterpart: the fraction where the quenched held-out loss falls below the GP's on the
        # same split (the two share the memorisation offset, which an absolute level would measure instead).
        fractions = quenched["fractions"]
        departure = [transition(fractions, [row["per_split"][s]["quenched"]["test_loss_relative"] - row["per_split"][s]["gp"]["test_loss_relative"]
                                            for row in quenched["rows"]], 0.0) for s in range(quenched["splits"])]
        found = int(np.sum(np.isfinite(departure)))
        mean, se = mean_se(departure) if found == len(departure) else (float("nan"), float("nan"))
        if found == len(departure):
            components["quenched_shift"], components["quenched_se"] = mean - fc, se
        else:  # some split never leaves the GP's loss in the grid: the shift is at least the grid's end minus f_c
            components["quenched_shift_at_least"] = max(fractions) - fc
        level, below1 = quenched["crossings"]["level"], quenched["crossings"]["below_1"]
        entry["theory_quenched"] = {"departure_from_gp": mean, "departure_from_gp_se": se, "departure_per_split": departure, "found": found,
                                    "splits": quenched["splits"], "level": level["level"], "level_crossing": level["mean"],
                                    "level_crossing_se": level["se"], "level_found": level["found"],
                                    "below_1": below1["mean"], "below_1_se": below1["se"], "below_1_found": below1["found"]}
        rows = quenched["rows"]
        entry["theory_curve"] = {"fractions": [r["fraction"] for r in rows],
                                 "quenched_test_loss_relative": [r["quenched_test_loss_relative"] for r in rows],
                                 "quenched_test_loss_relative_se": [r["quenched_test_loss_relative_se"] for r in rows],
                                 "quenched_test_accuracy": [r["quenched_test_accuracy"] for r in rows],
                                 "annealed_test_loss_relative": [r["annealed_test_loss_relative"] for r in rows],
                                 "learned": [r["learned"] for r in rows], "phase": [r["phase"] for r in rows],
                                 "map_mismatch": [r["map_mismatch"] for r in rows], "a": [r["a"] for r in rows],
                                 "a_eff": [r["a_eff"] for r in rows], "tilt_ratio": [r["tilt_ratio"] for r in rows],
                                 "kernel_gain_ratio": [r["kernel_gain_ratio"] for r in rows],
                                 "gp_test_loss_relative": [r["gp_test_loss_relative"] for r in rows]}
        entry["theory_grid"] = entry["theory_curve"]["fractions"]
    known = [v for v in components.values() if v is not None]
    entry["theory"] = fc
    entry["theory_err"] = float(np.sqrt(np.sum(np.square(known)))) if known else None
    entry["theory_err_components"] = components
    entry["theory_err_is_lower_bound"] = components["quenched_shift"] is None or "quenched_shift_at_least" in components
    entry["theory_saddle"] = record["saddle"]["gmfl1"]
    entry["theory_definition"] = ("annealed per-mode theory (mft_jax.theory.reduced.partial_table.critical_fraction, exact "
                                  "per-mode law): the fraction where the unique fixed point leaves the GP phase (GFL -> GMFL-I); "
                                  "theory_err = quadrature sum of |exact - saddle|, the shift of the quenched departure from the "
                                  "GP's held-out loss and its s.e. over splits "
                                  "(theory_err_components; a lower bound where no quenched check ran)")
    entry["spinodals"] = {**(entry["spinodals"] or {}), "theory_learned_well_appears": record["exact"]["spinodal"],
                          "theory_learned_well_appears_saddle": record["saddle"]["spinodal"],
                          "theory_gmfl2": record["exact"]["gmfl2"], "theory_gmfl2_saddle": record["saddle"]["gmfl2"]}
    if modulus in annealed.get("kinetics", {}):
        entry["kinetics"] = annealed["kinetics"][modulus]
    entry["theory_free_energy_note"] = ("no free-energy crossing: at N = infinity the fixed point on a training set is unique "
                                        "(Psi(r) strictly convex, docs/theory.md section 9); two branches exist only as "
                                        "restricted (finite-N, finite-time) ensembles")


def plot_critical(out: dict, path: Path, stored: dict) -> None:
    """Left: held-out loss against the fraction: the theory's unique branch (exact map at the annealed law on actual
    training sets, mean +- s.e. over splits; and the annealed prediction ``a^2``), the memorising GP, the prior-start
    networks, the frozen full-table law's kernel where stored. Right: the annealed per-mode learned fraction; vertical
    lines: the theory's f_c (solid) and the networks' transition (dashed), one colour per P."""
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8))
    for i, (modulus, entry) in enumerate(out["critical_fraction"].items()):
        colour = f"C{i}"
        curve = entry.get("theory_curve")
        if curve and "quenched_test_loss_relative" in curve:
            ax.errorbar(curve["fractions"], curve["quenched_test_loss_relative"], curve["quenched_test_loss_relative_se"], fmt="o-",
                        color=colour, label=f"P = {modulus}: theory, exact map at the annealed law (quenched)")
            ax.plot(curve["fractions"], curve["annealed_test_loss_relative"], "-", color=colour, lw=0.8, alpha=0.6,
                    label=f"P = {modulus}: theory, annealed a^2")
            ax.plot(curve["fractions"], curve["gp_test_loss_relative"], "s:", color=colour, mfc="none", label=f"P = {modulus}: GP (memorising)")
            bx.plot(curve["fractions"], curve["learned"], "o-", color=colour, label=f"P = {modulus}: annealed learned fraction")
        frozen = (entry.get("generalising_kernel_crossing") or {}).get("curve")
        if frozen:
            ax.plot(entry["generalising_kernel_crossing"]["grid"], frozen["test_loss_relative"], "x--", color=colour, alpha=0.5,
                    label=f"P = {modulus}: frozen full-table law's kernel")
        nets = stored.get("networks", {}).get(modulus)
        if nets:
            ax.errorbar(nets["fractions"], nets["test_loss_relative"], nets["test_loss_relative_se"], fmt="^--", color=colour, alpha=0.7,
                        label=f"P = {modulus}: networks from the prior (N = 256, 3000 steps)")
        for axis in (ax, bx):
            if entry.get("theory") is not None:
                axis.axvline(entry["theory"], color=colour, lw=1.0)
            if entry.get("networks") is not None:
                axis.axvline(entry["networks"], color=colour, lw=1.0, ls="--")
        if entry.get("theory") is not None:
            bx.plot([entry["theory"]], [0.5], "|", color=colour, ms=14, label=f"P = {modulus}: theory f_c = {entry['theory']:.3f}")
    ax.axhline(1.0, color="gray", lw=0.8, ls=":")
    ax.set(yscale="log", xlabel="training fraction of the P^2 pairs", ylabel="held-out loss / that of f = 0",
           title="modular addition: held-out loss against the fraction")
    bx.set(xlabel="training fraction of the P^2 pairs", ylabel="pair modes at the learned well (annealed)", xlim=(0, 1),
           title="theory f_c (solid) and networks' transition (dashed)")
    for axis, size in ((ax, 5), (bx, 6)):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=size)
    save_figure(fig, path, dpi=120)
