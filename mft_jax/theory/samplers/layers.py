"""Single-site laws of a deep net's hidden layers and the samplers that represent them (docs/theory.md 6.3, 6.7).

In whitened coordinates ``h = A_l z`` the law of one neuron of hidden layer l is

    p_l(z) ~ N(z; 0, I) exp(t_l(A_l z)),      t_l(h) = -1/2 phi(h)^T Phihat_l phi(h).

A layer sampler is a frozen dataclass of its settings (a static argument of the jitted map) that
declares what it is, so the solver never asks for its name:

- ``exact``: the law in closed form (Gaussian, linear activation), no particles;
- ``adaptive``: its particles are moved to the law at the current iterate (``refresh``) between
  solver steps; otherwise they are fixed, and the map is a deterministic function of the state.

and implements ``init(key, model, data) -> particles`` (per layer ``Particles`` or ``None``),
``layer_stats(particles, A, Phihat, phi, conjugate) -> LayerStats`` (a typed record: kernel,
second moment, ``log Z``, effective sample size, normalizability margin, Stein estimate),
``admissible(stats)`` (where the solver may step) and ``warnings(stats)``.

Particles carry the log density of the proposal they were drawn from (``log_base``), so the law at
any state is a self-normalised reweighting ``log w = log_base + t_l(A_l z)`` and ``logsumexp(log w)``
estimates ``log Z_l = log E_N(0, I)[exp t_l]``. Samplers: ``gaussian_layers()`` (exact),
``importance_layers(M)`` (fixed antithetic, exactly whitened prior draws: ``log_base = -log M``),
``grid_layers(...)`` (layer 1 on a weight-space grid) and ``mcmc_layers(M)`` (resample-move: the
particles resampled by their weights at the iterate and moved by blackjax MALA chains that leave
that law invariant; ``log_base = log Z_ref - log M - t_ref``, which telescopes ``log Z``).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import ClassVar, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.errors import ConfigError
from mft_jax.linalg import sym_sqrt
from mft_jax.precision import wrap_methods
from mft_jax.protocol import tilt_quadratic
from mft_jax.theory.samplers._mala import TARGET_ACCEPTANCE, adapted, chains as mala_chains, check_float, check_int
from mft_jax.resources import memory_limit, require

MIN_ESS = 100.0  # a layer law with fewer effective samples is reported in the warnings
NEWTON_PARTICLE_ARRAYS = 20  # a Newton step (GMRES on JVPs of the map) holds ~18 (M, P) arrays at once, ~75 (P, P) ones
NEWTON_KERNEL_ARRAYS = 80  # (XLA's memory analysis of a Newton-Krylov step, fixed_point.krylov_direction, float32, P = 256 and 512, M = 2^12 and 2^14)


class LayerStats(NamedTuple):
    """What the fixed point reads off one layer's law ``p_l`` (in whitened coordinates ``h = A z``)."""

    phi: jax.Array  # (P, P) Phi_l = E[phi(h) phi(h)^T]
    second: jax.Array  # (k, k) E[z z^T]
    log_partition: jax.Array  # log Z_l = log E_prior[exp(tilt)]
    ess: jax.Array  # effective sample size (inf for the exact Gaussian law)
    num_particles: jax.Array  # M (inf for the exact Gaussian law)
    min_precision: jax.Array  # Gaussian law: smallest eigenvalue of I + A^T Phihat A (> 0 iff normalizable); else 1
    stein: jax.Array | None = None  # (P, P) E_p[grad^2 t + grad t grad t^T] in h (t the tilt): -Phihat_(l-1) / s_l


class Particles(NamedTuple):
    """Points ``z`` (M, k) with the log density of their proposal, ``log_base`` (M,), normalised so that
    ``logsumexp(log_base + t)`` estimates ``log E_N(0, I)[exp t]``.

    An adaptive sampler's particles are equally weighted draws of a reference law
    ``q(z) = N(z; 0, I) exp(t_ref(z)) / Z_ref``, ``t_ref(z) = -1/2 phi(A_ref z)^T Phihat_ref phi(A_ref z)``
    (``ref_factor``, ``ref_phihat``, ``ref_log_partition`` = log Z_ref; prior draws: ``Phihat_ref = 0``), so
    ``log_base = log Z_ref - log M - t_ref(z)``; ``step_size``: its MALA step.
    """

    z: jax.Array
    log_base: jax.Array
    step_size: jax.Array | None = None
    ref_factor: jax.Array | None = None
    ref_phihat: jax.Array | None = None
    ref_log_partition: jax.Array | None = None


