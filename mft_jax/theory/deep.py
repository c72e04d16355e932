"""Deep networks: the per-layer mean-field fixed point of docs/theory.md section 6.

A network of ``depth = D`` weight layers has ``H = D - 1`` hidden layers (depth 2 is ``TwoLayer``):

    h1 = w . x,   hl = (1/sqrt N) sum_j W(l)_j phi(h(l-1)_j),   f = (1/N) sum_i a_i phi(hH_i)

priors ``w ~ N(0, sw2 I)``, ``W ~ N(0, sW2)``, ``a ~ N(0, sa2)``, posterior ``exp(-beta N L - prior)``.
The state of the fixed point is the conjugate kernel of every hidden layer below the last and
the readout residual, ``(Phihat_1 .. Phihat_(H-1), r)``; one evaluation of the map runs

    forward:   p_l(h) ~ N(h; 0, s_l Phi_(l-1)) exp(-1/2 phi(h)^T Phihat_l phi(h)),   Phi_l = E_(p_l)[phi phi^T]
    backward:  Phihat_(l-1) = -s_l E_(p_l)[grad^2 t_l + grad t_l grad t_l^T],   r = (I + beta sa2 Phi_H Q)^-1 y

with ``h = A_l z`` in whitened coordinates (``A_1 = sqrt(sw2) X``: layer 1 lives in weight space;
``A_l`` the Cholesky factor of ``s_l Phi_(l-1)`` for l >= 2), with the tilt ``t_l(h) = -1/2 phi(h)^T Phihat_l phi(h)`` and the last layer's ``c |S(h)|^2``
(``Phihat_H = -beta^2 sa2 Q r r^T Q``). Layer laws are ``mft_jax.theory.samplers.layers`` samplers:
``gaussian_layers()`` (exact for the linear activation), ``importance_layers(M)`` (fixed antithetic,
exactly whitened prior draws reweighted by the tilt: common random numbers, so the map is
deterministic), ``grid_layers(...)`` (layer 1 on a grid in weight space for d <= 3, the hidden layers by
importance) and ``mcmc_layers(M)`` (resample-move particles refreshed at the iterate by tempered MALA,
section 6.7). The free energy, predictions at new inputs and the deep NNGP baseline follow
section 6.2-6.5.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from mft_jax.theory.background import data_term, predict_from_kernel, residual_from_kernel  # readout: r = (I + beta sa2 Phi_H Q)^-1 y
from mft_jax.data import Dataset
from mft_jax.errors import ConfigError, NoFixedPointError, NonFiniteError, NonNormalizableError
from mft_jax.theory.fixed_point import (Anderson, Attempt, Continuation, Damped, Evaluation, NewtonKrylov,
                                        Outcome, Problem, Result, escalate, fixed_point)
from mft_jax.theory._legacy import solver_and_schedule, with_damping
from mft_jax.theory.gp import nngp_kernel
from mft_jax.theory.samplers.layers import (  # noqa: F401  (the layer samplers are part of this module's API)
    GaussianLayers, GridLayers, ImportanceLayers, LayerSampler, LayerStats, MCMCLayers, Particles, gaussian_layers,
    RefreshInfo, grid_layers, importance_layers, mcmc_layers, particle_stats)
from mft_jax.linalg import cholesky_factor, eigh_floor
from mft_jax.model import Deep
from mft_jax.protocol import LayerBackground
from mft_jax.precision import uses_precision

HERMITE_NODES = 32  # 1-D Gauss-Hermite nodes for the test-point noise xi (section 6.4)


# ------------------------------------------------------------------------------------- the map
class DeepState(NamedTuple):
    """Iteration variable: conjugate kernels of layers 1..H-1 and the readout residual."""

    phihat: tuple
    residual: jax.Array


class Forward(NamedTuple):
    """Everything one forward pass computes: factors ``A_l``, layer statistics, and the map's image."""

    factors: tuple
    stats: tuple
    image: DeepState


