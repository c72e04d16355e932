"""The generated tables and numbers of the modular-addition page (``results/modular_addition/main.json``)."""

from __future__ import annotations

import math

from experiments.report.format import Results, fixed, num, table


def _ma(r: Results) -> dict:
    return r("modular_addition/main")


def _none(x, fmt: str) -> str:
    return "none" if x is None else format(x, fmt)


def ma_fig3(r: Results) -> str:
    """Fig. 3 (P = 401) in three readings of the paper's ``sigma_a^2``: where GMFL-I and GMFL-II start, ``|a|`` at
    sigma^2 = 0.175 and the kernel eigenvalue on the target with every mode learned."""
    f, c = _ma(r)["paper_fig3"], _ma(r)["corrected"]
    paper, readings = f["paper"], f["readings"]
    a_175 = f"{abs(f['a_at_0.175']):.3f}"
    eig = num(f["correct_eigenvalue_all_learned"], 2)
    rows = [["paper (Fig. 3)", num(paper["gmfl1_sigma2"]), num(paper["gmfl2_sigma2"]), f"{abs(paper['a_at_gmfl2']):g} (there)",
             f"{f['implied_eigenvalue_for_paper_gmfl2']:.1f} (what GMFL-II at {num(paper['gmfl2_sigma2'])} with `\\|a\\|` = {abs(f['a_at_0.175']):.2f} needs)"],
            ["literal: readout variance `sigma_a^2/N`, `sigma_a^2 = 0.002/N` (saddle)", fixed(readings["literal"]["gmfl1_sigma2"], 4),
             _none(readings["literal"]["gmfl2_sigma2"], "g"), a_175, eig],
            ["the same, exact per-mode integral", f"{c['exact_boundaries']['gmfl1_sigma2']:.2f}", _none(c["exact_boundaries"]["gmfl2_sigma2"], "g"),
             f"learned fraction {num(c['learned_fraction_at_0.175'], 2)}", ""],
            ["0.002/N in `u`, 0.002 in the GP eigenvalue (saddle)", f"**{readings['mixed']['gmfl1_sigma2']:.4f}**", _none(readings["mixed"]["gmfl2_sigma2"], "g"), a_175, eig],
            ["`sigma_a^2 = 0.002` (\"`a^2` averages `sigma_a^2/N`\")", num(readings["variance_0.002_over_N"]["gmfl1_sigma2"]),
             _none(readings["variance_0.002_over_N"]["gmfl2_sigma2"], "g"), "-", eig]]
    return table(["reading", "GMFL-I starts (sigma^2)", "GMFL-II starts", "`\\|a\\|` at sigma^2 = 0.175",
                  "kernel eigenvalue on the target, all modes learned (1 under the prior)"], rows)


def ma_networks(r: Results) -> str:
    """Langevin networks against the exact theory at the same prior, per P and beta."""
    rows = []
    for P, runs in sorted(_ma(r)["networks"].items(), key=lambda kv: int(kv[0])):
        for n in runs:
            t = n["theory"]
            rows.append([P, num(n["beta"]), f"{n['a']:.4f} +- {n['a_se']:.4f}" if n["a_se"] >= 5e-5 else f"{n['a']:.5f} +- {n['a_se']:.5f}",
                         f"{t['a']:.4f} ({t['a_gp']:.4f})", f"{num(n['learned'])} / {num(t['learned'])}",
                         f"{n['top_mode_share']:.3f} / {t['top_mode_share']:.3f} ({t['prior_top_mode_share']:.3f})"])
    return table(["P", "beta", "a networks", "a theory (GP)", "past the barrier, networks / theory", "top-mode share, networks / theory (prior)"], rows)


def ma_width_sweep(r: Results) -> str:
    w = _ma(r)["width_sweep"]
    rows = [[p["width"], f"{p['a']:.4f} +- {p['a_se']:.4f}", f"{p['learned']:.4f}"] for p in w["points"]]
    rows.append(["theory (N = inf)", f"{w['theory']['a']:.4f}", f"{w['theory']['learned']:.4f}"])
    return table(["N", "a (networks)", "past the barrier"], rows)


def ma_local_slopes(r: Results) -> list[float]:
    """``-da/d(1/N)`` between consecutive widths of the sweep."""
    pts = _ma(r)["width_sweep"]["points"]
    return [(p["a"] - q["a"]) / (1 / p["width"] - 1 / q["width"]) for p, q in zip(pts, pts[1:])]


def ma_step_shift(r: Results, width: int) -> str:
    """Half the step over the same time span: the shift of ``a`` (± combined s.e.) and the half-step value."""
    w = _ma(r)["width_sweep"]
    base = next(p for p in w["points"] if p["width"] == width)
    half = next(p for p in w["step_check"] if p["width"] == width)
    return f"{half['a'] - base['a']:+.4f} +- {math.hypot(half['a_se'], base['a_se']):.4f} at N = {width} ({half['a']:.4f})"


def ma_loss_timing(r: Results) -> str:
    t = _ma(r)["loss_timing"]
    parts = [f"P = {P}: {v['fourier'] * 1e3:.1f} ms vs {v['direct'] * 1e3:.1f} ms direct ({v['direct_over_fourier']:.2g}x)"
             for P, v in sorted(t.items(), key=lambda kv: -int(kv[0]))]
    loads = [v["load_average"] for v in t.values()]
    return "; ".join(parts) + f" (N = {next(iter(t.values()))['width']}, load average {min(loads):.1f}-{max(loads):.1f} on this 2-core machine)"
