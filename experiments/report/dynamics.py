"""The generated tables and numbers of the training-dynamics page (``results/dynamics/default.json``).

The run compares networks of several widths with the theory's self-consistent run (``mft_jax.theory.dynamics``) per
setting: z = (network mean - theory) / s.e. of the loss at each recorded time, the late-time loss gap, and the energy
distance in (a, w) of the networks' pooled neurons to the theory's particles against its noise floor at three times."""

from __future__ import annotations

import math
from typing import Callable

from experiments.report.format import Derived, Results, Value, table

RUN = "dynamics/default"
GROKKING = "dynamics/grokking"
GROKKING_CHECKS = "dynamics/grokking_checks"
GROKKING_P23 = "dynamics/grokking_P23"
GROKKING_P23_CHECKS = "dynamics/grokking_P23_checks"
GROKKING_P23_SWEEP = "dynamics/grokking_P23_sweep"
MINIBATCH = "dynamics/minibatch"
LAW_SPREADS = 2.0
"""A law distance counts as "at the floor" when it lies within this many floor spreads above the floor."""


def _settings(r: Results) -> dict:
    return r(RUN)["settings"]


def _point(r: Results, setting: str, width: int | None = None) -> dict:
    """The networks of ``setting`` at ``width`` (the largest width when None)."""
    nets = _settings(r)[setting]["networks"]
    return nets[-1] if width is None else next(p for p in nets if p["width"] == width)


def _law_cell(p: dict) -> str:
    return f"{p['distance']:.4f} ({p['floor']:.4f} ± {p['floor_std']:.4f})"


def dynamics_networks(r: Results) -> str:
    """Per setting and width: the loss curve's agreement, the late gap and the law distances against their floors."""
    d = r(RUN)
    times = " / ".join(f"t = {t:g}" for t in d["config"]["law_times"])
    rows = []
    for name, out in d["settings"].items():
        for p in out["networks"]:
            test = p.get("test_loss")
            rows.append([name, f"{p['width']} ({d['config']['seeds']})", f"{p['loss']['max_abs_z']:.2f}",
                         f"{p['loss']['fraction_within_2se']:.0%}", "-" if test is None else f"{test['max_abs_z']:.2f}",
                         f"{p['late_gap']['mean']:+.5f} ± {p['late_gap']['se']:.5f}", " / ".join(_law_cell(x) for x in p["laws"])])
    return table(["setting", "N (seeds)", "loss: max abs z", "loss: times within 2 s.e.", "test loss: max abs z",
                  "late loss gap (networks - theory)", f"law distance (floor ± spread) at {times}"], rows)


def dynamics_minibatch(r: Results) -> str:
    """SGD on minibatches (``python -m experiments.dynamics --minibatch``): per width, the paired comparison (network
    seed s against the theory of its batch sequence), the seed mean against the theory averaged over sequences, and
    the spread over sequences; a last row for the theory (sequence average and full batch at the end)."""
    d = r(MINIBATCH)
    c = d["config"]
    rows = []
    for p in d["networks"]:
        paired = p["paired"]
        rows.append([f"{p['width']} ({c['seeds']})", f"{paired['max_abs_z']:.2f}", f"{paired['fraction_within_2se']:.0%}",
                     f"{paired['mean'][-1]:+.4f} ± {paired['se'][-1]:.4f}", f"{p['averaged']['max_abs_z']:.2f}",
                     f"{p['spread']['ratio_to_theory_late']:.2f}"])
    th = d["theory"]
    rows.append([f"theory, M = {c['particles']}", "-", "-", f"end: {th['mean'][-1]:.4f} ± {th['se'][-1]:.4f} (full batch "
                 f"{th['full_batch_loss'][-1]:.4f}, max abs z {max(abs(z) for z in th['full_batch_z']):.1f})",
                 "converged" if th["converged"] else "**not converged**", "-"])
    return table(["N (seeds)", "paired: max abs z", "paired: times within 2 s.e.", "paired gap at the end",
                  "averaged: max abs z", "late spread, networks / theory"], rows)


