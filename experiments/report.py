"""Every generated table and number of the docs, written from ``results/**/*.json`` between markers.

A document marks a generated span ``<!-- table:NAME -->`` ... ``<!-- /table:NAME -->`` (a table on its own lines,
or a number inside a sentence); ``python -m experiments.report`` rewrites every span of ``README.md``,
``docs/index.md`` and ``docs/results/*.md`` from the results files, and ``--check`` changes nothing and exits 1 when a span is stale, a
span names no generator, or a results file records no command (``meta.command``). Only interpretation is
hand-written; a number in a results page comes from here. Tables group runs at build time: no results file is
rewritten.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "docs/index.md", "docs/results/*.md")
MARKER = re.compile(r"<!-- table:(?P<name>[\w.-]+) -->(?P<body>.*?)<!-- /table:(?P=name) -->", re.S)


class Results:
    """The results files under one root, read once: ``results("clover/main")`` is ``results/clover/main.json``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._cache: dict[str, dict] = {}

    def __call__(self, run: str) -> dict:
        if run not in self._cache:
            self._cache[run] = json.loads((self.root / f"{run}.json").read_text())
        return self._cache[run]

    def files(self) -> list[Path]:
        return sorted(self.root.rglob("*.json"))


def num(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits (plain notation where it stays short)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if x == 0:
        return "0"
    text = f"{x:.{digits}g}"
    return text.replace("e-0", "e-").replace("e+0", "e")


def fixed(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}"


def pm(mean: float, err: float, decimals: int = 4) -> str:
    return f"{mean:.{decimals}f} ± {err:.{decimals}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def z_score(a: float, b: float, err: float) -> float:
    return abs(a - b) / err


# ----------------------------------------------------------------------------------------------- the generators
# Each takes the Results and returns markdown: a table (block) or a short string (inline).

CLOVER_METRICS = (("sliced_wasserstein", "sliced W2"), ("sinkhorn", "Sinkhorn"), ("energy", "energy"))


def clover_networks(r: Results) -> str:
    d = r("clover/main")
    header = ["N (seeds)", f"loss (theory {fixed(d['theory']['loss'], 5)})"] + [f"{label} (floor)" for _, label in CLOVER_METRICS]
    rows = []
    for net in d["networks"]:
        row = [f"{net['width']} ({net['num_seeds']})", pm(net["loss"], net["loss_error"], 5)]
        for key, _ in CLOVER_METRICS:
            s = net["summary"][key]
            row.append(f"{fixed(s['distance'], 3)} ({fixed(s['noise_floor'], 3)} ± {fixed(s['noise_floor_std'], 3)})")
        rows.append(row)
    return table(header, rows)


def clover_foreground(r: Results) -> str:
    d = r("clover/main")
    fg, gp = d["foreground"], d["gp_foreground"]
    width = fg["background_width"]
    cases = [(f"vs its background network's neurons (N = {width}, time-averaged residual)", fg["to_background"]),
             ("vs theory", fg["to_theory"]),
             ("GP background: vs the GP's own neurons (the prior)", gp["to_background"]),
             ("GP background: vs theory", gp["to_theory"])]
    rows = [[name] + [f"{num(c[k]['distance'])} ({num(c[k]['noise_floor'])})" for k in ("sliced_wasserstein", "energy")] for name, c in cases]
    return table([f"foreground, M = {fg['num_neurons']} neurons", "sliced W2 (floor)", "energy (floor)"], rows)


def clover_foreground_ratio(r: Results) -> str:
    to_bg = r("clover/main")["foreground"]["to_background"]
    ratios = [to_bg[k]["ratio_to_floor"] for k in ("sliced_wasserstein", "energy")]
    return f"{min(ratios):.1f}-{max(ratios):.1f}x"


def _start_refusal(entry) -> str:
    return "refused -> continuation" if entry.get("gp_start_refused") else "ok"


def linear_sweep(r: Results) -> str:
    d = r("linear/main")
    rows = []
    for p in d["sweep"]:
        exact = p["exact"]["loss"]
        rel = [abs(p[s]["loss"] - exact) / exact for s in ("grid", "importance")]
        rows.append([num(p["beta"]), fixed(p["exact"]["g"], 3), num(exact, 5), num(rel[0], 2), num(rel[1], 2),
                     f"{_start_refusal(p['grid'])} / {'refused' if p.get('feature_start_refused') else 'ok'}"])
    return table(["beta", "g*", "exact loss", "grid rel. error", "importance rel. error", "start from GP / from r = y"], rows)


def clover_beta_sweep(r: Results) -> str:
    rows = []
    for p in r("clover_beta_sweep/main")["rows"]:
        (n0, n1), ((lo, hi), _) = p["nodes_per_axis"], p["spans"]
        grid = f"{n0}^2 on +-{num(hi, 2)}" if n0 == n1 else f"{n0} x {n1} on +-{num(hi, 2)}"
        rows.append([num(p["beta"]), p["iterations"], fixed(p["seconds"], 1), round(p["ess_nodes"]), grid,
                     fixed(p["loss"], 6), fixed(p["free_energy"], 4), len(p["actions"]) or "none"])
    return table(["beta", "iterations", "seconds", "effective nodes", "final grid", "loss", "free energy", "automatic steps"], rows)


def solver_speed(r: Results) -> str:
    d = r("solver_speed/main")["beta_50"]
    names = {"anderson": f"Anderson m = {d['anderson']['anderson']}, damping {d['anderson']['damping']} (the default)",
             "damped_0.1": "plain damped iteration, damping 0.1", "newton": "Newton ascent on the free energy"}
    rows = [[label, d[k]["iterations"], fixed(d[k]["seconds"], 2), fixed(d[k]["loss"], 6)] for k, label in names.items()]
    rows.append(["ratio damped / Anderson", f"**{d['iteration_ratio']:.1f}x more**", f"**{d['time_ratio']:.1f}x slower**", ""])
    rows.append(["ratio Anderson / Newton", "", f"**{d['anderson_over_newton_time']:.2f}x slower**", ""])
    return table(["clover, beta = 50 (`auto=False`)", "iterations", "seconds", "loss"], rows)


def neuron_throughput(r: Results) -> str:
    d = r("neuron_throughput/main")
    rate = d["neuron_updates_per_second"]
    rows = [["mft_jax (`vmap` of `value_and_grad(V)`, jitted `lax.scan`)", f"{rate['jax_vmap']:.3g}", ""],
            ["per-neuron loop in NumPy (vectorised over the points)", f"{rate['numpy_loop']:.3g}", f"**{d['ratio_jax_over_numpy_loop']:.0f}x faster**"]]
    if rate.get("torch_func_vmap"):
        rows.append(["PyTorch `torch.func.vmap(grad(V))` (CPU)", f"{rate['torch_func_vmap']:.3g}", f"**{d['ratio_jax_over_torch']:.0f}x faster**"])
    return table(["implementation", "updates / s", "JAX is"], rows)


def neuron_throughput_ratio(r: Results) -> str:
    return f"{r('neuron_throughput/main')['ratio_jax_over_numpy_loop']:.0f}x"


def deep_digits_layers(r: Results) -> str:
    d = r("deep_digits/main")
    rows = []
    for layer in ("layer1", "layer2"):
        m = d["mean_sq_entries"][layer]
        rows.append([layer.replace("layer", "layer "), f"**{d['alignment'][layer]:.6f}**", f"{d['alignment_noise_floor'][layer]:.6f}",
                     f"{m['theory']:.5f} / {m['networks']:.5f} ± {m['networks_sem']:.5f} / {m['nngp']:.5f}"])
    return table([f"N = {d['width']}", "alignment theory vs networks", "noise floor (seed halves)", "mean Phi^2 entries: theory / networks (± s.e.) / NNGP"], rows)


def deep_digits_widths(r: Results) -> str:
    d = r("deep_digits/main")
    rows = []
    for w in d["widths"]:
        row = [w["width"]]
        for key in ("distance", "distance_noise_floor", "distance_nngp"):
            if key in w:
                row.append(" / ".join(num(w[key][layer], 2) for layer in ("layer1", "layer2")))
            else:
                row.append("-")
        row.append(pm(w["loss"]["networks"], w["loss"]["sem"], 5))
        rows.append(row)
    theory = d["theory"]["loss"]
    return table(["width", "theory distance, layer 1 / 2", "seed-halves floor", "NNGP distance", f"network loss (theory {theory:.5f})"], rows)


def _composition_rows(d: dict, depths) -> list[list[str]]:
    rows = []
    for depth in depths:
        losses = d["losses"]
        gp, mft, net = losses[f"gp_depth{depth}"], losses[f"mft_depth{depth}"], losses[f"networks_depth{depth}"]
        rows.append([f"GP (NNGP), depth {depth}", fixed(gp["train"], 4), fixed(gp["test"], 4)])
        rows.append([f"mean-field theory, depth {depth} ({d['theory'][f'depth{depth}']['iterations']} iterations)", fixed(mft["train"], 4), fixed(mft["test"], 4)])
        rows.append([f"networks, depth {depth} (± s.e. over {len(net['per_seed']['train'])} seeds)", pm(net["train"], net["train_sem"]), pm(net["test"], net["test_sem"])])
    return rows


def deep_composition_losses(r: Results) -> str:
    return table(["", "train loss", "test loss"], _composition_rows(r("deep_composition/main"), (2, 3)))


def _composition_z(d: dict, depth: int) -> list[float]:
    mft, net = d["losses"][f"mft_depth{depth}"], d["losses"][f"networks_depth{depth}"]
    return [z_score(net[s], mft[s], net[f"{s}_sem"]) for s in ("train", "test")]


def deep_composition_z(r: Results) -> str:
    d = r("deep_composition/main")
    z2, z3 = _composition_z(d, 2), _composition_z(d, 3)
    return (f"{min(z2):.1f}-{max(z2):.1f} s.e. at depth 2 and {min(z3):.1f}-{max(z3):.1f} s.e. at depth 3")


def deep_composition_step(r: Results) -> str:
    """Depth-3 erf networks at h = 0.01 (40000 steps) against h = 0.02 (20000 steps): the same time span."""
    a = r("deep_composition/erf40_depth3_h001")["losses"]["networks_depth3"]
    b = r("deep_composition/erf40_depth3_long")["losses"]["networks_depth3"]
    z = [abs(a[s] - b[s]) / math.hypot(a[f"{s}_sem"], b[f"{s}_sem"]) for s in ("train", "test")]
    return (f"train {pm(a['train'], a['train_sem'])}, test {pm(a['test'], a['test_sem'])} against "
            f"{pm(b['train'], b['train_sem'])} / {pm(b['test'], b['test_sem'])} at h = 0.02: {z[0]:.1f} and {z[1]:.1f} s.e. apart")


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


def deep_speed(r: Results) -> str:
    d = r("deep_speed/main")
    sizes = [str(m) for m in d["samples"]]
    rows = []
    for p in d["points"]:
        ess = []
        for m in sizes:
            values = p["ess_nngp"].get(m)
            ess.append(" / ".join(f"{v:.0f}" for v in values) if values else "-")
        rows.append([p["P"], num(p["map_seconds"]), (f"{p['flops'] / 1e9:.0f}" if p['flops'] >= 1e12 else num(p['flops'] / 1e9)), f"{p['fraction_of_peak']:.0%}", *ess,
                     f"{p['memory_estimate_bytes'] / 2**30:.2g} GiB"])
    return table(["P", "seconds per map evaluation", "GFLOP", "fraction of matmul peak", *[f"ESS M = {m}" for m in sizes],
                  "memory estimate of a solve"], rows)


def deep_speed_exponent(r: Results) -> str:
    return f"P^{r('deep_speed/main')['exponent']:.2f}"


def modular_grokking_fractions(r: Results) -> str:
    d = r("modular_grokking/main")
    moduli = sorted(d["networks"], key=int)
    fractions = d["networks"][moduli[0]]["fractions"]
    header = ["fraction"]
    for m in moduli:
        header += [f"P = {m} networks", "acc.", f"P = {m} GP"]
    rows = []
    for k, f in enumerate(fractions):
        row = [f"{f:.2f}"]
        for m in moduli:
            net, gp = d["networks"][m], d["gp"][m]
            acc, acc_se = net["test_accuracy"][k], net["test_accuracy_se"][k]
            row += [pm(net["test_loss_relative"][k], net["test_loss_relative_se"][k], 3),
                    f"{acc:.3f}" if acc_se == 0 else pm(acc, acc_se, 3), f"{gp['test_loss_relative'][k]:.3f}"]
        rows.append(row)
    return table(header, rows)


def _by_sigma2(points) -> dict:
    return {round(p["sigma2"], 6): p for p in points}


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


def _z(value: float, se: float) -> str:
    z = abs(value) / se
    return f"{z:.0f} s.e." if z >= 10 else f"{z:.1f} s.e."


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


def deep_composition_erf40(r: Results) -> str:
    """erf at beta = 40 (MCMC layer laws): GP, theory and the long network runs, with the per-layer kernels."""
    rows = []
    for depth, run in ((2, "erf40_depth2_long"), (3, "erf40_depth3_long")):
        d = r(f"deep_composition/{run}")
        losses = d["losses"]
        gp, mft, net = losses[f"gp_depth{depth}"], losses[f"mft_depth{depth}"], losses[f"networks_depth{depth}"]
        layers = d["layers"][f"depth{depth}"]
        kernels = "; ".join(f"layer {k[-1]}: {v['alignment']['theory']:.5f} / {v['distance']['theory']:.3f} "
                            f"({v['alignment']['noise_floor']:.5f} / {v['distance']['noise_floor']:.3f})" for k, v in layers.items())
        nngp = "; ".join(f"{v['distance']['nngp']:.2f}" for v in layers.values())
        rows.append([f"depth {depth}: GP / theory", f"{gp['train']:.4f} / {mft['train']:.4f}", f"{gp['test']:.4f} / {mft['test']:.4f}", "", ""])
        rows.append([f"depth {depth}: networks, N = {d['width']}", pm(net["train"], net["train_sem"]), pm(net["test"], net["test_sem"]), kernels, nngp])
    return table(["erf, beta = 40", "train loss", "test loss", "kernel vs theory: alignment / distance (noise floor)", "NNGP distance"], rows)


# ----------------------------------------------------------------------------------------------- the index

EXPERIMENTS = [
    # name, question, command, runtime, headline(r), page
    ("clover", "Does the theory's neuron law match trained networks' neurons on the seed's clover?", "python -m experiments.clover", "~14 min",
     lambda r: "N = {width}: sliced W2 {d:.3f} vs noise floor {f:.3f}".format(width=r("clover/main")["networks"][-1]["width"],
                                                                           d=r("clover/main")["networks"][-1]["summary"]["sliced_wasserstein"]["distance"],
                                                                           f=r("clover/main")["networks"][-1]["summary"]["sliced_wasserstein"]["noise_floor"])),
    ("linear", "Does the solver reproduce the exact linear-network theory?", "python -m experiments.linear", "~9 min",
     lambda r: "grid solve within {:.1g} (relative) of the exact loss at every beta".format(
         max(abs(p["grid"]["loss"] - p["exact"]["loss"]) / p["exact"]["loss"] for p in r("linear/main")["sweep"]))),
    ("teacher_student", "Where is Rubin et al.'s erf teacher-student transition, in theory and in networks?", "python -m experiments.teacher_student", "~4 min (quick); hours in full",
     lambda r: "scale-1 networks: smooth curve, midpoint sigma^2 = {:.3f}".format(r("teacher_student/main")["transition"]["networks"]["1"]["sigma2_c"])),
    ("modular_addition", "Do Langevin networks on modular addition reach the exact per-mode theory?", "python -m experiments.modular_addition", "~1 h",
     lambda r: "P = 23: a = {:.3f} at N = {} vs theory {:.3f}".format(r("modular_addition/main")["width_sweep"]["points"][-1]["a"],
                                                                   r("modular_addition/main")["width_sweep"]["points"][-1]["width"],
                                                                   r("modular_addition/main")["width_sweep"]["theory"]["a"])),
    ("modular_grokking", "Is grokking on part of the table the infinite-width theory's?", "python -m experiments.modular_grokking", "~100 min",
     lambda r: "P = 23 networks' held-out accuracy at fraction 0.9: {:.2f}".format(_grok_accuracy(r, "23", 0.9))),
    ("clover_beta_sweep", "Does the default solve converge from beta = 1 to 1000?", "python -m experiments.clover_beta_sweep", "~1 min",
     lambda r: "{} of {} betas converged and resolved".format(sum(p["converged"] and p["resolved"] for p in r("clover_beta_sweep/main")["rows"]),
                                                          len(r("clover_beta_sweep/main")["rows"]))),
    ("deep_digits", "Do deep (two hidden layers) theory kernels match networks on real data?", "python -m experiments.deep_digits", "~4 min on an H100",
     lambda r: "kernel alignment {:.6f} / {:.6f} (layers 1 / 2)".format(*[r("deep_digits/main")["alignment"][k] for k in ("layer1", "layer2")])),
    ("deep_composition", "Do two- and three-layer theories match networks on a compositional task?", "python -m experiments.deep_composition", "~5 min",
     lambda r: "depth-2 train loss: theory {:.4f}, networks {:.4f}".format(r("deep_composition/main")["losses"]["mft_depth2"]["train"],
                                                                           r("deep_composition/main")["losses"]["networks_depth2"]["train"])),
    ("deep_mcmc", "Can resample-move MCMC reach the deep feature-learning regime?", "python -m experiments.deep_mcmc", "~12 min",
     lambda r: "erf, beta = 40: min ESS {:.0f} of 8192".format(min(min(row[k]["ess"]) for row in r("deep_mcmc/main")["erf"] if row["beta"] == 40.0
                                                                     for k in row if k.startswith("mcmc key")))),
]


def _grok_accuracy(r: Results, modulus: str, fraction: float) -> float:
    net = r("modular_grokking/main")["networks"][modulus]
    return net["test_accuracy"][net["fractions"].index(fraction)]


def experiments_index(r: Results, pages: str = "docs/results/") -> str:
    rows = []
    for name, question, command, runtime, headline in EXPERIMENTS:
        rows.append([question, f"`{command}`", runtime, headline(r), f"[{name}]({pages}{name}.md)"])
    return table(["question", "command", "runtime", "headline (generated)", "page"], rows)


GENERATORS = {
    "experiments": experiments_index,
    "experiments-site": lambda r: experiments_index(r, pages="results/"),
    "clover_networks": clover_networks,
    "clover_foreground": clover_foreground,
    "clover_foreground_ratio": clover_foreground_ratio,
    "linear_sweep": linear_sweep,
    "clover_beta_sweep": clover_beta_sweep,
    "solver_speed": solver_speed,
    "neuron_throughput": neuron_throughput,
    "neuron_throughput_ratio": neuron_throughput_ratio,
    "deep_digits_layers": deep_digits_layers,
    "deep_digits_widths": deep_digits_widths,
    "deep_composition_losses": deep_composition_losses,
    "deep_composition_z": deep_composition_z,
    "deep_composition_step": deep_composition_step,
    "deep_composition_erf40": deep_composition_erf40,
    "deep_speed": deep_speed,
    "deep_speed_exponent": deep_speed_exponent,
    "modular_grokking_fractions": modular_grokking_fractions,
    "ts_scale8_components": ts_scale8_components,
    "ts_scale8_starts": ts_scale8_starts,
    "ts_scale8_agreement": ts_scale8_agreement,
    "ts_scale8_width_sweep": ts_scale8_width_sweep,
    "ts_scale8_first_run_draws": ts_scale8_first_run_draws,
    "ts_scale8_first_run_mean": ts_scale8_first_run_mean,
    "ts_scale8_run_length": ts_scale8_run_length,
    "ts_half_theory": ts_half_theory,
    "ts_gibbs_eighth": ts_gibbs_eighth,
    "ts_gibbs_half": ts_gibbs_half,
    "ts_both_predictions": ts_both_predictions,
    "ts_scale1_gibbs": ts_scale1_gibbs,
    "ts_scale1_f3": ts_scale1_f3,
    "ts_starts": ts_starts,
    "ts_transition": ts_transition,
}


# ----------------------------------------------------------------------------------------------- the writer


def render(text: str, results: Results) -> tuple[str, list[str]]:
    """``text`` with every marked span regenerated, and the problems found (unknown names)."""
    problems = []

    def replace(match):
        name, body = match.group("name"), match.group("body")
        if name not in GENERATORS:
            problems.append(f"no generator for table {name!r}")
            return match.group(0)
        generated = GENERATORS[name](results)
        block = body.startswith("\n")
        inner = f"\n{generated}\n" if block else generated
        return f"<!-- table:{name} -->{inner}<!-- /table:{name} -->"

    return MARKER.sub(replace, text), problems


def documents(root: Path) -> list[Path]:
    paths = []
    for pattern in DOCUMENTS:
        paths += sorted(root.glob(pattern))
    return paths


def missing_commands(results: Results) -> list[str]:
    """Results files whose ``meta`` records no command (``command`` or ``commands``)."""
    bad = []
    for path in results.files():
        meta = json.loads(path.read_text()).get("meta") or {}
        if not (meta.get("command") or meta.get("commands")):
            bad.append(str(path))
    return bad


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.report", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(ROOT), help="repository root (README.md, docs/results/, results/)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 on a stale table or a results file without a command")
    args = parser.parse_args(argv)
    root = Path(args.root)
    results = Results(root / "results")
    problems = [f"{path}: no command in meta" for path in missing_commands(results)]
    for path in documents(root):
        text = path.read_text()
        new, found = render(text, results)
        problems += [f"{path}: {p}" for p in found]
        if new != text:
            if args.check:
                problems.append(f"{path}: generated tables are stale (run `python -m experiments.report`)")
            else:
                path.write_text(new)
                print(f"wrote {path.relative_to(root)}")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
