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


def _big(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}"


def _mg(r: Results) -> dict:
    return r("modular_grokking/main")


def _at_fraction(block: dict, key: str, fraction: float):
    return block[key][block["fractions"].index(fraction)]


def mg_theory(r: Results) -> str:
    """The exact theory on the networks' training sets (split 0, two solves), held-out prediction by kernel regression
    with the solved law's kernel, against the law's own prediction, the networks and the GP."""
    d = _mg(r)
    rows = []
    for P in sorted(d["theory"], key=int):
        for point in d["theory"][P]["points"]:
            f, s = point["fraction"], point["splits"][0]
            solves = s["solves"]
            net_loss, net_se = _at_fraction(d["networks"][P], "test_loss_relative", f), _at_fraction(d["networks"][P], "test_loss_relative_se", f)
            rows.append([P, f"{f:.2f}", point["n_train"], f"{s['test_loss_relative']:.2f} +- {s['test_loss_relative_se']:.2f}",
                         ", ".join(f"{v['prediction_noise_loss_relative']:.3f}" for v in solves),
                         f"{s['mean_prediction']['test_loss_relative']:.2f} ({s['key_difference_loss_relative']:.2f})",
                         f"{s['test_accuracy']:.3f}", f"{s['a_train']:.3f}", ", ".join(_big(v["at_iterate"]["test_loss_relative"]) for v in solves),
                         f"{net_loss:.2f} +- {net_se:.2f}", f"{_at_fraction(d['gp'][P], 'test_loss_relative', f):.2f}"])
    return table(["P", "fraction", "n", "theory, rel. test loss (split 0)", "sampling noise (pooled laws, per solve)", "mean of the 2 solves (their difference)",
                  "theory accuracy", "theory `a` on the training pairs", "the law's own prediction (2 solves)", "networks N = 256 (3 splits)", "GP"], rows)


def mg_width_trend(r: Results) -> str:
    d = _mg(r)
    rows_in = d["width_trend"]["rows"]
    widths = sorted({row["width"] for row in rows_in})
    fractions = sorted({row["fraction"] for row in rows_in})
    P = str(d["width_trend"]["P"])
    rows = []
    for f in fractions:
        by_width = {row["width"]: row for row in rows_in if row["fraction"] == f}
        theory = next(p["splits"][0] for p in d["theory"][P]["points"] if p["fraction"] == f)
        rows.append([f"{f:.2f}"] + [f"{by_width[w]['test_loss_relative']:.3f} +- {by_width[w]['test_loss_relative_se']:.3f}" for w in widths]
                    + [f"{theory['test_loss_relative']:.2f} +- {theory['test_loss_relative_se']:.2f}"])
    return table(["fraction"] + [f"N = {w}" for w in widths] + ["theory (N = inf)"], rows)


def mg_full_table_networks(r: Results) -> str:
    d = _mg(r)["full_table_networks"]
    rows = [[row["width"], f"{row['steps']} x {row['step_size']:g}", f"{row['time']:g}", row["start"], f"{row['a']:.4f} +- {row['a_se']:.4f}" if row["a_se"] >= 5e-5 else f"{row['a']:.4f} +- {row['a_se']:.5f}",
             f"{row['learned']:.3f}", f"{row['top_mode_share']:.2f}"] for row in d["rows"]]
    rows.append(["exact theory (N = inf)", "", "", "", f"{d['theory']['a']:.4f}", f"{d['theory']['learned']:.3f}", ""])
    return table(["N", "steps x step", "time", "start", "a", "past the barrier", "top-mode share"], rows)


def mg_theory_start(r: Results) -> str:
    d = _mg(r)["theory_start"]
    rows = [[f"{row['fraction']:.1f}", row["n_train"], row["steps"], f"{row['time']:g}", f"{row['test_loss_relative']:.2f}", f"{row['second_half_test_loss_relative']:.2f}",
             f"{row['test_accuracy']:.2f}", f"{row['train_loss']:.4f}", f"{row['theory_test_loss_relative']:.2f}",
             ", ".join(f"{v:.2f}" for v in row["test_loss_relative_trace"])] for row in d["rows"]]
    return table(["fraction", "n", "steps", "time", "rel. test loss (last record)", "second half", "accuracy", "train loss", "theory", "per record"], rows)


def mg_checks(r: Results) -> str:
    """The longer (``steps_check``) and wider (``width_check``) runs at P = 23 against the 3000-step networks."""
    d = _mg(r)
    base = d["networks"]["23"]
    rows = []
    for name in ("steps_check", "width_check"):
        c = d[name]
        for k, f in enumerate(c["fractions"]):
            rows.append([f"`{name}`: N = {c['width']}, {c['steps']} steps", f"{f:.1f}", f"{c['test_loss_relative'][k]:.3f} +- {c['test_loss_relative_se'][k]:.3f}",
                         f"{c['test_accuracy'][k]:.3f} +- {c['test_accuracy_se'][k]:.3f}", f"{_at_fraction(base, 'test_loss_relative', f):.3f}"])
    return table(["run (P = 23)", "fraction", "rel. test loss", "accuracy", "N = 256, 3000 steps"], rows)


def mg_pool_check(r: Results, P: str) -> str:
    """The map's ``a_G`` at ``r = a y`` on the full table from one law of few / many chains and from a pool of laws."""
    checks = _mg(r)["theory"][P]["pool_check"]
    parts = [f"{c['a_G']:.3g} from " + (f"one law of {c['chains']} tempered chains" if c["pool"] == 1 else f"{c['pool']} pooled laws of {c['chains']}")
             for c in checks]
    off = ", ".join(f"{c['off_target']:.2f}" for c in checks)
    return f"{', '.join(parts)} against the exact {checks[0]['a_exact']:.4f} at P = {P} (off-target parts {off})"
