"""The mean-field fixed point ``K = B(F(K))`` of a wide two-layer network (docs/theory.md section 3).

Design: the single-neuron law depends on the background kernel only through the residual
``r = y - f`` on the data (P x C), so the iteration variable is ``r``, not the P x P kernel:

    G(r) = (I + beta sa2 K[rho_r] Q)^(-1) y,    rho_r(w) ~ exp(-|w|^2/(2 sw2) + c |S_r(w)|^2)

and the fixed point is ``r = G(r)``. This is the kernel restricted to what a neuron feels;
the ``Solution`` still gives the kernel (dense on demand, or as an operator via
``Solution.background()``). Each evaluation of ``G`` is one jitted call (sampler update F,
then the residual solve B); the outer loop runs on the host so it can show progress, stop
early, check normalizability and safeguard Anderson steps.

Iteration (``r_{k+1}`` from ``r_k``, ``g_k = G(r_k) - r_k``):

- damped: ``r_{k+1} = r_k + damping g_k``;
- Anderson (type II, memory m): ``r_{k+1} = r_k + damping g_k - (dR + damping dG) gamma`` with
  ``gamma`` the Tikhonov-regularised least-squares fit of ``g_k`` by the last m differences
  ``dG`` (in the q-weighted norm). A step that increases ``|g|_q`` or makes ``rho`` non-normalizable
  is rejected: the memory is cleared and a damped step is taken instead.
- Newton ascent (deterministic samplers with a ``log_partition``): where the iteration stalls (a law on a
  few lobes makes it cycle), maximise the strictly concave free energy ``I(r)`` below by Newton steps with
  Armijo backtracking (``mft_jax.theory.ascent``, docs/theory.md 3.5); its gradient is
  ``beta Q (I + beta sa2 K Q)(G(r) - r)``, so its maximiser is the fixed point.
- stochastic samplers (MCMC): damped only; stops when the change is below ``tol`` or stops
  decreasing (the sampler's noise floor), and says which.

Convergence: ``|G(r) - r|_q <= tol |G(r)|_q`` with ``|v|_q^2 = sum_mu q_mu |v_mu|^2``, the norm in
which F sees the residual.

Continuation (``schedule=Continuation(stages=n)``, ``mft_jax.theory.fixed_point``): ``n >= 2`` inverse temperatures
geometrically spaced from ``beta_start`` (default ``beta / 50``, near the GP limit) to ``model.beta``, each
stage warm-started from the last (rescaled by ``beta_prev / beta`` where the plain warm start would be
non-normalizable); intermediate stages stop at ``max(tol, 1e-3)``.

Free energy per neuron at the fixed point (docs/theory.md section 3):

    I = beta sum_mu q_mu (r_mu . y_mu - |r_mu|^2 / 2) - log E_prior[exp(c |S(w)|^2)]

(equal to ``beta L(f_rho) + KL(rho(a, w) || prior)``); the log-normaliser comes from the
sampler (``log_partition``: grid quadrature, or the log-mean-exp of the importance tilts).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from mft_jax.theory.ascent import Ascent, FreeEnergyAscent, free_energy_at
from mft_jax.theory.background import Background, data_term, kernel, predict, solve_residual
from mft_jax.data import Dataset
from mft_jax.errors import ConfigError, NonFiniteError, NonNormalizableError, NoFixedPointError
from mft_jax.theory.fixed_point import (Anderson, Attempt, Continuation, Damped, Evaluation, FixedPointSolution, InadmissibleStep,
                                        Iterate, NoiseFloorStop, Outcome, Problem, Result, escalate, fixed_point, weighted_norm)
from mft_jax.theory._legacy import solver_and_schedule, with_damping
from mft_jax.theory.samplers import Sampler, info_dict
from mft_jax.model import TwoLayer
from mft_jax.protocol import LayerBackground, readout_background
from mft_jax.neurons import NeuronLaw
from mft_jax.precision import uses_precision
from mft_jax.theory.normalizability import check_normalizable

NOISE_WINDOW = 10  # stochastic samplers: iterations compared to detect the noise floor
NOISE_PLATEAU = 0.8  # ... the change has stopped falling if it fell by less than this factor
BACKTRACK = 6  # halvings of a damped step that makes rho non-normalizable
REFINEMENTS = 3  # automatic refinements (re-grids) of a sampler whose law it does not resolve or contain
SAMPLER_ESCALATIONS = 3  # automatic escalations of a sampler that cannot vouch for its law (MCMC: steps x 2 each)


class Solution(NamedTuple):
    """The two-layer fixed point: the shared core of every solution type, then the neuron law.

    Core (shared with ``mft_jax.theory.deep.DeepSolution``, in this order): ``residual`` (P, C) the iterate
    ``r`` the solve stopped at; ``loss`` ``1/2 sum_mu q_mu |r_mu|^2``; ``free_energy`` (``None`` where the
    sampler gives no ``log_partition``); ``result`` a ``Result`` code (``converged`` is ``result.converged``);
    ``message`` in words; ``iterations``; ``history`` per iterate ``change`` (relative, see the module
    docstring), ``loss``, ``beta`` and ``step`` (``anderson`` / ``damped`` / ``restart`` / ``newton``);
    ``actions`` what the automatic escalation and grid adaptation did, in words; ``diagnostics`` the
    sampler's (ESS, boundary mass, log partition), the final change, warnings in words, and ``settled`` (the
    iteration's own verdict: ``r = G(r)`` within tol or the noise floor, e.g. the fixed point of a fixed grid's rule).
    A law the sampler cannot vouch for (``Sampler.warnings``: cut by the grid box, unresolved, MCMC chains not mixed)
    is not converged even where the iteration settled (``Result.UNVOUCHED``), after the automatic re-grids and
    sampler escalations (``actions``) could not fix it; ``message`` says so.
    Then: ``law`` (the neuron law), ``model``, ``data``, ``sampler`` (of the final law: the re-gridded grid,
    if the solver re-gridded).
    """

    residual: jax.Array
    loss: float
    free_energy: float | None
    result: Result
    message: str
    iterations: int
    history: dict
    actions: tuple
    diagnostics: dict
    law: NeuronLaw
    model: TwoLayer
    data: Dataset
    sampler: Any = None

    @property
    def converged(self) -> bool:
        """``result.converged``: relative change <= tol, or a stochastic sampler's noise floor."""
        return self.result.converged

    def background(self) -> Background:
        """The fixed-point kernel as an operator (``matvec``) or dense matrix (``kernel()``)."""
        return Background(self.model, self.law, self.data)

    @uses_precision
    def kernel(self, x: jax.Array | None = None, x2: jax.Array | None = None) -> jax.Array:
        """Dense ``K(x, x2) = E_rho[phi(w.x) phi(w.x2)]`` (default: the data points)."""
        x = self.data.x if x is None else x
        return kernel(self.model, self.law, x, x2)

    @uses_precision
    def predict(self, x: jax.Array, at: str | None = None) -> jax.Array:
        """``f(x) = beta sa2 sum_nu K(x, x_nu) q_nu r_nu`` at new inputs (n, d), with ``K`` the final law's kernel and
        ``r`` the residual the solve stopped at (docs/theory.md 3). Equal to ``kernel_regression`` at a fixed point.
        (``at=`` is deprecated: ``at="consistent"`` is ``kernel_regression(x)``.)"""
        if at is not None:
            warnings.warn("Solution.predict(x, at=...) is deprecated: predict(x) is at='iterate', kernel_regression(x) is "
                          "at='consistent'", DeprecationWarning, stacklevel=2)
            if at == "consistent":
                return self.kernel_regression(x)
            if at != "iterate":
                raise ConfigError(f"predict(at=...) must be 'iterate' (the solve's last residual r) or 'consistent' (G(r), "
                                  f"the residual the final law imposes), got {at!r}")
        return predict(self.model, self.law, self.data, self.residual, x)

    @uses_precision
    def kernel_regression(self, x: jax.Array) -> jax.Array:
        """Kernel regression with the final law's kernel: ``f(x) = beta sa2 K(x, X) Q r`` with ``r = G(r) = (I + beta
        sa2 K Q)^-1 y``, the residual the final law imposes (on the data points ``f = y - G(r)``). For a solve stopped
        off the fixed point (a sampler's noise floor, a steep map that did not settle) this is the prediction to use:
        ``predict`` amplifies ``r - G(r)`` along the kernel's large eigenvalues (by up to ``beta sa2`` times its largest)."""
        return predict(self.model, self.law, self.data, self.background().imposed_residual(), x)

    def layer_background(self, layer: int = 1) -> LayerBackground:
        """The single-site background of the hidden layer (``layer = 1``): ``B = X``, ``v = sw2``, ``Phihat_1 = -beta^2
        sa2 Q r r^T Q`` (``mft_jax.protocol.readout_background``), for ``mft_jax.train.deep_foreground``."""
        if isinstance(layer, bool) or layer != 1:
            raise ConfigError(f"layer must be 1 (the hidden layer of a two-layer model), got {layer!r}")
        return readout_background(self.model, self.data, self.residual)


