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
(``Phihat_H = -beta^2 sa2 Q r r^T Q``). Layer laws (``LayerSampler``): ``gaussian_layers()``
(exact for the linear activation), ``importance_layers(M)`` (fixed antithetic, exactly whitened
prior draws reweighted by the tilt: common random numbers, so the map is deterministic) and
``grid_layers(...)`` (layer 1 on a grid in weight space for d <= 3, the hidden layers by
importance). The free energy, predictions at new inputs and the deep NNGP baseline follow
section 6.2-6.5.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.activations import Activation, get_activation
from mft_jax.data import Dataset
from mft_jax.errors import ConfigError, NoFixedPointError, NonFiniteError, NonNormalizableError
from mft_jax.fixed_point import Anderson, Damped, Evaluation, NewtonKrylov, Problem, Result, Stall, fixed_point
from mft_jax.gp import nngp_kernel
from mft_jax.resources import memory_limit, require

JITTER = 1e-12  # relative diagonal shift that keeps the Cholesky factor of a (numerically) singular Phi defined (float64; float32 uses 32 eps)
EIG_FLOOR = 1e-10  # eigenvalues of Phi below this fraction of the largest count as zero (pseudo-inverse)
HERMITE_NODES = 32  # 1-D Gauss-Hermite nodes for the test-point noise xi (section 6.4)
MIN_ESS = 100.0
ANDERSON_MEMORY = 5  # method="anderson": differences kept
NEWTON_PARTICLE_ARRAYS = 20  # a Newton step (GMRES on JVPs of the map) holds ~18 (M, P) arrays at once, ~75 (P, P) ones
NEWTON_KERNEL_ARRAYS = 80  # (XLA's memory analysis of a Newton-Krylov step, fixed_point.krylov_direction, float32, P = 256 and 512, M = 2^12 and 2^14)


# --------------------------------------------------------------------------------------------- model
@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Deep:
    """Prior of a deep network (docs/theory.md 6.1): ``depth`` weight layers, ``depth - 1`` hidden.

    ``sa2``, ``sW2``, ``sw2``, ``beta`` are traced pytree leaves; ``activation`` and ``depth`` are static.
    """

    activation: Activation | str = dataclasses.field(default="erf", metadata=dict(static=True))
    depth: int = dataclasses.field(default=3, metadata=dict(static=True))
    sa2: float = 1.0
    sW2: float = 1.0
    sw2: float = 1.0
    beta: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "activation", get_activation(self.activation))
        if isinstance(self.depth, bool) or not isinstance(self.depth, (int, np.integer)) or self.depth < 2:
            raise ConfigError(f"model depth must be an integer >= 2 (weight layers; 2 is the two-layer net), got {self.depth!r}")
        object.__setattr__(self, "depth", int(self.depth))
        for name in ("sa2", "sW2", "sw2", "beta"):
            value = getattr(self, name)
            if isinstance(value, (jax.core.Tracer, jax.Array)) or type(value) is object:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"model {name} must be a finite number > 0, got {value!r}")
            object.__setattr__(self, name, float(value))

    scaling = "mean_field"  # the only scaling of the deep theory (1/N readout, 1/sqrt(N) hidden weights)
    penalty = None  # Gaussian weight priors only

    @property
    def temperature(self):
        """``T = 1 / beta``: the Langevin temperature of the networks."""
        return 1.0 / self.beta

    @property
    def hidden_layers(self) -> int:
        """``H = depth - 1``."""
        return self.depth - 1

    @property
    def coupling(self):
        """``c = beta^2 sa2 / 2`` of the last layer's tilt ``c |S(h)|^2``."""
        return 0.5 * self.beta**2 * self.sa2

    def layer_variance(self, layer: int):
        """``s_l``: ``sw2`` for layer 1, ``sW2`` above (prior covariance of layer l is ``s_l Phi_(l-1)``)."""
        return self.sw2 if layer == 1 else self.sW2

    def replace(self, **changes) -> "Deep":
        return dataclasses.replace(self, **changes)

    def settings(self) -> dict:
        return {"activation": self.activation.name, "depth": self.depth, "sa2": float(self.sa2), "sW2": float(self.sW2),
                "sw2": float(self.sw2), "beta": float(self.beta)}


