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

Continuation: ``continuation = n >= 2`` solves at ``n`` inverse temperatures geometrically
spaced from ``beta_start`` (default ``beta / 50``, near the GP limit) to ``model.beta``, each
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
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from mft_jax.theory.ascent import FreeEnergyAscent, free_energy_at
from mft_jax.theory.background import Background, data_term, kernel, predict, solve_residual
from mft_jax.data import Dataset
from mft_jax.errors import ConfigError, NonFiniteError, NonNormalizableError, NoFixedPointError
from mft_jax.theory.fixed_point import (Anderson, Damped, Evaluation, FixedPointSolution, InadmissibleStep, Iterate, NoiseFloor,
                                  Problem, Result, Stall, fixed_point, weighted_norm)
from mft_jax.theory.samplers import Sampler, info_dict
from mft_jax.theory.samplers.grid import BOUNDARY_MASS_LIMIT, GridSampler
from mft_jax.model import TwoLayer
from mft_jax.neurons import NeuronLaw
from mft_jax.theory.normalizability import check_normalizable

STAGE_TOL = 1e-3  # intermediate continuation stages stop here (or at tol if looser)
NOISE_WINDOW = 10  # stochastic samplers: iterations compared to detect the noise floor
NOISE_PLATEAU = 0.8  # ... the change has stopped falling if it fell by less than this factor
BACKTRACK = 6  # halvings of a damped step that makes rho non-normalizable
STALL_WINDOW = 20  # automatic mode: iterations over which a stage must halve its best change, else it stalled
STALL_FACTOR = 0.5
AUTO_BETA_START = 1 / 50  # automatic continuation starts at this fraction of beta (near the GP limit)
AUTO_RATIOS = (2.0, 1.4)  # beta ratio between continuation stages: first escalation, then the gentler one
AUTO_DAMPING = 0.4  # the second escalation multiplies damping by this
GRID_REFINEMENTS = 3  # automatic re-grids of an unresolved or leaking grid law
GRID_TARGET_NODES = 400  # a re-grid aims at this effective number of nodes
GRID_MAX_ENTRIES = 2**26  # a re-grid keeps nodes x data points below this (256 MiB of float32 features)
SAMPLER_ESCALATIONS = 3  # automatic escalations of a sampler that cannot vouch for its law (MCMC: steps x 2 each)


class Solution(NamedTuple):
    """The fixed point: residual (P, C), the neuron law, the loss and free energy, how it went.

    ``history``: per iteration ``change`` (relative, see the module docstring), ``loss``, ``beta``
    and ``step`` (``anderson`` / ``damped`` / ``restart``). ``diagnostics``: the sampler's (ESS,
    boundary mass, log partition), the final change, warnings in words. ``converged`` is False for a law the
    sampler cannot vouch for (``Sampler.warnings``: cut by the grid box, unresolved, chains not mixed) even where the
    iteration settled (``diagnostics["settled"]``: the fixed point of this sampler's rule, e.g. on a fixed grid),
    after the automatic re-grids / escalations (``actions``) could not fix it; ``message`` says so.
    """

    residual: jax.Array
    law: NeuronLaw
    model: TwoLayer
    data: Dataset
    loss: float
    free_energy: float | None
    converged: bool
    iterations: int
    history: dict
    diagnostics: dict
    message: str
    actions: tuple = ()  # what the automatic escalation and grid adaptation did, in words (``solve(auto=...)``)
    sampler: Any = None  # the sampler of the final law (the re-gridded grid, if the solver re-gridded)

    def background(self) -> Background:
        """The fixed-point kernel as an operator (``matvec``) or dense matrix (``kernel()``)."""
        return Background(self.model, self.law, self.data)

    def kernel(self, x: jax.Array | None = None, x2: jax.Array | None = None) -> jax.Array:
        """Dense ``K(x, x2) = E_rho[phi(w.x) phi(w.x2)]`` (default: the data points)."""
        x = self.data.x if x is None else x
        return kernel(self.model, self.law, x, x2)

    def predict(self, x: jax.Array, at: str = "iterate") -> jax.Array:
        """``f(x) = beta sa2 sum_nu K(x, x_nu) q_nu r_nu`` at new inputs (n, d), K the final law's kernel.

        ``at="iterate"``: ``r`` = the residual the solve stopped at. ``at="consistent"``: ``r = G(r) = (I + beta sa2
        K Q)^-1 y``, the residual the final law imposes (kernel regression with its kernel; on the data points
        ``f = y - G(r)``). Equal at a fixed point. For a solve stopped off it (a sampler's noise floor, a steep map
        that did not settle) use ``"consistent"``: the iterate's prediction amplifies ``r - G(r)`` along the kernel's
        large eigenvalues (by up to ``beta sa2`` times its largest eigenvalue).
        """
        if at == "iterate":
            r = self.residual
        elif at == "consistent":
            r = self.background().residual()
        else:
            raise ConfigError(f"predict(at=...) must be 'iterate' (the solve's last residual r) or 'consistent' (G(r), "
                              f"the residual the final law imposes), got {at!r}")
        return predict(self.model, self.law, self.data, r, x)


