"""The generated tables and numbers of the teacher-student page."""

from __future__ import annotations

import math

from experiments.report.format import Derived, Results, _by_sigma2, _z, num, pm, span, table


def _ts_points(r: Results, scale: str) -> list[dict]:
    return r("teacher_student/main")["scales"][scale]["networks"]["points"]


def ts_scale1_f3(r: Results) -> str:
    pts = _ts_points(r, "1")
    values = ", ".join(f"{p['prior']['f3']:.4f}" for p in pts)
    sigmas = ", ".join(f"{p['sigma2']:.2f}" for p in pts)
    return f"f3 = {values} at sigma^2 = {sigmas}, s.e. <= {max(p['prior']['f3_se'] for p in pts):.4f}"


def ts_starts(r: Results) -> str:
    pts = _ts_points(r, "1")
    return f"within {max(p['starts_differ_in_se'] for p in pts):.2f} s.e. at every sigma^2"


def ts_transition(r: Results) -> str:
    t = r("teacher_student/main")["transition"]
    rows = [["paper (their Fig. 2 / Claim I)", num(t["paper"]["sigma2_c"]), num(t["paper"]["u_c"])],
            ["paper's equations, d -> inf", f"{t['paper_equations']['sigma2_c']:.3f} (spinodal {t['paper_equations']['spinodal_sigma2']:.3f})",
             f"{t['paper_equations']['u_c']:.1f}"]]
    for scale, e in t["exact_population"].items():
        rows.append([f"exact population theory, scale {scale}", f"{e['kind']}: steepest f3 near {num(e['sigma2_c'])}", f"({e['u_c']:.1f})"])
    for key, label in (("networks", "networks"), ("networks_gibbs", "networks, Gibbs readouts")):
        for scale, e in t.get(key, {}).items():
            if "sigma2_c" in e:
                rows.append([f"{label}, scale {scale}", f"{e['sigma2_c']:.3f} ± {e.get('sigma2_c_err', float('nan')):.3f} (midpoint of the prior-start curve)",
                             f"{e['u_c']:.1f}" if e.get("u_c") else ""])
    for run, label in (("gibbs_scale1", "h = 0.01"), ("gibbs_scale1_h0005", "h = 0.005")):
        for scale, e in r(f"teacher_student/{run}")["transition"].get("networks_gibbs", {}).items():
            rows.append([f"networks, Gibbs readouts, scale {scale}, {label} (`{run}.json`)",
                         f"{e['sigma2_c']:.3f} ± {e['sigma2_c_err']:.3f} (midpoint of the prior-start curve)", ""])
    limit = t["exact_population_d_to_inf"]
    f3 = ", ".join(f"{p['f3_inf']:.4f}" for p in limit["points"])
    sigmas = ", ".join(f"{p['sigma2']:g}" for p in limit["points"])
    rows.append([f"**exact population theory, d -> inf** (per sigma^2, `f3 = f3_inf + B/d` through d = {', '.join(map(str, limit['dims']))})",
                 f"f3_inf = {f3} at sigma^2 = {sigmas}", ""])
    rows.append(["networks, scale 2", "not run", ""])
    return table(["source", "sigma^2_c", "u_c"], rows)


def ts_d_to_inf(r: Results) -> str:
    limit = r("teacher_student/main")["transition"].get("exact_population_d_to_inf") or {}
    points = limit.get("points") or []
    if not points:
        return "-"
    return ", ".join(f"{p['f3_inf']:.4f}" for p in points if "f3_inf" in p)


def ts_scale8_components(r: Results) -> str:
    """Scale 1/8: population theory, the paper's equations at d = 53, the theory on the networks' training sets and the
    networks (both starts), with networks minus theory paired by draw in its standard error."""
    e = r("teacher_student/main")["scales"]["1/8"]
    population = _by_sigma2(e["population"]["points"])
    paper = _by_sigma2(e["paper_equations"]["finite_d"])
    theory = _by_sigma2(e["training_set_theory"]["points"])
    rows = []
    for n in e["networks"]["points"]:
        s = round(n["sigma2"], 6)
        pop, pap, th = population[s][population[s]["stable"]], paper[s], theory[s]
        prior, teacher = n["prior"], n["teacher"]
        diff, diff_se = th["networks_minus_theory_f3"], th["networks_minus_theory_f3_se"]
        rows.append([f"{s:.2f}", f"{pop['f1']:.3f} / {pop['f3']:.3f}", f"{pap['f1']:.3f} / {pap['f3']:.3f}",
                     f"{pm(th['f1'], th['f1_sampler_se'], 3)} / {pm(th['f3'], th['f3_sampler_se'])}",
                     f"{pm(prior['f1'], prior['f1_se'], 3)} / {pm(prior['f3'], prior['f3_se'])}", pm(teacher["f3"], teacher["f3_se"]),
                     f"{diff:+.4f} ± {diff_se:.4f} ({abs(diff) / diff_se:.1f} s.e.)"])
    return table(["sigma^2", "exact population f1 / f3", f"paper's eqs (d = {e['setting']['d']}) f1 / f3", "theory on the sets f1 / f3",
                  "networks, prior start f1 / f3", "teacher start f3", "networks - theory on the sets, f3"], rows)


