"""The teacher-student results file's summaries: networks and theories side by side, the d -> inf limit of the
population theory, the transition table."""

from __future__ import annotations

import math
import numpy as np

from mft_jax.analysis.stats import line_in_inverse_size
from mft_jax.theory.reduced import rubin
from experiments.teacher_student.config import PAPER
from experiments.teacher_student.measure import PREDICTIONS, _paired_difference, _versus


def attach_population(entry) -> None:
    """Add the population theory's f1, f3 (same sigma^2) and the finite-n shift to each training-set-theory point."""
    if "population" not in entry:
        return
    population = {round(p["sigma2"], 6): p for p in entry["population"]["points"]}
    for point in entry.get("sample_check", {}).get("points", []):
        pop = population.get(round(point["sigma2"], 6))
        if pop is not None:
            point["population_f1"], point["population_f3"] = pop["f1"], pop["f3"]
    if "training_set_theory" not in entry:
        return
    for point in entry["training_set_theory"]["points"]:
        pop = population.get(round(point["sigma2"], 6))
        if pop is None:
            continue
        point["population_f1"], point["population_f3"] = pop["f1"], pop["f3"]
        point["theory_minus_population_f1"] = point["f1"] - pop["f1"]
        point["theory_minus_population_f3"] = point["f3"] - pop["f3"]
        if "networks_f1" in point:
            point["networks_minus_population_f1"] = point["networks_f1"] - pop["f1"]
            point["networks_minus_population_f3"] = point["networks_f3"] - pop["f3"]
            for name in ("f1", "f3"):
                total = point["networks_" + name] - pop[name]
                point["finite_n_share_" + name] = float((point[name] - pop[name]) / total) if total else float("nan")


def attach_networks(entry) -> None:
    """Where a training-set-theory point has no networks of its own draws (``--no-networks`` without cached runs, e.g.
    networks run on another machine and merged), compare it with the scale's networks (prior start) pooled over the same
    draws: ``networks_minus_theory_*`` = pooled network mean - draw-averaged theory, error from the networks' s.e. over
    runs (draw-to-draw spread included) and the theory's sampler error."""
    if "training_set_theory" not in entry or "networks" not in entry:
        return
    nets = {round(p["sigma2"], 6): p["prior"] for p in entry["networks"]["points"]}
    for point in entry["training_set_theory"]["points"]:
        net = nets.get(round(point["sigma2"], 6))
        if net is None or any("networks" in r for r in point["draws"]):
            continue
        point["networks_source"] = "the scale's networks (prior start) pooled over the same draws"
        for name, component in PREDICTIONS.items():
            if name not in point:  # a run before the kernel-regression record
                continue
            point["networks_" + component], point["networks_" + component + "_se"] = net[component], net[component + "_se"]
            gap = net[component] - point[name]
            se = math.sqrt(net[component + "_se"] ** 2 + np.nan_to_num(point[name + "_sampler_se"]) ** 2)
            point["networks_minus_theory_" + name], point["networks_minus_theory_" + name + "_se"] = gap, se


def attach_gibbs_versus_theory(entry) -> None:
    """``networks_gibbs.versus_training_set_theory``: per sigma^2 and start, networks minus the theory on the same
    training sets, paired by draw (over the draws both have), error from the networks' s.e. over seeds and the
    theory's sampler error."""
    if "networks_gibbs" not in entry or "training_set_theory" not in entry:
        return
    theory = {round(p["sigma2"], 6): {r["draw"]: r for r in p["draws"]} for p in entry["training_set_theory"]["points"]}
    rows = []
    for point in entry["networks_gibbs"]["points"]:
        by_draw = theory.get(round(point["sigma2"], 6))
        if by_draw is None:
            continue
        row = {"sigma2": point["sigma2"]}
        for start in ("prior", "teacher"):
            pairs = [(net, by_draw[net["draw"]]) for net in point[start].get("per_draw", []) if net["draw"] in by_draw]
            if not pairs:
                continue
            row[start] = {"draws": [net["draw"] for net, _ in pairs]}
            for name, component in PREDICTIONS.items():
                if not all(name in th for _, th in pairs):  # a theory run before the kernel-regression record
                    continue
                gap, se = _paired_difference(pairs, component, name)
                row[start].update({"networks_" + component: float(np.mean([net[component] for net, _ in pairs])),
                                   "theory_" + name: float(np.mean([th[name] for _, th in pairs])),
                                   "minus_theory_" + name: gap, "minus_theory_" + name + "_se": se,
                                   "minus_theory_" + name + "_in_se": _versus(gap, se, 0.0, 0.0)})
        rows.append(row)
    entry["networks_gibbs"]["versus_training_set_theory"] = rows


LARGE_D_MIN = 100  # scales used by large_d_limit: d >= 100 (1/2, 1, 2); at d = 53 f3 is not yet linear in 1/d