@functools.partial(jax.jit, static_argnames=("sampler",))
def fixed_point_map(sampler: Sampler, model: TwoLayer, state: Any, data: Dataset, residual: jax.Array):
    """One ``G``: ``law = F(r)`` by the sampler, then ``(law, state, B(law))`` with B the residual solve."""
    law, state = sampler.update(state, model, data, residual)
    return law, state, solve_residual(model, law, data)


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
    converged: bool
    change: float
    stop_reason: str
    note: str = ""  # what the stage did beyond iterating G (the switch to Newton ascent), in words


def _problem(sampler, model, data, state, *, history, bar, key, check) -> tuple[Problem, Callable]:
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

    return Problem(evaluate, weights=q[:, None], admissible=normalizable), record


def _iterate(sampler, model, data, state, residual, *, damping, anderson, tol, max_iter, stochastic, history, bar, key,
             check=True, stall_window=None, newton=False):
    """Solve ``r = G(r)`` at one beta by ``mft_jax.theory.fixed_point``; appends to ``history``; returns a ``_Stage``.

    Damped steps for a stochastic sampler (stopping at its noise floor), else Anderson with memory
    ``anderson`` (0: damped). ``stall_window = n``: give up early (not converged, reason "stalled") when
    the best relative change of the last n iterations is not below half the best before them; where the
    sampler gives the free energy (``_has_free_energy``) the stage then goes on by Newton ascent on it
    (``mft_jax.theory.ascent.FreeEnergyAscent``), and ``newton=True`` goes there at once (a re-grid or later
    stage of a solve that needed it).
    """
    dtype = data.y.dtype
    r = np.asarray(residual, dtype=float)
    if check:
        check_normalizable(model, data, jnp.asarray(r, dtype), key=key)
    problem, record = _problem(sampler, model, data, state, history=history, bar=bar, key=key, check=check)
    start = problem.evaluate(r)
    record(problem.iterate(r, start), "start")
    ascent = FreeEnergyAscent(sampler, model, data)

    def ascend(x, evaluation, budget, why=""):
        """The rest of the stage by Newton ascent on ``I`` from ``x``, said in ``note``."""
        run = fixed_point(problem, x, ascent, tol=tol, max_steps=max(budget, 1), evaluation=evaluation, callback=record)
        return _stage(run, f"Newton ascent on the concave free energy at beta = {model.beta:.3g}{why}")

    try:
        if newton and not stochastic and _has_free_energy(start.aux[1]):
            return ascend(r, start, max_iter)
        if stochastic:
            solver, stop = Damped(damping, BACKTRACK), (NoiseFloor(NOISE_WINDOW, NOISE_PLATEAU),)
        else:
            solver = Anderson(anderson, damping, BACKTRACK) if anderson else Damped(damping, BACKTRACK)
            stop = (Stall(stall_window, STALL_FACTOR, 2 * stall_window),) if stall_window else ()
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
    return _Stage(np.asarray(run.value, dtype=float), law, state, run.converged, run.change, run.message, note)


def _has_free_energy(state) -> bool:
    """A deterministic sampler whose info record carries ``log_partition``: ``I(r)`` exists and Newton applies."""
    return "log_partition" in getattr(getattr(state, "info", None), "_fields", ())


