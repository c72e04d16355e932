"""Mean-field dynamics of a two-layer network: the whole training run as a fixed point over trajectories.

Mean-field scaling with an output scale ``alpha`` (1: the repository's mean-field networks):
``f(x, t) = alpha E_{rho_t}[a phi(w . x)]``, and each neuron ``theta = (a, w)`` moves by Langevin
(``T = 0``: gradient flow) in the field of the residual ``r_t = y - f(., t)`` on the data:

    d theta = [ (1/alpha) grad_theta sum_mu q_mu r_t(mu) . a phi(w . x_mu) - T theta / s2 ] dt + sqrt(2 T) dB

(``s2 = sa2`` for ``a``, ``sw2`` for ``w``; a weight penalty ``Gamma(w)`` adds ``- T grad Gamma(w)`` to ``w``'s drift,
tamed as the networks' Langevin tames it, ``mft_jax.train.langevin.tamed_penalty_force``), i.e. Langevin in
``V(a, w; r_t) / alpha`` plus the prior at temperature ``T``, with ``V(a, w; r) = -sum_mu q_mu r_mu . a phi(w . x_mu)``
(docs/theory.md section 4). Neurons are i.i.d. given ``r(.)``; the trajectory closes on itself, ``r_t = y - f(., t)``: the self-consistent ``r(.)`` is the fixed
point of ``G: r(.) -> neurons driven by r(.) -> their average -> y - f``.

Time: the same Euler-Maruyama step as ``mft_jax.train.joint``'s Langevin (``theta <- theta - h (grad U + T theta /
s2) + sqrt(2 h T) xi`` with ``U = N L``): there ``grad_{a_i} N L = -S(w_i)``, ``S(w) = sum_mu q_mu r_mu phi(w.x_mu)``,
exactly this neuron's force at ``alpha = 1``, so the theory's time ``t_k = k h`` is the networks' step index times
their step size. A standard-scaling network of width N (``f = N^-1/2 sum a phi``, ``U = L``) is the case
``alpha = sqrt(N)`` (its per-neuron gradient is ``-S / sqrt(N)``), the lazy / NTK regime as ``alpha`` grows.

Discretisation (``solve_dynamics``): ``r`` on the grid ``t_k = k h``, ``k = 0..K-1`` (step k uses ``r_k``, as a
network's step k uses its current residual); M particles from the prior (``init="prior"``), antithetic pairs
``(a, w), (-a, w)`` (``"antithetic"``: ``f(., 0) = 0`` exactly) or a Gauss-Hermite rule in ``(a, w)`` with weights
(``"quadrature"``: at ``T = 0`` a deterministic discretisation of the mean-field PDE). Common random numbers: the
initial draws and the noise of step k (``fold_in(noise_key, k)``) are fixed across fixed-point iterations, so ``G``
is a deterministic map of ``r_0..r_{K-1}`` and the iteration converges to ``tol`` (no noise floor). Its fixed
point is exactly the trajectory of the M-particle interacting system, i.e. of one mean-field network of width
``M`` trained by Langevin with that noise (``G_k`` depends on ``r_0..r_{k-1}`` only: the map is causal); it
differs from the ``M -> infinity`` trajectory by the sampling noise, ``O(M^-1/2)`` in ``f`` (estimate it by
repeating with independent keys), which is the method's floor. Because ``G`` is causal, plain iteration
(``Damped(1.0)``) makes steps ``0..n-1`` exact after ``n`` sweeps and converges like ``(Lambda t)^n / n!``; long
runs are split into ``windows`` solved one after another, each starting from the particles the converged
windows before it left (by default windows of at most 100 steps; one that does not converge within ``max_iter`` is
halved). An iterate that drives the particles to overflow is held finite from its first bad step (the map is causal,
so the fixed point is unchanged).

Minibatches (``batch_size = b``): step k's force uses the batch ``B_k`` only, ``S_k(w) = sum_{mu in B_k} q_B(mu) r_k(mu)
phi(w.x_mu)`` with ``q_B = q / sum_{B_k} q`` (the network's loss on the batch). All neurons see the same batch, so the
sequence does not average out: this is the theory of one batch sequence, drawn as ``mft_jax.train.joint.train`` draws a
seed's (``batch_sequence``; ``batch_key`` defaults to seed 0's for the same key) and fixed across iterations.

Time-discretisation error: Euler-Maruyama is weakly first order, ``O(h)``. Measured for the linear activation,
where ``linear_moments`` gives the discrete dynamics exactly (tests/test_dynamics.py::test_time_step_error_is_first_order):
halving ``h`` halves the loss-curve error.

Closed forms:

- ``linear_moments``: for ``phi(z) = z`` the network is ``f(x) = alpha E[a w^T] x`` and the second moments of
  ``(a, w)`` close: the Euler-Maruyama step is ``z' = B_k z + sqrt(2 h T) xi`` with ``z = (a, w)``,
  ``B_k = [[(1 - h T/sa2) I, (h/alpha) R_k], [(h/alpha) R_k^T, (1 - h T/sw2) I]]``, ``R_k = sum_mu q_mu r_k(mu) x_mu^T``,
  so ``Sigma_{k+1} = B_k Sigma_k B_k^T + 2 h T I`` with ``Sigma_0 = diag(sa2 I_C, sw2 I_d)`` (the ODE
  ``dM/dt = (R W + A R)/alpha - T (1/sa2 + 1/sw2) M`` etc. as ``h -> 0``).
- ``kernel_flow``: as ``alpha -> infinity`` (lazy limit) with ``f(., 0) = 0`` the neurons move ``O(1/alpha)`` and
  ``r`` follows kernel gradient flow with the neural tangent kernel of the initial law,
  ``Theta(x, x') = E[phi(w.x) phi(w.x') + |a|^2 phi'(w.x) phi'(w.x') x.x']`` (at ``T = 0``):
  ``r_k = (I - h Theta Q)^k y -> exp(-t Theta Q) y``.
"""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from mft_jax.data import Dataset, check_batch_size, gauss_hermite_normal, minibatch, minibatch_indices
from mft_jax.errors import ConfigError, NoFixedPointError
from mft_jax.io import read_npz, save_npz
from mft_jax.model import TwoLayer
from mft_jax.neurons import NeuronLaw
from mft_jax.theory.fixed_point import Anderson, Damped, Evaluation, Iterate, Problem, Result, fixed_point
from mft_jax.train.joint import batch_key as network_batch_key
from mft_jax.train.langevin import tamed_penalty_force
from mft_jax.train.loop import changed_keys, data_fingerprint, fingerprint, library_versions