# ------------------------------------------------------------------------------------- linear algebra
def _eigh_floor(matrix):
    values, vectors = jnp.linalg.eigh(0.5 * (matrix + matrix.T))
    keep = values > EIG_FLOOR * jnp.max(values)
    return jnp.where(keep, values, 0.0), vectors, keep


JITTER_RETRIES = 3  # a failed factorisation is retried with the jitter x10, x100, x1000


def cholesky_factor(matrix):
    """Lower Cholesky factor of ``matrix + JITTER mean(diag) I``: a smooth (differentiable) factor ``A A^T``.

    Used for ``A_l`` (l >= 2) instead of an eigendecomposition, whose derivative is undefined at
    the degenerate spectra of exactly solvable cases (e.g. ``Phi = I + (c - 1) yhat yhat^T``).
    Rounding leaves eigenvalues of order ``eps lambda_max`` negative, and ``lambda_max`` grows like P
    times the mean diagonal for a numerically low-rank kernel (float32, d = 4 inputs: the factor
    fails from P ~ 2048 on). Only then (non-finite factor) the jitter is raised tenfold, up to
    ``JITTER_RETRIES`` times (float32: at most 3.8e-3 of the mean diagonal, below the Monte Carlo
    error of ``Phi``); a factor that succeeds the first time is unchanged.
    """
    n = matrix.shape[0]
    relative = max(JITTER, 32 * float(jnp.finfo(matrix.dtype).eps))  # float32: 3.8e-6, above its rounding of Phi
    jitter = relative * jnp.trace(matrix) / n
    sym = 0.5 * (matrix + matrix.T)
    eye = jnp.eye(n, dtype=matrix.dtype)
    factor = jnp.linalg.cholesky(sym + jitter * eye)
    for boost in (10.0**k for k in range(1, JITTER_RETRIES + 1)):
        factor = jax.lax.cond(jnp.all(jnp.isfinite(factor)), lambda f, b=boost: f,
                              lambda f, b=boost: jnp.linalg.cholesky(sym + b * jitter * eye), factor)
    return factor


def sym_sqrt(matrix):
    """Symmetric root ``M^(1/2)`` and pseudo-inverse root ``(M^(1/2))^+`` of a PSD matrix."""
    values, vectors, keep = _eigh_floor(matrix)
    root = jnp.sqrt(values)
    inv_root = jnp.where(keep, 1.0 / jnp.where(keep, root, 1.0), 0.0)
    return (vectors * root) @ vectors.T, (vectors * inv_root) @ vectors.T


def readout_residual(model: Deep, data: Dataset, kernel):
    """``r = (I + beta sa2 K Q)^-1 y`` (symmetric form, Cholesky), ``K = Phi_H`` on the data."""
    gain = model.beta * model.sa2
    root_q = jnp.sqrt(data.q)[:, None]
    system = jnp.eye(data.num_points, dtype=kernel.dtype) + gain * root_q * kernel * root_q.T
    g = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(system, lower=True), root_q * data.y)
    return data.y - gain * kernel @ (root_q * g)


# ------------------------------------------------------------------------------------- layer laws
class LayerStats(NamedTuple):
    """What the fixed point reads off one layer's law ``p_l`` (in whitened coordinates ``h = A z``)."""

    phi: jax.Array  # (P, P) Phi_l = E[phi(h) phi(h)^T]
    second: jax.Array  # (k, k) E[z z^T]
    log_partition: jax.Array  # log Z_l = log E_prior[exp(tilt)]
    ess: jax.Array  # effective sample size (inf for the exact Gaussian law)
    min_precision: jax.Array  # Gaussian law: smallest eigenvalue of I + A^T Phihat A (> 0 iff normalizable); else 1
    stein: jax.Array | None = None  # (P, P) E_p[grad^2 t + grad t grad t^T] in h (t the tilt): -Phihat_(l-1) / s_l


class Particles(NamedTuple):
    """Prior draws or nodes ``z`` (M, k) with log prior weights summing (in exp) to ~1."""

    z: jax.Array
    log_base: jax.Array


