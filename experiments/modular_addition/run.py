"""``python -m experiments.modular_addition``: every section of the config, the results file and figures.

``python -m experiments.modular_addition fig3 [--config ...]``: Fig. 3 alone (about a minute: ``fig3_table``, the stated reading,
every candidate reading and the closed forms), written to ``results/modular_addition/fig3.json``."""

from __future__ import annotations

import sys

import jax

from experiments._common import parse, results_file, run_name
from mft_jax.cli.config import load_toml, section
from mft_jax.io import run_metadata, write_json, write_results
from experiments.modular_addition.config import ExactSection, NAME, NetworkSection, PAPER, PaperSection, ROOT, WidthSweepSection
from experiments.modular_addition.figures import make_figures
from experiments.modular_addition.networks import loss_timing, network_point, width_sweep
from experiments.modular_addition.theory import exact_theory, fig3, fig3_table


def fig3_main(argv: list) -> dict:
    """``fig3 [--config ...] [--run NAME]``: ``fig3_table`` of ``[paper]``, written to ``results/modular_addition/fig3.json``
    (or ``NAME.json``) with its command."""
    args = parse(NAME, "Fig. 3: the stated reading and every candidate reading tried", argv)
    raw = load_toml(args.config, {"paper", "exact", "networks", "width_sweep"})
    paper = section(PaperSection, raw.get("paper"), "paper")
    out = fig3_table(paper)
    print(f"Fig. 3 (the paper's finite-P mixture, per-mode eigenvalue, action gap {out['gap']:g}): GMFL-I at sigma^2 = "
          f"{out['gmfl1_sigma2']:.4f} (paper {PAPER['gmfl1_sigma2']}), GMFL-II at {out['gmfl2_sigma2']:.4f} (paper {PAPER['gmfl2_sigma2']}), "
          f"a there {out['a_at_gmfl2']:.4f} (paper {PAPER['a_at_gmfl2']}); both within {out['target']} for gaps "
          f"{out['gap_window'][0]:.2f}-{out['gap_window'][1]:.2f}; coexistence (gap -> inf): {out['coexistence']['gmfl1_sigma2']:.4f} / "
          f"{out['coexistence']['gmfl2_sigma2']:.4f}", flush=True)
    for row in out["candidates"]:
        fmt = lambda x: "none" if x is None else f"{x:.4f}"  # noqa: E731
        print(f"  {row['name']:<45} GMFL-I {fmt(row['gmfl1_sigma2'])}  GMFL-II {fmt(row['gmfl2_sigma2'])}  "
              f"{'both within' if row['both_within_target'] else '-'}{'' if row['derived_from_paper'] else ' (not a reading)'}", flush=True)
    out["meta"] = run_metadata(raw, None, argv=["fig3", *argv])
    path = results_file(args.results, NAME, run_name(NAME, args.run or "fig3"))
    write_json(path, out)
    print(f"wrote {path}", flush=True)
    return out


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["fig3"]:
        return fig3_main(argv[1:])
    args = parse(NAME, __doc__.splitlines()[0], argv)
    raw = load_toml(args.config, {"paper", "exact", "networks", "width_sweep"})
    paper = section(PaperSection, raw.get("paper"), "paper")
    exact = section(ExactSection, raw.get("exact"), "exact")
    net = section(NetworkSection, raw.get("networks"), "networks")
    sweep = section(WidthSweepSection, raw["width_sweep"], "width_sweep") if "width_sweep" in raw else None
    with jax.enable_x64(True):
        paper_fig3, corrected = fig3(paper)
        print(f"Fig. 3, literal numbers (saddle): GMFL-I from sigma^2 = {paper_fig3['gmfl1_sigma2']:.4f}, GMFL-II from "
              f"{paper_fig3['gmfl2_sigma2']}; mixed reading: GMFL-I from {paper_fig3['readings']['mixed']['gmfl1_sigma2']:.4f}; "
              f"a at 0.175 = {paper_fig3['a_at_0.175']:.3f}; paper {PAPER}", flush=True)
        print(f"corrected (exact per-mode integral): {corrected['exact_boundaries']}, learned fraction at 0.175: "
              f"{corrected['learned_fraction_at_0.175']:.3g}", flush=True)
        theory = exact_theory(paper, exact)
    timing = loss_timing(net.timing_moduli)
    networks = {}
    cache = ROOT / "runs" / NAME
    key = jax.random.key(net.seed)
    for modulus in net.moduli:
        networks[str(modulus)] = []
        for index, beta in enumerate(net.betas):
            point = network_point(jax.random.fold_in(key, 1000 * modulus + index), modulus, float(beta), net, cache)
            networks[str(modulus)].append(point)
            th = point["theory"]
            print(f"networks P = {modulus}, beta = {beta:g}, sa2 = {point['sa2']:.3g}, N = {net.width}: a = {point['a']:.4f} +- {point['a_se']:.2g} "
                  f"(halves {point['a_first_half']:.4f} / {point['a_second_half']:.4f}); theory a = {th['a']:.4f} (GP {th['a_gp']:.4f}, {th['phase']}); "
                  f"learned {point['learned']:.4f} vs {th['learned']:.4f}; top-mode share {point['top_mode_share']:.3f} vs {th['top_mode_share']:.3f} "
                  f"(prior {th['prior_top_mode_share']:.3f}) [{point['seconds']:.0f} s]", flush=True)
    widths = width_sweep(jax.random.fold_in(key, 1), sweep, net, cache) if sweep is not None else None
    results = {"paper_fig3": paper_fig3, "corrected": corrected, "exact_theory": theory, "networks": networks,
               "width_sweep": widths, "loss_timing": timing, "config": raw, "meta": run_metadata(raw, net.seed)}
    write_results(args.out, results, make_figures, args.figures)
    return results
