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


def dynamics_grokking(r: Results) -> str:
    """Per fraction: the theory (per M) and the networks (per width, over seeds): relative held-out loss at the end and its
    minimum, and the grokking times (first time below 1 and below 1/2)."""
    d = r(GROKKING)
    levels = [f"{level:g}" for level in d["config"]["levels"]]
    rows = []
    for out in d["fractions"]:
        where = f"{out['fraction']:g} ({out['n_train']})"
        for th in out["theory"]:
            curve = th["test_loss_relative"]
            rows.append([where, f"theory, M = {th['particles']}", f"{curve[-1]:.3f}", f"{min(curve):.3f}"]
                        + [_crossing(th["grokking_time"][level]) for level in levels])
        for net in out["networks"]:
            curve = net["test_loss_relative_mean"]
            seeds = len(net["test_loss_relative"][0])
            rows.append([where, f"networks, N = {net['width']} ({seeds} seeds)", f"{curve[-1]:.3f} ± {net['test_loss_relative_se'][-1]:.3f}",
                         f"{min(curve):.3f}"] + [_crossing(net["grokking_time"][level]) for level in levels])
    return table(["fraction (pairs)", "run", "relative test loss at the end", "its minimum (mean curve)"]
                 + [f"time below {level} (mean ± s.e., seeds reaching it)" for level in levels], rows)


def dynamics_headline(r: Results) -> str:
    """The README index's headline: clover at the largest width."""
    p = _point(r, "clover")
    return f"clover, N = {p['width']}: loss max abs z {p['loss']['max_abs_z']:.2f}, within 2 s.e. at {p['loss']['fraction_within_2se']:.0%} of times"


DYNAMICS_VALUES: dict[str, Callable[[Results], str]] = {
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
}