def dynamics_theory(r: Results) -> str:
    """The theory's solve per setting: particles, verdict and message, the loss at the first and last time."""
    rows = []
    for name, out in _settings(r).items():
        th = out["theory"]
        s = th["settings"]
        rows.append([name, s["num_neurons"], s["init"], f"{s['temperature']:g}", "yes" if th["converged"] else "**no**",
                     th["message"].split(".")[0], f"{th['loss'][0]:.4f} -> {th['loss'][-1]:.4f}", f"{th['seconds']:.0f}"])
    return table(["setting", "particles M", "start", "temperature", "converged", "solver message", "loss, t = 0 -> end", "seconds"], rows)


def _law_cells(r: Results) -> list[tuple[str, int, dict]]:
    return [(name, p["width"], x) for name, out in _settings(r).items() for p in out["networks"] for x in p["laws"]]


def _law_misses(r: Results) -> str:
    misses = [f"{name} N = {width}, t = {x['time']:g} ({x['z_over_floor']:.1f} spreads)" for name, width, x in _law_cells(r)
              if x["z_over_floor"] > LAW_SPREADS]
    return "; ".join(misses) if misses else "none"


def _law_miss_times(r: Results) -> str:
    times = sorted({x["time"] for _, _, x in _law_cells(r) if x["z_over_floor"] > LAW_SPREADS})
    return ", ".join(f"{t:g}" for t in times) if times else "none"


def _all_within(r: Results) -> str:
    """The (setting, width) pairs whose loss curve is within 2 s.e. of the theory at every recorded time."""
    cells = [f"{name} at N = {p['width']}" for name, out in _settings(r).items() for p in out["networks"]
             if p["loss"]["fraction_within_2se"] == 1.0]
    return " and ".join(cells) if cells else "no setting and width"


def _tasks(r: Results) -> str:
    """Each setting's task and model from the run's config: ``name (`task`, its options; activation, prior, beta)``."""
    parts = []
    for name, setting in r(RUN)["config"]["settings"].items():
        task, model = dict(setting["task"]), setting["model"]
        options = ", ".join(f"{k} = {v}" for k, v in task.items() if k != "name")
        parts.append(f"{name} (`{task['name']}`, {options}; {model['activation']}, sa2 = {model['sa2']:g}, "
                     f"sw2 = {model['sw2']:g}, beta = {model['beta']:g})")
    return " and ".join(parts)


def _gap_ratio(r: Results, setting: str) -> float:
    """The late gap at the smallest width over the gap at the next width."""
    nets = _settings(r)[setting]["networks"]
    return nets[0]["late_gap"]["mean"] / nets[1]["late_gap"]["mean"]


def _width_ratio(r: Results) -> float:
    widths = r(RUN)["config"]["widths"]
    return widths[1] / widths[0]


def _line_z(r: Results, setting: str) -> float:
    """|gap(largest N) - the 1/N line through the smallest width's gap| in the largest width's s.e."""
    nets = _settings(r)[setting]["networks"]
    first, last = nets[0], nets[-1]
    line = first["late_gap"]["mean"] * first["width"] / last["width"]
    return abs(last["late_gap"]["mean"] - line) / last["late_gap"]["se"]


def dynamics_extrapolated(r: Results) -> str:
    """Per setting and quantity: the width-extrapolated network curve ``f_inf`` (fit ``f_N = f_inf + b/N``) against the theory."""
    rows = []
    for name, out in _settings(r).items():
        for quantity, fit in out.get("extrapolated", {}).items():
            bias = max(abs(v) for v in fit["theory_bias"])
            rows.append([name, quantity.replace("_", " "), ", ".join(str(w) for w in fit["widths"]), f"{fit['max_abs_z']:.2f}",
                         f"{fit['fraction_within_2se']:.0%}", f"{fit['median_chi2']:.2f}", f"{max(fit['se']):.5f}",
                         f"{max(fit['theory_se']):.5f}", f"{bias:.5f}"])
    return table(["setting", "quantity", "widths fitted", "max abs z", "times within 2 s.e.", "median chi^2 (1 dof)",
                  "largest s.e. of f_inf", "largest theory s.e.", "largest b / M"], rows)