@uses_precision
@functools.partial(jax.jit, static_argnames=("sampler",))
def fixed_point_map(sampler: Sampler, model: TwoLayer, state: Any, data: Dataset, residual: jax.Array):
    """One ``G``: ``law = F(r)`` by the sampler, then ``(law, state, B(law))`` with B the residual solve."""
    law, state = sampler.update(state, model, data, residual)
    return law, state, solve_residual(model, law, data)


@uses_precision
def gp_background(data: Dataset, model: TwoLayer, sampler: Sampler, *, key: jax.Array) -> Background:
    """The NNGP background: the kernel of the prior law (the sampler's law at residual 0)."""
    state = sampler.init(key, model, data)
    law, _ = sampler.update(state, model, data, jnp.zeros_like(data.y))
    return Background(model, law, data)


def free_energy(model: TwoLayer, data: Dataset, residual: jax.Array, log_partition: float) -> float:
    """``I = beta sum_mu q_mu (r_mu . y_mu - |r_mu|^2/2) - log E_prior[exp(c |S(w)|^2)]``."""
    r, y, q = (np.asarray(a, dtype=float) for a in (residual, data.y, data.q))
    return float(data_term(model.beta, q, y, r, np) - log_partition)


def _initial_residual(init, data: Dataset, model: TwoLayer, sampler: Sampler, state):
    if isinstance(init, str):
        if init == "gp":
            _, state, residual = fixed_point_map(sampler, model, state, data, jnp.zeros_like(data.y))
            return residual, state
        if init == "feature":
            return data.y, state
        raise ConfigError(f"init must be 'gp', 'feature' or a residual array of shape {data.y.shape}, got {init!r}")
    residual = np.asarray(init)
    if residual.shape != data.y.shape or not np.issubdtype(residual.dtype, np.number) or not np.isfinite(residual).all():
        raise ConfigError(f"init residual must be a finite array of shape {data.y.shape} (P, C), got shape {residual.shape}")
    return jnp.asarray(residual, data.y.dtype), state