def ts_scale8_starts(r: Results) -> str:
    z = [n["starts_differ_in_se"] for n in r("teacher_student/main")["scales"]["1/8"]["networks"]["points"]]
    return f"{min(z):.1f}-{max(z):.1f} s.e."


def ts_scale8_agreement(r: Results) -> str:
    points = r("teacher_student/main")["scales"]["1/8"]["training_set_theory"]["points"]
    z = {round(p["sigma2"], 6): abs(p["networks_minus_theory_f3"]) / p["networks_minus_theory_f3_se"] for p in points}
    within = sorted(s for s, v in z.items() if v < 3)
    outside = sorted(s for s, v in z.items() if v >= 3)
    text = f"within 3 s.e. at sigma^2 = {', '.join(f'{s:g}' for s in within)}"
    if outside:
        text += f"; not at {', '.join(f'{s:g} ({z[s]:.0f} s.e.)' for s in outside)}"
    return text


def ts_scale8_width_sweep(r: Results) -> str:
    """Scale 1/8 width sweep: the networks' f1, f3 per width, the fit f = f_inf + A/N' and the theory on that set."""
    w = r("teacher_student/main")["scales"]["1/8"]["width_sweep"]
    header = ["sigma^2", *[f"N' = {n}" if k == 0 else str(n) for k, n in enumerate(w["widths"])], "f_inf (chi^2 / dof)", "theory on the set"]
    rows = []
    for p in w["points"]:
        by_width = {n["width"]: n for n in p["networks"]}
        for name, decimals in (("f1", 3), ("f3", 4)):
            fit = p[f"fit_{name}"]
            rows.append([f"{p['sigma2']:.2f}, {name}", *[pm(by_width[n][name], by_width[n][name + "_se"], decimals) if n in by_width else "-" for n in w["widths"]],
                         f"{pm(fit['f_inf'], fit['f_inf_se'], decimals)} ({fit['chi2']:.1f} / {fit['dof']})",
                         pm(p["theory"][name], p["theory"][name + "_se"], decimals)])
    return table(header, rows)


def ts_scale8_first_run_draws(r: Results) -> str:
    """Scale 1/8, first run (``training_set_theory_1024_chains``): the theory on each draw's set and its networks."""
    rows = []
    for p in r("teacher_student/main")["scales"]["1/8"]["training_set_theory_1024_chains"]["points"]:
        for d in p["draws"]:
            n = d["networks"]
            rows.append([f"{p['sigma2']:.2f}", d["draw"], pm(d["f1"], d["f1_se"], 3), pm(n["f1"], n["f1_se"], 3),
                         pm(d["f3"], d["f3_se"]), pm(n["f3"], n["f3_se"])])
    return table(["sigma^2", "draw", "theory on the set f1", "networks f1", "theory on the set f3", "networks f3"], rows)


def ts_scale8_first_run_mean(r: Results) -> str:
    """Scale 1/8, first run, averaged over the draws: population, theory on the sets, networks, networks - theory."""
    rows = []
    for p in r("teacher_student/main")["scales"]["1/8"]["training_set_theory_1024_chains"]["points"]:
        rows.append([f"{p['sigma2']:.2f}", f"{p['population_f1']:.3f} / {p['population_f3']:.4f}",
                     f"{pm(p['f1'], p['f1_sampler_se'], 3)} / {pm(p['f3'], p['f3_sampler_se'])}",
                     f"{pm(p['networks_f1'], p['networks_f1_se'], 3)} / {pm(p['networks_f3'], p['networks_f3_se'])}",
                     f"{p['networks_minus_theory_f1']:+.3f} ± {p['networks_minus_theory_f1_se']:.3f} / "
                     f"{p['networks_minus_theory_f3']:+.4f} ± {p['networks_minus_theory_f3_se']:.4f}"])
    return table(["sigma^2", "population f1 / f3", "theory on the sets f1 / f3", "networks (4000 steps) f1 / f3", "networks - theory on the sets"], rows)


