"""The solve keywords of 0.1 (``anderson=int``, ``newton=bool``, ``method=str``, ``damping``, ``continuation``,
``beta_start``), mapped onto the solver objects and the ``Continuation`` policy of 0.2 with a ``DeprecationWarning``
naming the replacement. Kept for one release (CHANGELOG.md)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from mft_jax.errors import ConfigError
from mft_jax.theory.fixed_point import Anderson, Continuation, Damped, NewtonKrylov

TWO_LAYER = ("damping", "anderson", "newton", "continuation", "beta_start")
DEEP = ("method", "damping", "continuation", "beta_start")
BACKTRACK = 6  # the two-layer solver's halvings of a step that leaves the admissible region (0.1)
DEEP_HALVINGS = 12  # the deep solver's (0.1)


def _integer(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _two_layer_solver(old: dict):
    from mft_jax.theory.ascent import Ascent

    damping = old.get("damping", 0.5)
    if not (isinstance(damping, (int, float)) and not isinstance(damping, bool) and 0 < damping <= 1):
        raise ConfigError(f"damping must be in (0, 1], got {damping!r}")
    anderson = _integer("anderson", old.get("anderson", 5), 0)
    newton = old.get("newton", False)
    if not isinstance(newton, bool):
        raise ConfigError(f"newton must be True or False, got {newton!r}")
    if newton:
        return Ascent(damping), "solver=Ascent(damping)"
    if anderson:
        return Anderson(anderson, damping, BACKTRACK), f"solver=Anderson({anderson}, damping)"
    return Damped(damping, BACKTRACK), "solver=Damped(damping)"


def _deep_solver(old: dict):
    damping = old.get("damping", 0.5)
    if not (isinstance(damping, (int, float)) and not isinstance(damping, bool) and 0 < damping <= 1):
        raise ConfigError(f"damping must be in (0, 1], got {damping!r}")
    method = old.get("method", "newton")
    if method == "newton":
        return NewtonKrylov(damping), "solver=NewtonKrylov(damping)"
    if method == "anderson":
        return Anderson(5, damping, halvings=DEEP_HALVINGS), "solver=Anderson(5, damping, halvings=12)"
    if method == "damped":
        return Damped(damping, halvings=DEEP_HALVINGS, descent=True), "solver=Damped(damping, halvings=12, descent=True)"
    raise ConfigError(f"deep solver method must be 'newton', 'anderson' or 'damped', got {method!r}")


def solver_and_schedule(solver, schedule, old: dict, *, default, where: str, allowed: tuple):
    """``(solver, schedule)`` from the new keywords, or from the 0.1 keywords in ``old`` (with a ``DeprecationWarning``);
    both at once, an unknown keyword or a solver of the wrong kind are refused in words."""
    names = TWO_LAYER if where == "solve" else DEEP
    unknown = sorted(set(old) - set(names))
    if unknown:
        raise TypeError(f"{where}() got an unexpected keyword argument {unknown[0]!r}")
    solver_keys = [k for k in old if k in ("damping", "anderson", "newton", "method")]
    schedule_keys = [k for k in old if k in ("continuation", "beta_start")]
    if solver_keys:
        if solver is not None:
            raise ConfigError(f"{where}: give either solver= or the deprecated {', '.join(solver_keys)}, not both")
        solver, replacement = (_two_layer_solver if where == "solve" else _deep_solver)(old)
        warnings.warn(f"{where}({', '.join(f'{k}=' for k in solver_keys)}) is deprecated: use {replacement} "
                      "(mft_jax.theory.fixed_point); the old keywords go in the next release", DeprecationWarning, stacklevel=3)
    if schedule_keys:
        if schedule is not None:
            raise ConfigError(f"{where}: give either schedule= or the deprecated {', '.join(schedule_keys)}, not both")
        low = 0 if where == "solve" else 1
        stages = _integer("continuation", old.get("continuation", low), low)
        schedule = Continuation(stages=max(stages, 1), beta_start=old.get("beta_start"))
        warnings.warn(f"{where}({', '.join(f'{k}=' for k in schedule_keys)}) is deprecated: use "
                      "schedule=Continuation(stages=n, beta_start=b) (mft_jax.theory.fixed_point); the old keywords go in "
                      "the next release", DeprecationWarning, stacklevel=3)
    solver = default if solver is None else solver
    engine_solver = callable(getattr(solver, "init", None)) and callable(getattr(solver, "step", None))
    if not (isinstance(solver, allowed) or (where == "solve_deep" and engine_solver)):
        anything = " or any object with the engine's init / step" if where == "solve_deep" else ""
        raise ConfigError(f"{where}: solver must be one of {', '.join(c.__name__ for c in allowed)} (objects of "
                          f"mft_jax.theory.fixed_point / ascent){anything}, got {solver!r}")
    damping = getattr(solver, "damping", 1.0)
    if not (isinstance(damping, (int, float)) and 0 < damping <= 1):
        raise ConfigError(f"{where}: the solver's damping must be in (0, 1], got {damping!r}")
    schedule = Continuation() if schedule is None else schedule
    if not isinstance(schedule, Continuation):
        raise ConfigError(f"{where}: schedule must be a Continuation (mft_jax.theory.fixed_point), got {schedule!r}")
    return solver, schedule



def with_damping(solver, damping: float):
    """``solver`` at another damping (a retry of the ``Continuation`` ladder); a solver without one as it is."""
    if dataclasses.is_dataclass(solver) and any(f.name == "damping" for f in dataclasses.fields(solver)):
        return dataclasses.replace(solver, damping=damping)
    return solver