class _Stage(NamedTuple):
    residual: np.ndarray
    law: NeuronLaw
    state: Any
    result: Result
    change: float
    stop_reason: str
    note: str = ""  # what the stage did beyond iterating G (the switch to Newton ascent), in words


def _problem(sampler, model, data, state, *, history, bar, key, check, callback=None) -> tuple[Problem, Callable]:
    """The two-layer map as a ``fixed_point.Problem`` over ``r`` (float64 on the host) and the callback that
    records each iterate in ``history`` and the progress bar. The sampler state threads through the
    evaluations (an MCMC sampler's chains go on from where they were); ``aux`` is ``(law, state)``."""
    dtype = data.y.dtype
    current = [state]

    def evaluate(point):
        law, new_state, image = fixed_point_map(sampler, model, current[0], data, jnp.asarray(point, dtype))
        image = np.asarray(image, dtype=float)
        if not np.isfinite(image).all():
            raise NonFiniteError(
                f"the fixed-point map returned NaN/inf at beta = {model.beta:g} (iteration {len(history['change'])}): "
                "the neuron law or the residual solve broke down; check the sampler diagnostics, lower beta or use continuation"
            )
        current[0] = new_state
        return Evaluation(image - np.asarray(point, dtype=float), (law, new_state))

    def normalizable(point):
        if not check:
            return True
        try:
            check_normalizable(model, data, jnp.asarray(point, dtype), key=key)
            return True
        except NonNormalizableError:
            return False

    q = np.asarray(data.q, dtype=float)

    def record(it: Iterate, kind: str):
        history["change"].append(it.change)
        history["loss"].append(0.5 * float(np.sum(q[:, None] * (it.x + it.evaluation.gap) ** 2)))
        history["beta"].append(model.beta)
        history["step"].append(kind)
        bar.update(1)
        bar.set_postfix(beta=f"{model.beta:.3g}", change=f"{it.change:.2e}")
        if callback is not None:
            callback(len(history["change"]) - 1, it.change, float(model.beta))

    return Problem(evaluate, weights=q[:, None], admissible=normalizable), record