def ts_scale8_run_length(r: Results) -> str:
    """Scale 1/8, draw 0, N = 88: the 4000-step networks of the width sweep against the longer (``equilibration``) and
    finer (``stepsize``) runs, next to the theory on that set."""
    e = r("teacher_student/main")["scales"]["1/8"]
    sweep = {round(p["sigma2"], 6): p for p in e["width_sweep"]["points"]}
    theory = {round(p["sigma2"], 6): p["draws"][0] for p in e["training_set_theory_1024_chains"]["points"]}
    runs = {}
    for name in ("equilibration", "stepsize"):
        d = r(f"teacher_student/{name}")
        cfg = d["meta"]["config"]
        for p in d["scales"]["1/8"]["networks"]["points"]:
            runs.setdefault(round(p["sigma2"], 6), []).append((cfg["steps"], cfg["step_size"], p))
    rows = []
    for s in sorted(runs, key=lambda s: (s != 0.18, s != 0.3, s)):
        base = next(n for n in sweep[s]["networks"] if n["width"] == 88) if s in sweep else None
        if base:
            rows.append([f"{s:.2f}", f"{e['width_sweep']['steps']} steps x {e['width_sweep']['step_size']:g}",
                         pm(base["f1"], base["f1_se"], 3), pm(base["f3"], base["f3_se"])])
        else:
            th_draw = theory[s]["networks"]
            rows.append([f"{s:.2f}", f"{th_draw['steps']} steps x 0.01", pm(th_draw["f1"], th_draw["f1_se"], 3), pm(th_draw["f3"], th_draw["f3_se"])])
        for steps, h, p in runs[s]:
            rows.append([f"{s:.2f}", f"{steps} steps x {h:g} ({steps * h:g} time units)",
                         f"{pm(p['prior']['f1'], p['prior']['f1_se'], 3)} / {pm(p['teacher']['f1'], p['teacher']['f1_se'], 3)}",
                         f"{pm(p['prior']['f3'], p['prior']['f3_se'])} / {pm(p['teacher']['f3'], p['teacher']['f3_se'])}"])
        if s in theory:
            rows.append([f"{s:.2f}", "theory on the set", pm(theory[s]["f1"], theory[s]["f1_se"], 3), pm(theory[s]["f3"], theory[s]["f3_se"])])
    return table(["sigma^2", "run", "f1 prior / teacher start", "f3 prior / teacher start"], rows)


def ts_half_theory(r: Results) -> str:
    """Scale 1/2: population theory, the theory on the networks' training sets (per draw in f3), the pooled networks."""
    e = r("teacher_student/main")["scales"]["1/2"]
    population = _by_sigma2(e["population"]["points"])
    rows = []
    for p in e["training_set_theory"]["points"]:
        s = round(p["sigma2"], 6)
        pop = population[s][population[s]["stable"]]
        draws = " / ".join(f"{d['f3']:.4f}" for d in sorted(p["draws"], key=lambda d: d["draw"]))
        diff, diff_se = p["networks_minus_theory_f3"], p["networks_minus_theory_f3_se"]
        rows.append([f"{s:.2f}", f"{pop['f1']:.3f} / {pop['f3']:.4f}", f"{pm(p['f1'], p['f1_sampler_se'], 3)} / {pm(p['f3'], p['f3_sampler_se'])}",
                     draws, f"{pm(p['networks_f1'], p['networks_f1_se'], 3)} / {pm(p['networks_f3'], p['networks_f3_se'])}",
                     f"{diff:+.4f} ± {diff_se:.4f} ({_z(diff, diff_se)})"])
    return table(["sigma^2", "population f1 / f3", "theory on the sets f1 / f3", "theory f3, draw 0 / 1", "networks (20000 steps) f1 / f3", "networks - theory, f3"], rows)