@uses_precision
def conjugate_kernel(model: Deep, data: Dataset, state: DeepState, layer: int) -> jax.Array:
    """``Phihat_l`` of the tilt ``-1/2 phi^T Phihat_l phi``: ``state.phihat[l - 1]`` for l < H, and for the
    last layer the readout's ``Phihat_H = -beta^2 sa2 Q r r^T Q`` (so the tilt is ``c |S(h)|^2``, 6.2)."""
    if layer < model.hidden_layers:
        return state.phihat[layer - 1]
    weighted = data.q[:, None] * state.residual
    return -model.beta**2 * model.sa2 * weighted @ weighted.T


def _forward(model: Deep, sampler: LayerSampler, particles: tuple, data: Dataset, state: DeepState) -> Forward:
    """One evaluation of the fixed-point map (docs/theory.md 6.3)."""
    act = model.activation
    H = model.hidden_layers
    factors, stats = [], []
    factor = jnp.sqrt(model.sw2) * data.x  # A_1 (P, d)
    for layer in range(1, H + 1):
        phihat = conjugate_kernel(model, data, state, layer)
        s = sampler.layer_stats(particles[layer - 1], factor, phihat, act, conjugate=layer > 1)
        factors.append(factor)
        stats.append(s)
        if layer < H:
            factor = cholesky_factor(model.layer_variance(layer + 1) * s.phi)
    new_hat = []
    for layer in range(1, H):  # Phihat_l = -s_(l+1) E_(p_(l+1))[grad^2 t + grad t grad t^T]: Stein's lemma, no Phi_l^-1
        hat = -model.layer_variance(layer + 1) * stats[layer].stein
        new_hat.append(0.5 * (hat + hat.T))
    residual = residual_from_kernel(model, data, stats[-1].phi)
    return Forward(tuple(factors), tuple(stats), DeepState(tuple(new_hat), residual))


_forward_jit = jax.jit(_forward, static_argnames=("sampler",))


@uses_precision
def free_energy(model: Deep, data: Dataset, state: DeepState, stats) -> jax.Array:
    """``F = beta sum q (r.y - |r|^2/2) - 1/2 sum_(l<H) tr(Phihat_l Phi_l) - sum_l log Z_l`` (6.2)."""
    value = data_term(model.beta, data.q, data.y, state.residual)
    for layer, hat in enumerate(state.phihat):
        value -= 0.5 * jnp.sum(hat * stats[layer].phi)
    return value - sum(s.log_partition for s in stats)


# ------------------------------------------------------------------------------------- solution
class DeepSolution(NamedTuple):
    """The deep fixed point: the shared core of every solution type (``mft_jax.theory.two_layer.Solution``: ``residual``,
    ``loss``, ``free_energy``, ``result``, ``message``, ``iterations``, ``history``, ``actions``, ``diagnostics``, in
    this order), then ``state`` (the conjugate kernels and the residual), ``kernels`` (``Phi_1 .. Phi_H`` on the data,
    (P, P) each), ``model``, ``data``, ``sampler`` and its ``particles``."""

    residual: jax.Array
    loss: float
    free_energy: float
    result: Result
    message: str
    iterations: int
    history: dict
    actions: tuple
    diagnostics: dict
    state: DeepState
    kernels: tuple
    model: Deep
    data: Dataset
    sampler: LayerSampler
    particles: tuple

    @property
    def converged(self) -> bool:
        """``result.converged``: relative change <= tol."""
        return self.result.converged

    @uses_precision
    def predict(self, x_new) -> jax.Array:
        """``f(x*) = beta sa2 Phi_H(x*, X) Q r`` with ``r`` the iterate and the test kernels carried through the layers (6.4)."""
        cross, _ = kernels_at(self, x_new)
        return predict_from_kernel(self.model, self.data, self.residual, cross[-1])

    def kernel_regression(self, x_new) -> jax.Array:
        """Kernel regression with the last layer's kernel: ``f(x*) = beta sa2 Phi_H(x*, X) Q r`` with ``r = (I + beta sa2
        Phi_H Q)^-1 y``, the residual ``Phi_H`` imposes (equal to ``predict`` at a fixed point)."""
        cross, _ = kernels_at(self, x_new)
        residual = residual_from_kernel(self.model, self.data, self.kernels[-1])
        return predict_from_kernel(self.model, self.data, residual, cross[-1])

    def layer_background(self, layer: int) -> LayerBackground:
        """The single-site background of hidden layer ``layer`` (1..H) at this fixed point (docs/theory.md 6.3, 6.8):
        ``B = X``, ``v = sw2`` for layer 1 (weight space); ``B = A_l``, ``v = 1`` above (whitened); ``Phihat_l``."""
        data, model = self.data, self.model
        layer = check_layer(model, layer)
        phihat = conjugate_kernel(model, data, self.state, layer)
        if layer == 1:
            return LayerBackground(1, data.x, jnp.asarray(model.sw2, data.x.dtype), phihat)
        return LayerBackground(layer, layer_factor(self, layer), jnp.ones((), data.x.dtype), phihat)