def _iterate(sampler, model, data, state, residual, *, solver, tol, max_iter, stochastic, history, bar, key, callback,
             check=True, stall=None):
    """Solve ``r = G(r)`` at one beta by ``mft_jax.theory.fixed_point``; appends to ``history``; returns a ``_Stage``.

    Damped steps for a stochastic sampler (stopping at its noise floor), else ``solver`` (``Anderson`` or ``Damped``).
    ``stall``: a ``Stall`` rule that gives up early (not converged, reason "stalled"); where the sampler gives the
    free energy (``_has_free_energy``) the stage then goes on by Newton ascent on it
    (``mft_jax.theory.ascent.FreeEnergyAscent``), and ``solver = Ascent()`` goes there at once (a re-grid or later
    stage of a solve that needed it).
    """
    dtype = data.y.dtype
    r = np.asarray(residual, dtype=float)
    if check:
        check_normalizable(model, data, jnp.asarray(r, dtype), key=key)
    problem, record = _problem(sampler, model, data, state, history=history, bar=bar, key=key, check=check, callback=callback)
    start = problem.evaluate(r)
    record(problem.iterate(r, start), "start")
    ascent = FreeEnergyAscent(sampler, model, data)

    def ascend(x, evaluation, budget, why=""):
        """The rest of the stage by Newton ascent on ``I`` from ``x``, said in ``note``."""
        run = fixed_point(problem, x, ascent, tol=tol, max_steps=max(budget, 1), evaluation=evaluation, callback=record)
        return _stage(run, f"Newton ascent on the concave free energy at beta = {model.beta:.3g}{why}")

    try:
        if isinstance(solver, Ascent) and not stochastic and _has_free_energy(start.aux[1]):
            return ascend(r, start, max_iter)
        if stochastic:
            solver, stop = Damped(solver.damping, BACKTRACK), (NoiseFloorStop(NOISE_WINDOW, NOISE_PLATEAU),)
        else:
            solver = Anderson(5, solver.damping, BACKTRACK) if isinstance(solver, Ascent) else solver  # no free energy here
            stop = (stall,) if stall is not None else ()
        run = fixed_point(problem, r, solver, tol=tol, max_steps=max_iter, evaluation=start, stop=stop, callback=record)
        if run.result is not Result.STALLED or not _has_free_energy(run.evaluation.aux[1]):
            return _stage(run)
        # a cycling iterate can sit far down the free energy: Newton starts from the better of it and the start
        sampler_state = run.evaluation.aux[1]
        energies = [float(free_energy_at(sampler, model, data, sampler_state, jnp.asarray(v, dtype))) for v in (r, run.value)]
        from_start = energies[0] >= energies[1]
        return ascend(*((r, start) if from_start else (run.value, run.evaluation)), max_iter - len(run.changes),
                      f" from the {'stage start' if from_start else 'last iterate'} (iterating G {run.message})")
    except InadmissibleStep as error:
        raise NonNormalizableError(
            f"every damped step from the current residual (down to {error.smallest:.3g} x the damped step) makes the neuron law "
            f"non-normalizable at beta = {model.beta:g}: the iteration is driven into the runaway region; lower beta or sa2"
        ) from None