def _ts_gibbs(r: Results, scale: str, plain_column: bool) -> str:
    """Gibbs-readout networks of one scale against the theory on their training sets, paired by draw (s.e. in
    brackets); optionally the plain-Langevin networks minus the same theory in f3."""
    e = r("teacher_student/main")["scales"][scale]
    theory = _by_sigma2(e["training_set_theory"]["points"])
    versus = {round(v["sigma2"], 6): v for v in e["networks_gibbs"]["versus_training_set_theory"]}
    header = ["sigma^2", "theory on the sets f1 / f3", "networks, prior start f1 / f3", "teacher start f1 / f3",
              "prior start - theory, f1 / f3 (s.e.)", "teacher start - theory, f1 / f3 (s.e.)"]
    if plain_column:
        header.append("plain Langevin - theory, f3 (s.e.)")
    rows = []
    for n in e["networks_gibbs"]["points"]:
        s = round(n["sigma2"], 6)
        th, v = theory[s], versus[s]
        row = [f"{s:.2f}", f"{pm(th['f1'], th['f1_sampler_se'], 3)} / {pm(th['f3'], th['f3_sampler_se'])}",
               f"{pm(n['prior']['f1'], n['prior']['f1_se'], 3)} / {pm(n['prior']['f3'], n['prior']['f3_se'])}",
               f"{n['teacher']['f1']:.3f} / {n['teacher']['f3']:.4f}"]
        for start in ("prior", "teacher"):
            d = v[start]
            row.append(f"{d['minus_theory_f1']:+.3f} ({d['minus_theory_f1_in_se']:+.1f}) / {d['minus_theory_f3']:+.4f} ({d['minus_theory_f3_in_se']:+.1f})")
        if plain_column:
            row.append(f"{th['networks_minus_theory_f3']:+.4f} ({_z(th['networks_minus_theory_f3'], th['networks_minus_theory_f3_se'])})")
        rows.append(row)
    return table(header, rows)


def ts_gibbs_eighth(r: Results) -> str:
    return _ts_gibbs(r, "1/8", plain_column=False)


def ts_gibbs_half(r: Results) -> str:
    return _ts_gibbs(r, "1/2", plain_column=True)


def ts_both_predictions(r: Results) -> str:
    """Scales 1/8 and 1/2: the theory's two predictions (the law's own at the iterate, kernel regression with the laws'
    kernels) against the Gibbs-readout networks, paired by draw, in s.e."""
    rows = []
    for scale in ("1/8", "1/2"):
        e = r("teacher_student/main")["scales"][scale]
        theory = _by_sigma2(e["training_set_theory"]["points"])
        networks = _by_sigma2(e["networks_gibbs"]["points"])
        for v in e["networks_gibbs"]["versus_training_set_theory"]:
            s = round(v["sigma2"], 6)
            th, n = theory[s], networks[s]["prior"]

            def diff(start, suffix=""):
                d = v[start]
                return " / ".join(f"{d[f'minus_theory_{c}{suffix}']:+.4f} ({d[f'minus_theory_{c}{suffix}_in_se']:+.1f})" for c in ("f1", "f3"))

            rows.append([scale, f"{s:.2f}", f"{pm(th['f1'], th['f1_sampler_se'], 3)} / {pm(th['f3'], th['f3_sampler_se'])}",
                         f"{pm(th['f1_kernel_regression'], th['f1_kernel_regression_sampler_se'], 3)} / "
                         f"{pm(th['f3_kernel_regression'], th['f3_kernel_regression_sampler_se'])}",
                         f"{n['f1']:.3f} / {n['f3']:.4f}", diff("prior"), diff("prior", "_kernel_regression"), diff("teacher", "_kernel_regression")])
    return table(["scale", "sigma^2", "theory on the sets f1 / f3, law's own", "kernel regression f1 / f3", "Gibbs networks, prior start f1 / f3",
                  "prior - own, f1 / f3 (s.e.)", "prior - kernel regression, f1 / f3 (s.e.)", "teacher - kernel regression, f1 / f3 (s.e.)"], rows)