def solve(
    data: Dataset,
    model: TwoLayer,
    sampler: Sampler,
    *,
    key: jax.Array,
    init: str | jax.Array = "gp",
    damping: float = 0.5,
    anderson: int = 5,
    tol: float = 1e-5,
    max_iter: int = 300,
    continuation: int = 0,
    beta_start: float | None = None,
    stochastic: bool | None = None,
    normalizability: str = "check",
    auto: bool = True,
    adapt_grid: bool = True,
    newton: bool = False,
    throw: bool = False,
    progress: bool = False,
) -> Solution:
    """Solve ``r = G(r)`` (module docstring) and return the ``Solution``.

    ``init``: ``"gp"`` (the residual of the prior kernel: kernel ridge regression), ``"feature"``
    (``r = y``: the strongly tilted law of an untrained background) or a residual array (P, C).
    ``damping`` in (0, 1]; ``anderson`` = memory m (0: plain damped iteration); ``tol``: relative
    change ``|G(r) - r|_q / |G(r)|_q``; ``max_iter`` per continuation stage; ``stochastic``: treat the
    sampler as noisy (default: ``sampler.stochastic``). ``normalizability``:
    ``"check"`` (default) refuses a non-normalizable ``rho``; ``"metastable"`` skips the check and
    solves for the law the sampler sees (importance draws from the prior or MCMC chains started there
    never reach the runaway tail): the metastable state in the well around the origin.

    ``auto=True`` (default) reaches the fixed point without being told how: if the start is
    non-normalizable, or the iteration stalls, cycles or runs out of ``max_iter``, it solves again with
    continuation in beta from ``beta / 50`` (stages a factor 2 apart), then with gentler stages (a factor
    1.4) and ``damping x 0.4``; each step is recorded in ``Solution.actions``. ``adapt_grid=True``
    (default; grid sampler only) re-grids a law that the grid does not resolve or contain: the box
    follows the law's support and the spacing its width, warm-started, at most 3 times. Refused only
    when the law at the fixed point itself does not exist (``NonNormalizableError``). ``auto=False`` /
    ``adapt_grid=False`` turn each off. A deterministic sampler with a ``log_partition`` (grid, importance)
    whose iteration stalls goes on by Newton ascent on the concave free energy (``mft_jax.theory.ascent``; recorded in
    ``actions``, steps ``newton`` in ``history``), before any continuation; ``newton=True`` starts there.
    Non-convergence gives ``converged=False`` and a hint, or
    ``NoFixedPointError`` with ``throw=True``.
    """
    if not (isinstance(damping, (int, float)) and 0 < damping <= 1):
        raise ConfigError(f"damping must be in (0, 1], got {damping!r}")
    for name, value, low in (("anderson", anderson, 0), ("max_iter", max_iter, 1), ("continuation", continuation, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ConfigError(f"tol must be a number > 0, got {tol!r}")
    stochastic = sampler.stochastic if stochastic is None else stochastic
    if normalizability not in ("check", "metastable"):
        raise ConfigError(f"normalizability must be 'check' or 'metastable', got {normalizability!r}")
    if beta_start is not None and not (isinstance(beta_start, (int, float)) and 0 < beta_start <= model.beta):
        raise ConfigError(f"beta_start must be in (0, beta = {model.beta:g}], got {beta_start!r}")
    start = model.beta * AUTO_BETA_START if beta_start is None else beta_start
    attempts = [(_betas(model.beta, start, continuation), damping)]
    if auto:
        for ratio, factor in zip(AUTO_RATIOS, (1.0, AUTO_DAMPING)):
            stages = max(continuation, 1 + math.ceil(math.log(model.beta / start) / math.log(ratio) - 1e-9))
            attempts.append((_betas(model.beta, start, stages), damping * factor))
    if not isinstance(newton, bool):
        raise ConfigError(f"newton must be True or False, got {newton!r}")
    options = dict(init=init, anderson=anderson, tol=tol, max_iter=max_iter, stochastic=stochastic, newton=newton,
                   check=normalizability == "check", stall_window=STALL_WINDOW if auto else None, progress=progress,
                   escalate=auto)
    history = {"change": [], "loss": [], "beta": [], "step": []}
    actions: list[str] = []
    regrid = auto and adapt_grid and isinstance(sampler, GridSampler)
    for level, (betas, attempt_damping) in enumerate(attempts):
        final = level == len(attempts) - 1
        try:
            stage, sampler = _run_stages(data, model, sampler, key, betas, attempt_damping, history, actions,
                                         regrid=regrid, **options)
        except NonNormalizableError as error:
            if final:
                raise
            actions.append(f"{_describe(betas, attempt_damping)} was refused ({_first_clause(error)}); next: "
                           f"{_describe(*attempts[level + 1])}")
            continue
        if stage.converged or final or not auto:
            break
        actions.append(f"{_describe(betas, attempt_damping)} found no fixed point ({stage.stop_reason}); next: "
                       f"{_describe(*attempts[level + 1])}")
    return _finish(stage, model, data, sampler, history, tol, throw, actions)


def _betas(beta: float, start: float, stages: int) -> list[float]:
    """``stages >= 2`` inverse temperatures geometrically spaced from ``start`` to ``beta``; else ``[beta]``."""
    return [float(b) for b in np.geomspace(start, beta, stages)] if stages >= 2 else [float(beta)]


def _describe(betas, damping) -> str:
    if len(betas) == 1:
        return f"the direct solve at beta = {betas[0]:g} (damping {damping:g})"
    return f"continuation from beta = {betas[0]:.3g} in {len(betas)} stages (damping {damping:g})"


def _first_clause(error: Exception) -> str:
    return str(error).split(":")[0]


def _run_stages(data, model, sampler, key, betas, damping, history, actions, *, regrid, init, anderson, tol, max_iter,
                stochastic, check, stall_window, newton, progress, escalate=False) -> tuple[_Stage, Sampler]:
    """Solve at each beta of ``betas`` in turn, each stage warm-started from the last.

    ``regrid``: after a stage converges on a grid that does not resolve or contain its law, re-grid
    (``_refined_grid``) and solve that stage again from its residual, at most ``GRID_REFINEMENTS`` times in all.
    ``escalate``: the same for a last stage whose law the sampler cannot vouch for and knows how to fix
    (``_escalated``: MCMC chains not mixed get twice the steps per update). Returns the last stage and the sampler it used.
    """
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
                    sampler, stage_model, data, state, residual, damping=damping, anderson=anderson,
                    tol=tol if last else max(tol, STAGE_TOL), max_iter=max_iter, stochastic=stochastic,
                    history=history, bar=bar, key=check_key, check=check, stall_window=stall_window, newton=newton,
                )
                if stage.note:
                    actions.append(stage.note)
                    newton = True  # the iteration of G cycled here: it will on a finer grid or at a larger beta too
                escalated = _escalated(sampler, stage, beta, actions) if escalate and last else None
                if escalated is not None:
                    sampler, residual, state = escalated, stage.residual, stage.state
                    continue
                unresolved = sampler.warnings(stage.state.info, stage.law) if regrid and stage.converged else []
                refinements = sum(action.startswith("re-grid") for action in actions)
                if not unresolved or refinements >= GRID_REFINEMENTS:
                    break
                refined = _refined_grid(sampler, stage.law, stage.state.info, model, data)
                if refined == sampler:
                    break
                shape = " x ".join(str(len(axis)) for axis in refined.axes)
                spans = ", ".join(f"[{axis[0]:.3g}, {axis[-1]:.3g}]" for axis in refined.axes)
                actions.append(
                    f"re-grid at beta = {beta:.3g} ({unresolved[0].split(';')[0]}): {shape} nodes on {spans}, "
                    f"finest spacing {refined.spacing(model, data.input_dim):.3g}, nodes crowded where the law's marginals are"
                )
                sampler, residual = refined, stage.residual
                state = sampler.init(sampler_key, stage_model, data)
            if not stage.converged and not last:
                return stage._replace(stop_reason=f"stage at beta = {beta:.3g}: {stage.stop_reason}"), sampler
            residual, state = stage.residual, stage.state
    return stage, sampler


def _escalated(sampler: Sampler, stage: _Stage, beta: float, actions: list) -> Sampler | None:
    """``sampler.escalated(info)`` for a converged stage whose law the sampler cannot vouch for (``warnings``), said
    in ``actions``; None when it vouches, has no escalation, or was escalated ``SAMPLER_ESCALATIONS`` times."""
    if not stage.converged or sum(action.startswith("escalate") for action in actions) >= SAMPLER_ESCALATIONS:
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


def _refined_grid(sampler: GridSampler, law: NeuronLaw, info, model: TwoLayer, data: Dataset) -> GridSampler:
    """A tensor grid whose axes follow the law's marginals.

    A law that leaks out of the box gets a uniform box 1.5 x wider, same spacing. Otherwise each axis spans
    the marginal's support (nodes of weight > 1e-10 x the largest, plus two old cells) with ``n`` nodes,
    half spaced uniformly, half at the quantiles of the marginal (its mass spread over each old cell), so
    nodes crowd where the law lives: a clover's four lobes sit on the product of two such axes.
    ``n`` grows so the effective number of nodes would reach ``GRID_TARGET_NODES`` (ESS scales like
    ``n^d`` at fixed support), never past ``GRID_MAX_ENTRIES / P`` nodes in all.
    """
    dim = data.input_dim
    axes = sampler.axis_nodes(model, dim)
    w, weight = np.asarray(law.w, dtype=float), np.asarray(law.weights(), dtype=float)
    size = max(len(axis) for axis in axes)
    max_size = max(3, int((GRID_MAX_ENTRIES / data.num_points) ** (1 / dim)))
    if float(info.boundary_mass) > BOUNDARY_MASS_LIMIT:
        half = 1.5 * max(np.abs(axis).max() for axis in axes)
        grow = min(max_size, int(math.ceil(1.5 * size)))
        return GridSampler(axes=tuple(tuple(np.linspace(-half, half, grow)) for _ in range(dim)))
    size = min(max_size, max(size, int(math.ceil(size * (GRID_TARGET_NODES / max(float(info.ess), 1.0)) ** (1 / dim)))))
    new_axes = []
    for k, axis in enumerate(axes):
        index = np.searchsorted(axis, w[:, k])
        marginal = np.bincount(np.clip(index, 0, len(axis) - 1), weights=weight, minlength=len(axis))
        widths = np.diff(axis).min() if len(axis) > 1 else 1.0
        held = np.flatnonzero(marginal > 1e-10 * marginal.max())
        low, high = axis[held[0]] - 2 * widths, axis[held[-1]] + 2 * widths
        edges = np.concatenate([[axis[0] - 0.5 * (axis[1] - axis[0])], 0.5 * (axis[1:] + axis[:-1]),
                                [axis[-1] + 0.5 * (axis[-1] - axis[-2])]])
        cdf = np.concatenate([[0.0], np.cumsum(marginal)]) / marginal.sum()
        quantiles = np.interp((np.arange(size // 2) + 0.5) / (size // 2), cdf, edges)
        nodes = np.unique(np.concatenate([np.linspace(low, high, size - size // 2), quantiles]))
        kept = [nodes[0]]
        for node in nodes[1:]:  # merge nodes closer than a quarter of the uniform spacing to the last kept one
            if node - kept[-1] > 0.25 * (high - low) / size:
                kept.append(node)
        new_axes.append(tuple(kept))
    return GridSampler(axes=tuple(new_axes))


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
    """The sampler as JSON: its name and settings; for a grid its nodes per axis and their spans."""
    if isinstance(sampler, GridSampler):
        axes = sampler.axis_nodes(model, data.input_dim)
        return {"name": sampler.name, "nodes_per_axis": [len(axis) for axis in axes],
                "spans": [[float(axis[0]), float(axis[-1])] for axis in axes]}
    return {"name": sampler.name, **dataclasses.asdict(sampler)}


def _finish(stage: _Stage, model, data, sampler, history, tol, throw, actions) -> Solution:
    residual = jnp.asarray(stage.residual, data.y.dtype)
    diagnostics = info_dict(stage.state.info)
    diagnostics["change"] = stage.change
    diagnostics["settled"] = bool(stage.converged)  # the iteration's own verdict (r = G(r) within tol, or the noise floor)
    unvouched = sampler.warnings(stage.state.info, stage.law)  # a law the sampler cannot vouch for is no fixed point
    converged = bool(stage.converged) and not unvouched
    warnings = list(unvouched)
    diagnostics["warnings"] = warnings
    diagnostics["actions"] = list(actions)
    diagnostics["sampler"] = sampler_summary(sampler, model, data)
    log_partition = diagnostics.get("log_partition")
    energy = free_energy(model, data, residual, log_partition) if log_partition is not None else None
    if energy is None:
        warnings.append(f"sampler {sampler.name!r} gives no log E_prior[exp(c |S|^2)]: free energy not computed")
    if converged:
        message = f"converged: {stage.stop_reason}"
    elif stage.converged:
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
    if warnings[len(unvouched) if stage.converged else 0:]:
        message += ". Warning: " + "; ".join(warnings[len(unvouched) if stage.converged else 0:])
    solution = Solution(
        residual, stage.law, model, data, 0.5 * float(np.sum(np.asarray(data.q)[:, None] * stage.residual**2)),
        energy, converged, len(history["change"]) - 1, history, diagnostics, message, tuple(actions),
        sampler,
    )
    if throw and not converged:
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