def _stage(run: FixedPointSolution, note: str = "") -> _Stage:
    law, state = run.evaluation.aux
    return _Stage(np.asarray(run.value, dtype=float), law, state, run.result, run.change, run.message, note)


def _has_free_energy(state) -> bool:
    """A deterministic sampler whose info record carries ``log_partition``: ``I(r)`` exists and Newton applies."""
    return "log_partition" in getattr(getattr(state, "info", None), "_fields", ())


@uses_precision
def solve(
    data: Dataset,
    model: TwoLayer,
    sampler: Sampler,
    *,
    key: jax.Array,
    solver: Anderson | Damped | Ascent | None = None,
    schedule: Continuation | None = None,
    init: str | jax.Array = "gp",
    auto: bool = True,
    tol: float = 1e-5,
    max_iter: int = 300,
    throw: bool = False,
    callback: Callable | None = None,
    progress: bool = False,
    stochastic: bool | None = None,
    normalizability: str = "check",
    adapt_grid: bool = True,
    **deprecated,
) -> Solution:
    """Solve ``r = G(r)`` (module docstring) and return the ``Solution``.

    ``solver``: the iteration, an object of ``mft_jax.theory.fixed_point`` (``Anderson(memory=5, damping=0.5)``
    by default; ``Damped(damping)``; ``Ascent(damping)``: Newton ascent on the concave free energy from the start,
    deterministic samplers with a ``log_partition`` only). A stochastic sampler (``stochastic``, default
    ``sampler.stochastic``) always takes damped steps with the solver's damping and stops at its noise floor.
    ``schedule``: the ``Continuation`` policy (default ``Continuation()``: the direct solve, and with ``auto`` the
    retries from ``beta / 50``). ``init``: ``"gp"`` (the residual of the prior kernel: kernel ridge regression),
    ``"feature"`` (``r = y``: the strongly tilted law of an untrained background) or a residual array (P, C).
    ``tol``: relative change ``|G(r) - r|_q / |G(r)|_q``; ``max_iter`` per continuation stage.
    ``callback(iteration, change, beta)`` sees every iterate; ``progress`` shows a bar. ``normalizability``:
    ``"check"`` (default) refuses a non-normalizable ``rho``; ``"metastable"`` skips the check and solves for the
    law the sampler sees (importance draws from the prior or MCMC chains started there never reach the runaway
    tail): the metastable state in the well around the origin.

    ``auto=True`` (default) reaches the fixed point without being told how: if the start is non-normalizable, or
    the iteration stalls, cycles or runs out of ``max_iter``, it solves again along the schedule's retries
    (continuation from ``beta / 50`` with stages a factor 2 apart, then a factor 1.4 and ``damping x 0.4``); each
    step is recorded in ``Solution.actions``. ``adapt_grid=True`` (default) lets a sampler that can refine itself
    (``Sampler.refined``: the grid) re-grid a law it does not resolve or contain: the box follows the law's support
    and the spacing its width, warm-started, at most 3 times. Refused only when the law at the fixed point itself
    does not exist (``NonNormalizableError``). A deterministic sampler with a ``log_partition`` (grid, importance)
    whose iteration stalls goes on by Newton ascent on the concave free energy (``mft_jax.theory.ascent``; recorded
    in ``actions``, steps ``newton`` in ``history``), before any continuation. Non-convergence gives
    ``converged=False`` and a hint, or ``NoFixedPointError`` with ``throw=True``.

    Deprecated keywords (one release, with a ``DeprecationWarning``): ``damping``, ``anderson``, ``newton`` (use
    ``solver=``), ``continuation``, ``beta_start`` (use ``schedule=Continuation(stages, beta_start=...)``).
    """
    solver, schedule = solver_and_schedule(solver, schedule, deprecated, default=Anderson(5, 0.5), where="solve",
                                           allowed=(Anderson, Damped, Ascent))
    for name, value, low in (("max_iter", max_iter, 1),):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ConfigError(f"tol must be a number > 0, got {tol!r}")
    stochastic = sampler.stochastic if stochastic is None else stochastic
    if normalizability not in ("check", "metastable"):
        raise ConfigError(f"normalizability must be 'check' or 'metastable', got {normalizability!r}")
    ladder = schedule.attempts(model.beta, solver.damping, auto=auto)
    options = dict(init=init, tol=tol, max_iter=max_iter, stochastic=stochastic, check=normalizability == "check",
                   stall=schedule.stall if auto else None, stage_tol=schedule.stage_tol, progress=progress,
                   callback=callback, refine=auto and adapt_grid, escalate=auto)
    history = {"change": [], "loss": [], "beta": [], "step": []}
    actions: list[str] = []
    current = [sampler]

    def run(attempt: Attempt) -> Outcome:
        stage, current[0] = _run_stages(data, model, current[0], key, attempt, solver, history, actions, **options)
        return Outcome(stage.result.converged, stage.stop_reason, stage)

    stage = escalate(run, ladder, actions, auto=auto).value
    return _finish(stage, model, data, current[0], history, tol, throw, actions)