def ts_scale1_gibbs(r: Results) -> str:
    """Scale 1 (one draw): the theory on its training set against Gibbs-readout networks at h = 0.01 and 0.005."""
    population = _by_sigma2(r("teacher_student/main")["scales"]["1"]["population"]["points"])
    coarse = r("teacher_student/gibbs_scale1")["scales"]["1"]
    fine = _by_sigma2(r("teacher_student/gibbs_scale1_h0005")["scales"]["1"]["networks_gibbs"]["points"])
    theory = _by_sigma2(coarse["training_set_theory"]["points"])
    versus = _by_sigma2(coarse["networks_gibbs"]["versus_training_set_theory"])
    rows = []
    for n in coarse["networks_gibbs"]["points"]:
        s = round(n["sigma2"], 6)
        pop, th, v, f = population[s][population[s]["stable"]], theory[s], versus[s], fine[s]
        rows.append([f"{s:.2f}", f"{pop['f1']:.3f} / {pop['f3']:.4f}", f"{pm(th['f1'], th['f1_sampler_se'], 3)} / {pm(th['f3'], th['f3_sampler_se'])}",
                     f"{pm(n['prior']['f3'], n['prior']['f3_se'])} / {n['teacher']['f3']:.4f} ({n['prior']['f1']:.3f})",
                     f"{v['prior']['minus_theory_f3']:+.4f} ({v['prior']['minus_theory_f3_in_se']:+.1f}) / {v['teacher']['minus_theory_f3']:+.4f} "
                     f"({v['teacher']['minus_theory_f3_in_se']:+.1f}) ({v['prior']['minus_theory_f1']:+.3f}, {v['prior']['minus_theory_f1_in_se']:+.1f})",
                     f"{pm(f['prior']['f3'], f['prior']['f3_se'])} / {f['teacher']['f3']:.4f} ({f['prior']['f1']:.3f})"])
    return table(["sigma^2", "population f1 / f3", "theory on the set f1 / f3", "networks h = 0.01, prior / teacher start f3 (f1 prior)",
                  "h = 0.01 - theory, f3 prior / teacher (f1), s.e. in brackets", "networks h = 0.005, prior / teacher f3 (f1 prior)"], rows)


# inline values of the teacher-student page (``<!-- value:NAME -->``)

def _transition(r: Results) -> dict:
    return r("teacher_student/main")["transition"]


def _d_to_inf(r: Results, sigma2: float) -> dict:
    return next(p for p in _transition(r)["exact_population_d_to_inf"]["points"] if round(p["sigma2"], 6) == sigma2)


def _learned_end(r: Results) -> tuple[float, float]:
    """The last sigma^2 where the d -> inf extrapolation's |f3_inf| is above 0.001, and the next grid point."""
    points = _transition(r)["exact_population_d_to_inf"]["points"]
    k = max(i for i, p in enumerate(points) if abs(p["f3_inf"]) > 1e-3)
    return points[k]["sigma2"], points[k + 1]["sigma2"]


def _half_sweep(r: Results) -> dict:
    return r("teacher_student/main")["scales"]["1/2"]["width_sweep_gibbs"]["points"][0]


def _half_4096(r: Results) -> dict:
    return r("teacher_student/theory_scale0.5_4096")["scales"]["1/2"]["training_set_theory"]["points"][0]


def _cold(r: Results) -> dict:
    return r("teacher_student/theory_scale1_s018_cold")["scales"]["1"]["training_set_theory"]["points"][0]


def _warm_018(r: Results) -> dict:
    versus = _by_sigma2(r("teacher_student/gibbs_scale1")["scales"]["1"]["networks_gibbs"]["versus_training_set_theory"])
    return versus[0.18]


def _by_d(r: Results, sigma2: float) -> str:
    return ", ".join(f"{f:.4f}" for f in _d_to_inf(r, sigma2)["f3_by_d"])


def _long_010(r: Results, start: str) -> str:
    p = r("teacher_student/equilibration_64000")["scales"]["1/8"]["networks"]["points"][0][start]
    return pm(p["f3"], p["f3_se"])


def _scale1_h001(r: Results) -> dict:
    return _by_sigma2(r("teacher_student/gibbs_scale1")["scales"]["1"]["networks_gibbs"]["points"])[0.18]