HIGHEST = jax.lax.Precision.HIGHEST
INITS = ("prior", "antithetic", "quadrature")
MAX_HALVINGS = 6  # windows="auto": a window is halved at most this many times
WINDOW_STEPS = 100  # default window length: plain iteration converges in ~10 sweeps per window (measured on clover)


class Particles(NamedTuple):
    """M neurons ``a`` (M, C), ``w`` (M, d) with normalised weights ``p`` (M,) (equal for Monte-Carlo draws)."""

    a: jax.Array
    w: jax.Array
    p: jax.Array

    def law(self) -> NeuronLaw:
        return NeuronLaw(self.w, jnp.log(self.p), self.a)


class Dynamics(NamedTuple):
    """The static settings of one run (a pytree of numbers: one compilation for every value)."""

    step_size: float
    temperature: float
    output_scale: float


class DynamicsSolution(NamedTuple):
    """The self-consistent training run.

    ``times`` (K+1,) ``= k h``; ``residual`` (K+1, P, C): ``r_k = y - f(x, t_k)`` on the data; ``loss`` (K+1,):
    ``1/2 sum_mu q_mu |r_k(mu)|^2``; ``test_loss`` (K+1,) on ``test`` data (None without); ``saved_times`` (S+1,)
    and ``laws``: the neuron law (``NeuronLaw`` with readouts) at each, the first the initial law;
    ``converged``, ``result`` (``fixed_point.Result``), ``message``, ``iterations`` (sweeps in all) and ``history``
    (per iteration: ``change``, ``window`` (its last step), ``kind``) as the static ``Solution``; ``batches`` (K, b):
    the minibatch of each step (indices into the data; None: full batch).
    """

    times: np.ndarray
    residual: np.ndarray
    loss: np.ndarray
    test_loss: np.ndarray | None
    saved_times: np.ndarray
    laws: tuple
    model: TwoLayer
    data: Dataset
    converged: bool
    result: Result
    message: str
    iterations: int
    history: dict
    settings: dict
    batches: np.ndarray | None = None


# ------------------------------------------------------------------------------------------ the particle step
def _derivative(activation):
    return lambda z: jax.jvp(activation, (z,), (jnp.ones_like(z),))[1]


def _forces(model: TwoLayer, dynamics: Dynamics, a, w, data: Dataset, residual):
    """``-(1/alpha) grad V`` per particle: ``(S(w), sum_mu q_mu (r_mu . a) phi'(w.x_mu) x_mu) / alpha``."""
    z = jnp.matmul(w, data.x.T, precision=HIGHEST)  # (M, P)
    weighted = data.q[:, None] * residual  # (P, C)
    force_a = jnp.matmul(model.activation(z), weighted, precision=HIGHEST)
    coupling = jnp.matmul(a, weighted.T, precision=HIGHEST) * _derivative(model.activation)(z)  # (M, P)
    force_w = jnp.matmul(coupling, data.x, precision=HIGHEST)
    return force_a / dynamics.output_scale, force_w / dynamics.output_scale


def network_output(model: TwoLayer, dynamics: Dynamics, particles: Particles, x) -> jax.Array:
    """``f(x) = alpha sum_i p_i a_i phi(w_i . x)``: (n, C)."""
    features = model.activation(jnp.matmul(particles.w, x.T, precision=HIGHEST))  # (M, n)
    return dynamics.output_scale * jnp.matmul(features.T, particles.p[:, None] * particles.a, precision=HIGHEST)