def _run_stages(data, model, sampler, key, attempt: Attempt, solver, history, actions, *, refine, init, tol, max_iter,
                stochastic, check, stall, stage_tol, progress, callback, escalate=False) -> tuple[_Stage, Sampler]:
    """Solve at each beta of ``attempt.betas`` in turn, each stage warm-started from the last.

    ``refine``: after a stage converges on a law the sampler does not resolve or contain, ask the sampler for a
    refined one (``Sampler.refined``: the grid re-grids) and solve that stage again from its residual, at most
    ``REFINEMENTS`` times in all. ``escalate``: the same for a last stage whose law the sampler cannot vouch for and
    knows how to fix (``Sampler.escalated``: MCMC chains not mixed get twice the steps per update), at most
    ``SAMPLER_ESCALATIONS`` times. Returns the last stage and the sampler it used.
    """
    betas = attempt.betas
    solver = with_damping(solver, attempt.damping)
    sampler_key, check_key = jax.random.split(key)
    stage_model = model.replace(beta=betas[0])
    state = sampler.init(sampler_key, stage_model, data)
    residual, state = _initial_residual(init, data, stage_model, sampler, state)
    with tqdm(total=max_iter * len(betas), disable=not progress, desc=f"solve ({sampler.name})", leave=False) as bar:
        for index, beta in enumerate(betas):
            last = index == len(betas) - 1
            stage_model = model.replace(beta=beta)
            if index and check:
                residual = _warm_start(stage_model, data, residual, betas[index - 1], check_key)
            while True:
                stage = _iterate(
                    sampler, stage_model, data, state, residual, solver=solver, tol=tol if last else max(tol, stage_tol),
                    max_iter=max_iter, stochastic=stochastic, history=history, bar=bar, key=check_key, check=check,
                    stall=stall, callback=callback,
                )
                if stage.note:
                    actions.append(stage.note)
                    solver = Ascent(solver.damping)  # the iteration of G cycled here: it will on a finer grid or at a larger beta too
                escalated = _escalated(sampler, stage, beta, actions) if escalate and last else None
                if escalated is not None:
                    sampler, residual, state = escalated, stage.residual, stage.state
                    continue
                unresolved = sampler.warnings(stage.state.info, stage.law) if refine and stage.result.converged else []
                refinements = sum(action.startswith("re-grid") for action in actions)
                if not unresolved or refinements >= REFINEMENTS:
                    break
                refined = sampler.refined(stage.law, stage.state.info, model, data)
                if refined is None or refined == sampler:
                    break
                actions.append(f"re-grid at beta = {beta:.3g} ({unresolved[0].split(';')[0]}): {refined.describe(model, data)}")
                sampler, residual = refined, stage.residual
                state = sampler.init(sampler_key, stage_model, data)
            if not stage.result.converged and not last:
                return stage._replace(stop_reason=f"stage at beta = {beta:.3g}: {stage.stop_reason}"), sampler
            residual, state = stage.residual, stage.state
    return stage, sampler