def _derivatives(activation, h):
    """``phi'(h)`` and ``phi''(h)`` elementwise (forward-mode, so any registered activation works)."""
    ones = jnp.ones_like(h)
    first = lambda u: jax.jvp(activation, (u,), (ones,))[1]
    return first(h), jax.jvp(first, (h,), (ones,))[1]


def particle_stats(particles: Particles, factor, phihat, activation, conjugate: bool):
    """Weighted-particle law of one layer and its normalised weights; with ``conjugate`` also the Stein
    estimate ``E_p[grad^2 t + grad t grad t^T]``."""
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
    stats = LayerStats(phi, second, log_partition, 1.0 / jnp.sum(weight * weight), jnp.asarray(weight.shape[0], phi.dtype),
                       jnp.ones((), phi.dtype), stein)
    return stats, weight


def gaussian_stats(factor, phihat):
    """Exact law for the linear activation: precision ``I + A^T Phihat A`` in z."""
    k = factor.shape[1]
    precision = jnp.eye(k, dtype=factor.dtype) + factor.T @ phihat @ factor
    precision = 0.5 * (precision + precision.T)
    values = jnp.linalg.eigvalsh(precision)
    second = jnp.linalg.inv(precision)
    second = 0.5 * (second + second.T)
    phi = factor @ second @ factor.T
    stein = -phihat + phihat @ phi @ phihat  # E[grad^2 t + grad t grad t^T] for t = -h^T Phihat h / 2
    inf = jnp.asarray(jnp.inf, phi.dtype)
    return LayerStats(phi, second, -0.5 * jnp.sum(jnp.log(values)), inf, inf, jnp.min(values), stein)