def _crossing(c) -> str:
    if isinstance(c, dict):
        if not c["reached"]:
            return f"never (0/{c['of']})"
        spread = "" if c["reached"] < 2 else f" ± {c['se']:.1f}"
        return f"{c['mean']:.1f}{spread} ({c['reached']}/{c['of']})"
    return "never" if c is None or not math.isfinite(c) else f"{c:.1f}"


def dynamics_grokking(r: Results, name: str = GROKKING) -> str:
    """Per fraction: the theory (per M) and the networks (per width, over seeds): relative held-out loss at the end and its
    minimum, and the grokking times (first time below 1 and below 1/2)."""
    d = r(name)
    levels = [f"{level:g}" for level in d["config"]["levels"]]
    rows = []
    for out in d["fractions"]:
        where = f"{out['fraction']:g} ({out['n_train']} / {out['n_test']})"
        rows += [_theory_row(where, f"theory, M = {th['particles']}", th, levels) for th in out["theory"]]
        rows += [_network_row(where, f"networks, N = {net['width']} ({len(net['test_loss_relative'][0])} seeds)", net, levels)
                 for net in out["networks"]]
    return table(["fraction (pairs trained / held out)", "run", "relative test loss at the end", "its minimum (mean curve)"]
                 + [f"time below {level} (mean ± s.e., seeds reaching it)" for level in levels], rows)


def _theory_row(where: str, label: str, th: dict, levels: list[str]) -> list[str]:
    curve = th["test_loss_relative"]
    return [where, label, f"{curve[-1]:.3f}", f"{min(curve):.3f}"] + [_crossing(th["grokking_time"][level]) for level in levels]


def _network_row(where: str, label: str, net: dict, levels: list[str]) -> list[str]:
    curve = net["test_loss_relative_mean"]
    return [where, label, f"{curve[-1]:.3f} ± {net['test_loss_relative_se'][-1]:.3f}", f"{min(curve):.3f}"] + [
        _crossing(net["grokking_time"][level]) for level in levels]


def dynamics_grokking_checks(r: Results, name: str = GROKKING_CHECKS) -> str:
    """The checks run (``--checks``): the theory from prior draws and at half the step, the networks at half the step."""
    d = r(name)
    levels = [f"{level:g}" for level in d["config"]["levels"]]
    rows = []
    for out in d["fractions"]:
        where = f"{out['fraction']:g}"
        th = out["theory_prior_start"]
        rows.append(_theory_row(where, f"theory, M = {th['particles']}, prior draws, h = {th['step_size']:g}", th, levels))
        th = out["theory_half_step"]
        rows.append(_theory_row(where, f"theory, M = {th['particles']}, antithetic, h = {th['step_size']:g}", th, levels))
        net = out["networks_half_step"]
        rows.append(_network_row(where, f"networks, N = {net['width']} ({len(net['test_loss_relative'][0])} seeds), h = {net['step_size']:g}",
                                 net, levels))
        if "networks_at_largest_m" in out:
            net = out["networks_at_largest_m"]
            rows.append(_network_row(where, f"networks, N = {net['width']} ({len(net['test_loss_relative'][0])} seeds), h = {net['step_size']:g}",
                                     net, levels))
    return table(["fraction", "run", "relative test loss at the end", "its minimum (mean curve)"]
                 + [f"time below {level} (mean ± s.e., seeds reaching it)" for level in levels], rows)


def _fits(r: Results) -> list[tuple[str, str, dict]]:
    return [(name, quantity, fit) for name, out in _settings(r).items() for quantity, fit in out.get("extrapolated", {}).items()]


def _extrapolated_summary(r: Results) -> str:
    """Per setting and quantity: the share of times at which f_inf is within 2 s.e. of the theory, and the max |z|."""
    return "; ".join(f"{name} {quantity.replace('_', ' ')} {fit['fraction_within_2se']:.0%} (max |z| {fit['max_abs_z']:.2f})"
                     for name, quantity, fit in _fits(r))