def _escalated(sampler: Sampler, stage: _Stage, beta: float, actions: list) -> Sampler | None:
    """``sampler.escalated(info)`` for a converged stage whose law the sampler cannot vouch for (``warnings``), said
    in ``actions``; None when it vouches, has no escalation, or was escalated ``SAMPLER_ESCALATIONS`` times."""
    if not stage.result.converged or sum(action.startswith("escalate") for action in actions) >= SAMPLER_ESCALATIONS:
        return None
    words = sampler.warnings(stage.state.info, stage.law)
    escalated = sampler.escalated(stage.state.info) if words else None
    if escalated is None or escalated == sampler:
        return None
    old, new = _flat(dataclasses.asdict(sampler)), _flat(dataclasses.asdict(escalated))
    changes = ", ".join(f"{name} {old[name]} -> {new[name]}" for name in new if old.get(name) != new[name])
    actions.append(f"escalate the sampler at beta = {beta:.3g} ({words[0].split(':')[0]}): {changes}")
    return escalated


def _flat(settings: dict, prefix: str = "") -> dict:
    flat = {}
    for name, value in settings.items():
        flat.update(_flat(value, f"{prefix}{name}.") if isinstance(value, dict) else {prefix + name: value})
    return flat


def _warm_start(model: TwoLayer, data: Dataset, residual, previous_beta: float, key) -> np.ndarray:
    """The previous stage's residual, or ``(previous_beta / beta) r`` if that is non-normalizable at ``beta``.

    ``c |S_r(w)|^2`` scales like ``beta^2 |r|^2``, so the rescaled residual gives the new stage exactly
    the tilt the previous (normalizable) fixed point had: a start that always exists. At large beta the
    fixed-point residual itself falls like ``1/beta``, so it is also the better predictor there.
    """
    try:
        check_normalizable(model, data, jnp.asarray(residual, data.y.dtype), key=key)
        return residual
    except NonNormalizableError:
        return np.asarray(residual) * (previous_beta / model.beta)


def sampler_summary(sampler: Sampler, model: TwoLayer, data: Dataset) -> dict:
    """The sampler as JSON (``Sampler.summary``: its name and settings; for a grid its nodes per axis and spans)."""
    return sampler.summary(model, data)