def _tilt_quadratic(features, phihat):
    """``-1/2 phi^T Phihat phi`` per particle."""
    return -0.5 * jnp.sum((features @ phihat) * features, axis=-1)


def _derivatives(activation, h):
    """``phi'(h)`` and ``phi''(h)`` elementwise (forward-mode, so any registered activation works)."""
    ones = jnp.ones_like(h)
    first = lambda u: jax.jvp(activation, (u,), (ones,))[1]
    return first(h), jax.jvp(first, (h,), (ones,))[1]


def _particle_stats(particles: Particles, factor, phihat, activation, conjugate: bool):
    """Weighted-particle law of one layer; with ``conjugate`` also ``E_p[grad^2 t + grad t grad t^T]`` (Stein)."""
    h = particles.z @ factor.T  # (M, P)
    features = activation(h)
    pulled = features @ phihat  # Phihat phi, (M, P)
    log_weight = particles.log_base - 0.5 * jnp.sum(pulled * features, axis=-1)
    log_partition = jax.nn.logsumexp(log_weight)
    weight = jnp.exp(log_weight - log_partition)
    phi = jnp.einsum("mp,mq->pq", features, weight[:, None] * features)
    second = jnp.einsum("mi,mj->ij", particles.z, weight[:, None] * particles.z)
    stein = None
    if conjugate:  # grad t = -phi' * (Phihat phi);  grad^2 t = -(D Phihat D + diag(phi'' * Phihat phi))
        slope, curvature = _derivatives(activation, h)
        grad = slope * pulled
        stein = (-phihat * jnp.einsum("mp,mq->pq", slope, weight[:, None] * slope)
                 - jnp.diag(weight @ (curvature * pulled))
                 + jnp.einsum("mp,mq->pq", grad, weight[:, None] * grad))
    stats = LayerStats(phi, second, log_partition, 1.0 / jnp.sum(weight * weight), jnp.ones((), phi.dtype), stein)
    return stats, weight


def _gaussian_stats(factor, phihat, activation):
    """Exact law for the linear activation: precision ``I + A^T Phihat A`` in z."""
    k = factor.shape[1]
    precision = jnp.eye(k, dtype=factor.dtype) + factor.T @ phihat @ factor
    precision = 0.5 * (precision + precision.T)
    values = jnp.linalg.eigvalsh(precision)
    second = jnp.linalg.inv(precision)
    second = 0.5 * (second + second.T)
    phi = factor @ second @ factor.T
    stein = -phihat + phihat @ phi @ phihat  # E[grad^2 t + grad t grad t^T] for t = -h^T Phihat h / 2
    return LayerStats(phi, second, -0.5 * jnp.sum(jnp.log(values)), jnp.asarray(jnp.inf, phi.dtype), jnp.min(values), stein)


