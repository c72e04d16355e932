"""The generated tables and numbers of the modular-addition page (``results/modular_addition/main.json``)."""

from __future__ import annotations

import math

from experiments.report.format import Derived, Results, Value, fixed, num, span as _span, table


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


def _f3(r: Results) -> dict:
    return r("modular_addition/fig3")


def ma_fig3_readings(r: Results) -> str:
    """Every reading of Fig. 3 tried (``results/modular_addition/fig3.json`` ``candidates``), the stated one in bold."""
    f = _f3(r)
    fmt = lambda x: "none" if x is None else fixed(x, 4)  # noqa: E731
    rows = [["paper (Fig. 3)", num(f["paper"]["gmfl1_sigma2"]), num(f["paper"]["gmfl2_sigma2"]), f"{abs(f['paper']['a_at_gmfl2']):g}", ""]]
    for c in f["candidates"]:
        stated = c["name"] == f"finite-P mixture, per_mode, gap {f['gap']:g}"
        name = f"**{c['name']}** (stated)" if stated else c["name"] + ("" if c["derived_from_paper"] else " - not a reading")
        rows.append([name, fmt(c["gmfl1_sigma2"]), fmt(c["gmfl2_sigma2"]), "-" if c["a_at_gmfl2"] is None else f"{c['a_at_gmfl2']:.3f}",
                     "yes" if c["both_within_target"] else "no"])
    return table(["reading", "GMFL-I starts (sigma^2)", "GMFL-II starts", "`\\|a\\|` at GMFL-II", f"both within {f['target']:g}"], rows)


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


def _fig3(r: Results) -> dict:
    return r("modular_addition/main")["paper_fig3"]


def _fits(r: Results) -> dict:
    return r("modular_addition/main")["width_sweep"]["fits"]


def _sweep_point(r: Results, width: int) -> dict:
    return next(p for p in r("modular_addition/main")["width_sweep"]["points"] if p["width"] == width)


def _ma_slopes(r: Results) -> list[float]:
    return ma_local_slopes(r)


def _ma_step(r: Results, width: int) -> str:
    return ma_step_shift(r, width)


def _mg_transition(r: Results, block: str, P, key: str) -> str:
    d = r("modular_grokking/main")[block]
    t = (d[P] if P is not None else d)[key]
    return f"{t['mean']:.3f} +- {t['se']:.3f}"


def _mg_pairs(r: Results, P: str) -> float:
    return r("modular_grokking/main")["networks"][P]["transition_loss_below_1"]["mean"] * int(P) ** 2


def _mg_solves(r: Results, P: str) -> list[dict]:
    return [s for p in r("modular_grokking/main")["theory"][P]["points"] for split in p["splits"] for s in split["solves"]]


def _mg_pool(r: Results, P: str) -> str:
    return mg_pool_check(r, P)


def _mg_full_check(r: Results, P: str) -> str:
    c = r("modular_grokking/main")["theory"][P]["full_table_check"]
    return f"`a` = {c['a_train']:.4f} +- {c['a_train_se']:.4f} against the exact {c['a_exact']:.4f}"


def _mg_full_error(r: Results, P: str) -> float:
    c = r("modular_grokking/main")["theory"][P]["full_table_check"]
    return abs(c["a_train"] / c["a_exact"] - 1)


def _ftn(r: Results, width: int, steps: int, start: str) -> dict:
    return next(row for row in r("modular_grokking/main")["full_table_networks"]["rows"] if row["width"] == width and row["steps"] == steps and row["start"] == start)