class LayerLaw(NamedTuple):
    """One layer's single-neuron law at the fixed point as weighted particles.

    ``h`` (M, P): the neuron's preactivations on the data; ``weight`` (M,): probabilities summing
    to 1; ``w`` (M, d): layer 1's input weights (``h = X w``), ``None`` for hidden layers l >= 2.
    """

    h: jax.Array
    weight: jax.Array
    w: jax.Array | None


def check_layer(model: Deep, layer) -> int:
    """``layer`` as an int in ``1..H`` (the hidden layers), else a ``ConfigError`` naming what is allowed."""
    H = model.hidden_layers
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 1 <= layer <= H:
        raise ConfigError(f"layer must be an integer in 1..{H} (the hidden layers of this depth-{model.depth} model), got {layer!r}")
    return int(layer)


def layer_factor(solution: DeepSolution, layer: int) -> jax.Array:
    """``A_l`` with ``h = A_l z`` at the fixed point: ``sqrt(sw2) X`` for layer 1, else the Cholesky factor of ``s_l Phi_(l-1)`` (6.3)."""
    model = solution.model
    if layer == 1:
        return jnp.sqrt(model.sw2) * solution.data.x
    return cholesky_factor(model.layer_variance(layer) * solution.kernels[layer - 2])


@uses_precision
def layer_law(solution: DeepSolution, layer: int) -> LayerLaw:
    """The law ``p_l(h) ~ N(h; 0, s_l Phi_(l-1)) exp(t_l(h))`` of layer ``l`` (1-based) at the fixed point (6.3).

    Particle samplers only (importance or grid): the weights are the tilt's, normalised, on the
    sampler's fixed draws ``h = A_l z``; the exact Gaussian law of ``gaussian_layers`` has no particles.
    """
    model = solution.model
    layer = check_layer(model, layer)
    particles = solution.particles[layer - 1]
    if solution.sampler.exact:
        raise ConfigError("layer_law needs a particle sampler (importance_layers or grid_layers); the gaussian sampler's law is exact and has no particles")
    factor = layer_factor(solution, layer)
    phihat = conjugate_kernel(model, solution.data, solution.state, layer)
    _, weight = particle_stats(particles, factor, phihat, model.activation, conjugate=False)
    w = jnp.sqrt(model.sw2) * particles.z if layer == 1 else None
    return LayerLaw(particles.z @ factor.T, weight, w)


TEST_BLOCK_ELEMENTS = 2**25  # test points go through the layers in blocks of (particles x points x Hermite nodes) <= this


