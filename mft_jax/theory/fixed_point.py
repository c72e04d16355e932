"""A fixed-point engine for ``x = G(x)``, separate from the physics (docs/theory.md 3.6).

The two-layer solver (``mft_jax.theory.two_layer``: ``x`` the residual) and the deep solver (``mft_jax.theory.deep``:
``x`` the residual and the conjugate kernels) both run this loop; they differ only in the ``Problem``
they hand it and the solver object they pick. In the manner of optimistix:

- a ``Problem`` says how to evaluate the map (``evaluate(x) -> Evaluation(gap = G(x) - x, aux,
  admissible)``), in which norm to measure it (``weights``), and which iterates are allowed
  (``admissible``: for us, the neuron or layer law is normalizable there);
- a solver object (``Damped``, ``Anderson``, ``NewtonKrylov``, or any object with the same
  ``init`` / ``step``) turns the current ``Iterate`` into the next; its numbers are plain fields;
- stop rules (``Stall``, ``NoiseFloorStop``: ``rule(changes, tol) -> reason | None``) read the
  relative changes of the run;
- ``Continuation`` is the one policy object for continuation in beta and the automatic retry ladder
  (both the two-layer and the deep solver hand it their attempts; ``escalate`` runs the ladder);
- ``fixed_point`` runs the loop, reports every iterate to ``callback`` (progress bars, histories) and
  returns a ``FixedPointSolution`` with a ``Result`` code and a message in words; ``throw=True``
  raises ``NoFixedPointError`` instead of returning an unconverged solution.

Convergence: the relative change ``|G(x) - x|_w / |G(x)|_w <= tol``, with ``|v|_w^2 = sum w v^2``.

Iterations (``g_k = G(x_k) - x_k``):

- ``Damped(damping)``: ``x_{k+1} = x_k + t damping g_k``, ``t`` halved while the step leaves the
  admissible region;
- ``Anderson(memory, damping)`` (type II): ``x_{k+1} = x_k + damping g_k - (dX + damping dG) gamma``,
  ``gamma`` the Tikhonov-regularised least-squares fit of ``g_k`` by the last ``memory`` differences
  ``dG`` in the w-norm; a step that leaves the admissible region or increases ``|g|_w`` is replaced
  by a damped one and the memory cleared (kind ``restart``);
- ``NewtonKrylov(damping)``: ``(J_G - I) d = -g_k`` by GMRES on Jacobian-vector products of the
  problem's traceable ``fn(x, args)``, then a backtracking line search on ``|g|`` that keeps the
  iterate admissible; where no Newton step descends, a damped step held admissible.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.flatten_util
import numpy as np

from mft_jax.errors import NoFixedPointError, NonNormalizableError


class Result(enum.Enum):
    """How a fixed-point run ended (``result.converged``: successful or at a stochastic map's noise floor)."""

    SUCCESSFUL = "successful"  # relative change <= tol
    NOISE_FLOOR = "noise_floor"  # a stochastic map: the change stopped falling; counts as converged
    MAX_STEPS = "max_steps_reached"
    STALLED = "stalled"  # the best change stopped falling (a cycling or stagnating iteration)
    NO_PROGRESS = "no_progress"  # the solver found no admissible step that makes progress
    UNVOUCHED = "unvouched"  # the iteration settled, on a law its sampler cannot vouch for (a solver's verdict, not the engine's)

    @property
    def converged(self) -> bool:
        return self in (Result.SUCCESSFUL, Result.NOISE_FLOOR)


class Evaluation(NamedTuple):
    """The map at one point: ``gap = G(x) - x`` (shaped like ``x``), what else it produced, and
    whether ``x`` is admissible (``None``: not known from the evaluation)."""

    gap: Any
    aux: Any = None
    admissible: bool | None = None


class Iterate(NamedTuple):
    """The point, its evaluation and relative change ``|g|_w / |x + g|_w``."""

    x: Any
    evaluation: Evaluation
    change: float


class Step(NamedTuple):
    """What a solver's ``step`` returns: the next point already evaluated, its kind (for the history)
    and the solver's new state."""

    x: Any
    evaluation: Evaluation
    kind: str
    state: Any = None


def _always(x) -> bool:
    return True


def weighted_norm(v, weights=None) -> float:
    """``|v|_w = sqrt(sum weights v^2)`` (``weights`` broadcast against ``v``; ``None``: Euclidean)."""
    v = np.asarray(v, dtype=float)
    w = 1.0 if weights is None else np.asarray(weights, dtype=float)
    return math.sqrt(float(np.sum(w * v * v)))


@dataclasses.dataclass(frozen=True)
class Problem:
    """The map and its geometry.

    ``evaluate(x) -> Evaluation``; ``weights``: the norm ``|v|_w^2 = sum weights v^2`` (broadcast
    against ``x``; ``None``: Euclidean); ``admissible(x) -> bool`` (a check cheaper than the map), or
    ``None`` when only the map knows (``Evaluation.admissible``: solvers then evaluate before they
    judge); ``fn(x, args) -> G(x) - x`` traceable by JAX with ``fn`` hashable and ``args`` a pytree
    (only ``NewtonKrylov`` needs them).
    """

    evaluate: Callable[[Any], Evaluation]
    weights: Any = None
    admissible: Callable[[Any], bool] | None = _always
    fn: Callable | None = None
    args: Any = None

    def norm(self, v) -> float:
        return weighted_norm(v, self.weights)

    def change(self, x, gap) -> float:
        """``|g|_w / |x + g|_w``."""
        return self.norm(gap) / max(self.norm(np.asarray(x, dtype=float) + np.asarray(gap, dtype=float)), 1e-300)

    def iterate(self, x, evaluation: Evaluation) -> Iterate:
        return Iterate(x, evaluation, self.change(x, evaluation.gap))

    def allows(self, x, evaluation: Evaluation | None = None) -> bool:
        """Admissible: from the evaluation where it knows, else by ``admissible`` (else by evaluating)."""
        if evaluation is not None and evaluation.admissible is not None:
            return bool(evaluation.admissible)
        if self.admissible is None:
            return bool(self.evaluate(x).admissible)
        return bool(self.admissible(x))


class InadmissibleStep(NonNormalizableError):
    """Every damped step from the current iterate, down to ``smallest`` x, leaves the admissible region."""

    def __init__(self, smallest: float):
        super().__init__(f"every damped step (down to {smallest:.3g} x) leaves the admissible region")
        self.smallest = smallest


class Trial(NamedTuple):
    """A point a line search accepted: the point, the step fraction ``t``, and the map there if the search
    had to evaluate it (``None`` otherwise)."""

    x: Any
    t: float
    evaluation: Evaluation | None


def backtracked(problem: Problem, x, direction, halvings: int) -> Trial:
    """``x + t direction`` with ``t = 1, 1/2, ..`` (``halvings`` tries): the first admissible one
    (``InadmissibleStep`` naming the smallest ``t`` tried, if none). Where only the map knows
    admissibility (``problem.admissible is None``) each try is evaluated, and the accepted one's
    evaluation is handed back so the caller need not repeat it."""
    t = 1.0
    for _ in range(halvings):
        candidate = x + t * direction
        evaluation = problem.evaluate(candidate) if problem.admissible is None else None
        if problem.allows(candidate, evaluation):
            return Trial(candidate, t, evaluation)
        t /= 2
    raise InadmissibleStep(2 * t)


def descending(problem: Problem, x, direction, gap_norm: float, halvings: int, sufficient: float) -> Trial | None:
    """``x + t direction`` with ``t = 1, 1/2, ..``: the first admissible one whose ``|G - I|_w`` falls below
    ``(1 - sufficient t) gap_norm`` (every try evaluated); ``None`` if none of the ``halvings`` tries does."""
    t = 1.0
    for _ in range(halvings):
        candidate = x + t * direction
        evaluation = problem.evaluate(candidate)
        if problem.allows(candidate, evaluation) and problem.norm(evaluation.gap) < (1.0 - sufficient * t) * gap_norm:
            return Trial(candidate, t, evaluation)
        t *= 0.5
    return None


def _evaluated(problem: Problem, trial: Trial) -> Evaluation:
    return problem.evaluate(trial.x) if trial.evaluation is None else trial.evaluation


# ----------------------------------------------------------------------------------------- solvers
@dataclasses.dataclass(frozen=True)
class Damped:
    """``x + t damping g``, ``t`` halved (at most ``halvings`` times) while the step is inadmissible;
    with ``descent``, also while ``|g|_w`` does not fall by ``1 - 1e-4 t`` (no such step: no progress)."""

    damping: float = 0.5
    halvings: int = 6
    descent: bool = False

    def init(self, problem: Problem, it: Iterate):
        return None

    def step(self, problem: Problem, state, it: Iterate) -> Step | None:
        direction = self.damping * it.evaluation.gap
        if not self.descent:
            trial = backtracked(problem, it.x, direction, self.halvings)
            return Step(trial.x, _evaluated(problem, trial), "damped", state)
        trial = descending(problem, it.x, direction, problem.norm(it.evaluation.gap), self.halvings, 1e-4)
        return None if trial is None else Step(trial.x, trial.evaluation, f"damped {trial.t:g}", state)


@dataclasses.dataclass(frozen=True)
class Anderson:
    """Type-II Anderson mixing over the last ``memory`` iterates, safeguarded (see the module docstring)."""

    memory: int = 5
    damping: float = 0.5
    halvings: int = 6
    regulariser: float = 1e-10  # Tikhonov, relative to the trace of the Gram matrix of the gap differences

    def init(self, problem: Problem, it: Iterate):
        past = collections.deque(maxlen=self.memory + 1), collections.deque(maxlen=self.memory + 1)
        past[0].append(np.asarray(it.x, dtype=float))
        past[1].append(np.asarray(it.evaluation.gap, dtype=float))
        return past

    def mix(self, problem: Problem, x, g, past_x, past_g):
        """``x + damping g - (dX + damping dG) gamma`` (host-side: the memory is tiny)."""
        d_x = np.stack([b - a for a, b in zip(past_x[:-1], past_x[1:])], axis=-1).reshape(x.size, -1)
        d_g = np.stack([b - a for a, b in zip(past_g[:-1], past_g[1:])], axis=-1).reshape(x.size, -1)
        w = 1.0 if problem.weights is None else np.asarray(problem.weights, dtype=float)
        row_weight = np.sqrt(np.broadcast_to(w, x.shape)).reshape(-1)
        weighted = row_weight[:, None] * d_g
        target = row_weight * g.reshape(-1)
        gram = weighted.T @ weighted
        shift = self.regulariser * max(np.trace(gram), 1e-300)
        gamma = np.linalg.solve(gram + shift * np.eye(gram.shape[0]), weighted.T @ target)
        return x + self.damping * g - ((d_x + self.damping * d_g) @ gamma).reshape(x.shape)

    def step(self, problem: Problem, state, it: Iterate) -> Step:
        past_x, past_g = state
        x, g = np.asarray(it.x, dtype=float), np.asarray(it.evaluation.gap, dtype=float)
        kind, evaluation = "damped", None
        if self.memory and len(past_x) >= 2:
            candidate = self.mix(problem, x, g, list(past_x), list(past_g))
            if problem.admissible is None:  # only the map knows: evaluate, then judge
                evaluation = problem.evaluate(candidate)
            kind = "anderson" if problem.allows(candidate, evaluation) else "restart"
        if kind != "anderson":
            trial = backtracked(problem, x, self.damping * g, self.halvings)
            candidate, evaluation = trial.x, _evaluated(problem, trial)
        elif evaluation is None:
            evaluation = problem.evaluate(candidate)
        if kind == "anderson" and problem.norm(evaluation.gap) > problem.norm(g):
            kind = "restart"  # safeguard: the extrapolation made things worse
            trial = backtracked(problem, x, self.damping * g, self.halvings)
            candidate, evaluation = trial.x, _evaluated(problem, trial)
        if kind == "restart":
            past_x.clear()
            past_g.clear()
            past_x.append(x)
            past_g.append(g)
        past_x.append(candidate)
        past_g.append(np.asarray(evaluation.gap, dtype=float))
        return Step(candidate, evaluation, kind, state)


@functools.partial(jax.jit, static_argnames=("fn", "restart"))
def krylov_direction(fn, x, args, gap, rtol, restart: int):
    """Solve ``(J_G - I) d = -(G(x) - x)`` by GMRES on ``jax.jvp`` of ``fn(., args) = G - I``."""

    def matvec(v):
        return jax.jvp(lambda u: fn(u, args), (x,), (v,))[1]

    direction, _ = jax.scipy.sparse.linalg.gmres(matvec, -gap, tol=rtol, atol=0.0, restart=restart, maxiter=4)
    return direction


@dataclasses.dataclass(frozen=True)
class NewtonKrylov:
    """Newton-Krylov with a backtracking line search on ``|g|`` (sufficient decrease ``1 - 1e-4 t``).

    GMRES to relative residual ``rtol min(1, change)`` with at most ``restart`` basis vectors;
    ``halvings`` line-search halvings, then a damped step ``damping g`` held admissible.
    """

    damping: float = 0.5
    rtol: float = 1e-3
    restart: int = 50
    halvings: int = 12
    sufficient: float = 1e-4

    def init(self, problem: Problem, it: Iterate):
        if problem.fn is None:
            raise ValueError("NewtonKrylov needs a problem with a traceable fn(x, args) = G(x) - x")
        return None

    def step(self, problem: Problem, state, it: Iterate) -> Step:
        gap = it.evaluation.gap
        direction = krylov_direction(problem.fn, it.x, problem.args, gap, self.rtol * min(1.0, it.change),
                                     min(int(np.size(it.x)), self.restart))
        trial = descending(problem, it.x, direction, problem.norm(gap), self.halvings, self.sufficient)
        if trial is not None:
            return Step(trial.x, trial.evaluation, f"newton {trial.t:g}", state)
        try:  # no Newton step descends: a damped one held admissible
            trial = backtracked(problem, it.x, self.damping * gap, self.halvings)
        except InadmissibleStep as error:  # none is: the smallest tried, as it is
            trial = Trial(it.x + error.smallest * self.damping * gap, error.smallest, None)
        return Step(trial.x, _evaluated(problem, trial), f"damped {trial.t:g}", state)


# -------------------------------------------------------------------------------------- stop rules
@dataclasses.dataclass(frozen=True)
class Stall:
    """Stalled: after ``min_steps`` changes, the best of the last ``window`` is not below ``factor`` x the
    best before them (a cycling or stagnating iteration)."""

    window: int = 20
    factor: float = 0.5
    min_steps: int = 40
    result = Result.STALLED

    def __call__(self, changes: list, tol: float) -> str | None:
        if len(changes) < max(self.min_steps, self.window + 1):
            return None
        recent, earlier = min(changes[-self.window:]), min(changes[: -self.window])
        if recent > self.factor * earlier:
            return (f"stalled: the best relative change of the last {self.window} iterations ({recent:.3g}) is not "
                    f"below {self.factor:g} x the best before them ({earlier:.3g}); the iteration cycles or stagnates")
        return None


@dataclasses.dataclass(frozen=True)
class NoiseFloorStop:
    """Stop rule at a noisy map's floor: the median change of the last ``window`` iterations is above ``plateau``
    x the median of the ``window`` before them. A floor above ``ceiling`` (relative change) is no fixed
    point: the rule then returns ``(Result.STALLED, message)``, not converged."""

    window: int = 10
    plateau: float = 0.8
    ceiling: float = 0.1
    result = Result.NOISE_FLOOR

    def __call__(self, changes: list, tol: float) -> str | None:
        if len(changes) < 2 * self.window:
            return None
        recent, earlier = np.median(changes[-self.window:]), np.median(changes[-2 * self.window: -self.window])
        if recent <= self.plateau * earlier:
            return None  # still falling
        if recent > self.ceiling:
            return Result.STALLED, (
                f"stalled, no fixed point: the relative change stopped falling at {recent:.3g} (median of the last "
                f"{self.window} iterations), above the largest noise floor taken for a fixed point ({self.ceiling:g}); "
                "the sampler's law does not settle (chains that do not mix, or no fixed point)")
        return (f"stopped at the sampler's noise floor: the relative change stalled at {recent:.3g} "
                f"(median of the last {self.window} iterations, tol {tol:g})")


# ------------------------------------------------------------------------------------------ engine
class FixedPointSolution(NamedTuple):
    """``value``: the last iterate; ``evaluation``: the map there; ``result``: a ``Result``;
    ``change``: its relative change; ``steps``: steps taken; ``changes``: the change of every
    iterate of this run; ``message``: why it stopped, in words."""

    value: Any
    evaluation: Evaluation
    result: Result
    change: float
    steps: int
    changes: list
    message: str

    @property
    def converged(self) -> bool:
        return self.result.converged


@dataclasses.dataclass(frozen=True)
class _RavelledFn:
    fn: Callable
    unravel: Callable

    def __call__(self, vector, args):
        return jax.flatten_util.ravel_pytree(self.fn(self.unravel(vector), args))[0]


def _ravelled(problem: Problem, x0):
    """A pytree problem as one over the flat vector (``jax.flatten_util.ravel_pytree``) and the unravel map."""
    vector, unravel = jax.flatten_util.ravel_pytree(x0)
    ravel = lambda tree: jax.flatten_util.ravel_pytree(tree)[0]  # noqa: E731

    def evaluate(v):
        evaluation = problem.evaluate(unravel(v))
        return evaluation._replace(gap=ravel(evaluation.gap))

    weights = None if problem.weights is None else ravel(jax.tree.map(
        lambda w, leaf: np.broadcast_to(np.asarray(w, dtype=float), np.shape(leaf)), problem.weights, x0))
    admissible = None if problem.admissible is None else (lambda v: problem.admissible(unravel(v)))
    flat = Problem(evaluate, weights, admissible,
                   None if problem.fn is None else _RavelledFn(problem.fn, unravel), problem.args)
    return flat, vector, unravel


def stopping(changes: list, tol: float, stop: tuple, steps: int, max_steps: int) -> tuple[Result, str] | None:
    """Why an iteration whose relative changes so far are ``changes`` stops now (converged, a stop rule,
    ``max_steps``), as ``(Result, message)``; ``None`` to go on."""
    change = changes[-1]
    if change <= tol:
        return Result.SUCCESSFUL, f"relative change {change:.3g} <= tol {tol:g}"
    for rule in stop:  # a rule returns None, a message (its verdict is ``rule.result``) or ``(Result, message)``
        why = rule(changes, tol)
        if why:
            return why if isinstance(why, tuple) else (rule.result, why)
    if steps >= max_steps:
        return Result.MAX_STEPS, f"relative change {change:.3g} > tol {tol:g} after max_iter = {max_steps}"
    return None


def fixed_point(problem: Problem, x0, solver, *, tol: float, max_steps: int, evaluation: Evaluation | None = None,
                stop: tuple = (), callback: Callable[[Iterate, str], None] | None = None,
                throw: bool = False, adapt: Callable | None = None, refuse_inadmissible: str | None = None) -> FixedPointSolution:
    """Iterate ``solver`` from ``x0`` until the relative change is ``<= tol``, a stop rule fires, the
    solver finds no step, or ``max_steps`` steps were taken.

    ``x0``: an array, or any pytree of arrays (then the problem's ``evaluate``, ``admissible``, ``fn`` and
    ``weights`` see and give pytrees of its structure, and so do the solution and ``callback``).
    ``evaluation``: the map at ``x0`` if already known (then ``x0`` is not reported to ``callback``;
    otherwise it is, with kind ``"start"``). ``callback(iterate, kind)`` sees every new iterate.

    ``adapt(iterate)``, asked before every stop check (an adaptive map: particles refreshed where they went stale):
    ``None`` to go on; a new ``Problem``, whose map is evaluated at the same point and reported with kind
    ``"refresh"`` (not a step); or ``(Result, message)`` to stop. ``refuse_inadmissible``: a step whose evaluation is
    not admissible ends the run at the last admissible iterate (``NO_PROGRESS``, with these words), unreported.
    """
    if adapt is not None or refuse_inadmissible is not None:
        if not isinstance(x0, (np.ndarray, jax.Array)):
            raise TypeError("fixed_point: adapt / refuse_inadmissible take an array x0")
    if not isinstance(x0, (np.ndarray, jax.Array)):
        flat, vector, unravel = _ravelled(problem, x0)
        tree = lambda it: it._replace(x=unravel(it.x), evaluation=it.evaluation._replace(gap=unravel(it.evaluation.gap)))  # noqa: E731
        inner = None if callback is None else (lambda it, kind: callback(tree(it), kind))
        first = None if evaluation is None else evaluation._replace(gap=jax.flatten_util.ravel_pytree(evaluation.gap)[0])
        run = fixed_point(flat, vector, solver, tol=tol, max_steps=max_steps, evaluation=first, stop=stop,
                          callback=inner, throw=throw)
        return run._replace(value=unravel(run.value), evaluation=tree(Iterate(run.value, run.evaluation, run.change)).evaluation)
    if evaluation is None:
        evaluation = problem.evaluate(x0)
        it = problem.iterate(x0, evaluation)
        if callback is not None:
            callback(it, "start")
    else:
        it = problem.iterate(x0, evaluation)
    changes = [it.change]
    state = solver.init(problem, it)
    steps = 0
    while True:
        if adapt is not None:
            adapted = adapt(it)
            if isinstance(adapted, tuple):
                result, message = adapted
                break
            if adapted is not None:
                problem = adapted
                it = problem.iterate(it.x, problem.evaluate(it.x))
                if callback is not None:
                    callback(it, "refresh")
                changes.append(it.change)
                state = solver.init(problem, it)
                continue
        verdict = stopping(changes, tol, stop, steps, max_steps)
        if verdict is not None:
            result, message = verdict
            break
        step = solver.step(problem, state, it)
        if step is None:
            result, message = Result.NO_PROGRESS, f"relative change {it.change:.3g} > tol {tol:g}: no step makes progress"
            break
        if refuse_inadmissible is not None and not step.evaluation.admissible:
            result, message = Result.NO_PROGRESS, f"relative change {it.change:.3g} > tol {tol:g}: {refuse_inadmissible}"
            break
        steps += 1
        state = step.state
        it = problem.iterate(step.x, step.evaluation)
        changes.append(it.change)
        if callback is not None:
            callback(it, step.kind)
    if throw and not result.converged:
        raise NoFixedPointError(f"no fixed point: {message}")
    return FixedPointSolution(it.x, it.evaluation, result, it.change, steps, changes, message)


# ------------------------------------------------------------------------------- continuation in beta
class Attempt(NamedTuple):
    """One solve of a ladder: the inverse temperatures of its stages (the last is the target beta) and the damping."""

    betas: tuple
    damping: float

    def describe(self) -> str:
        if len(self.betas) == 1:
            return f"the direct solve at beta = {self.betas[0]:g} (damping {self.damping:g})"
        return f"continuation from beta = {self.betas[0]:.3g} in {len(self.betas)} stages (damping {self.damping:g})"


@dataclasses.dataclass(frozen=True)
class Continuation:
    """Continuation in beta and the automatic retry ladder, one policy for the two-layer and the deep solver
    (in the manner of ott's ``Epsilon(target, init, decay)`` schedule).

    The first attempt solves at ``stages`` inverse temperatures geometrically spaced from the start to the
    target beta (``stages = 1``: the direct solve), each stage warm-started from the last; intermediate stages
    stop at ``max(tol, stage_tol)``. The start is ``beta_start`` if given, else ``start x beta`` (``start``: a
    fraction of the target, near the GP limit). With ``auto``, an attempt that is refused (a non-normalizable
    start) or finds no fixed point is followed by the ``retries`` in turn, each a ``(ratio, damping_factor)``:
    continuation from the same start with stages a factor ``ratio`` apart in beta (at least ``stages`` of them)
    and the solver's damping times ``damping_factor``; an automatic attempt also stops a stage that ``stall``s.
    """

    stages: int = 1
    start: float = 1 / 50
    beta_start: float | None = None
    retries: tuple = ((2.0, 1.0), (1.4, 0.4))
    stage_tol: float = 1e-3
    stall: Stall = Stall(20, 0.5, 40)

    def __post_init__(self):
        from mft_jax.errors import ConfigError

        if isinstance(self.stages, bool) or not isinstance(self.stages, (int, np.integer)) or self.stages < 1:
            raise ConfigError(f"Continuation stages must be an integer >= 1 (1: the direct solve), got {self.stages!r}")
        if not (isinstance(self.start, (int, float)) and 0 < self.start <= 1):
            raise ConfigError(f"Continuation start must be a fraction of beta in (0, 1], got {self.start!r}")
        for ratio, factor in self.retries:
            if not (ratio > 1 and 0 < factor <= 1):
                raise ConfigError(f"Continuation retries must be (beta ratio > 1, damping factor in (0, 1]) pairs, got {self.retries!r}")

    def first_beta(self, beta: float) -> float:
        """Where continuation starts: ``beta_start``, else ``start x beta``."""
        from mft_jax.errors import ConfigError

        if self.beta_start is None:
            return beta * self.start
        if not (isinstance(self.beta_start, (int, float)) and 0 < self.beta_start <= beta):
            raise ConfigError(f"beta_start must be in (0, beta = {beta:g}], got {self.beta_start!r}")
        return self.beta_start

    def attempts(self, beta: float, damping: float, *, auto: bool) -> list[Attempt]:
        """The ladder at target ``beta``: the first attempt, then (with ``auto``) one per retry."""
        start = self.first_beta(beta)
        ladder = [Attempt(_geometric(beta, start, self.stages), damping)]
        if auto:
            for ratio, factor in self.retries:
                stages = max(self.stages, 1 + math.ceil(math.log(beta / start) / math.log(ratio) - 1e-9))
                ladder.append(Attempt(_geometric(beta, start, stages), damping * factor))
        return ladder


def _geometric(beta: float, start: float, stages: int) -> tuple:
    """``stages >= 2`` inverse temperatures geometrically spaced from ``start`` to ``beta``; else ``(beta,)``."""
    return tuple(float(b) for b in np.geomspace(start, beta, stages)) if stages >= 2 else (float(beta),)


class Outcome(NamedTuple):
    """What one attempt of a ladder returned: whether it converged, why not (words), and anything else (``value``)."""

    converged: bool
    reason: str
    value: Any


def escalate(run: Callable[[Attempt], Outcome], ladder: list[Attempt], actions: list, *, auto: bool) -> Outcome:
    """Run ``ladder`` in turn until an attempt converges: a refused attempt (``NonNormalizableError``) or one that
    found no fixed point hands over to the next (said in ``actions``); the last attempt's outcome (or error) stands."""
    for level, attempt in enumerate(ladder):
        final = level == len(ladder) - 1
        try:
            outcome = run(attempt)
        except NonNormalizableError as error:
            if final:
                raise
            actions.append(f"{attempt.describe()} was refused ({str(error).split(':')[0]}); next: {ladder[level + 1].describe()}")
            continue
        if outcome.converged or final or not auto:
            return outcome
        actions.append(f"{attempt.describe()} found no fixed point ({outcome.reason}); next: {ladder[level + 1].describe()}")
    return outcome


def __getattr__(name):
    if name == "NoiseFloor":  # renamed in 0.2: ``NoiseFloor`` is also analysis.compare's distance record
        import warnings

        warnings.warn("mft_jax.theory.fixed_point.NoiseFloor is now NoiseFloorStop (the stop rule); the old name goes in "
                      "the next release", DeprecationWarning, stacklevel=2)
        return NoiseFloorStop
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