# ------------------------------------------------------------------------------------------ samplers
class LayerSampler:
    """Base of the layer samplers: subclass as a frozen dataclass of settings (see the module docstring)."""

    name: ClassVar[str] = "layers"
    exact: ClassVar[bool] = False
    adaptive: ClassVar[bool] = False
    advice: ClassVar[str] = "raise num_samples"  # what the warnings suggest for a law resolved by too few particles

    def __init_subclass__(cls, **kwargs):
        """A subclass's sampling methods run at the library's matmul precision (``mft_jax.precision``)."""
        super().__init_subclass__(**kwargs)
        wrap_methods(cls, ("init", "layer_stats", "refresh"))

    def particle_counts(self, model, data) -> list[tuple[int, int]]:
        """Per layer ``(M_l, k_l)``: particles and their dimension (``(0, 0)`` for an exact law)."""
        return [(2 * max(self.num_samples // 2, dim + 1), dim) for dim in _layer_dims(model, data)]  # _whitened_draws

    def memory_bytes(self, model, data, num_samples: int | None = None) -> float:
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

    def require_memory(self, model, data) -> None:
        """``ConfigError`` before allocating a solve that cannot fit, naming the sizes and the largest ``num_samples`` that fits."""
        nbytes = self.memory_bytes(model, data)
        if nbytes <= memory_limit()[0]:
            return
        fits = [m for m in (2**e for e in range(30, 1, -1)) if self.memory_bytes(model, data, m) <= memory_limit()[0]]
        allowed = (f"num_samples to at most {fits[0]} at P = {data.num_points}" if not self.exact and fits
                   else "the number of data points P")
        counts = ", ".join(f"layer {l}: {m} x {k}" for l, (m, k) in enumerate(self.particle_counts(model, data), start=1) if m)
        require(nbytes, f"the deep solve (depth {model.depth}, P = {data.num_points} data points, {self.name} layer laws"
                        f"{'; particles ' + counts if counts else ''})", allowed)

    def init(self, key, model, data) -> tuple:
        """Per layer ``Particles``: ``num_samples`` whitened antithetic prior draws; refuses a solve that cannot fit in memory."""
        self.require_memory(model, data)
        keys = jax.random.split(key, model.hidden_layers)
        return tuple(_whitened_draws(k, self.num_samples, dim, data.x.dtype) for k, dim in zip(keys, _layer_dims(model, data)))

    def layer_stats(self, particles: Particles | None, factor, phihat, activation, conjugate: bool) -> LayerStats:
        """The ``LayerStats`` of ``p_l`` with factor ``A_l`` and conjugate kernel ``Phihat_l``."""
        return particle_stats(particles, factor, phihat, activation, conjugate)[0]

    def admissible(self, stats) -> jax.Array:
        """Whether the solver may step to a state with these layer statistics: every law normalizable."""
        return jnp.all(jnp.stack([s.min_precision > 0 for s in stats]))

    def warnings(self, stats) -> list[str]:
        out = []
        for layer, s in enumerate(stats, start=1):
            ess = float(s.ess)
            if math.isfinite(ess) and ess < MIN_ESS:
                out.append(f"layer {layer}: the law kept an effective sample size of {ess:.1f} (< {MIN_ESS:g}); {self.advice}")
        return out


wrap_methods(LayerSampler, ("init", "layer_stats", "refresh"))


def _layer_dims(model, data) -> list[int]:
    """``k_l``: the input dimension d for layer 1 (weight space), P above."""
    return [data.input_dim] + [data.num_points] * (model.hidden_layers - 1)


@dataclasses.dataclass(frozen=True)
class GaussianLayers(LayerSampler):
    """Exact Gaussian layer laws (linear activation only): precision ``I + A^T Phihat A``."""

    name: ClassVar[str] = "gaussian"
    exact: ClassVar[bool] = True

    def particle_counts(self, model, data):
        return [(0, 0)] * model.hidden_layers

    def memory_bytes(self, model, data, num_samples=None):
        P = data.num_points
        return float(NEWTON_KERNEL_ARRAYS * ((model.hidden_layers - 1) * P * P + P * data.output_dim)) * np.dtype(data.x.dtype).itemsize

    def init(self, key, model, data):
        if model.activation.name != "linear":
            raise ConfigError(f"sampler 'gaussian' is exact only for the linear activation, got {model.activation.name!r}")
        self.require_memory(model, data)
        return tuple(None for _ in range(model.hidden_layers))

    def layer_stats(self, particles, factor, phihat, activation, conjugate):
        return gaussian_stats(factor, phihat)


@dataclasses.dataclass(frozen=True)
class ImportanceLayers(LayerSampler):
    """``num_samples`` fixed antithetic, exactly whitened prior draws per layer, reweighted by the tilt
    (common random numbers: the map is a deterministic, differentiable function of the state)."""

    num_samples: int = 65536
    name: ClassVar[str] = "importance"


@dataclasses.dataclass(frozen=True)
class GridLayers(LayerSampler):
    """Layer 1 on ``grid_size^d`` nodes of ``[-grid_extent, grid_extent]^d`` in ``w / sqrt(sw2)`` (d <= 3);
    hidden layers by importance sampling from ``num_samples`` prior draws."""

    num_samples: int = 65536
    grid_size: int = 64
    grid_extent: float = 6.0
    name: ClassVar[str] = "grid"

    def particle_counts(self, model, data):
        counts = super().particle_counts(model, data)
        _check_grid_dim(data.input_dim)
        return [(self.grid_size**data.input_dim, data.input_dim)] + counts[1:]

    def init(self, key, model, data):
        _check_grid_dim(data.input_dim)
        layers = super().init(key, model, data)
        return (_grid_particles(data.input_dim, self.grid_size, self.grid_extent, data.x.dtype),) + layers[1:]


class RefreshInfo(NamedTuple):
    """One refresh of an adaptive sampler, per layer: the Kish ESS of the old particles at the iterate,
    the MALA acceptance rate of the sampling halves, the adapted step size, the tempering stages."""

    ess_before: tuple
    acceptance_rate: tuple
    step_size: tuple
    stages: tuple


@dataclasses.dataclass(frozen=True)
class MCMCLayers(LayerSampler):
    """Resample-move layer laws (a sequential Monte Carlo sampler; see ``mcmc_layers``)."""

    num_samples: int = 8192
    num_steps: int = 40
    target_acceptance: float = TARGET_ACCEPTANCE
    refresh_ess: float = 0.5
    min_ess: float = 0.05
    max_refreshes: int = 50
    bridge_ess: float = 0.5
    max_stages: int = 200
    name: ClassVar[str] = "mcmc"
    adaptive: ClassVar[bool] = True
    advice: ClassVar[str] = "raise num_samples or lower refresh_ess"

    def init(self, key, model, data):
        layers = super().init(key, model, data)
        P = data.num_points
        return tuple(p._replace(step_size=jnp.asarray(0.5 * p.z.shape[1] ** (-1 / 3), p.z.dtype),
                                ref_factor=jnp.zeros((P, p.z.shape[1]), p.z.dtype), ref_phihat=jnp.zeros((P, P), p.z.dtype),
                                ref_log_partition=jnp.zeros((), p.z.dtype)) for p in layers)

    def layer_stats(self, particles, factor, phihat, activation, conjugate):
        """The particle statistics, with ``min_precision`` the law's asymptotic normalizability margin
        (``asymptotic_margin``): MCMC chains of a law that is not normalizable run away, reweighted prior draws do not see it."""
        stats = particle_stats(particles, factor, phihat, activation, conjugate)[0]
        return stats._replace(min_precision=asymptotic_margin(activation, factor, phihat))

    def admissible(self, stats):
        """Normalizable, and every layer keeps ``min_ess`` of its particles effective (the reweighting is trusted there)."""
        return super().admissible(stats) & jnp.all(jnp.stack([s.ess >= self.min_ess * s.num_particles for s in stats]))

    def refresh(self, key, particles: tuple, layer: int, factor, phihat, activation) -> tuple[Particles, float, int]:
        """Move layer ``layer``'s particles from their reference law to the law at ``(A_l, Phihat_l)`` by
        adaptive tempering (``tempered_move``). Returns the new particles of that layer, the MALA acceptance
        rate and the number of tempering stages."""
        moved, acceptance, stages = tempered_move(jax.random.fold_in(key, layer), particles[layer - 1], factor, phihat,
                                                  activation, self.num_steps, self.target_acceptance, self.bridge_ess,
                                                  self.max_stages)
        return moved, float(acceptance), int(stages)



@functools.partial(jax.jit, static_argnames=("activation", "num_steps", "target_acceptance", "max_stages"))
def tempered_move(key, particles: Particles, factor, phihat, activation, num_steps, target_acceptance, bridge_ess, max_stages):
    """Adaptive tempering (sequential Monte Carlo) from the particles' reference law ``q`` to
    ``p(z) ~ N(z; 0, I) exp(t(A z))`` through ``pi_lam ~ q^(1 - lam) p^lam``, ``lam`` from 0 to 1.

    Each stage picks the next ``lam`` by bisection so that the incremental weights
    ``exp((lam' - lam) l(z))``, ``l = t - t_ref``, keep an ESS of ``bridge_ess`` M (or jumps to 1), adds
    ``log mean`` of them to ``log Z`` (so ``log Z_p = log Z_ref + sum_stages log mean w``), resamples
    (systematic) and moves every particle by ``num_steps`` MALA steps targeting ``pi_lam'`` (the first half
    adapts the shared step towards ``target_acceptance``, the second half is an exact kernel for ``pi_lam'``).
    Returns the particles (equally weighted draws of p, now the reference), the mean acceptance rate of the
    sampling halves and the number of stages (at most ``max_stages``; then the last stage jumps to 1).
    """
    M = particles.z.shape[0]
    dtype = particles.z.dtype
    t_ref = lambda z: tilt_quadratic(activation(z @ particles.ref_factor.T), particles.ref_phihat)  # noqa: E731
    t_new = lambda z: tilt_quadratic(activation(z @ factor.T), phihat)  # noqa: E731
    adapting = num_steps // 2

    def ess_fraction(log_w):
        w = jax.nn.softmax(log_w)
        return 1.0 / jnp.sum(w * w) / M

    def next_lam(lam, ell):
        def bisect(_, bounds):
            lo, hi = bounds
            mid = 0.5 * (lo + hi)
            ok = ess_fraction((mid - lam) * ell) >= bridge_ess
            return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)

        lo, _ = jax.lax.fori_loop(0, 50, bisect, (lam, jnp.ones((), dtype)))
        return jnp.where(ess_fraction((1.0 - lam) * ell) >= bridge_ess, 1.0, jnp.maximum(lo, lam + 1e-6))

    def stage(carry):
        z, log_z, log_h, lam, key, n, acc = carry
        key, pick, move = jax.random.split(key, 3)
        ell = t_new(z) - t_ref(z)
        nxt = jnp.where(n + 1 >= max_stages, 1.0, next_lam(lam, ell))
        log_w = (nxt - lam) * ell
        log_z = log_z + jax.nn.logsumexp(log_w) - math.log(M)
        z = z[blackjax.smc.resampling.systematic(pick, jax.nn.softmax(log_w), M)]

        def log_density(u):
            return -0.5 * u @ u + ((1.0 - nxt) * t_ref(u[None, :]) + nxt * t_new(u[None, :]))[0]

        init, step = mala_chains(log_density)
        chains = init(z)

        def body(inner, inputs):
            chains, log_h = inner
            k, i = inputs
            chains, info = step(jax.random.split(k, M), chains, jnp.exp(log_h))
            rate = jnp.mean(info.acceptance_rate)
            return (chains, adapted(log_h, rate, target_acceptance, jnp.where(i < adapting, 1.0, 0.0))), rate

        (chains, log_h), rates = jax.lax.scan(body, (chains, log_h), (jax.random.split(move, num_steps), jnp.arange(num_steps)))
        return chains.position, log_z, log_h, nxt, key, n + 1, acc + jnp.mean(rates[adapting:])

    start = (particles.z, particles.ref_log_partition, jnp.log(particles.step_size), jnp.zeros((), dtype), key,
             jnp.zeros((), jnp.int32), jnp.zeros((), dtype))
    z, log_z, log_h, _, _, stages, acc = jax.lax.while_loop(lambda c: c[3] < 1.0, stage, start)
    log_base = log_z - math.log(M) - t_new(z)
    moved = Particles(z, log_base, jnp.exp(log_h).astype(dtype), factor, phihat, log_z)
    return moved, acc / jnp.maximum(stages, 1), stages


MARGIN_STARTS = 64  # random unit directions from which asymptotic_margin descends
MARGIN_STEPS = 150  # projected-gradient steps per start (angle 0.5 x 0.97^t)
ASYMPTOTE = 1e3  # phi(+-L) / L^k at L = ASYMPTOTE gives the asymptotic slopes


def asymptotic_margin(activation, factor, phihat):
    """Normalizability margin of ``p(z) ~ N(z; 0, I) exp(-1/2 phi(A z)^T Phihat phi(A z))``.

    Along a ray ``z = rho u`` (``|u| = 1``) an activation of growth ``k`` has ``phi(A rho u) ~ rho^k
    phi_inf(A u)`` with ``phi_inf(v) = c_+ max(v, 0)^k + c_- min(v, 0)^k``, ``c_+- = phi(+-L) / (+-L)^k``.
    Growth 1: the log density is ``-rho^2 (1 + m(u)) / 2`` asymptotically, ``m(u) = phi_inf^T Phihat phi_inf``,
    so the law is normalizable iff ``1 + min_u m(u) > 0``; returned: ``1 + min_u m(u)`` (for the linear
    activation exactly the Gaussian law's smallest precision eigenvalue, ``I + A^T Phihat A``). Growth 2:
    normalizable iff ``min_u m(u) >= 0`` (the prior decides the rays with ``m = 0``); returned: 1, or
    ``min_u m(u) < 0`` divided by ``|A|^4 |Phihat|``. Bounded (growth 0)
    or unknown growth: 1. The minimum over the sphere is found by projected gradient descent from
    ``MARGIN_STARTS`` fixed random directions (a local search: it may miss a narrow violating cone).
    """
    k = activation.growth
    if not k:
        return jnp.ones((), factor.dtype)
    L = ASYMPTOTE
    plus = activation(jnp.asarray(L, factor.dtype)) / L**k
    minus = activation(jnp.asarray(-L, factor.dtype)) / (-L) ** k

    def m(u):
        v = factor @ (u / jnp.linalg.norm(u))
        features = plus * jnp.maximum(v, 0.0) ** k + minus * jnp.minimum(v, 0.0) ** k
        return features @ phihat @ features

    grad = jax.vmap(jax.value_and_grad(m))
    u = jax.random.normal(jax.random.key(0), (MARGIN_STARTS, factor.shape[1]), factor.dtype)
    u = u / jnp.linalg.norm(u, axis=1, keepdims=True)

    def descend(u, angle):
        _, g = grad(u)
        g = g - jnp.sum(g * u, axis=1, keepdims=True) * u  # tangent to the sphere
        norm = jnp.linalg.norm(g, axis=1, keepdims=True)
        u = u - angle * g / jnp.where(norm > 0, norm, 1.0)
        return u / jnp.linalg.norm(u, axis=1, keepdims=True), None

    u, _ = jax.lax.scan(descend, u, 0.5 * 0.97 ** jnp.arange(MARGIN_STEPS, dtype=factor.dtype))
    lowest = jnp.min(grad(u)[0])
    if k == 1:
        return 1.0 + lowest
    scale = jnp.linalg.norm(factor, 2) ** 4 * jnp.linalg.norm(phihat, 2)
    return jnp.where(lowest >= 0, 1.0, lowest / jnp.where(scale > 0, scale, 1.0))


# ---------------------------------------------------------------------------------------- factories
def _check_int(name, value, minimum):
    return check_int(name, value, minimum)


def _check_fraction(name, value):
    return check_float(name, value, 0, 1)


def gaussian_layers() -> GaussianLayers:
    """Exact Gaussian layer laws (linear activation)."""
    return GaussianLayers()


def importance_layers(num_samples: int = 65536) -> ImportanceLayers:
    """Importance sampling from ``num_samples`` whitened antithetic prior draws per layer."""
    return ImportanceLayers(_check_int("num_samples", num_samples, 4))


def grid_layers(grid_size: int = 64, grid_extent: float = 6.0, num_samples: int = 65536) -> GridLayers:
    """Layer 1 on a weight-space grid (d <= 3), hidden layers by importance sampling."""
    return GridLayers(_check_int("num_samples", num_samples, 4), _check_int("grid_size", grid_size, 3), float(grid_extent))


def mcmc_layers(num_samples: int = 8192, num_steps: int = 40, *, target_acceptance: float = TARGET_ACCEPTANCE,
                refresh_ess: float = 0.5, min_ess: float = 0.05, max_refreshes: int = 50, bridge_ess: float = 0.5,
                max_stages: int = 200) -> MCMCLayers:
    """Resample-move (sequential Monte Carlo) layer laws: ``num_samples`` particles per layer, starting as
    whitened prior draws. Between solver steps, wherever a layer's ESS at the iterate falls below
    ``refresh_ess`` M, every layer's particles are moved to the law there by adaptive tempering
    (``tempered_move``: stages that keep an ESS of ``bridge_ess`` M, each a systematic resampling and
    ``num_steps`` blackjax MALA steps, at most ``max_stages``), so the particles follow the law into the
    feature-learning regime, where fixed prior draws collapse to ESS ~ 1. Between refreshes the map is
    deterministic (Newton applies); steps to states where some layer law is not normalizable
    (``asymptotic_margin``) or keeps fewer than ``min_ess`` M effective particles are refused by the line
    search; a solve refreshes at most ``max_refreshes`` times. ``log Z_l`` (the free energy) is carried
    through the refreshes by the tempering's telescoping product.
    """
    refresh_ess = _check_fraction("refresh_ess", refresh_ess)
    min_ess = _check_fraction("min_ess", min_ess)
    if min_ess >= refresh_ess:
        raise ConfigError(f"min_ess must be below refresh_ess (the line search's floor under the refresh level), got {min_ess} >= {refresh_ess}")
    return MCMCLayers(_check_int("num_samples", num_samples, 4), _check_int("num_steps", num_steps, 2),
                      _check_fraction("target_acceptance", target_acceptance), refresh_ess, min_ess,
                      _check_int("max_refreshes", max_refreshes, 0), _check_fraction("bridge_ess", bridge_ess),
                      _check_int("max_stages", max_stages, 1))


# --------------------------------------------------------------------------------------- particles
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