@uses_precision
def kernels_at(solution: DeepSolution, x_new) -> tuple[list, list]:
    """Per layer ``Phi_l(x*, X)`` (n, P) and ``Phi_l(x*, x*)`` (n,) at new points (docs/theory.md 6.4).

    Each test point needs only its own diagonal and its cross-kernel with the data, so the points are
    processed in blocks that keep the (particles, points, nodes) array under ``TEST_BLOCK_ELEMENTS``.
    """
    x_new = jnp.asarray(x_new, solution.data.x.dtype)
    particles = max([p.z.shape[0] for p in solution.particles if p is not None] or [1])
    block = max(1, TEST_BLOCK_ELEMENTS // (particles * HERMITE_NODES))
    parts = [_test_kernels(solution.model, solution.sampler, solution.particles, solution.data, solution.state, x_new[i: i + block])
             for i in range(0, x_new.shape[0], block)]
    layers = range(len(parts[0][0]))
    return ([jnp.concatenate([p[0][l] for p in parts]) for l in layers],
            [jnp.concatenate([p[1][l] for p in parts]) for l in layers])


def _test_kernels_impl(model, sampler, particles, data, state, x_new):
    fwd = _forward(model, sampler, particles, data, state)
    act = model.activation
    nodes, gh = np.polynomial.hermite_e.hermegauss(HERMITE_NODES)
    nodes, gh = jnp.asarray(nodes, x_new.dtype), jnp.asarray(gh / gh.sum(), x_new.dtype)
    H = model.hidden_layers
    a_star = jnp.sqrt(model.sw2) * x_new  # (n, k)
    s_star = jnp.zeros(x_new.shape[0], x_new.dtype)
    crosses, diags = [], []
    for layer in range(1, H + 1):
        factor, stats = fwd.factors[layer - 1], fwd.stats[layer - 1]
        part = particles[layer - 1]
        if sampler.exact:  # Gaussian law, linear activation
            cross = a_star @ stats.second @ factor.T
            diag = jnp.sum((a_star @ stats.second) * a_star, axis=1) + s_star**2
        else:
            phihat = conjugate_kernel(model, data, state, layer)
            _, weight = particle_stats(part, factor, phihat, act, conjugate=False)
            mean = part.z @ a_star.T  # (M, n)
            values = act(mean[..., None] + s_star[None, :, None] * nodes)  # (M, n, G)
            first = values @ gh
            square = (values * values) @ gh
            features = act(part.z @ factor.T)
            cross = jnp.einsum("mn,mp->np", first, weight[:, None] * features)
            diag = weight @ square
        crosses.append(cross)
        diags.append(diag)
        if layer < H:
            s_next = model.layer_variance(layer + 1)
            a_star = jax.scipy.linalg.solve_triangular(fwd.factors[layer], s_next * cross.T, lower=True).T
            s_star = jnp.sqrt(jnp.maximum(s_next * diag - jnp.sum(a_star * a_star, axis=1), 0.0))
    return crosses, diags


_test_kernels = jax.jit(_test_kernels_impl, static_argnames=("sampler",))


# ------------------------------------------------------------------------------------- solve
class _Flat(NamedTuple):
    """The iteration vector ``(sqrt(q) r, scale_l Phihat_l)``: each conjugate kernel in units of ``1 / (tr Phi_l / P)``."""

    shape_r: tuple
    shapes: tuple
    scales: tuple

    def pack(self, state: DeepState, data: Dataset) -> jax.Array:
        parts = [(jnp.sqrt(data.q)[:, None] * state.residual).ravel()]
        parts += [hat.ravel() * scale for hat, scale in zip(state.phihat, self.scales)]
        return jnp.concatenate(parts)

    def unpack(self, vector: jax.Array, data: Dataset) -> DeepState:
        size = math.prod(self.shape_r)
        residual = vector[:size].reshape(self.shape_r) / jnp.sqrt(data.q)[:, None]
        hats, offset = [], size
        for shape, scale in zip(self.shapes, self.scales):
            n = math.prod(shape)
            hat = vector[offset: offset + n].reshape(shape) / scale
            hats.append(0.5 * (hat + hat.T))
            offset += n
        return DeepState(tuple(hats), residual)


def _gap(flat: _Flat, model, sampler, particles, data, vector):
    """``G(x) - x``, whether the sampler admits ``x`` (every layer law normalizable, ...), and each layer's ``ESS / M``."""
    fwd = _forward(model, sampler, particles, data, flat.unpack(vector, data))
    return flat.pack(fwd.image, data) - vector, sampler.admissible(fwd.stats), tuple(s.ess / s.num_particles for s in fwd.stats)


_gap_jit = uses_precision(jax.jit(_gap, static_argnames=("flat", "sampler")))


@uses_precision
def nngp_state(model: Deep, data: Dataset) -> DeepState:
    """The NNGP state: ``Phihat_l = 0`` and the residual of the deep NNGP kernel (6.5)."""
    kernels = deep_nngp(model, data.x)
    P = data.num_points
    return DeepState(tuple(jnp.zeros((P, P), data.x.dtype) for _ in range(model.hidden_layers - 1)), residual_from_kernel(model, data, kernels[-1]))


@uses_precision
def solve_deep(
    data: Dataset,
    model: Deep,
    sampler: LayerSampler | None = None,
    *,
    key: jax.Array | None = None,
    solver: NewtonKrylov | Anderson | Damped | None = None,
    schedule: Continuation | None = None,
    init: DeepState | str = "gp",
    auto: bool = True,
    tol: float = 1e-5,
    max_iter: int = 300,
    throw: bool = False,
    callback: Callable | None = None,
    progress: bool = False,
    **deprecated,
) -> DeepSolution:
    """The deep mean-field fixed point ``x = G(x)`` (docs/theory.md 6.3); the keywords of ``mft_jax.theory.two_layer.solve``
    in the same order.

    ``solver`` (objects of ``mft_jax.theory.fixed_point``): ``NewtonKrylov(damping=0.5)`` (default) on ``G(x) - x``
    (GMRES on Jacobian-vector products, backtracking line search on ``|G(x) - x|`` that also keeps every Gaussian
    layer law normalizable); ``Anderson(memory, damping)``: safeguarded Anderson mixing (one map evaluation per step,
    no JVPs), switching to Newton-Krylov within a stage where it stalls; ``Damped(damping, descent=True)``: the plain
    iteration ``x <- x + damping (G(x) - x)``, which diverges at strong coupling: for a deep linear net with two
    hidden layers its linearisation has the eigenvalue ``(kappa - 1)^2`` (docs/theory.md 6.6), above 1 once the
    kernel doubles along the target; Newton does not care. ``schedule``: the ``Continuation`` policy shared with the
    two-layer solver (default ``Continuation()``: the direct solve; ``Continuation(stages=n)``: ``n`` inverse
    temperatures geometrically spaced from ``beta / 50`` to ``beta``, each warm-started from the last). ``auto``
    (default): when an attempt stalls or runs out of iterations, retry from the start along the schedule's retries;
    what was done is in ``actions`` and the message. Convergence: ``|G(x) - x| <= tol |G(x)|`` in the vector
    ``(sqrt(q) r, Phihat_l tr(Phi_l)/P)``; ``max_iter`` per stage (0: the NNGP start, evaluated). ``callback(iteration,
    change, beta)`` sees every iterate; ``progress`` shows a bar. ``throw``: raise ``NoFixedPointError`` if not converged.

    Deprecated keywords (one release, with a ``DeprecationWarning``): ``method`` and ``damping`` (use ``solver=``:
    ``"newton"`` is ``NewtonKrylov(damping)``, ``"anderson"`` is ``Anderson(5, damping, halvings=12)``, ``"damped"``
    is ``Damped(damping, halvings=12, descent=True)``), ``continuation`` and ``beta_start`` (use ``schedule=``).
    """
    solver, schedule = solver_and_schedule(solver, schedule, deprecated, default=NewtonKrylov(0.5), where="solve_deep",
                                           allowed=(NewtonKrylov, Anderson, Damped))
    sampler = importance_layers() if sampler is None else sampler
    key = jax.random.key(0) if key is None else key
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise ConfigError(f"max_iter must be an integer >= 0, got {max_iter!r}")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ConfigError(f"tol must be a number > 0, got {tol!r}")
    if sampler.adaptive and isinstance(solver, Anderson):
        raise ConfigError(f"solver Anderson cannot be used with the {sampler.name} layer sampler: it moves its particles "
                          "between steps, and Anderson's memory would mix maps of different particle sets; use NewtonKrylov or Damped")
    particles = sampler.init(key, model, data)
    if isinstance(init, str):
        if init != "gp":
            raise ConfigError(f"init must be 'gp' or a DeepState, got {init!r}")
        state = nngp_state(model, data)
    else:
        state = init
    fwd = _forward_jit(model, sampler, particles, data, state)
    scales = tuple(float(jnp.trace(s.phi)) / data.num_points for s in fwd.stats[:-1])
    flat = _Flat(tuple(state.residual.shape), tuple(h.shape for h in state.phihat), scales)
    history = {"change": [], "loss": [], "step": [], "beta": [], "seconds": [], "actions": [], "refreshes": []}
    start = flat.pack(state, data)
    counter = _Counter(0, time.perf_counter(), callback, tqdm(total=max_iter, disable=not progress,
                                                               desc=f"solve_deep ({sampler.name})", leave=False))

    def run(attempt: Attempt) -> Outcome:  # every attempt from the start, with the sampler's initial particles
        x, result, change, reason, last = _run_stages(flat, model, sampler, particles, data, start, attempt, solver,
                                                      tol, max_iter, history, counter, key, stall=schedule.stall if auto else None,
                                                      stage_tol=schedule.stage_tol)
        return Outcome(result.converged, reason, (x, result, change, reason, last))

    with counter.bar:
        x, result, change, reason, particles = escalate(
            run, schedule.attempts(float(model.beta), getattr(solver, "damping", 1.0), auto=auto and max_iter > 0), history["actions"],
            auto=auto).value
    converged, iteration = result.converged, counter.iteration
    final = flat.unpack(x, data)
    fwd = _forward_jit(model, sampler, particles, data, final)
    if not all(float(s.min_precision) > 0 for s in fwd.stats):
        raise NonNormalizableError("deep solver: a layer law is not normalizable at the final iterate (I + A^T Phihat A lost positivity)")
    stats = fwd.stats
    energy = float(free_energy(model, data, final, stats))
    loss = float(0.5 * jnp.sum(data.q[:, None] * final.residual**2))
    diagnostics = {
        "ess": [float(s.ess) for s in stats],
        "log_partition": [float(s.log_partition) for s in stats],
        "final_change": change,
        "warnings": sampler.warnings(list(stats)),
        "refreshes": len(history["refreshes"]),
    }
    if sampler.exact or sampler.adaptive:  # samplers whose laws must be normalizable: how far from the edge
        diagnostics["normalizability_margin"] = [float(s.min_precision) for s in stats]
    message = f"{'converged' if converged else 'not converged'} after {iteration} iterations (change {change:.2e}, tol {tol:g})"
    if not converged and reason:
        message += f": {reason}"
    if history["actions"]:
        message += ". Automatic steps: " + "; ".join(history["actions"])
    if not converged and throw:
        raise NoFixedPointError(f"deep solver: {message}")
    return DeepSolution(final.residual, loss, energy, result, message, iteration, history, tuple(history["actions"]),
                        diagnostics, final, tuple(s.phi for s in stats), model, data, sampler, particles)


@dataclasses.dataclass
class _Counter:
    """Iterations of a deep solve across its attempts, the clock, the caller's callback and the progress bar."""

    iteration: int
    clock: float
    callback: Callable | None
    bar: tqdm


@dataclasses.dataclass(frozen=True)
class _DeepGap:
    """``G(x) - x`` as a traceable ``fn(x, args)`` with ``args = (model, particles, data)`` (for ``NewtonKrylov``)."""

    flat: _Flat
    sampler: LayerSampler

    def __call__(self, vector, args):
        model, particles, data = args
        return _gap(self.flat, model, self.sampler, particles, data, vector)[0]


def deep_problem(flat: _Flat, model: Deep, sampler: LayerSampler, particles, data: Dataset) -> Problem:
    """The deep map as a ``fixed_point.Problem`` over the flat vector; admissible: as the sampler says
    (``LayerSampler.admissible``: every layer law normalizable; for ``mcmc_layers`` also ESS >= ``min_ess`` M);
    ``Evaluation.aux``: each layer's ``ESS / M``."""

    def evaluate(vector):
        gap, ok, ess = _gap_jit(flat, model, sampler, particles, data, vector)
        return Evaluation(gap, ess, bool(ok))

    return Problem(evaluate, admissible=None, fn=_DeepGap(flat, sampler), args=(model, particles, data))


def _run_stages(flat, model, sampler, particles, data, x, attempt: Attempt, solver, tol, max_iter, history, counter, key,
                *, stall, stage_tol):
    """``solver`` (``mft_jax.theory.fixed_point``, at the attempt's damping) through the inverse temperatures
    ``attempt.betas``; the last one to ``tol``, the others to ``max(tol, stage_tol)``. An Anderson stage that stalls
    (always watched) or finds no step is solved again by Newton-Krylov from the stage start (an Anderson iterate
    that wandered is no better a start), with the iterations left; said in ``history["actions"]``. An adaptive
    sampler (``mcmc_layers``) runs ``_adaptive_run``. Returns ``(x, result, change, reason, particles)``."""
    betas = attempt.betas
    solver = with_damping(solver, attempt.damping)
    anderson = isinstance(solver, Anderson)
    stall_rule = stall if stall is not None else Continuation().stall
    stop = (stall_rule,) if stall is not None or anderson else ()
    result, change, reason = Result.MAX_STEPS, np.inf, None
    for stage, beta in enumerate(betas):
        stage_model = model.replace(beta=beta) if len(betas) > 1 else model
        problem = deep_problem(flat, stage_model, sampler, particles, data)

        def record(it, kind, beta=beta):
            counter.iteration += 1
            if not np.isfinite(it.change):
                raise NonFiniteError(f"deep solver: the map returned NaN/inf at iteration {counter.iteration} (beta {beta:g})")
            history["change"].append(it.change)
            history["loss"].append(float(0.5 * jnp.sum(data.q[:, None] * flat.unpack(it.x + it.evaluation.gap, data).residual ** 2)))
            history["beta"].append(beta)
            history["seconds"].append(time.perf_counter() - counter.clock)
            if kind != "start":
                history["step"].append(kind)
            counter.bar.update(1)
            if counter.callback is not None:
                counter.callback(counter.iteration, it.change, beta)

        stage_tol_here = tol if stage == len(betas) - 1 else max(tol, stage_tol)
        for _ in range(30):  # a start outside the admissible region (not normalizable, too few effective particles) is shrunk towards the prior
            evaluation = problem.evaluate(x)  # evaluated once: the run starts from it
            if evaluation.admissible:
                break
            x = 0.5 * x
        else:
            evaluation = problem.evaluate(x)
        record(problem.iterate(x, evaluation), "start")
        if sampler.adaptive:
            run, particles = _adaptive_run(flat, stage_model, sampler, particles, data, x, evaluation, solver, stage_tol_here,
                                           max(max_iter - 1, 0), stop, record, history, key)
        else:
            start = x
            run = fixed_point(problem, x, solver, tol=stage_tol_here, max_steps=max(max_iter - 1, 0), evaluation=evaluation,
                              stop=stop, callback=record)
            if anderson and not run.converged and len(run.changes) < max_iter:
                history["actions"].append(
                    f"Anderson at beta = {beta:.3g} found no fixed point ({run.message}); Newton-Krylov from the stage start")
                run = fixed_point(problem, start, NewtonKrylov(getattr(solver, "damping", 0.5)), tol=stage_tol_here,
                                  max_steps=max(max_iter - len(run.changes) - 1, 0),
                                  stop=(stall_rule,) if stall is not None else (), callback=record)
        x, result, change = run.value, run.result, run.change
        if run.result is Result.MAX_STEPS:
            reason = f"{max_iter} iterations at beta = {beta:.3g} were not enough"
        elif not run.converged:
            reason = f"{run.message} at beta = {beta:.3g}"
        if not run.converged:
            break
    return x, result, change, (None if result.converged else reason), particles


class RefreshFailed(Exception):
    """A refresh could not move the particles to the layer laws at the iterate (the reason in words)."""


@uses_precision
def refresh_particles(sampler: LayerSampler, key, model: Deep, particles: tuple, data: Dataset, state: DeepState):
    """An adaptive sampler's particles moved to the layer laws at ``state``, layer by layer from the input
    (layer l's law depends on ``Phi_(l-1)``, so the forward pass is redone after each layer's refresh), and a
    ``RefreshInfo`` record. ``RefreshFailed`` (the particles untouched) if a layer law is not normalizable
    once the layers below are refreshed, or the tempering needed all of its ``max_stages``."""
    records = []
    for layer in range(1, model.hidden_layers + 1):
        fwd = _forward_jit(model, sampler, particles, data, state)
        if not float(fwd.stats[layer - 1].min_precision) > 0:
            raise RefreshFailed(f"layer {layer}'s law is not normalizable once the layers below are refreshed "
                                f"(asymptotic margin {float(fwd.stats[layer - 1].min_precision):.3g})")
        phihat = conjugate_kernel(model, data, state, layer)
        ess = float(fwd.stats[layer - 1].ess)  # of the particles about to move, at the iterate
        moved, acceptance, stages = sampler.refresh(key, particles, layer, fwd.factors[layer - 1], phihat, model.activation)
        if stages >= sampler.max_stages:
            raise RefreshFailed(f"layer {layer}'s tempering used all {sampler.max_stages} stages (ESS before "
                                f"{ess:.3g}, MALA step {float(moved.step_size):.3g}): the law is out of the chains' reach")
        particles = particles[: layer - 1] + (moved,) + particles[layer:]
        records.append((ess, acceptance, float(moved.step_size), stages))
    return particles, RefreshInfo(*map(tuple, zip(*records)))


def _adaptive_run(flat, model, sampler, particles, data, x, evaluation, solver, tol, max_steps, stop, record, history, key):
    """The engine's loop with an ``adapt`` hook: wherever a layer's ``ESS / M`` at the iterate is below
    ``sampler.refresh_ess`` the particles are refreshed there (``refresh_particles``, reported to ``record`` as a
    ``"refresh"`` iterate) and the map re-evaluated. Between refreshes the map is deterministic, so Newton's steps are
    valid; the run converges only at a state where the particles are fresh (ESS >= ``refresh_ess`` M in every layer);
    a step out of the admissible region (chains there would run away) ends it at the last admissible iterate."""
    current = [particles]

    def adapt(it):
        if min(float(e) for e in it.evaluation.aux) >= sampler.refresh_ess:
            return None
        if len(history["refreshes"]) >= sampler.max_refreshes:
            return Result.NO_PROGRESS, (f"the {sampler.name} layer sampler's particles went stale (ESS < {sampler.refresh_ess:g} M) "
                                        f"after its max_refreshes = {sampler.max_refreshes} refreshes")
        try:
            moved, info = refresh_particles(sampler, jax.random.fold_in(key, 1 + len(history["refreshes"])), model,
                                            current[0], data, flat.unpack(it.x, data))
        except RefreshFailed as failure:
            return Result.NO_PROGRESS, f"relative change {it.change:.3g} > tol {tol:g}: the refresh failed: {failure}"
        history["refreshes"].append({"iteration": len(history["change"]), **info._asdict()})
        current[0] = moved
        return deep_problem(flat, model, sampler, moved, data)

    run = fixed_point(deep_problem(flat, model, sampler, particles, data), x, solver, tol=tol, max_steps=max_steps,
                      evaluation=evaluation, stop=stop, callback=record, adapt=adapt,
                      refuse_inadmissible=f"no step keeps every layer law normalizable with ESS >= {sampler.min_ess:g} M")
    return run, current[0]


# ------------------------------------------------------------------------------------- NNGP
@uses_precision
def deep_nngp(model: Deep, x) -> list:
    """Deep NNGP kernels ``Phi_1 .. Phi_H`` on the points ``x`` (n, d) (docs/theory.md 6.5).

    Layer l+1 is ``mft_jax.theory.gp.nngp_kernel`` (closed form or Gauss-Hermite) on a factor ``F`` of
    ``Phi_l = F F^T`` with variance ``sW2``.
    """
    x = jnp.asarray(x)
    kernels = [nngp_kernel(model.activation, float(model.sw2), x, x)]
    for _ in range(2, model.hidden_layers + 1):
        values, vectors, _ = eigh_floor(kernels[-1])
        factor = vectors * jnp.sqrt(values)
        kernels.append(nngp_kernel(model.activation, float(model.sW2), factor, factor))
    return kernels


@uses_precision
def deep_nngp_predict(model: Deep, data: Dataset, x_new) -> jax.Array:
    """Deep NNGP (kernel ridge) prediction ``f(x*) = beta sa2 K(x*, X) Q r``."""
    P = data.num_points
    both = jnp.concatenate([data.x, jnp.asarray(x_new, data.x.dtype)])
    kernel = deep_nngp(model, both)[-1]
    residual = residual_from_kernel(model, data, kernel[:P, :P])
    return predict_from_kernel(model, data, residual, kernel[P:, :P])


def __getattr__(name):
    if name == "test_kernels":  # renamed in 0.2: it read as a pytest test
        warnings.warn("mft_jax.theory.deep.test_kernels is now kernels_at (kernels at new points; a test_ name reads as a pytest test); the old name goes in the next release",
                      DeprecationWarning, stacklevel=2)
        return kernels_at
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
