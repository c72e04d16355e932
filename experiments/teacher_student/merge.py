"""``--merge-into``: a run's points joined to an existing results file, point by point in sigma^2, refusing to mix
runs with other settings."""

from __future__ import annotations

import json

from pathlib import Path
from experiments.teacher_student.config import SETTING_NAMES, network_key, run_settings
from experiments.teacher_student.networks import network_transition
from experiments.teacher_student.theory import population_transition


def _settings_differ(previous: dict, settings: dict) -> list[str]:
    """The run-level settings in which a stored entry and a new run's differ, in words (JSON-normalised)."""
    settings = json.loads(json.dumps(settings))
    return [f"{k} {previous[k]!r} -> {v!r}" for k, v in settings.items() if k in previous and previous[k] != v]


def _mixing_refused(where: str, differ: list[str]) -> SystemExit:
    """The refusal of a merge that would mix points of runs with other settings, naming them."""
    return SystemExit(f"--merge-into: {where} holds points of a run with other settings ({'; '.join(differ)}); points of "
                      "different runs are not mixed: write this run to its own file (--results DIR)")


def settings_entries(args, name) -> list:
    """The entries of scale ``name`` that carry run settings (``run_settings``) and that this run writes: the networks
    (where the scale gets them), the training-set theory, the sample check, the width sweep. One predicate for what
    ``main`` computes and what ``check_merge_target`` must not mix."""
    return ([network_key(args)] * (not args.no_networks and name in args.network_scales)
            + ["training_set_theory"] * bool(args.training_set_theory) + ["sample_check"] * bool(args.sample_check)
            + [network_key(args, "width_sweep")] * bool(args.widths))


def check_merge_target(path, args) -> None:
    """``--merge-into``: refuse before computing anything if the file is missing or holds, for a scale and entry this run
    writes, points of a run with other settings (the merge would mix them)."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"--merge-into: {str(path)!r} does not exist (run without --merge-into to create a results file)")
    try:
        stored = json.loads(path.read_text())["scales"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise SystemExit(f"--merge-into: {str(path)!r} is not a teacher_student results file ({error!r})") from None
    settings_of = run_settings(args)
    for name in args.scales:
        for key in settings_entries(args, name):
            settings = settings_of[key]
            previous = stored.get(name, {}).get(key)
            differ = _settings_differ(previous, settings) if isinstance(previous, dict) else []
            if differ:
                raise _mixing_refused(f"scale {name}, entry {key!r} of {str(path)!r}", differ)


def _merge_points(old: list, new: list) -> list:
    """Two runs' per-sigma^2 points: the new run's replace the old run's at equal sigma^2, the rest are kept; sorted."""
    by_sigma2 = {round(p["sigma2"], 6): p for p in old}
    by_sigma2.update({round(p["sigma2"], 6): p for p in new})
    return [by_sigma2[k] for k in sorted(by_sigma2)]


def merge_scale(old: dict, new: dict, setting) -> dict:
    """One scale's entry of a results file updated with a new run's (``--merge-into``), point by point in sigma^2:
    a run at a few sigma^2 replaces those points and keeps the others (their transitions recomputed from the merged
    points). Points of runs with different settings (steps, step size, seeds, draws, sampler, widths) are not mixed:
    that is refused, naming the setting (write such a run to its own file with ``--results``)."""
    out = dict(old)
    for key, value in new.items():
        previous = old.get(key)
        if key == "paper_equations" and isinstance(previous, dict):
            limit = {**value["limit"], "curve": _merge_points(previous["limit"]["curve"], value["limit"]["curve"])}
            out[key] = {"limit": limit, "finite_d": _merge_points(previous["finite_d"], value["finite_d"])}
            continue
        if not (isinstance(value, dict) and "points" in value and isinstance(previous, dict) and "points" in previous):
            out[key] = value
            continue
        differ = _settings_differ(previous, {k: value[k] for k in SETTING_NAMES if k in value})
        if differ:  # check_merge_target refuses this before the run; here for direct callers
            raise _mixing_refused(f"scale entry {key!r}", differ)
        merged = {**previous, **value, "points": _merge_points(previous["points"], value["points"])}
        if "transition" in value:
            transition = population_transition if key.startswith("population") else network_transition
            merged["transition"] = transition(setting, merged["points"])
        out[key] = merged
    return out
