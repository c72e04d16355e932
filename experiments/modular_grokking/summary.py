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

    ``theory``: the fraction where the held-out loss of kernel regression with the full-table theory's law (the
    generalising branch's kernel, exact per-mode draws; ``kernel_check``) falls below that of f = 0, per set of draws,
    mean and s.e. over them (the free-energy crossing needs both branches' free energies, which no run here gave: see
    ``theory_free_energy_crossing``). ``networks``: prior-start networks, the same criterion. ``spinodals``: from the
    MALA branch runs (the memorising branch ceases to exist where its chains reach the learned wells). ``hysteresis``:
    the gap between the two network starts at the end of the ``--two-starts`` runs."""
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{NAME} summary", description=summary_main.__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN.json", help="results files of `branches` runs")
    parser.add_argument("--results", default=str(RESULTS), help=f"results directory (reads {NAME}/main.json, writes {NAME}/RUN.json)")
    parser.add_argument("--run", default="critical_fraction")
    parser.add_argument("--figures", default=str(ROOT / "figures"))
    args = parser.parse_args(argv)
    runs = {Path(p).name: json.loads(Path(p).read_text()) for p in args.runs}
    stored = json.loads(results_file(args.results, NAME, "main").read_text())
    out = {"inputs": sorted(runs), "critical_fraction": {}}
    moduli = sorted({int(m) for r in runs.values() for key in ("kernel_check", "points", "two_starts") for m in r.get(key, {})})
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


def plot_critical(out: dict, path: Path, stored: dict) -> None:
    """Held-out loss against the fraction: the generalising branch's kernel (theory), the memorising branch (GP, and the
    MALA branch runs), and the prior-start networks; one colour per P."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for i, (modulus, entry) in enumerate(out["critical_fraction"].items()):
        colour = f"C{i}"
        curve = entry.get("theory_curve")
        if curve:
            ax.errorbar(entry["theory_grid"], curve["test_loss_relative"], np.nan_to_num(curve["test_loss_relative_se"]), fmt="o-",
                        color=colour, label=f"P = {modulus}: generalising branch (full-table law's kernel)")
            ax.plot(entry["theory_grid"], curve["gp_test_loss_relative"], "s:", color=colour, mfc="none", label=f"P = {modulus}: GP (memorising)")
        nets = stored.get("networks", {}).get(modulus)
        if nets:
            ax.errorbar(nets["fractions"], nets["test_loss_relative"], nets["test_loss_relative_se"], fmt="^--", color=colour, alpha=0.7,
                        label=f"P = {modulus}: networks from the prior (N = 256, 3000 steps)")
        if entry.get("spinodals"):
            rows = sorted(entry["spinodals"]["branches"], key=lambda r: r["fraction"])
            ax.plot([r["fraction"] for r in rows], [r["generalising_test_loss_relative"] for r in rows], "*", color=colour, ms=10,
                    label=f"P = {modulus}: self-consistent solve (256 MALA chains, not at a fixed point)")
    ax.axhline(1.0, color="gray", lw=0.8, ls=":")
    ax.set(yscale="log", xlabel="training fraction of the P^2 pairs", ylabel="held-out loss / that of f = 0",
           title="modular addition: both branches against the fraction")
    ax.legend(fontsize=6)
    save_figure(fig, path, dpi=120)