def langevin_step(model: TwoLayer, dynamics: Dynamics, particles: Particles, data: Dataset, residual, key) -> Particles:
    """One Euler-Maruyama step of every particle: ``theta + h (force - T theta / s2) + sqrt(2 h T) xi``; with a weight
    penalty ``Gamma`` the networks' tamed force ``T grad Gamma / (1 + h |T grad Gamma|)`` is also subtracted from ``w``'s
    drift (``mft_jax.train.langevin.tamed_penalty_force``, the one both steps call)."""
    h, temperature = dynamics.step_size, dynamics.temperature
    force_a, force_w = _forces(model, dynamics, particles.a, particles.w, data, residual)
    if model.penalty is not None:
        force_w = force_w - tamed_penalty_force(model.penalty, particles.w, temperature, h)
    outputs = particles.a.shape[1]
    noise = jax.random.normal(key, (particles.a.shape[0], outputs + particles.w.shape[1]), particles.a.dtype)
    noise_a, noise_w = noise[:, :outputs], noise[:, outputs:]
    scale = jnp.sqrt(2.0 * h * temperature)
    a = particles.a + h * (force_a - temperature * particles.a / model.sa2) + scale * noise_a
    w = particles.w + h * (force_w - temperature * particles.w / model.sw2) + scale * noise_w
    return particles._replace(a=a, w=w)


def _driven_step(model, dynamics, particles, data, residual, key, batch):
    """``langevin_step`` on the whole data (``batch`` None) or on the minibatch ``batch`` (indices): the residual and
    the data restricted to it, the weights renormalised (``mft_jax.data.minibatch``), as the network's batch loss."""
    if batch is None:
        return langevin_step(model, dynamics, particles, data, residual, key)
    return langevin_step(model, dynamics, particles, minibatch(data, batch), residual[batch], key)


@functools.partial(jax.jit, static_argnames=("num_points", "batch_size", "steps"))
def _batch_sequence(key, num_points: int, batch_size: int, steps: int):
    return jax.vmap(lambda k: minibatch_indices(jax.random.fold_in(key, k), num_points, batch_size))(jnp.arange(steps))


def batch_sequence(key: jax.Array, num_points: int, batch_size: int, steps: int) -> np.ndarray:
    """The minibatches of steps ``0..steps-1`` (steps, batch_size): step k's is
    ``minibatch_indices(fold_in(key, k), num_points, batch_size)``, the rule of ``mft_jax.train.joint.train`` on a
    ``Dataset``, so with ``key = mft_jax.train.joint.batch_key(train_key, s)`` these are network seed s's batches."""
    return np.asarray(_batch_sequence(key, int(num_points), int(batch_size), int(steps)))


@jax.jit
def _window(model, dynamics, particles, data, residuals, first_step, noise_key, batches=None):
    """Drive ``particles`` with ``residuals`` (L, P, C) from step ``first_step`` (on the minibatches ``batches``
    (L, b), None: full batch): ``f`` at each step before it moves (L, P, C) and the particles after the window."""

    def step(state, inputs):
        residual, k, batch = inputs
        f = network_output(model, dynamics, state, data.x)
        return _driven_step(model, dynamics, state, data, residual, jax.random.fold_in(noise_key, k), batch), f

    steps = first_step + jnp.arange(residuals.shape[0])
    particles, f = jax.lax.scan(step, particles, (residuals, steps, batches))
    return f, particles