def _extrapolated_misses(r: Results) -> str:
    """The recorded times at which f_inf misses the theory by more than 2 s.e., per setting and quantity."""
    parts = []
    for name, quantity, fit in _fits(r):
        times = [t for t, z in zip(_settings(r)[name]["times"], fit["z"]) if abs(z) >= 2]
        if times:
            parts.append(f"{name} {quantity.replace('_', ' ')} at t = {', '.join(f'{t:g}' for t in times)}")
    return "; ".join(parts) if parts else "none"


def _grokking_ends(r: Results) -> str:
    """Per fraction: the relative test loss at the end of the run, theory (largest M) and networks (each width)."""
    parts = []
    for out in r(GROKKING)["fractions"]:
        th = out["theory"][-1]
        nets = ", ".join(f"N = {n['width']} {n['test_loss_relative_mean'][-1]:.3f} ± {n['test_loss_relative_se'][-1]:.3f}"
                         for n in out["networks"])
        parts.append(f"at fraction {out['fraction']:g}, theory (M = {th['particles']}) {th['test_loss_relative'][-1]:.3f}, networks {nets}")
    return "; ".join(parts)


def _end_gap(th: dict, net: dict) -> tuple[float, float, float]:
    """Theory minus networks in the relative held-out loss at the end of the run, the seed mean's s.e. and the theory's
    own s.e., estimated (as on the rest of this page) as one width-N network's spread times sqrt(N / M)."""
    se = net["test_loss_relative_se"][-1]
    theory_se = se * math.sqrt(len(net["test_loss_relative"][0])) * math.sqrt(net["width"] / th["particles"])
    return th["test_loss_relative"][-1] - net["test_loss_relative_mean"][-1], se, theory_se


def _grokking_theory_gap(r: Results) -> str:
    """Per fraction: theory (largest M) minus the widest networks at the end, in units of both errors: the seed mean's s.e.
    and the theory's own, estimated (as on the rest of this page) as one width-N network's spread times sqrt(N / M)."""
    parts = []
    for out in r(GROKKING)["fractions"]:
        th, net = out["theory"][-1], out["networks"][-1]
        gap, se, theory_se = _end_gap(th, net)
        parts.append(f"{gap:+.3f} ({abs(gap) / math.hypot(se, theory_se):.1f} combined s.e.; theory's own s.e. {theory_se:.3f}) "
                     f"at fraction {out['fraction']:g}")
    return ", ".join(parts)


def _grokking_order(r: Results) -> str:
    """Whether the end level rises with the width at every fraction: networks at each width in order, then the theory."""
    bad = []
    for out in r(GROKKING)["fractions"]:
        levels = [n["test_loss_relative_mean"][-1] for n in out["networks"]] + [out["theory"][-1]["test_loss_relative"][-1]]
        if any(b <= a for a, b in zip(levels, levels[1:])):
            bad.append(f"{out['fraction']:g}")
    return "at every fraction" if not bad else f"except at fraction {', '.join(bad)}"


def _grokking_theory_times(r: Results) -> str:
    """Per fraction, the theory's first time below 1 at each M."""
    return "; ".join(f"fraction {out['fraction']:g}: " + ", ".join(f"M = {th['particles']} {_crossing(th['grokking_time']['1'])}"
                                                                 for th in out["theory"]) for out in r(GROKKING)["fractions"])


def _checks_half_step(r: Results, name: str = GROKKING, checks: str = GROKKING_CHECKS) -> str:
    """Per fraction, the end level at half the step against the main run's (theory at the smallest M, networks at the
    smallest width)."""
    main = {out["fraction"]: out for out in r(name)["fractions"]}
    parts = []
    for out in r(checks)["fractions"]:
        ref = main[out["fraction"]]
        th, th0 = out["theory_half_step"], ref["theory"][0]
        net, net0 = out["networks_half_step"], ref["networks"][0]
        parts.append(f"fraction {out['fraction']:g}: theory (M = {th['particles']}) {th0['test_loss_relative'][-1]:.3f} at h = "
                     f"{th0.get('step_size', r(name)['config']['step_size']):g} -> {th['test_loss_relative'][-1]:.3f} at h = {th['step_size']:g}, "
                     f"networks (N = {net['width']}) {net0['test_loss_relative_mean'][-1]:.3f} -> {net['test_loss_relative_mean'][-1]:.3f}; "
                     f"first time below 1: theory {_crossing(th0['grokking_time']['1'])} -> {_crossing(th['grokking_time']['1'])}, networks "
                     f"{_crossing(net0['grokking_time']['1'])} -> {_crossing(net['grokking_time']['1'])}")
    return "; ".join(parts)