TS_VALUES = {
    "ts_eq_sigma2_c": Derived(lambda r: _transition(r)["paper_equations"]["sigma2_c"], ".3f"),
    "ts_eq_u_c": Derived(lambda r: _transition(r)["paper_equations"]["u_c"], ".1f"),
    "ts_eq_spinodal": Derived(lambda r: _transition(r)["paper_equations"]["spinodal_sigma2"], ".3f"),
    "ts_pop_steepest": lambda r: span([e["sigma2_c"] for e in _transition(r)["exact_population"].values()], "g"),
    "ts_paper_finite_d_scale1": lambda r: ", ".join(f"{p['f3']:.4f}" for p in r("teacher_student/main")["scales"]["1"]["paper_equations"]["finite_d"]),
    "ts_paper_finite_d_sigma2": lambda r: ", ".join(f"{p['sigma2']:.2f}" for p in r("teacher_student/main")["scales"]["1"]["paper_equations"]["finite_d"]),
    "ts_dims": lambda r: ", ".join(str(d) for d in _transition(r)["exact_population_d_to_inf"]["dims"]),
    "ts_f3_by_d_025": lambda r: _by_d(r, 0.25),
    "ts_f3_by_d_018": lambda r: _by_d(r, 0.18),
    "ts_f3_by_d_010": lambda r: _by_d(r, 0.1),
    "ts_f3_inf_018": Derived(lambda r: _d_to_inf(r, 0.18)["f3_inf"], ".4f"),
    "ts_dinf_residual": Derived(lambda r: max(p["max_residual"] for p in _transition(r)["exact_population_d_to_inf"]["points"]), ".1e"),
    "ts_learned_end": lambda r: "{:g} and {:g}".format(*_learned_end(r)),
    "ts_learned_end_shift": Derived(lambda r: _learned_end(r)[0] - _transition(r)["paper_equations"]["sigma2_c"], ".2f"),
    # scale 1/2, sigma^2 = 0.10: the width-extrapolated Gibbs networks against the 4096-chain theory of their set
    "ts_half_finf_f3": lambda r: pm(_half_sweep(r)["fit_f3"]["f_inf"], _half_sweep(r)["fit_f3"]["f_inf_se"]),
    "ts_half_own_f3": Derived(lambda r: _half_4096(r)["f3"], ".4f"),
    "ts_half_kr_f3": lambda r: pm(_half_4096(r)["f3_kernel_regression"], _half_4096(r)["f3_kernel_regression_sampler_se"]),
    "ts_half_gap_own": Derived(lambda r: 1 - _half_sweep(r)["fit_f3"]["f_inf"] / _half_4096(r)["f3"], ".0%"),
    "ts_half_gap_kr": Derived(lambda r: 1 - _half_sweep(r)["fit_f3"]["f_inf"] / _half_4096(r)["f3_kernel_regression"], ".0%"),
    "ts_half_gap_kr_se": Derived(lambda r: abs(_half_sweep(r)["fit_f3"]["f_inf"] - _half_4096(r)["f3_kernel_regression"])
                                 / math.hypot(_half_sweep(r)["fit_f3"]["f_inf_se"], _half_4096(r)["f3_kernel_regression_sampler_se"]), ".1f"),
    "ts_half_widths": lambda r: " and ".join(str(n["width"]) for n in _half_sweep(r)["networks"]),
    # scale 1, sigma^2 = 0.18: warm-started against cold-started theory
    "ts_warm_018_se": lambda r: span([abs(_warm_018(r)[s]["minus_theory_f3_in_se"]) for s in ("prior", "teacher")], ".0f"),
    "ts_cold_f3": lambda r: " and ".join(f"{s['f3']:.4f}" for s in _cold(r)["draws"][0]["solves"]),
    "ts_cold_f1": lambda r: " and ".join(f"{s['f1']:.3f}" for s in _cold(r)["draws"][0]["solves"]),
    "ts_cold_mean_f3": lambda r: pm(_cold(r)["f3"], _cold(r)["f3_sampler_se"]),
    "ts_cold_spread": Derived(lambda r: abs(_cold(r)["draws"][0]["solves"][0]["f3"] - _cold(r)["draws"][0]["solves"][1]["f3"]), ".4f"),
    "ts_warm_gap": Derived(lambda r: abs(_warm_018(r)["prior"]["minus_theory_f3"]), ".4f"),
    # scale 1/8, sigma^2 = 0.10: 64000 steps, pooled over the two draws, against the theory on the sets
    "ts_long_prior_f3": lambda r: _long_010(r, "prior"),
    "ts_long_teacher_f3": lambda r: _long_010(r, "teacher"),
    "ts_long_theory_f3": lambda r: pm(*(lambda p: (p["f3"], p["f3_sampler_se"]))(
        _by_sigma2(r("teacher_student/main")["scales"]["1/8"]["training_set_theory"]["points"])[0.1])),
    "ts_cold_networks_se": Derived(lambda r: abs(_cold(r)["networks_minus_theory_f3"]) / _cold(r)["networks_minus_theory_f3_se"], ".1f"),
}