def _finish(stage: _Stage, model, data, sampler, history, tol, throw, actions) -> Solution:
    residual = jnp.asarray(stage.residual, data.y.dtype)
    diagnostics = info_dict(stage.state.info)
    diagnostics["change"] = stage.change
    diagnostics["settled"] = bool(stage.result.converged)  # the iteration's own verdict (r = G(r) within tol, or the noise floor)
    unvouched = sampler.warnings(stage.state.info, stage.law)  # a law the sampler cannot vouch for is no fixed point
    result = Result.UNVOUCHED if stage.result.converged and unvouched else stage.result
    warnings = list(unvouched)
    diagnostics["warnings"] = warnings
    diagnostics["actions"] = list(actions)
    diagnostics["sampler"] = sampler_summary(sampler, model, data)
    log_partition = diagnostics.get("log_partition")
    energy = free_energy(model, data, residual, log_partition) if log_partition is not None else None
    if energy is None:
        warnings.append(f"sampler {sampler.name!r} gives no log E_prior[exp(c |S|^2)]: free energy not computed")
    if result.converged:
        message = f"converged: {stage.stop_reason}"
    elif result is Result.UNVOUCHED:
        message = _unvouched_message(stage, unvouched, actions)
    elif actions:
        message = (
            f"no fixed point found: {stage.stop_reason}, after the automatic escalation (continuation in beta, then "
            "gentler stages with more damping). Hint: a larger max_iter, a looser tol, or a sampler that resolves the law"
        )
    else:
        message = (
            f"no fixed point found: {stage.stop_reason}. Hint: more damping (smaller `damping`, e.g. 0.2), "
            "continuation in beta (e.g. continuation = 5), or a larger max_iter (or leave auto=True)"
        )
    if actions:
        message += ". Automatic steps: " + "; ".join(actions)
    said = warnings[len(unvouched):] if result is Result.UNVOUCHED else warnings  # the unvouched ones are in the message
    if said:
        message += ". Warning: " + "; ".join(said)
    solution = Solution(
        residual, 0.5 * float(np.sum(np.asarray(data.q)[:, None] * stage.residual**2)), energy, result, message,
        len(history["change"]) - 1, history, tuple(actions), diagnostics, stage.law, model, data, sampler,
    )
    if throw and not result.converged:
        raise NoFixedPointError(message)
    return solution


def _unvouched_message(stage: _Stage, unvouched: list, actions) -> str:
    """Not converged: the iteration settled, but on a law its sampler cannot vouch for (cut by the grid box,
    unresolved, chains not mixed), even after the automatic re-grids or escalations in ``actions``."""
    tried = [a for a in actions if a.startswith(("re-grid", "escalate"))]
    after = f", after {len(tried)} automatic re-grid(s) / escalation(s) of the sampler" if tried else ""
    return (f"no fixed point the sampler can vouch for: the iteration settled ({stage.stop_reason}), but "
            + "; ".join(unvouched) + after)


class Branches(NamedTuple):
    """Two solutions of the same equations, from the GP side and from a feature-learning start."""

    gp: Solution
    feature: Solution
    stable: str  # "gp" or "feature": the lower free energy
    message: str


@uses_precision
def solve_branches(data: Dataset, model: TwoLayer, sampler: Sampler, *, key: jax.Array, feature_init="feature", **options) -> Branches:
    """Solve from ``init="gp"`` and from ``feature_init`` (``"feature"`` or a residual); the lower free energy is stable.

    ``I(r)`` is strictly concave in ``r`` (a concave quadratic minus ``log E_prior[exp(c |S_r|^2)]``, a
    log-mean-exp of convex functions), so for a fixed sampler law the fixed point is unique and both starts
    must reach it; two distinct results mean an unconverged start or a law the sampler does not resolve.
    First-order transitions (two branches crossing) appear in the d -> infinity saddle equations:
    ``mft_jax.theory.reduced.rubin.limit_transition`` and ``mft_jax.theory.reduced.modular.saddle``.
    """
    gp = solve(data, model, sampler, key=key, init="gp", **options)
    feature = solve(data, model, sampler, key=key, init=feature_init, **options)
    if gp.free_energy is None or feature.free_energy is None:
        return Branches(gp, feature, "gp", "free energies unavailable for this sampler: stability not decided")
    weights = np.asarray(data.q, dtype=float)[:, None]
    distance = weighted_norm(np.asarray(gp.residual, dtype=float) - np.asarray(feature.residual, dtype=float), weights)
    same = distance <= 10 * options.get("tol", 1e-5) * max(weighted_norm(gp.residual, weights), 1e-300)
    stable = "gp" if gp.free_energy <= feature.free_energy else "feature"
    message = (
        f"free energy per neuron: GP branch {gp.free_energy:.6g}, feature branch {feature.free_energy:.6g}; "
        + ("both starts reach the same fixed point" if same else f"two fixed points; the {stable} branch is stable (lower)")
    )
    return Branches(gp, feature, stable, message)