@functools.partial(jax.jit, static_argnames=("save_every",))
def _trajectory(model, dynamics, particles, data, test_x, residuals, noise_key, save_every: int, batches=None):
    """The whole run driven by ``residuals`` (K, P, C) (on the minibatches ``batches`` (K, b), None: full batch):
    ``f`` on the data and on ``test_x`` at every step (K, ., C), the particles every ``save_every`` steps (stacked,
    the initial ones not included) and at the end."""

    def step(state, inputs):
        residual, k, batch = inputs
        f = network_output(model, dynamics, state, data.x)
        f_test = network_output(model, dynamics, state, test_x)
        step_key = jax.random.fold_in(noise_key, k)
        return _driven_step(model, dynamics, state, data, residual, step_key, batch), (f, f_test)

    def block(state, inputs):
        state, outputs = jax.lax.scan(step, state, inputs)
        return state, (outputs, state)

    total = residuals.shape[0]
    steps = jnp.arange(total)
    shaped = jax.tree.map(lambda v: v.reshape((total // save_every, save_every) + v.shape[1:]), (residuals, steps, batches))
    final, ((f, f_test), saved) = jax.lax.scan(block, particles, shaped)
    f, f_test = (v.reshape((total,) + v.shape[2:]) for v in (f, f_test))
    end = network_output(model, dynamics, final, data.x), network_output(model, dynamics, final, test_x)
    return f, f_test, saved, end


# ------------------------------------------------------------------------------------------ initial law
def initial_particles(key, model: TwoLayer, num_neurons: int, input_dim: int, output_dim: int, init: str = "prior",
                      dtype=None) -> Particles:
    """The initial law (the prior) as ``num_neurons`` particles: i.i.d. draws, antithetic pairs, or a quadrature.

    ``"quadrature"``: the tensor Gauss-Hermite rule with ``n = round(num_neurons^(1/(C+d)))`` nodes per coordinate
    of ``(a, w)`` (``n^(C+d)`` weighted particles; exact for polynomials of degree ``<= 2n - 1`` per coordinate).
    """
    dtype = dtype or jnp.result_type(float)
    if init == "quadrature":
        dim = input_dim + output_dim
        nodes = max(1, int(round(num_neurons ** (1.0 / dim))))
        points, weights = gauss_hermite_normal(nodes, dim)
        a = math.sqrt(model.sa2) * points[:, :output_dim]
        w = math.sqrt(model.sw2) * points[:, output_dim:]
        return Particles(jnp.asarray(a, dtype), jnp.asarray(w, dtype), jnp.asarray(weights, dtype))
    half = num_neurons // 2 if init == "antithetic" else num_neurons
    key_a, key_w = jax.random.split(key)
    a = jnp.sqrt(model.sa2) * jax.random.normal(key_a, (half, output_dim), dtype)
    w = jnp.sqrt(model.sw2) * jax.random.normal(key_w, (half, input_dim), dtype)
    if init == "antithetic":
        a, w = jnp.concatenate([a, -a]), jnp.concatenate([w, w])
    return Particles(a, w, jnp.full((a.shape[0],), 1.0 / a.shape[0], dtype))


# ------------------------------------------------------------------------------------------ checkpoints
def _save_checkpoint(path: Path, run: dict, solved, particles: Particles, history: dict, queue: list, verdicts: list,
                     diverged: list) -> None:
    """The windows solved so far (``r`` on steps ``0..len(solved)-1``), the particles at their end, the engine's history and
    the windows still to solve, atomically (``mft_jax.io.save_npz``), with the run's fingerprint."""
    save_npz(path, fingerprint=np.asarray(json.dumps(run)), solved=np.asarray(solved), a=particles.a, w=particles.w,
             p=particles.p, change=np.asarray(history["change"], dtype=float), window=np.asarray(history["window"], dtype=int),
             notes=np.asarray(json.dumps({"kind": history["kind"], "queue": queue, "verdicts": verdicts, "diverged": diverged})))


def _load_checkpoint(path: Path, run: dict, start: Particles, shape: tuple):
    """``(solved, particles, history, queue, verdicts, diverged)`` from a checkpoint of the same run, else ``ConfigError``."""
    archive = read_npz(path, "solve_dynamics checkpoint")
    needed = {"fingerprint", "solved", "a", "w", "p", "change", "window", "notes"}
    if not needed <= set(archive):
        raise ConfigError(f"solve_dynamics checkpoint {str(path)!r} lacks {sorted(needed - set(archive))}: not a checkpoint of solve_dynamics")
    changed = changed_keys(json.loads(str(archive["fingerprint"])), run)
    if changed:
        raise ConfigError(f"solve_dynamics checkpoint {str(path)!r} was written by a different run: {'; '.join(changed)}. "
                          "Resuming needs the same arguments; give another checkpoint path (or delete this one) for a new run")
    particles = Particles(*(jnp.asarray(archive[k], start.a.dtype) for k in ("a", "w", "p")))
    if archive["solved"].shape[1:] != shape or particles.a.shape != start.a.shape or particles.w.shape != start.w.shape:
        raise ConfigError(f"solve_dynamics checkpoint {str(path)!r} holds arrays of other shapes than this run's; it is corrupt")
    notes = json.loads(str(archive["notes"]))
    history = {"change": [float(v) for v in archive["change"]], "window": [int(v) for v in archive["window"]], "kind": notes["kind"]}
    queue = [tuple(entry) for entry in notes["queue"]]
    return archive["solved"], particles, history, queue, notes["verdicts"], notes["diverged"]


# ------------------------------------------------------------------------------------------ the solver
def _check(name, value, kind, low=None, strict=True, allowed=""):
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if ok and low is not None:
        ok = value > low if strict else value >= low
    if ok and isinstance(value, float):
        ok = math.isfinite(value)
    if not ok:
        bound = "" if low is None else f" {'>' if strict else '>='} {low}"
        raise ConfigError(f"{name} must be {'an integer' if kind is int else 'a number'}{bound}{allowed}, got {value!r}")


def _check_batches(batch_size, batch_key, key, data: Dataset):
    """The batch sequence's key (``mft_jax.train.joint.batch_key(key, 0)`` by default); ``ConfigError`` for a batch
    size that is not an integer in [1, P] or a ``batch_key`` without ``batch_size``."""
    if batch_size is None:
        if batch_key is not None:
            raise ConfigError("batch_key draws the minibatch sequence: it needs batch_size (an integer in [1, P])")
        return None
    check_batch_size(batch_size, data.num_points)
    return network_batch_key(key, 0) if batch_key is None else batch_key


def _window_ends(steps: int, windows) -> list[int]:
    if windows is None:
        windows = math.ceil(steps / WINDOW_STEPS)
    if windows == "auto":
        return [steps]
    if isinstance(windows, (int, np.integer)) and not isinstance(windows, bool):
        if not 1 <= windows <= steps:
            raise ConfigError(f"windows must be an integer in [1, steps = {steps}], 'auto' or increasing step counts, got {windows!r}")
        length = math.ceil(steps / windows)
        return sorted({min(steps, length * (j + 1)) for j in range(windows)})
    ends = [int(v) for v in windows] if isinstance(windows, (list, tuple)) else None
    if not ends or any(b <= a for a, b in zip([0] + ends, ends)) or ends[-1] != steps:
        raise ConfigError(f"windows must be an integer, 'auto', or increasing step counts ending at steps = {steps}; got {windows!r}")
    return ends


def solve_dynamics(
    data: Dataset,
    model: TwoLayer,
    *,
    key: jax.Array,
    steps: int,
    step_size: float,
    temperature: float | None = None,
    num_neurons: int = 4096,
    init: str = "prior",
    output_scale: float = 1.0,
    save_every: int | None = None,
    test: Dataset | None = None,
    solver: Any = None,
    windows: int | str | Sequence[int] | None = None,
    tol: float = 1e-5,
    max_iter: int = 100,
    throw: bool = False,
    progress: bool = False,
    checkpoint: str | os.PathLike | None = None,
    batch_size: int | None = None,
    batch_key: jax.Array | None = None,
) -> DynamicsSolution:
    """The self-consistent trajectory ``r(t_0..t_K)`` of mean-field training from the prior (module docstring).

    ``steps`` K of size ``step_size`` h (times ``t_k = k h``, the networks' step index times their step size);
    ``temperature`` T (default ``1 / model.beta``; 0: gradient flow); ``num_neurons`` M particles drawn as ``init``;
    ``output_scale`` alpha (``sqrt(N)``: a standard-scaling network of width N); ``save_every``: keep the neuron law
    every so many steps (must divide ``steps``; default ``steps``: the initial and final laws); ``test``: a held-out
    ``Dataset`` whose loss curve is recorded. ``solver``: a ``fixed_point`` solver object over the flattened
    window of the trajectory (default ``Damped(1.0)``: plain iteration, exact in finitely many sweeps for this causal
    map; ``Anderson(m, damping)`` also works); ``windows``: how many equal windows of time to solve one after the
    other, or their last steps; ``None`` (default): windows of at most ``WINDOW_STEPS`` = 100 steps, and ``"auto"``: the
    whole run, each halving a window that does not converge in ``max_iter`` sweeps, at most 6 times.
    Convergence: ``|G(r) - r|_q <= tol |G(r)|_q`` on every window.
    ``throw=True`` raises ``NoFixedPointError`` instead of returning an unconverged solution.
    ``checkpoint``: a file path (``.npz``); after every converged window the trajectory solved so far and the particles
    at its end are written there atomically, and a call with the same arguments that finds the file resumes after its
    last window, bit-identical to an uninterrupted run (the file is kept at the end: a rerun then only recomputes the
    final pass). A checkpoint written with other arguments (data, model, key, step, windows, solver, ...) is refused
    with ``ConfigError`` naming what differs.

    ``batch_size`` b (None: full batch): minibatch gradient noise, as in a network trained on minibatches of b
    distinct points. Step k's force uses the residual on the batch ``B_k`` only, with the weights restricted to it and
    renormalised (``q_B(mu) = q_mu / sum_{nu in B_k} q_nu``): ``S_k(w) = sum_{mu in B_k} q_B(mu) r_k(mu) phi(w.x_mu)``.
    Every neuron of a network sees the same batch, so the batch sequence does not average out as M grows: the
    theory is that of the given sequence, a random trajectory (average over ``batch_key`` for the mean over
    sequences). ``B_k = minibatch_indices(fold_in(batch_key, k), P, b)`` (``batch_sequence``), drawn once (common
    random numbers: the map stays deterministic and causal) and returned as ``batches``. ``batch_key`` defaults to
    ``mft_jax.train.joint.batch_key(key, 0)``: the theory with key k runs on the batch sequence of seed 0 of
    ``train(k, ..., data, ..., batch_size=b)``; seed s's is ``batch_key=batch_key(k, s)``. ``batch_size = P`` is the
    full-batch run, bit for bit.
    """
    _check("steps", steps, (int, np.integer), 0)
    _check("step_size", step_size, (int, float), 0.0)
    temperature = model.temperature if temperature is None else temperature
    _check("temperature", temperature, (int, float), 0.0, strict=False, allowed=" (0: gradient flow)")
    _check("num_neurons", num_neurons, (int, np.integer), 1 if init == "antithetic" else 0)
    _check("output_scale", output_scale, (int, float), 0.0)
    _check("tol", tol, (int, float), 0.0)
    _check("max_iter", max_iter, (int, np.integer), 0)
    if init not in INITS:
        raise ConfigError(f"init must be one of {INITS}, got {init!r}")
    if init == "antithetic" and num_neurons % 2:
        raise ConfigError(f"init='antithetic' pairs particles: num_neurons must be even, got {num_neurons}")
    if model.scaling != "mean_field":
        raise ConfigError("solve_dynamics takes a mean-field model; for standard scaling at width N use output_scale = sqrt(N)")
    if test is not None and (not isinstance(test, Dataset) or test.input_dim != data.input_dim or test.output_dim != data.output_dim):
        raise ConfigError(f"test must be a Dataset with the data's input and output dimensions ({data.input_dim}, {data.output_dim})")
    save_every = steps if save_every is None else save_every
    _check("save_every", save_every, (int, np.integer), 0)
    if steps % save_every:
        raise ConfigError(f"save_every = {save_every} must divide steps = {steps}")
    ends = _window_ends(steps, windows)
    batch_key = _check_batches(batch_size, batch_key, key, data)
    solver = Damped(1.0) if solver is None else solver
    if not (hasattr(solver, "init") and hasattr(solver, "step")):
        raise ConfigError(f"solver must be a fixed-point solver object (Damped, Anderson, ...), got {solver!r}")

    settings = {"steps": steps, "step_size": float(step_size), "temperature": float(temperature), "num_neurons": int(num_neurons),
                "init": init, "output_scale": float(output_scale), "save_every": save_every, "tol": tol, "max_iter": max_iter,
                "windows": windows if windows is None or isinstance(windows, (str, int)) else list(windows), "solver": repr(solver),
                "batch_size": None if batch_size is None else int(batch_size)}
    dtype = data.y.dtype
    init_key, noise_key = jax.random.split(key)
    dynamics = Dynamics(float(step_size), float(temperature), float(output_scale))
    start = initial_particles(init_key, model, num_neurons, data.input_dim, data.output_dim, init, dtype)
    batches = None if batch_size is None else batch_sequence(batch_key, data.num_points, batch_size, steps)
    window_batches = (lambda first, last: None) if batches is None else (lambda first, last: jnp.asarray(batches[first:last]))
    y = np.asarray(data.y, dtype=float)
    q = np.asarray(data.q, dtype=float)
    history = {"change": [], "window": [], "kind": []}
    solved = np.zeros((0,) + y.shape)
    particles = start
    result, message, verdicts, diverged = Result.SUCCESSFUL, "", [], []

    queue = [(0 if i == 0 else ends[i - 1], end, 0) for i, end in enumerate(ends)]
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        run_print = fingerprint(solver="solve_dynamics", model=model.settings(), data=data_fingerprint(data), key=key,
                                test=None if test is None else data_fingerprint(test), settings=settings, versions=library_versions(),
                                **({} if batch_size is None else {"batch_key": batch_key}))
        if checkpoint.exists():
            solved, particles, history, queue, verdicts, diverged = _load_checkpoint(checkpoint, run_print, start, y.shape)
    bar = tqdm(total=steps, initial=len(solved), disable=not progress, desc="solve_dynamics", leave=False)
    while queue:
        first, last, depth = queue.pop(0)
        here = particles

        def evaluate(point, first=first, last=last, here=here):
            f, _ = _window(model, dynamics, here, data, jnp.asarray(point, dtype), first, noise_key, window_batches(first, last))
            image = y[None] - np.asarray(f, dtype=float)
            finite = np.isfinite(image).reshape(len(image), -1).all(axis=1)
            if not finite.all():  # an iterate that drives the particles to overflow: the map is kept finite by holding
                # the last finite value from the first bad step on. G is causal, so this changes nothing up to that step
                # and the fixed point (a finite trajectory) is the same; the iteration goes on making early steps exact.
                bad = int(np.argmin(finite))
                image[bad:] = image[bad - 1] if bad else y
                diverged.append(first + bad)
            return Evaluation(image - point)

        def record(it: Iterate, kind: str, last=last):
            history["change"].append(it.change)
            history["window"].append(last)
            history["kind"].append(kind)

        guess_from = solved[-1] if len(solved) else y
        guess = np.broadcast_to(guess_from, (last - first,) + y.shape).copy()
        run = fixed_point(Problem(evaluate, weights=q[:, None]), guess, solver, tol=tol, max_steps=max_iter, callback=record)
        if not run.converged and (windows is None or windows == "auto") and depth < MAX_HALVINGS and last - first > 1:
            middle = (first + last) // 2
            queue[:0] = [(first, middle, depth + 1), (middle, last, depth + 1)]
            verdicts.append(f"window {first}..{last} halved ({run.message})")
            continue
        if not run.converged:
            result = run.result
            message = f"window of steps {first}..{last}: {run.message}"
            solved = np.concatenate([solved, run.value])
            queue = []
            break
        solved = np.concatenate([solved, run.value])
        _, particles = _window(model, dynamics, here, data, jnp.asarray(run.value, dtype), first, noise_key, window_batches(first, last))
        if checkpoint is not None:
            _save_checkpoint(checkpoint, run_print, solved, particles, history, queue, verdicts, diverged)
        bar.update(last - first)
    bar.close()
    if len(solved) < steps:  # a failed window: the rest of the run is left unsolved (driven by its last residual)
        solved = np.concatenate([solved, np.broadcast_to(solved[-1], (steps - len(solved),) + y.shape)])

    test_x = data.x if test is None else test.x
    f, f_test, saved, end = _trajectory(model, dynamics, start, data, test_x, jnp.asarray(solved, dtype), noise_key, save_every,
                                        window_batches(0, steps))
    f = np.concatenate([np.asarray(f, dtype=float), np.asarray(end[0], dtype=float)[None]])
    residual = y[None] - f
    loss = 0.5 * np.einsum("p,kpc->k", q, residual**2)
    test_loss = None
    if test is not None:
        f_test = np.concatenate([np.asarray(f_test, dtype=float), np.asarray(end[1], dtype=float)[None]])
        test_loss = 0.5 * np.einsum("p,kpc->k", np.asarray(test.q, dtype=float), (np.asarray(test.y, dtype=float)[None] - f_test) ** 2)
    laws = (start.law(),) + tuple(Particles(saved.a[j], saved.w[j], saved.p[j]).law() for j in range(saved.a.shape[0]))
    converged = result.converged
    sweeps = len(history["change"])
    if converged:
        message = (f"converged: every window of the trajectory ({len(ends)} planned) to relative change <= tol {tol:g} "
                   f"in {sweeps} sweeps")
    else:
        message = f"no self-consistent trajectory: {message}. Hint: more windows (windows='auto'), a larger max_iter or a smaller step_size"
    if verdicts:
        message += ". " + "; ".join(verdicts)
    if diverged:
        message += (f". {len(diverged)} iterate(s) drove the particles to overflow (first at step {diverged[0]}); "
                    "held finite (see solve_dynamics)")
    if not np.isfinite(residual).all():
        converged, result = False, Result.NO_PROGRESS
        message = "the particles diverged (NaN/inf) along the final trajectory: lower step_size. " + message
    if throw and not converged:
        raise NoFixedPointError(message)
    settings["num_neurons"] = int(start.a.shape[0])
    times = step_size * np.arange(steps + 1)
    return DynamicsSolution(times, residual, loss, test_loss, times[::save_every], laws, model, data, converged,
                            result, message, sweeps, history, settings, batches)


def simulate(data: Dataset, model: TwoLayer, *, key, steps: int, step_size: float, temperature: float | None = None,
             num_neurons: int = 4096, init: str = "prior", output_scale: float = 1.0, batch_size: int | None = None,
             batch_key: jax.Array | None = None) -> np.ndarray:
    """The M-particle interacting system stepped forward directly (each step's residual from the particles
    themselves): ``r`` (K+1, P, C). Same keys (and minibatches: ``batch_size``, ``batch_key`` as ``solve_dynamics``)
    as ``solve_dynamics``, so its fixed point must equal this."""
    temperature = model.temperature if temperature is None else temperature
    batch_key = _check_batches(batch_size, batch_key, key, data)
    init_key, noise_key = jax.random.split(key)
    dynamics = Dynamics(float(step_size), float(temperature), float(output_scale))
    start = initial_particles(init_key, model, num_neurons, data.input_dim, data.output_dim, init, data.y.dtype)
    batches = None if batch_size is None else jnp.asarray(batch_sequence(batch_key, data.num_points, batch_size, steps))
    return np.asarray(_simulate(model, dynamics, start, data, noise_key, jnp.arange(steps), batches), dtype=float)


@jax.jit
def _simulate(model, dynamics, particles, data, noise_key, steps, batches):
    def step(state, inputs):
        k, batch = inputs
        r = data.y - network_output(model, dynamics, state, data.x)
        return _driven_step(model, dynamics, state, data, r, jax.random.fold_in(noise_key, k), batch), r

    final, r = jax.lax.scan(step, particles, (steps, batches))
    return jnp.concatenate([r, (data.y - network_output(model, dynamics, final, data.x))[None]])


# ------------------------------------------------------------------------------------------ closed forms
class Moments(NamedTuple):
    """The linear network's run: ``residual`` (K+1, P, C), ``loss`` (K+1,), ``readout`` ``M_k = E[a w^T]`` (K+1, C, d)."""

    residual: np.ndarray
    loss: np.ndarray
    readout: np.ndarray


def linear_moments(data: Dataset, model: TwoLayer, *, steps: int, step_size: float, temperature: float | None = None,
                   output_scale: float = 1.0, batches=None) -> Moments:
    """Exact second moments of the Euler-Maruyama particle dynamics for ``phi(z) = z`` (module docstring):
    ``Sigma_{k+1} = B_k Sigma_k B_k^T + 2 h T I``, ``f_k(x) = alpha M_k x``, ``M_k`` the (a, w) block of ``Sigma_k``.

    Deterministic (no particles): the ``M -> infinity`` limit of ``solve_dynamics`` at the same step; as ``h -> 0``
    the moment ODEs (``dM/dt = (R W + A R)/alpha - T (1/sa2 + 1/sw2) M``, ``dA/dt = (R M^T + M R^T)/alpha - 2 T A /
    sa2 + 2 T``, ``dW/dt = (R^T M + M^T R)/alpha - 2 T W / sw2 + 2 T``).

    ``batches`` (K, b): the minibatch of each step (``DynamicsSolution.batches``): ``R_k`` is then the sum over
    ``B_k`` with the renormalised weights ``q_B`` (``solve_dynamics``'s ``batch_size``); the loss stays on all the data.
    """
    if model.activation.name != "linear":
        raise ConfigError(f"linear_moments is the closed form of the linear activation; this model's is {model.activation.name!r}")
    temperature = model.temperature if temperature is None else float(temperature)
    x, q, y = (np.asarray(v, dtype=float) for v in data)
    c, d = y.shape[1], x.shape[1]
    h, alpha = float(step_size), float(output_scale)
    sigma = np.diag(np.concatenate([np.full(c, model.sa2), np.full(d, model.sw2)]))
    decay = np.diag(np.concatenate([np.full(c, 1 - h * temperature / model.sa2), np.full(d, 1 - h * temperature / model.sw2)]))
    if batches is not None:
        batches = np.asarray(batches)
        if batches.ndim != 2 or len(batches) != steps or not np.issubdtype(batches.dtype, np.integer) \
                or batches.min() < 0 or batches.max() >= len(q):
            raise ConfigError(f"batches must be (steps = {steps}, b) indices into the {len(q)} data points, got shape {batches.shape}")
    residuals, readouts = [], []
    for k in range(steps + 1):
        readout = sigma[:c, c:]
        r = y - alpha * x @ readout.T
        residuals.append(r)
        readouts.append(readout)
        if batches is None or k == steps:
            coupling = (q[:, None] * r).T @ x  # R (C, d)
        else:
            batch = batches[k]
            coupling = (q[batch, None] * q.sum() / q[batch].sum() * r[batch]).T @ x[batch]
        b = decay.copy()
        b[:c, c:] += h / alpha * coupling
        b[c:, :c] += h / alpha * coupling.T
        sigma = b @ sigma @ b.T + 2 * h * temperature * np.eye(c + d)
    residual = np.stack(residuals)
    return Moments(residual, 0.5 * np.einsum("p,kpc->k", q, residual**2), np.stack(readouts))


def tangent_kernel(model: TwoLayer, law: NeuronLaw, x, x2=None) -> np.ndarray:
    """``Theta(x, x') = E[phi(w.x) phi(w.x') + |a|^2 phi'(w.x) phi'(w.x') x.x']`` under ``law`` (with readouts)."""
    x2 = x if x2 is None else x2
    if law.a is None:
        raise ConfigError("tangent_kernel needs a law with readouts a (e.g. DynamicsSolution.laws[0])")
    p = law.weights()
    z1, z2 = jnp.matmul(law.w, x.T, precision=HIGHEST), jnp.matmul(law.w, x2.T, precision=HIGHEST)
    phi, dphi = model.activation, _derivative(model.activation)
    features = jnp.einsum("i,ip,iq->pq", p, phi(z1), phi(z2), precision=HIGHEST)
    norm = jnp.sum(law.a**2, axis=1)
    gradients = jnp.einsum("i,ip,iq->pq", p * norm, dphi(z1), dphi(z2), precision=HIGHEST)
    return np.asarray(features + gradients * jnp.matmul(x, x2.T, precision=HIGHEST), dtype=float)


def kernel_flow(kernel, data: Dataset, times, *, step_size: float | None = None) -> np.ndarray:
    """Kernel gradient flow on the data from ``f = 0``: ``r(t) = exp(-t Theta Q) y`` ((K, P, C) at ``times``), or
    its Euler discretisation ``(I - h Theta Q)^(t/h) y`` with ``step_size = h`` (what the particles' step gives)."""
    theta, q, y = np.asarray(kernel, dtype=float), np.asarray(data.q, dtype=float), np.asarray(data.y, dtype=float)
    root = np.sqrt(q)
    values, vectors = np.linalg.eigh(root[:, None] * theta * root[None, :])  # Q^1/2 Theta Q^1/2
    values = np.maximum(values, 0.0)
    times = np.asarray(times, dtype=float)
    if step_size is None:
        factors = np.exp(-np.outer(times, values))
    else:
        factors = (1.0 - step_size * values)[None, :] ** np.round(times / step_size)[:, None]
    coefficients = vectors.T @ (root[:, None] * y)  # in Q^1/2 coordinates: r = Q^-1/2 V exp(-t L) V^T Q^1/2 y
    return np.einsum("pj,kj,jc->kpc", vectors / root[:, None], factors, coefficients)