MODULAR_VALUES = {
    # modular_addition, Fig. 3 (results/modular_addition/fig3.json)
    "ma_f3_gap": Value("modular_addition/fig3", "gap", "g"),
    "ma_f3_gmfl1": Value("modular_addition/fig3", "gmfl1_sigma2", ".4f"),
    "ma_f3_gmfl2": Value("modular_addition/fig3", "gmfl2_sigma2", ".4f"),
    "ma_f3_a2": Derived(lambda r: abs(_f3(r)["a_at_gmfl2"]), ".3f"),
    "ma_f3_a1": Derived(lambda r: abs(_f3(r)["a_at_gmfl1"]), ".3f"),
    "ma_f3_learned1": Value("modular_addition/fig3", "learned_at_gmfl1", ".0%"),
    "ma_f3_window": lambda r: "{:.2f}-{:.2f}".format(*_f3(r)["gap_window"]),
    "ma_f3_coex1": Value("modular_addition/fig3", "coexistence.gmfl1_sigma2", ".4f"),
    "ma_f3_coex2": Value("modular_addition/fig3", "coexistence.gmfl2_sigma2", ".4f"),
    "ma_f3_gamma": Value("modular_addition/fig3", "implied_by_the_figure.gamma", ".3g"),
    "ma_f3_gamma_gmfl2": Value("modular_addition/fig3", "implied_by_the_figure.gmfl2_sigma2_then", ".4f"),
    "ma_f3_paper1": Value("modular_addition/fig3", "paper.gmfl1_sigma2", "g"),
    "ma_f3_paper1_b": Value("modular_addition/fig3", "paper.gmfl1_sigma2", "g"),
    "ma_f3_paper2": Value("modular_addition/fig3", "paper.gmfl2_sigma2", "g"),
    "ma_f3_paper_a": Derived(lambda r: abs(_f3(r)["paper"]["a_at_gmfl2"]), "g"),
    "ma_f3_target": Value("modular_addition/fig3", "target", "g"),
    "ma_f3_coex1_b": Value("modular_addition/fig3", "coexistence.gmfl1_sigma2", ".4f"),
    "ma_f3_gmfl2_vs_coex": Derived(lambda r: abs(_f3(r)["gmfl2_sigma2"] - _f3(r)["coexistence"]["gmfl2_sigma2"]), ".1g"),
    # modular_addition
    "ma_mixed_from_paper": Derived(lambda r: abs(_fig3(r)["readings"]["mixed"]["gmfl1_sigma2"] - _fig3(r)["paper"]["gmfl1_sigma2"]), ".3f"),
    "ma_literal_above_paper": Derived(lambda r: _fig3(r)["readings"]["literal"]["gmfl1_sigma2"] - _fig3(r)["paper"]["gmfl1_sigma2"], ".3f"),
    "ma_paper_gmfl1": Value("modular_addition/main", "paper_fig3.paper.gmfl1_sigma2", "g"),
    "ma_paper_a": Derived(lambda r: abs(_fig3(r)["paper"]["a_at_gmfl2"]), "g"),
    "ma_a_175": Derived(lambda r: abs(_fig3(r)["a_at_0.175"]), ".3f"),
    "ma_a_175_short": Derived(lambda r: abs(_fig3(r)["a_at_0.175"]), ".2f"),
    "ma_x_c": Value("modular_addition/main", "corrected.x_c", ".0f"),
    "ma_eigenvalue_all": lambda r: num(_fig3(r)["correct_eigenvalue_all_learned"], 2),
    "ma_implied_eigenvalue": Value("modular_addition/main", "paper_fig3.implied_eigenvalue_for_paper_gmfl2", ".1f"),
    "ma_learned_fraction_literal": lambda r: num(r("modular_addition/main")["corrected"]["learned_fraction_at_0.175"], 2),
    "ma_weaker": lambda r: num(_fig3(r)["correct_eigenvalue_all_learned"] / _fig3(r)["implied_eigenvalue_for_paper_gmfl2"], 1),
    "ma_g_c_ratios": lambda r: ", ".join(f"{v['g_c_ratio']:.5f}" for _, v in sorted(r("modular_addition/main")["exact_theory"].items(), key=lambda kv: int(kv[0]))),
    "ma_g_c_moduli": lambda r: ", ".join(sorted(r("modular_addition/main")["exact_theory"], key=int)),
    "ma_halves": Derived(lambda r: max(abs(n["a_first_half"] - n["a_second_half"]) for runs in r("modular_addition/main")["networks"].values() for n in runs), ".4f"),
    "ma_above_theory": lambda r: _span([n["a"] - n["theory"]["a"] for runs in r("modular_addition/main")["networks"].values() for n in runs], ".3f"),
    "ma_top_share": lambda r: _span([n["top_mode_share"] for runs in r("modular_addition/main")["networks"].values() for n in runs], ".1f"),
    "ma_fit1_a_inf": lambda r: "{a_inf:.4f} +- {a_inf_se:.4f}".format(**_fits(r)["inverse_width"]),
    "ma_fit1_chi2": Value("modular_addition/main", "width_sweep.fits.inverse_width.chi2", ".0f"),
    "ma_fit1_dof": Derived(lambda r: round(_fits(r)["inverse_width"]["chi2"] / _fits(r)["inverse_width"]["chi2_per_dof"]), "d"),
    "ma_slopes": lambda r: "{:.0f} to {:.0f}".format(*[f(_ma_slopes(r)) for f in (min, max)]),
    "ma_fit2_chi2": Value("modular_addition/main", "width_sweep.fits.inverse_width_quadratic.chi2", ".1f"),
    "ma_fit2_dof": Derived(lambda r: round(_fits(r)["inverse_width_quadratic"]["chi2"] / _fits(r)["inverse_width_quadratic"]["chi2_per_dof"]), "d"),
    "ma_fit_two_largest": lambda r: "{a_inf:.4f} +- {a_inf_se:.4f}".format(**_fits(r)["inverse_width_two_largest"]),
    "ma_extrapolation_gaps": lambda r: _span([_fits(r)[k]["a_inf"] - r("modular_addition/main")["width_sweep"]["theory"]["a"] for k in ("inverse_width_quadratic", "inverse_width_two_largest")], ".3f"),
    "ma_pulls": lambda r: " and ".join(f"{_fits(r)[k]['pull']:.1f}" for k in ("inverse_width_quadratic", "inverse_width_two_largest")),
    "ma_gap_1024": Derived(lambda r: _sweep_point(r, 1024)["a"] - r("modular_addition/main")["width_sweep"]["theory"]["a"], ".3f"),
    "ma_step_256": lambda r: _ma_step(r, 256),
    "ma_step_1024": lambda r: _ma_step(r, 1024),
    "ma_long": lambda r: "{a:.4f} +- {a_se:.4f}".format(**r("modular_addition/main")["width_sweep"]["long"]),
    "ma_long_halves": lambda r: "{a_first_half:.4f} / {a_second_half:.4f}".format(**r("modular_addition/main")["width_sweep"]["long"]),
    "ma_long_steps": Value("modular_addition/main", "width_sweep.long.steps", "d"),
    "ma_1024": lambda r: "{a:.4f} +- {a_se:.4f}".format(**_sweep_point(r, 1024)),
    "ma_theory_learned": Value("modular_addition/main", "width_sweep.theory.learned", ".1%"),
    "ma_theory_start": lambda r: "{a:.4f} +- {a_se:.4f}".format(**r("modular_addition/main")["width_sweep"]["theory_start"]),
    "ma_theory_start_learned": Value("modular_addition/main", "width_sweep.theory_start.learned", ".2%"),
    "ma_1024_learned": Derived(lambda r: _sweep_point(r, 1024)["learned"], ".2%"),
    "ma_long_learned": Value("modular_addition/main", "width_sweep.long.learned", ".2%"),
    "ma_finite_width_ratio": Value("modular_addition/main", "networks.23.1.theory.finite_width_ratio", ".2f"),
    "ma_g_over_g_c": Value("modular_addition/main", "networks.23.1.theory.g_over_g_c", ".2f"),
    # modular_grokking
    "mg_full_a_11": Value("modular_grokking/main", "full_table_theory.11.a", ".3f"),
    "mg_full_learned_11": Value("modular_grokking/main", "full_table_theory.11.learned", ".0%"),
    "mg_full_a_23": Value("modular_grokking/main", "full_table_theory.23.a", ".3f"),
    "mg_full_learned_23": Value("modular_grokking/main", "full_table_theory.23.learned", ".0%"),
    "mg_gp_se": Derived(lambda r: max(max(g["test_loss_relative_se"]) for g in r("modular_grokking/main")["gp"].values()), ".3f"),
    "mg_gp_accuracy": lambda r: "; ".join(f"{a:.3f} at P = {P}, fraction {f:g}" for P, g in r("modular_grokking/main")["gp"].items() for f, a in zip(g["fractions"], g["test_accuracy"]) if a > 0) or "none",
    "mg_below1_11": lambda r: _mg_transition(r, "networks", "11", "transition_loss_below_1"),
    "mg_below1_23": lambda r: _mg_transition(r, "networks", "23", "transition_loss_below_1"),
    "mg_belowhalf_23": lambda r: _mg_transition(r, "networks", "23", "transition_loss_below_half"),
    "mg_belowhalf_23_found": Value("modular_grokking/main", "networks.23.transition_loss_below_half.found", "d"),
    "mg_acc_23": lambda r: _mg_transition(r, "networks", "23", "transition_accuracy_above_half"),
    "mg_acc_11_split": lambda r: ", ".join(f"{v:.3f}" for v in r("modular_grokking/main")["networks"]["11"]["transition_accuracy_above_half"]["per_split"] if v == v),
    "mg_pairs_11": Derived(lambda r: _mg_pairs(r, "11"), ".0f"),
    "mg_pairs_23": Derived(lambda r: _mg_pairs(r, "23"), ".0f"),
    "mg_pairs_exponent": Derived(lambda r: math.log(_mg_pairs(r, "23") / _mg_pairs(r, "11")) / math.log(23 / 11), ".1f"),
    "mg_gp_range": lambda r: _span([v for g in r("modular_grokking/main")["gp"].values() for v in g["test_loss_relative"]], ".2f"),
    "mg_steps_belowhalf": lambda r: _mg_transition(r, "steps_check", None, "transition_loss_below_half"),
    "mg_width_check_below1": lambda r: _mg_transition(r, "width_check", None, "transition_loss_below_1"),
    "mg_solve_minutes_11": lambda r: _span([s["seconds"] / 60 for s in _mg_solves(r, "11")], ".0f"),
    "mg_solve_minutes_23": lambda r: _span([s["seconds"] / 60 for s in _mg_solves(r, "23")], ".0f"),
    "mg_pool_11": lambda r: _mg_pool(r, "11"),
    "mg_pool_23": lambda r: _mg_pool(r, "23"),
    "mg_final_change": lambda r: _span([s["final_change"] for P in ("11", "23") for s in _mg_solves(r, P) + r("modular_grokking/main")["theory"][P]["full_table_check"]["solves"]], ".1f"),
    "mg_full_check_11": lambda r: _mg_full_check(r, "11"),
    "mg_full_check_23": lambda r: _mg_full_check(r, "23"),
    "mg_full_check_err_11": Derived(lambda r: _mg_full_error(r, "11"), ".1%"),
    "mg_full_check_err_23": Derived(lambda r: _mg_full_error(r, "23"), ".0%"),
    "mg_round_trips_full_23": lambda r: _span([s["round_trips"] for s in r("modular_grokking/main")["theory"]["23"]["full_table_check"]["solves"]], ".2f"),
    "mg_round_trips_sets": lambda r: _span([s["round_trips"] for P in ("11", "23") for s in _mg_solves(r, P)], ".1f"),
    "mg_a2_11": Derived(lambda r: r("modular_grokking/main")["theory"]["11"]["full_table_check"]["a_exact"] ** 2, ".4f"),
    "mg_a2_23": Derived(lambda r: r("modular_grokking/main")["theory"]["23"]["full_table_check"]["a_exact"] ** 2, ".3f"),
    "mg_iterate_11": lambda r: _span([s["at_iterate"]["test_loss_relative"] for s in r("modular_grokking/main")["theory"]["11"]["full_table_check"]["solves"]], ".0f"),
    "mg_iterate_23": lambda r: _span([s["at_iterate"]["test_loss_relative"] for s in r("modular_grokking/main")["theory"]["23"]["full_table_check"]["solves"]], ".0f"),
    "mg_kr_11": lambda r: _span([s["test_loss_relative"] for s in r("modular_grokking/main")["theory"]["11"]["full_table_check"]["solves"]], ".3f"),
    "mg_kr_23": lambda r: _span([s["test_loss_relative"] for s in r("modular_grokking/main")["theory"]["23"]["full_table_check"]["solves"]], ".3f"),
    "mg_a_train_range": lambda r: _span([p["splits"][0]["a_train"] for P in ("11", "23") for p in r("modular_grokking/main")["theory"][P]["points"]], ".2f"),
    "mg_beta_range": lambda r: _span([p["splits"][0]["beta"] for P in ("11", "23") for p in r("modular_grokking/main")["theory"][P]["points"]], ".0f"),
    "mg_acc_23_09": Derived(lambda r: r("modular_grokking/main")["networks"]["23"]["test_accuracy"][r("modular_grokking/main")["networks"]["23"]["fractions"].index(0.9)], ".2f"),
    "mg_ftn_theory_a": Value("modular_grokking/main", "full_table_networks.theory.a", ".4f"),
    "mg_ftn_theory_learned": Value("modular_grokking/main", "full_table_networks.theory.learned", ".1%"),
    "mg_ftn_1024": lambda r: "`a` = {a:.4f}".format(**_ftn(r, 1024, 30000, "theory")),
    "mg_ftn_1024_learned": Derived(lambda r: _ftn(r, 1024, 30000, "theory")["learned"], ".3f"),
    "mg_ftn_256": Derived(lambda r: _ftn(r, 256, 30000, "theory")["a"], ".4f"),
    "mg_ftn_256_excess": Derived(lambda r: _ftn(r, 256, 30000, "theory")["a"] / r("modular_grokking/main")["full_table_networks"]["theory"]["a"] - 1, ".0%"),
    "mg_ftn_prior_300": lambda r: _span([_ftn(r, w, 30000, "prior")["a"] for w in (256, 1024)], ".3f"),
    "mg_ftn_prior_300_learned": lambda r: _span([_ftn(r, w, 30000, "prior")["learned"] for w in (256, 1024)], ".0%"),
    "mg_ftn_prior_1200": Derived(lambda r: _ftn(r, 256, 120000, "prior")["a"], ".3f"),
    "mg_ftn_prior_1200_learned": Derived(lambda r: _ftn(r, 256, 120000, "prior")["learned"], ".0%"),
    "mg_ftn_prior_1200_halves": lambda r: "{a_first_half:.3f} / {a_second_half:.3f}".format(**_ftn(r, 256, 120000, "prior")),
    "mg_ftn_coarse": lambda r: "{:.2f} against {:.2f}".format(_ftn(r, 256, 3000, "prior")["learned"], _ftn(r, 256, 30000, "prior")["learned"]),
}
"""The ``value:`` spans of the modular pages (merged into ``VALUES``)."""