def large_d_limit(results, tol=1e-3) -> dict:
    """The exact population theory at d -> inf: per sigma^2 computed at every scale with ``d >= LARGE_D_MIN``, the
    least-squares line ``f3 = f3_inf + B / d`` (and its largest residual). Where ``f3_inf`` vanishes (``|f3_inf| < tol``)
    the cubic component is an O(1/d) effect that disappears with the scale: the GP side of a transition; the
    transition lies between the last sigma^2 with ``f3_inf < -tol`` and the first with ``|f3_inf| < tol``."""
    tables = {}
    for entry in results["scales"].values():
        if entry["setting"]["d"] < LARGE_D_MIN:
            continue
        points = entry.get("population", {}).get("points", []) + entry.get("population_extra", {}).get("points", [])
        if points:
            tables[entry["setting"]["d"]] = {round(p["sigma2"], 6): p["f3"] for p in points}
    if len(tables) < 3:
        return {}
    dims = sorted(tables)
    common = sorted(set.intersection(*(set(t) for t in tables.values())))
    rows = []
    for s in common:
        f3 = np.array([tables[d][s] for d in dims])
        line = line_in_inverse_size(dims, f3)
        rows.append({"sigma2": s, "f3_inf": line["limit"], "slope": line["slope"], "max_residual": line["max_residual"],
                     "f3_by_d": f3.tolist()})
    learned = [r["sigma2"] for r in rows if r["f3_inf"] < -tol]
    vanished = [r["sigma2"] for r in rows if abs(r["f3_inf"]) < tol and (not learned or r["sigma2"] > max(learned))]
    bracket = [max(learned), min(vanished)] if learned and vanished else None
    u = rubin.paper_setting(1.0).u
    return {"dims": dims, "points": rows, "tol": tol, "sigma2_c_bracket": bracket,
            "u_c_bracket": None if bracket is None else [float(u(bracket[1])), float(u(bracket[0]))],
            "method": "exact population theory at every scale with d >= 100; per sigma^2 the line f3 = f3_inf + B/d "
                      "by least squares; the transition lies between the last sigma^2 with f3_inf < -tol and the "
                      "first with |f3_inf| < tol"}


def transition_summary(results) -> dict:
    scales = results["scales"]
    first = next(iter(scales.values()))["paper_equations"]["limit"]
    out = {"paper": PAPER, "paper_equations": {"u_c": first["u_c"], "sigma2_c": first["sigma2_c"],
                                               "spinodal_sigma2": first["spinodal_sigma2"]},
           "exact_population": {}, "networks": {}, "networks_gibbs": {}, "run": results["run"]}
    for name, entry in scales.items():
        if "population" in entry:
            t = entry["population"]["transition"]
            out["exact_population"][name] = {"sigma2_c": t["sigma2_c"], "u_c": t["u_c"], "kind": t["kind"]}
        for key in ("networks", "networks_gibbs"):
            if key in entry:
                t = entry[key]["transition"]
                out[key][name] = {"sigma2_c": t["sigma2_c"], "sigma2_c_err": t["sigma2_c_err"]}
    out["exact_population_d_to_inf"] = large_d_limit(results)
    return out


def print_table(results) -> None:
    t = results["transition"]
    print(f"\ntransition ({results['run']} run): paper sigma2_c = {PAPER['sigma2_c']}, u_c = {PAPER['u_c']}")
    print(f"  paper's equations (d -> inf): sigma2_c = {t['paper_equations']['sigma2_c']:.4f}, u_c = {t['paper_equations']['u_c']:.2f}")
    for name, v in t["exact_population"].items():
        print(f"  exact population, scale {name}: sigma2_c = {v['sigma2_c']:.4f}, u_c = {v['u_c']:.2f} ({v['kind']})")
    limit = t.get("exact_population_d_to_inf")
    if limit:
        print(f"  exact population, d -> inf (f3 = f3_inf + B/d over d = {limit['dims']}): " + ", ".join(
            f"{r['sigma2']:.3f}: {r['f3_inf']:+.4f}" for r in limit["points"]) + f"; transition in {limit['sigma2_c_bracket']}")
    for key in ("networks", "networks_gibbs"):
        for name, v in t.get(key, {}).items():
            print(f"  {key}, scale {name}: sigma2_c = {v['sigma2_c']:.4f} +- {v['sigma2_c_err']:.4f}")
    for name, entry in results["scales"].items():
        for row in entry.get("networks_gibbs", {}).get("versus_training_set_theory", []):
            print(f"  scale {name} s2={row['sigma2']:.3f}: Gibbs-readout networks - theory on the sets: " + "; ".join(
                f"{start} start " + ", ".join(f"{name} {row[start]['minus_theory_' + name]:+.4f} "
                                              f"({row[start]['minus_theory_' + name + '_in_se']:+.1f} se)"
                                              for name in PREDICTIONS if "minus_theory_" + name in row[start])
                for start in ("prior", "teacher") if start in row))
    for name, entry in results["scales"].items():
        for p in entry.get("training_set_theory", {}).get("points", []):
            line = f"  scale {name} s2={p['sigma2']:.3f}: theory on the sets f1 {p['f1']:.4f} f3 {p['f3']:+.4f}"
            if "networks_minus_theory_f3" in p:
                line += "; networks - theory " + ", ".join(
                    f"{c} {p['networks_minus_theory_' + c]:+.4f} +- {p['networks_minus_theory_' + c + '_se']:.4f} "
                    f"({_versus(p['networks_minus_theory_' + c], p['networks_minus_theory_' + c + '_se'], 0.0, 0.0):+.1f} se)"
                    for c in PREDICTIONS if "networks_minus_theory_" + c in p)
            print(line)