def _checks_prior_start(r: Results, name: str = GROKKING, checks: str = GROKKING_CHECKS) -> str:
    """Per fraction, the theory's first time below 1 from antithetic pairs (main run) and from prior draws (checks)."""
    main = {out["fraction"]: out for out in r(name)["fractions"]}
    return "; ".join(f"fraction {out['fraction']:g}: {_crossing(main[out['fraction']]['theory'][0]['grokking_time']['1'])} from "
                     f"antithetic pairs, {_crossing(out['theory_prior_start']['grokking_time']['1'])} from prior draws"
                     for out in r(checks)["fractions"])


def _checks_same_size(r: Results, name: str = GROKKING, checks: str = GROKKING_CHECKS) -> str:
    """Per fraction: the theory at its largest M against networks of width M (end level; both errors as in
    ``_grokking_theory_gap``)."""
    main = {out["fraction"]: out for out in r(name)["fractions"]}
    parts = []
    for out in r(checks)["fractions"]:
        net, th = out["networks_at_largest_m"], main[out["fraction"]]["theory"][-1]
        gap, se, theory_se = _end_gap(th, net)
        parts.append(f"fraction {out['fraction']:g}: theory (M = {th['particles']}) {th['test_loss_relative'][-1]:.3f}, networks "
                     f"(N = {net['width']}) {net['test_loss_relative_mean'][-1]:.3f} ± {se:.3f}, {abs(gap) / math.hypot(se, theory_se):.1f} combined s.e. apart; "
                     f"first time below 1: theory {_crossing(th['grokking_time']['1'])}, networks {_crossing(net['grokking_time']['1'])}")
    return "; ".join(parts)


def _same_run_length(r: Results, name: str = GROKKING_P23) -> str:
    """Per fraction: the theory (largest M) against the widest networks: first time below 1 and the end level, each gap in
    units of the combined error (the seed mean's s.e.; the theory's own estimated as in ``_grokking_theory_gap``)."""
    parts = []
    for out in r(name)["fractions"]:
        th, net = out["theory"][-1], out["networks"][-1]
        gap, se, theory_se = _end_gap(th, net)
        times = f"first time below 1: theory {_crossing(th['grokking_time']['1'])}, networks {_crossing(net['grokking_time']['1'])}"
        parts.append(f"fraction {out['fraction']:g}: end level theory (M = {th['particles']}) {th['test_loss_relative'][-1]:.3f}, networks "
                     f"(N = {net['width']}) {net['test_loss_relative_mean'][-1]:.3f} ± {se:.3f} ({abs(gap) / math.hypot(se, theory_se):.1f} "
                     f"combined s.e.); {times}")
    return "; ".join(parts)


def _sweep_transition(r: Results) -> str:
    """The fraction at which the end-of-run relative held-out loss falls below 1: theory and networks per width."""
    t = r(GROKKING_P23_SWEEP)["transition"]
    nets = ", ".join(f"N = {n['width']} {n['mean']:.3f} ± {n['se']:.3f} ({n['reached']}/{n['of']} seeds cross)" for n in t["networks"])
    return f"theory {t['theory']:.3f}, networks {nets}"


def _sweep_times(r: Results) -> str:
    """Per fraction: the theory's first time below 1 against the widest networks', and their difference in s.e."""
    parts = []
    for out in r(GROKKING_P23_SWEEP)["fractions"]:
        th, net = out["theory"][-1]["grokking_time"]["1"], out["networks"][-1]["grokking_time"]["1"]
        if not math.isfinite(th) or net["reached"] < 2:
            continue
        parts.append(f"{out['fraction']:g}: {th:.1f} against {net['mean']:.1f} ± {net['se']:.1f} ({abs(th - net['mean']) / net['se']:.1f} s.e.)")
    return "; ".join(parts)