@dataclasses.dataclass(frozen=True)
class LayerSampler:
    """How each layer's single-site law is represented (frozen: a static jit argument).

    ``kind``: ``"gaussian"`` (exact, linear activation only), ``"importance"`` (``num_samples``
    fixed prior draws in every layer) or ``"grid"`` (layer 1 on ``grid_size^d`` nodes of
    ``[-grid_extent, grid_extent]^d`` in ``w / sqrt(sw2)``; hidden layers by importance).
    """

    kind: str = "importance"
    num_samples: int = 65536
    grid_size: int = 64
    grid_extent: float = 6.0
    stochastic = False

    def particle_counts(self, model: Deep, data: Dataset) -> list[tuple[int, int]]:
        """Per layer ``(M_l, k_l)``: particles and their dimension (``(0, 0)`` for the exact Gaussian law)."""
        if self.kind == "gaussian":
            return [(0, 0)] * model.hidden_layers
        dims = [data.input_dim] + [data.num_points] * (model.hidden_layers - 1)
        counts = []
        for layer, dim in enumerate(dims, start=1):
            if layer == 1 and self.kind == "grid":
                _check_grid_dim(dim)
                counts.append((self.grid_size**dim, dim))
            else:
                counts.append((2 * max(self.num_samples // 2, dim + 1), dim))  # _whitened_draws
        return counts

    def memory_bytes(self, model: Deep, data: Dataset, num_samples: int | None = None) -> float:
        """Bytes a deep solve holds at once: every layer's particles plus one Newton step's work arrays.

        ``itemsize * (sum_l M_l k_l + NEWTON_PARTICLE_ARRAYS max_l M_l P + NEWTON_KERNEL_ARRAYS ((H-1) P^2 + P C))``
        (the last term: the GMRES basis and the per-layer kernels). ``num_samples`` overrides the sampler's.
        """
        sampler = self if num_samples is None else dataclasses.replace(self, num_samples=int(num_samples))
        counts = sampler.particle_counts(model, data)
        P = data.num_points
        state = (model.hidden_layers - 1) * P * P + P * data.output_dim
        floats = (sum(m * k for m, k in counts) + NEWTON_PARTICLE_ARRAYS * max(m for m, _ in counts) * P
                  + NEWTON_KERNEL_ARRAYS * state)
        return float(floats) * np.dtype(data.x.dtype).itemsize

    def _require_memory(self, model: Deep, data: Dataset) -> None:
        """``ConfigError`` before allocating a solve that cannot fit, naming the sizes and the largest ``num_samples`` that fits."""
        nbytes = self.memory_bytes(model, data)
        if nbytes <= memory_limit()[0]:
            return
        fits = [m for m in (2**e for e in range(30, 1, -1)) if self.memory_bytes(model, data, m) <= memory_limit()[0]]
        allowed = (f"num_samples to at most {fits[0]} at P = {data.num_points}" if self.kind != "gaussian" and fits
                   else "the number of data points P")
        counts = ", ".join(f"layer {l}: {m} x {k}" for l, (m, k) in enumerate(self.particle_counts(model, data), start=1) if m)
        require(nbytes, f"the deep solve (depth {model.depth}, P = {data.num_points} data points, {self.kind} layer laws"
                        f"{'; particles ' + counts if counts else ''})", allowed)

    def init(self, key, model: Deep, data: Dataset) -> tuple:
        """Per layer: ``Particles`` (or ``None`` for the exact Gaussian law); refuses a solve that cannot fit in memory."""
        if self.kind == "gaussian" and model.activation.name != "linear":
            raise ConfigError(f"sampler 'gaussian' is exact only for the linear activation, got {model.activation.name!r}")
        self._require_memory(model, data)
        if self.kind == "gaussian":
            return tuple(None for _ in range(model.hidden_layers))
        dims = [data.input_dim] + [data.num_points] * (model.hidden_layers - 1)
        keys = jax.random.split(key, model.hidden_layers)
        layers = []
        for layer, (dim, k) in enumerate(zip(dims, keys), start=1):
            if layer == 1 and self.kind == "grid":
                layers.append(_grid_particles(dim, self.grid_size, self.grid_extent, data.x.dtype))
            else:
                layers.append(_whitened_draws(k, self.num_samples, dim, data.x.dtype))
        return tuple(layers)

    def warnings(self, stats: list[LayerStats]) -> list[str]:
        out = []
        for layer, s in enumerate(stats, start=1):
            ess = float(s.ess)
            if math.isfinite(ess) and ess < MIN_ESS:
                out.append(f"layer {layer}: the law kept an effective sample size of {ess:.1f} (< {MIN_ESS:g}); raise num_samples")
        return out


def gaussian_layers() -> LayerSampler:
    """Exact Gaussian layer laws (linear activation)."""
    return LayerSampler("gaussian")


def importance_layers(num_samples: int = 65536) -> LayerSampler:
    """Importance sampling from ``num_samples`` whitened antithetic prior draws per layer."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 4:
        raise ConfigError(f"num_samples must be an integer >= 4, got {num_samples!r}")
    return LayerSampler("importance", int(num_samples))


def grid_layers(grid_size: int = 64, grid_extent: float = 6.0, num_samples: int = 65536) -> LayerSampler:
    """Layer 1 on a weight-space grid (d <= 3), hidden layers by importance sampling."""
    if isinstance(grid_size, bool) or not isinstance(grid_size, (int, np.integer)) or grid_size < 3:
        raise ConfigError(f"grid_size must be an integer >= 3, got {grid_size!r}")
    return LayerSampler("grid", int(num_samples), int(grid_size), float(grid_extent))


def _whitened_draws(key, num, dim, dtype) -> Particles:
    """Antithetic normal draws ``(z, -z)`` transformed so that ``(1/M) sum z z^T = I`` exactly."""
    half = max(num // 2, dim + 1)
    z = jax.random.normal(key, (half, dim), dtype)
    z = jnp.concatenate([z, -z])
    root, inv_root = sym_sqrt(z.T @ z / z.shape[0])
    z = z @ inv_root
    return Particles(z, jnp.full(z.shape[0], -math.log(z.shape[0]), dtype))


def _check_grid_dim(dim) -> None:
    if dim > 3:
        raise ConfigError(f"sampler 'grid' puts layer 1 on a grid in weight space and needs d <= 3, the data has d = {dim}; use 'importance'")


def _grid_particles(dim, size, extent, dtype) -> Particles:
    _check_grid_dim(dim)
    axis = np.linspace(-extent, extent, size)
    nodes = np.array(list(itertools.product(axis, repeat=dim)))
    log_base = -0.5 * np.sum(nodes**2, axis=1) + dim * math.log(axis[1] - axis[0]) - 0.5 * dim * math.log(2 * math.pi)
    return Particles(jnp.asarray(nodes, dtype), jnp.asarray(log_base, dtype))


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
        if particles[layer - 1] is None:
            s = _gaussian_stats(factor, phihat, act)
        else:
            s, _ = _particle_stats(particles[layer - 1], factor, phihat, act, conjugate=layer > 1)
        factors.append(factor)
        stats.append(s)
        if layer < H:
            factor = cholesky_factor(model.layer_variance(layer + 1) * s.phi)
    new_hat = []
    for layer in range(1, H):  # Phihat_l = -s_(l+1) E_(p_(l+1))[grad^2 t + grad t grad t^T]: Stein's lemma, no Phi_l^-1
        hat = -model.layer_variance(layer + 1) * stats[layer].stein
        new_hat.append(0.5 * (hat + hat.T))
    residual = readout_residual(model, data, stats[-1].phi)
    return Forward(tuple(factors), tuple(stats), DeepState(tuple(new_hat), residual))


_forward_jit = jax.jit(_forward, static_argnames=("sampler",))


def free_energy(model: Deep, data: Dataset, state: DeepState, stats) -> jax.Array:
    """``F = beta sum q (r.y - |r|^2/2) - 1/2 sum_(l<H) tr(Phihat_l Phi_l) - sum_l log Z_l`` (6.2)."""
    r, y = state.residual, data.y
    value = model.beta * jnp.sum(data.q[:, None] * (r * y - 0.5 * r * r))
    for layer, hat in enumerate(state.phihat):
        value -= 0.5 * jnp.sum(hat * stats[layer].phi)
    return value - sum(s.log_partition for s in stats)


# ------------------------------------------------------------------------------------- solution
class DeepSolution(NamedTuple):
    """The deep fixed point: state, per-layer kernels on the data, loss, free energy, how it went."""

    state: DeepState
    kernels: tuple  # Phi_1 .. Phi_H on the data (P, P)
    model: Deep
    data: Dataset
    sampler: LayerSampler
    particles: tuple
    loss: float
    free_energy: float
    converged: bool
    iterations: int
    history: dict
    diagnostics: dict
    message: str

    @property
    def residual(self):
        return self.state.residual

    def predict(self, x_new) -> jax.Array:
        """``f(x*) = beta sa2 Phi_H(x*, X) Q r`` with the test kernels carried through the layers (6.4)."""
        cross, _ = test_kernels(self, x_new)
        return self.model.beta * self.model.sa2 * cross[-1] @ (self.data.q[:, None] * self.residual)


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


def layer_law(solution: DeepSolution, layer: int) -> LayerLaw:
    """The law ``p_l(h) ~ N(h; 0, s_l Phi_(l-1)) exp(t_l(h))`` of layer ``l`` (1-based) at the fixed point (6.3).

    Particle samplers only (importance or grid): the weights are the tilt's, normalised, on the
    sampler's fixed draws ``h = A_l z``; the exact Gaussian law of ``gaussian_layers`` has no particles.
    """
    model = solution.model
    layer = check_layer(model, layer)
    particles = solution.particles[layer - 1]
    if particles is None:
        raise ConfigError("layer_law needs a particle sampler (importance_layers or grid_layers); the gaussian sampler's law is exact and has no particles")
    factor = layer_factor(solution, layer)
    phihat = conjugate_kernel(model, solution.data, solution.state, layer)
    _, weight = _particle_stats(particles, factor, phihat, model.activation, conjugate=False)
    w = jnp.sqrt(model.sw2) * particles.z if layer == 1 else None
    return LayerLaw(particles.z @ factor.T, weight, w)


TEST_BLOCK_ELEMENTS = 2**25  # test points go through the layers in blocks of (particles x points x Hermite nodes) <= this


def test_kernels(solution: DeepSolution, x_new) -> tuple[list, list]:
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
        if part is None:  # Gaussian law, linear activation
            cross = a_star @ stats.second @ factor.T
            diag = jnp.sum((a_star @ stats.second) * a_star, axis=1) + s_star**2
        else:
            phihat = conjugate_kernel(model, data, state, layer)
            _, weight = _particle_stats(part, factor, phihat, act, conjugate=False)
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
    """``G(x) - x`` and whether every Gaussian layer law is normalizable at ``x``."""
    fwd = _forward(model, sampler, particles, data, flat.unpack(vector, data))
    ok = jnp.all(jnp.stack([s.min_precision > 0 for s in fwd.stats]))
    return flat.pack(fwd.image, data) - vector, ok


_gap_jit = jax.jit(_gap, static_argnames=("flat", "sampler"))


def nngp_state(model: Deep, data: Dataset) -> DeepState:
    """The NNGP state: ``Phihat_l = 0`` and the residual of the deep NNGP kernel (6.5)."""
    kernels = deep_nngp(model, data.x)
    P = data.num_points
    return DeepState(tuple(jnp.zeros((P, P), data.x.dtype) for _ in range(model.hidden_layers - 1)), readout_residual(model, data, kernels[-1]))


STALL_WINDOW = 10  # automatic mode: a stage whose best change does not fall below STALL_GAIN x the best
STALL_GAIN = 0.5  # before the last STALL_WINDOW iterations has stalled (Newton converges much faster than that)
AUTO_CONTINUATION = ((4, 20.0), (10, 50.0))  # automatic mode: (stages, beta / beta_start) tried in turn


def solve_deep(
    data: Dataset,
    model: Deep,
    sampler: LayerSampler | None = None,
    *,
    key: jax.Array | None = None,
    init: DeepState | str = "gp",
    method: str = "newton",
    damping: float = 0.5,
    tol: float = 1e-8,
    max_iter: int = 100,
    continuation: int = 1,
    beta_start: float | None = None,
    auto: bool = True,
    callback=None,
    throw: bool = False,
) -> DeepSolution:
    """The deep mean-field fixed point ``x = G(x)`` (docs/theory.md 6.3).

    ``method="newton"`` (default): Newton-Krylov on ``G(x) - x`` (GMRES on Jacobian-vector
    products, backtracking line search on ``|G(x) - x|`` that also keeps every Gaussian layer law
    normalizable). ``method="anderson"``: safeguarded Anderson mixing (one map evaluation per step, no
    JVPs), switching to Newton-Krylov within a stage where it stalls. The plain iteration ``x <- x + damping (G(x) - x)`` (``method="damped"``)
    diverges at strong coupling: for a deep linear net with two hidden layers its linearisation
    has the eigenvalue ``(kappa - 1)^2`` (docs/theory.md 6.6), above 1 once the kernel doubles
    along the target; Newton does not care. ``continuation = n >= 2`` solves at ``n`` inverse
    temperatures geometrically spaced from ``beta_start`` (default ``beta / 20``) to ``beta``,
    each warm-started from the last. ``auto`` (default): when the direct solve stalls (its best
    change does not halve in ``STALL_WINDOW`` iterations) or runs out of iterations, retry from
    the start with continuation (``AUTO_CONTINUATION``); what was done is in ``history["actions"]``
    and the message. Convergence: ``|G(x) - x| <= tol |G(x)|`` in the vector
    ``(sqrt(q) r, Phihat_l tr(Phi_l)/P)``. ``throw``: raise ``NoFixedPointError`` if not converged.
    """
    sampler = importance_layers() if sampler is None else sampler
    key = jax.random.key(0) if key is None else key
    if method not in ("newton", "anderson", "damped"):
        raise ConfigError(f"deep solver method must be 'newton', 'anderson' or 'damped', got {method!r}")
    if isinstance(continuation, bool) or not isinstance(continuation, int) or continuation < 1:
        raise ConfigError(f"continuation must be an integer >= 1, got {continuation!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise ConfigError(f"max_iter must be an integer >= 0, got {max_iter!r}")
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
    history = {"change": [], "loss": [], "step": [], "beta": [], "seconds": [], "actions": []}
    clock = time.perf_counter()
    start = flat.pack(state, data)

    def schedule(stages, ratio):
        if stages < 2:
            return [float(model.beta)]
        first = float(model.beta) / ratio if beta_start is None else float(beta_start)
        return [float(b) for b in np.geomspace(first, float(model.beta), stages)]

    attempts = [schedule(continuation, 20.0)]
    if auto and continuation == 1 and max_iter > 0:
        attempts += [schedule(stages, ratio) for stages, ratio in AUTO_CONTINUATION]
    iteration = 0
    for attempt, betas in enumerate(attempts):
        x, converged, change, reason, iteration = _run_stages(
            flat, model, sampler, particles, data, start, betas, method, damping, tol, max_iter, history, clock,
            callback, iteration, stall=auto)
        if converged or attempt == len(attempts) - 1:
            break
        nxt = attempts[attempt + 1]
        history["actions"].append(
            f"{'the direct solve' if len(betas) == 1 else f'continuation from beta = {betas[0]:.3g} in {len(betas)} stages'} "
            f"found no fixed point ({reason}); next: continuation from beta = {nxt[0]:.3g} in {len(nxt)} stages")
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
    }
    message = f"{'converged' if converged else 'not converged'} after {iteration} iterations (change {change:.2e}, tol {tol:g})"
    if not converged and reason:
        message += f": {reason}"
    if history["actions"]:
        message += ". Automatic steps: " + "; ".join(history["actions"])
    if not converged and throw:
        raise NoFixedPointError(f"deep solver: {message}")
    return DeepSolution(final, tuple(s.phi for s in stats), model, data, sampler, particles, loss, energy, converged, iteration,
                        history, diagnostics, message)


@dataclasses.dataclass(frozen=True)
class _DeepGap:
    """``G(x) - x`` as a traceable ``fn(x, args)`` with ``args = (model, particles, data)`` (for ``NewtonKrylov``)."""

    flat: _Flat
    sampler: LayerSampler

    def __call__(self, vector, args):
        model, particles, data = args
        return _gap(self.flat, model, self.sampler, particles, data, vector)[0]


def deep_problem(flat: _Flat, model: Deep, sampler: LayerSampler, particles, data: Dataset) -> Problem:
    """The deep map as a ``fixed_point.Problem`` over the flat vector; admissible: every Gaussian layer law normalizable."""

    def evaluate(vector):
        gap, ok = _gap_jit(flat, model, sampler, particles, data, vector)
        return Evaluation(gap, None, bool(ok))

    return Problem(evaluate, admissible=None, fn=_DeepGap(flat, sampler), args=(model, particles, data))


def _run_stages(flat, model, sampler, particles, data, x, betas, method, damping, tol, max_iter, history, clock,
                callback, iteration, stall):
    """Newton, Anderson or damped iteration (``mft_jax.fixed_point``) through the inverse temperatures
    ``betas``; the last one to ``tol``, the others to ``max(tol, 1e-6)``. An Anderson stage that stalls
    (always watched) or finds no step is solved again by Newton-Krylov from the stage start (an Anderson
    iterate that wandered is no better a start), with the iterations left; said in ``history["actions"]``."""
    solver = {"newton": NewtonKrylov(damping), "anderson": Anderson(ANDERSON_MEMORY, damping, halvings=12),
              "damped": Damped(damping, halvings=12, descent=True)}[method]
    stall_rule = Stall(STALL_WINDOW, STALL_GAIN, STALL_WINDOW + 1)
    stop = (stall_rule,) if stall or method == "anderson" else ()
    converged, change, reason = False, np.inf, None
    for stage, beta in enumerate(betas):
        stage_model = model.replace(beta=beta) if len(betas) > 1 else model
        problem = deep_problem(flat, stage_model, sampler, particles, data)
        for _ in range(30):  # a start outside the normalizable region is shrunk towards the prior
            if problem.allows(x):
                break
            x = 0.5 * x

        def record(it, kind, beta=beta):
            nonlocal iteration
            iteration += 1
            if not np.isfinite(it.change):
                raise NonFiniteError(f"deep solver: the map returned NaN/inf at iteration {iteration} (beta {beta:g})")
            history["change"].append(it.change)
            history["loss"].append(float(0.5 * jnp.sum(data.q[:, None] * flat.unpack(it.x + it.evaluation.gap, data).residual ** 2)))
            history["beta"].append(beta)
            history["seconds"].append(time.perf_counter() - clock)
            if kind != "start":
                history["step"].append(kind)
            if callback is not None:
                callback(iteration, it.change, beta)

        stage_tol = tol if stage == len(betas) - 1 else max(tol, 1e-6)
        start = x
        run = fixed_point(problem, x, solver, tol=stage_tol, max_steps=max(max_iter - 1, 0), stop=stop, callback=record)
        if method == "anderson" and not run.converged and len(run.changes) < max_iter:
            history["actions"].append(
                f"Anderson at beta = {beta:.3g} found no fixed point ({run.message}); Newton-Krylov from the stage start")
            run = fixed_point(problem, start, NewtonKrylov(damping), tol=stage_tol,
                              max_steps=max(max_iter - len(run.changes) - 1, 0), stop=(stall_rule,) if stall else (),
                              callback=record)
        x, converged, change = run.value, run.converged, run.change
        if run.result is Result.MAX_STEPS:
            reason = f"{max_iter} iterations at beta = {beta:.3g} were not enough"
        elif not converged:
            reason = f"{run.message} at beta = {beta:.3g}"
        if not converged:
            break
    return x, converged, change, (None if converged else reason), iteration


# ------------------------------------------------------------------------------------- NNGP
def deep_nngp(model: Deep, x) -> list:
    """Deep NNGP kernels ``Phi_1 .. Phi_H`` on the points ``x`` (n, d) (docs/theory.md 6.5).

    Layer l+1 is ``mft_jax.gp.nngp_kernel`` (closed form or Gauss-Hermite) on a factor ``F`` of
    ``Phi_l = F F^T`` with variance ``sW2``.
    """
    x = jnp.asarray(x)
    kernels = [nngp_kernel(model.activation, float(model.sw2), x, x)]
    for _ in range(2, model.hidden_layers + 1):
        values, vectors, _ = _eigh_floor(kernels[-1])
        factor = vectors * jnp.sqrt(values)
        kernels.append(nngp_kernel(model.activation, float(model.sW2), factor, factor))
    return kernels


def deep_nngp_predict(model: Deep, data: Dataset, x_new) -> jax.Array:
    """Deep NNGP (kernel ridge) prediction ``f(x*) = beta sa2 K(x*, X) Q r``."""
    P = data.num_points
    both = jnp.concatenate([data.x, jnp.asarray(x_new, data.x.dtype)])
    kernel = deep_nngp(model, both)[-1]
    residual = readout_residual(model, data, kernel[:P, :P])
    return model.beta * model.sa2 * kernel[P:, :P] @ (data.q[:, None] * residual)