def _grokking_network_times(r: Results) -> str:
    return "; ".join(f"fraction {out['fraction']:g}: " + ", ".join(f"N = {n['width']} {_crossing(n['grokking_time']['1'])}"
                                                                 for n in out["networks"]) for out in r(GROKKING)["fractions"])


def dynamics_headline(r: Results) -> str:
    """The README index's headline: clover at the largest width."""
    p = _point(r, "clover")
    return f"clover, N = {p['width']}: loss max abs z {p['loss']['max_abs_z']:.2f}, within 2 s.e. at {p['loss']['fraction_within_2se']:.0%} of times"


DYNAMICS_VALUES: dict[str, Callable[[Results], str]] = {
    "dm_command": lambda r: f"`{r(MINIBATCH)['meta']['command'].strip()}`",
    "dy_command": lambda r: f"`{r(RUN)['meta']['command'].strip()}`",
    "dy_tasks": _tasks,
    "dy_widths": lambda r: ", ".join(str(w) for w in r(RUN)["config"]["widths"]),
    "dy_seeds": Value(RUN, "config.seeds", "d"),
    "dy_particles": Value(RUN, "config.particles", "d"),
    "dy_steps": Value(RUN, "config.steps", "d"),
    "dy_step_size": Value(RUN, "config.step_size", "g"),
    "dy_end_time": Derived(lambda r: r(RUN)["config"]["steps"] * r(RUN)["config"]["step_size"], "g"),
    "dy_record_every": Value(RUN, "config.record_every", "d"),
    "dy_law_times": lambda r: ", ".join(f"{t:g}" for t in r(RUN)["config"]["law_times"]),
    "dy_law_sample": Value(RUN, "config.law_sample", "d"),
    "dy_law_reference": Value(RUN, "config.law_reference", "d"),
    "dy_commit": lambda r: r(RUN)["meta"]["git_commit"][:7],
    "dy_devices": lambda r: ", ".join(r(RUN)["meta"]["devices"]),
    "dy_largest_width": Derived(lambda r: _point(r, "clover")["width"], "d"),
    "dy_num_times": Derived(lambda r: len(_settings(r)["clover"]["times"]), "d"),
    "dy_clover_within_largest": Derived(lambda r: _point(r, "clover")["loss"]["fraction_within_2se"], ".0%"),
    "dy_clover_z_largest": Value(RUN, "settings.clover.networks.-1.loss.max_abs_z", ".2f"),
    "dy_ts_within_largest": Derived(lambda r: _point(r, "teacher_student")["loss"]["fraction_within_2se"], ".0%"),
    "dy_ts_z_largest": Value(RUN, "settings.teacher_student.networks.-1.loss.max_abs_z", ".2f"),
    "dy_ts_test_z_largest": Value(RUN, "settings.teacher_student.networks.-1.test_loss.max_abs_z", ".2f"),
    "dy_clover_gap_smallest": Value(RUN, "settings.clover.networks.0.late_gap.mean", ".4f"),
    "dy_ts_gap_smallest": Value(RUN, "settings.teacher_student.networks.0.late_gap.mean", ".4f"),
    "dy_gaps_second": lambda r: " and ".join(f"{_settings(r)[s]['networks'][1]['late_gap']['mean']:.4f}" for s in ("clover", "teacher_student")),
    "dy_gap_ratios": lambda r: " and ".join(f"{_gap_ratio(r, s):.1f}x" for s in ("clover", "teacher_student")),
    "dy_width_ratio": Derived(_width_ratio, "g"),
    "dy_line_z": lambda r: " and ".join(f"{_line_z(r, s):.1f}" for s in ("clover", "teacher_student")),
    "dy_law_within": Derived(lambda r: sum(x["z_over_floor"] <= LAW_SPREADS for _, _, x in _law_cells(r)), "d"),
    "dy_law_cells": Derived(lambda r: len(_law_cells(r)), "d"),
    "dy_law_misses": _law_misses,
    "dy_law_miss_times": _law_miss_times,
    "dy_all_within": _all_within,
    "dy_law_spreads": lambda r: f"{LAW_SPREADS:g}",
    "dy_ex_widths": lambda r: ", ".join(str(w) for w in r(RUN)["config"]["extrapolate_widths"]),
    "dy_ex_summary": _extrapolated_summary,
    "dy_ex_misses": _extrapolated_misses,
    "dg_command": lambda r: f"`{r(GROKKING)['meta']['command'].strip()}`",
    "dg_checks_command": lambda r: f"`{r(GROKKING_CHECKS)['meta']['command'].strip()}`",
    "dg_commit": lambda r: r(GROKKING)["meta"]["git_commit"][:7],
    "dg_setting": lambda r: (lambda c: f"P = {c['modulus']}, beta_full = {c['beta_full']:g}, kappa = {c['kappa']:g}, gamma = {c['gamma']:g}")(r(GROKKING)["config"]),
    "dg_fractions": lambda r: ", ".join(f"{f:g}" for f in r(GROKKING)["config"]["fractions"]),
    "dg_particles": lambda r: ", ".join(str(m) for m in r(GROKKING)["config"]["particles"]),
    "dg_widths": lambda r: ", ".join(str(w) for w in r(GROKKING)["config"]["widths"]),
    "dg_seeds": Value(GROKKING, "config.seeds", "d"),
    "dg_steps": Value(GROKKING, "config.steps", "d"),
    "dg_step_size": Value(GROKKING, "config.step_size", "g"),
    "dg_end_time": Derived(lambda r: r(GROKKING)["config"]["steps"] * r(GROKKING)["config"]["step_size"], "g"),
    "dg_record_time": Derived(lambda r: r(GROKKING)["config"]["record_every"] * r(GROKKING)["config"]["step_size"], "g"),
    "dg_window": Value(GROKKING, "config.window", "d"),
    "dg_ends": _grokking_ends,
    "dg_order": _grokking_order,
    "dg_theory_gap": _grokking_theory_gap,
    "dg_theory_times": _grokking_theory_times,
    "dg_network_times": _grokking_network_times,
    "dg23_command": lambda r: f"`{r(GROKKING_P23)['meta']['command'].strip()}`",
    "dg23_commit": lambda r: r(GROKKING_P23)["meta"]["git_commit"][:7],
    "dg23_particles": lambda r: ", ".join(str(m) for m in r(GROKKING_P23)["config"]["particles"]),
    "dg23_widths": lambda r: ", ".join(str(w) for w in r(GROKKING_P23)["config"]["widths"]),
    "dg23_compare": _same_run_length,
    "dg23s_command": lambda r: f"`{r(GROKKING_P23_SWEEP)['meta']['command'].strip()}`",
    "dg23s_transition": _sweep_transition,
    "dg23s_times": _sweep_times,
    "dg23s_tail": Value(GROKKING_P23_SWEEP, "transition.tail_records", "d"),
    "dg23s_widest": lambda r: str(r(GROKKING_P23_SWEEP)["fractions"][0]["networks"][-1]["width"]),
    "mg23_networks_transition": lambda r: (lambda t: f"{t['mean']:.3f} ± {t['se']:.3f}")(r("modular_grokking/main")["networks"]["23"]["transition_loss_below_1"]),
    "mg23_theory_fc": lambda r: (lambda c: f"{c['theory']:.3f} ± {c['theory_err']:.3f}")(r("modular_grokking/critical_fraction")["critical_fraction"]["23"]),
    "dg23_checks_command": lambda r: f"`{r(GROKKING_P23_CHECKS)['meta']['command'].strip()}`",
    "dg23_half_step": lambda r: _checks_half_step(r, GROKKING_P23, GROKKING_P23_CHECKS),
    "dg23_prior_start": lambda r: _checks_prior_start(r, GROKKING_P23, GROKKING_P23_CHECKS),
    "dg23_same_size": lambda r: _checks_same_size(r, GROKKING_P23, GROKKING_P23_CHECKS),
    "dg_half_step": _checks_half_step,
    "dg_prior_start": _checks_prior_start,
    "dg_same_size": _checks_same_size,
}
