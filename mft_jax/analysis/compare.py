"""Distances between neuron laws, moments with errors, kernel alignment.

Every law is a ``NeuronLaw``: weighted particles (grid quadrature, importance sampling, MCMC
chains, the neurons of a trained network). All distances are between the two weighted discrete
measures *as given*, ``mu = sum_i p_i delta(z_i)``, ``nu = sum_j q_j delta(z'_j)``, in the space
``z = w`` (``space="w"``) or ``z = (a, w)`` (``space="aw"``). A finite sample of a law therefore
sits at a positive distance from the law itself: ``noise_floor`` measures that value, and every
comparison should print a distance next to its noise floor. Kernels: ``kernel_floor`` is the one floor for
the distance (and alignment) between a seed-mean network kernel and a theory kernel.

All metrics are returned in the units of ``z`` (square roots of the squared forms):

- ``sliced_wasserstein``: ``SW2 = sqrt(E_theta W2^2(theta.mu, theta.nu))``, theta uniform on the
  sphere. For a translation by ``m`` it equals ``|m| / sqrt(d)`` (not ``|m|``).
- ``sinkhorn_distance``: ``sqrt(S_eps)``, ``S_eps`` the debiased Sinkhorn divergence with cost
  ``|z - z'|^2`` (Feydy et al. 2019); ``S_eps -> W2^2`` as ``eps -> 0`` and ``S_eps(mu, mu + m) =
  |m|^2`` exactly for a translate.
- ``energy_distance``: ``sqrt(2 E|X - Y| - E|X - X'| - E|Y - Y'|)`` (Szekely; scipy's convention).
- ``mmd``: ``sqrt(E k(X, X') + E k(Y, Y') - 2 E k(X, Y))`` with ``k = exp(-|z - z'|^2 / (2 h^2))``.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from ott.tools import sinkhorn_divergence
from ott.tools import sliced

from mft_jax.activations import get_activation
from mft_jax.errors import ConfigError
from mft_jax.neurons import NeuronLaw
from mft_jax.precision import uses_precision

SPACES = ("w", "aw")
SYMMETRIES = ("none", "odd", "even")
KERNEL_BLOCK = 512  # rows per block of pairwise sums: memory KERNEL_BLOCK * M2 floats


# ----------------------------------------------------------------------------- particles


def particles(law: NeuronLaw, space: str = "w") -> jax.Array:
    """The points ``z`` of a law: ``w`` (M, d) or ``(a, w)`` concatenated (M, C + d)."""
    if space == "w":
        return law.w
    if space == "aw":
        if law.a is None:
            raise ConfigError("space='aw' needs readouts a on both laws; this law has a=None (compare in space='w')")
        return jnp.concatenate([law.a, law.w], axis=-1)
    raise ConfigError(f"space must be one of {SPACES}, got {space!r}")


@uses_precision
def resample(key: jax.Array, law: NeuronLaw, n: int) -> NeuronLaw:
    """``n`` equally weighted particles drawn i.i.d. (multinomially, with replacement) from ``law``."""
    index = jax.random.choice(key, law.num_particles, shape=(n,), p=law.weights())
    return NeuronLaw.from_samples(law.w[index], None if law.a is None else law.a[index])


_resample = jax.jit(resample, static_argnums=2)


@uses_precision
def reduce_particles(key: jax.Array, law: NeuronLaw, max_particles: int, tail_mass: float = 1e-6) -> tuple[NeuronLaw, float]:
    """A law of at most ``max_particles`` particles for the O(M^2) metrics, and the mass it dropped.

    Rule: (1) drop the lightest particles whose total weight is at most ``tail_mass`` and
    renormalise (dropped mass returned); (2) if more than ``max_particles`` remain, replace the law
    by ``max_particles`` equally weighted i.i.d. draws from it (``resample``) -- this adds sampling
    noise of that size, which ``noise_floor`` at that size accounts for. Runs eagerly (the output
    size depends on the data).
    """
    if max_particles < 1 or not 0.0 <= tail_mass < 1.0:
        raise ConfigError(f"max_particles must be >= 1 and tail_mass in [0, 1); got {max_particles}, {tail_mass}")
    weights = np.asarray(law.weights(), dtype=np.float64)
    order = np.argsort(weights)
    dropped = np.searchsorted(np.cumsum(weights[order]), tail_mass, side="right")
    keep = np.sort(order[dropped:])
    dropped_mass = float(weights[order[:dropped]].sum())
    law = NeuronLaw(law.w[keep], law.log_weight[keep], None if law.a is None else law.a[keep])
    if law.num_particles > max_particles:
        law = resample(key, law, max_particles)
    return law, dropped_mass


def _check_pair(z1: jax.Array, z2: jax.Array) -> None:
    if z1.ndim != 2 or z2.ndim != 2 or z1.shape[1] != z2.shape[1]:
        raise ConfigError(f"the two laws must have particles of the same dimension; got shapes {z1.shape} and {z2.shape}")


# ----------------------------------------------------------------------------- OT distances


@uses_precision
@functools.partial(jax.jit, static_argnames=("num_projections", "space"))
def sliced_wasserstein(law1: NeuronLaw, law2: NeuronLaw, *, key: jax.Array, num_projections: int = 256, space: str = "w") -> jax.Array:
    """``SW2 = sqrt(mean_k W2^2(theta_k . mu, theta_k . nu))`` over ``num_projections`` random unit ``theta_k``.

    Weights are respected (ott-jax's quantile solver); both laws see the same directions.
    Between translates by ``m`` its expectation over directions is ``|m| / sqrt(d)``.
    """
    z1, z2 = particles(law1, space), particles(law2, space)
    _check_pair(z1, z2)
    mean_squared, _ = sliced.sliced_wasserstein(z1, z2, a=law1.weights(), b=law2.weights(), n_proj=num_projections, rng=key)
    return jnp.sqrt(jnp.maximum(mean_squared, 0.0))


def _sinkhorn_divergence(z1, p1, z2, p2, epsilon, threshold, max_iterations):
    divergence, output = sinkhorn_divergence.sinkdiv(
        z1, z2, a=p1, b=p2, epsilon=epsilon,
        solve_kwargs={"threshold": threshold, "max_iterations": max_iterations},
    )
    converged = jnp.all(jnp.stack([jnp.asarray(c) for c in output.converged if c is not None]))
    return divergence, converged


@uses_precision
@functools.partial(jax.jit, static_argnames=("space", "max_iterations", "with_convergence"))
def sinkhorn_distance(
    law1: NeuronLaw, law2: NeuronLaw, *, epsilon: float, space: str = "w", threshold: float = 1e-3,
    max_iterations: int = 2000, with_convergence: bool = False,
):
    """``sqrt(S_eps)``: ``S_eps = OT_eps(mu, nu) - (OT_eps(mu, mu) + OT_eps(nu, nu)) / 2``, cost ``|z - z'|^2`` (ott-jax ``sinkdiv``).

    ``epsilon`` is absolute, in units of ``|z|^2`` (take it small against the spread of the
    laws; ``S_eps -> W2^2`` as ``eps -> 0``). Sinkhorn (ott-jax, ``PointCloud`` geometry) stops
    when the marginal error is below ``threshold``. With ``with_convergence=True`` returns
    ``(distance, converged)``; an unconverged solve is not an error here, callers decide.
    Cost O(M1 M2) per iteration: cap large grid laws with ``reduce_particles``.
    """
    z1, z2 = particles(law1, space), particles(law2, space)
    _check_pair(z1, z2)
    divergence, converged = _sinkhorn_divergence(z1, law1.weights(), z2, law2.weights(), epsilon, threshold, max_iterations)
    distance = jnp.sqrt(jnp.maximum(divergence, 0.0))
    return (distance, converged) if with_convergence else distance


# ----------------------------------------------------------------------------- kernel distances


def _weighted_pair_sum(kernel_of_squared_distance: Callable, z1, p1, z2, p2) -> jax.Array:
    """``sum_ij p1_i p2_j k(|z1_i - z2_j|^2)`` in row blocks (memory ``KERNEL_BLOCK * M2``)."""
    rows = z1.shape[0]
    blocks = -(-rows // KERNEL_BLOCK)
    pad = blocks * KERNEL_BLOCK - rows
    z1 = jnp.pad(z1, ((0, pad), (0, 0))).reshape(blocks, KERNEL_BLOCK, -1)
    p1 = jnp.pad(p1, (0, pad)).reshape(blocks, KERNEL_BLOCK)
    norms2 = jnp.sum(z2 * z2, axis=-1)

    def block_sum(block):
        z1_block, p1_block = block
        squared = jnp.sum(z1_block * z1_block, axis=-1)[:, None] + norms2[None, :] - 2.0 * z1_block @ z2.T
        return p1_block @ (kernel_of_squared_distance(jnp.maximum(squared, 0.0)) @ p2)

    return jnp.sum(jax.lax.map(block_sum, (z1, p1)))


def _squared_kernel_distance(kernel_of_squared_distance, law1, law2, space):
    """``E k(X, X') + E k(Y, Y') - 2 E k(X, Y)`` between the two weighted measures."""
    z1, z2 = particles(law1, space), particles(law2, space)
    _check_pair(z1, z2)
    p1, p2 = law1.weights(), law2.weights()
    pair = functools.partial(_weighted_pair_sum, kernel_of_squared_distance)
    return pair(z1, p1, z1, p1) + pair(z2, p2, z2, p2) - 2.0 * pair(z1, p1, z2, p2)


@uses_precision
@functools.partial(jax.jit, static_argnames=("space",))
def energy_distance(law1: NeuronLaw, law2: NeuronLaw, *, space: str = "w") -> jax.Array:
    """``sqrt(2 E|X - Y| - E|X - X'| - E|Y - Y'|)`` with ``X ~ law1``, ``Y ~ law2`` (weighted V-statistic).

    Zero iff the two measures are equal. For ``n`` i.i.d. equal-weight samples its square is
    biased upwards by ``E|X - X'| / n1 + E|Y - Y'| / n2`` (the diagonal terms).
    """
    negative_distance = lambda squared: -jnp.sqrt(squared)  # -|z - z'| is conditionally positive definite
    return jnp.sqrt(jnp.maximum(_squared_kernel_distance(negative_distance, law1, law2, space), 0.0))


@uses_precision
@functools.partial(jax.jit, static_argnames=("space",))
def mmd(law1: NeuronLaw, law2: NeuronLaw, *, bandwidth: float, space: str = "w") -> jax.Array:
    """Maximum mean discrepancy with the Gaussian kernel ``k = exp(-|z - z'|^2 / (2 bandwidth^2))``.

    ``sqrt(E k(X, X') + E k(Y, Y') - 2 E k(X, Y))`` between the weighted measures (V-statistic;
    for ``n`` i.i.d. samples its square is biased upwards by ``(1 - E k(X, X')) / n`` per law).
    """
    gaussian = lambda squared: jnp.exp(-0.5 * squared / bandwidth**2)
    return jnp.sqrt(jnp.maximum(_squared_kernel_distance(gaussian, law1, law2, space), 0.0))


# ----------------------------------------------------------------------------- noise floor


class NoiseFloor(NamedTuple):
    """Distances between independent samples of size ``n`` of one law: their mean and spread over repeats."""

    mean: jax.Array
    std: jax.Array
    values: jax.Array


@uses_precision
def noise_floor(
    law: NeuronLaw, metric: Callable[[NeuronLaw, NeuronLaw], jax.Array], *, key: jax.Array, n: int, repeats: int = 10,
    reference: NeuronLaw | None = None,
) -> NoiseFloor:
    """What a perfect match shows at sample size ``n``: ``metric`` between two i.i.d. size-``n`` samples of ``law``.

    With a ``reference`` law it is ``metric(reference, sample)`` instead: with ``reference=law``
    the floor for comparing an exact (theory) law with ``n`` neurons; with ``reference`` a
    reduced copy of ``law`` (``reduce_particles``) the floor of comparing that copy with ``n``
    exact samples of the full law. Samples are drawn from the weighted law with
    replacement (``resample``), so an equal-weight law of M particles gives a bootstrap floor,
    faithful for ``n`` well below M. ``metric`` takes two laws (bind its options and key with
    ``functools.partial``). The repeats are a Python loop over the jitted ``metric`` on
    fixed shapes, so its compilation is shared with the comparison it accompanies (on CPU,
    compiling an ott-jax Sinkhorn costs more than running it).
    """
    if n < 1 or repeats < 2:
        raise ConfigError(f"noise_floor needs n >= 1 and repeats >= 2; got n={n}, repeats={repeats}")
    values = []
    for repeat_key in jax.random.split(key, repeats):
        first, second = jax.random.split(repeat_key)
        first_law = _resample(first, law, n) if reference is None else reference
        values.append(metric(first_law, _resample(second, law, n)))
    values = jnp.stack(values)
    return NoiseFloor(jnp.mean(values), jnp.std(values, ddof=1), values)


# ----------------------------------------------------------------------------- moments


class Moment(NamedTuple):
    """``E[g]`` and its Monte-Carlo standard error (0 for a quadrature law: its error is not sampling)."""

    mean: jax.Array
    stderr: jax.Array


@uses_precision
def moments(law: NeuronLaw, functions: Mapping[str, Callable[[jax.Array], jax.Array]], *, space: str = "w", quadrature: bool = False) -> dict[str, Moment]:
    """``E[g(z)] = sum_i p_i g(z_i)`` for each named ``g`` (vectorised over particles: (M, k) -> (M, ...)).

    Standard error (self-normalised importance sampling, delta method):
    ``sqrt(sum_i p_i^2 (g_i - E g)^2)``, which is ``std / sqrt(M)`` for equal weights and about
    ``std / sqrt(ESS)`` for weighted particles. MCMC autocorrelation is not accounted for (pass
    independent chains or thinned samples). ``quadrature=True`` (a grid law) reports error 0: the
    quadrature error is deterministic and not estimated here.
    """
    z = particles(law, space)
    weights = law.weights()
    result = {}
    for name, function in functions.items():
        values = function(z)
        mean = law.expectation(values)
        deviations = values - mean
        variance = jnp.tensordot(weights * weights, deviations * deviations, axes=1)
        stderr = jnp.zeros_like(mean) if quadrature else jnp.sqrt(variance)
        result[name] = Moment(mean, stderr)
    return result


# ----------------------------------------------------------------------------- kernels


def _centered(kernel: jax.Array, q: jax.Array) -> jax.Array:
    """``K_c = (I - 1 q^T) K (I - q 1^T)``: the kernel of the features centred under the data law q."""
    row_means = kernel @ q
    return kernel - row_means[:, None] - row_means[None, :] + q @ row_means


def _kernel_inner(kernel1: jax.Array, kernel2: jax.Array, q: jax.Array) -> jax.Array:
    """``<K1, K2>_q = tr(Q K1 Q K2) = sum_{mu nu} q_mu q_nu K1_{mu nu} K2_{mu nu}``."""
    return q @ (kernel1 * kernel2) @ q


def _data_weights(kernel: jax.Array, q: jax.Array | None) -> jax.Array:
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ConfigError(f"a kernel must be a square (P, P) matrix, got shape {kernel.shape}")
    size = kernel.shape[0]
    return jnp.full(size, 1.0 / size, jnp.asarray(kernel).dtype) if q is None else q


@uses_precision
def kernel_alignment(kernel1: jax.Array, kernel2: jax.Array, q: jax.Array | None = None) -> jax.Array:
    """Centred kernel alignment ``<K1c, K2c>_q / sqrt(<K1c, K1c>_q <K2c, K2c>_q)`` in [-1, 1].

    ``q`` are the data weights (default uniform); centring is under q. Invariant to
    ``K -> c K`` (c > 0) and to adding a constant; 1 iff the centred kernels are proportional.
    """
    q = _data_weights(kernel1, q)
    centered1, centered2 = _centered(kernel1, q), _centered(kernel2, q)
    return _kernel_inner(centered1, centered2, q) / jnp.sqrt(_kernel_inner(centered1, centered1, q) * _kernel_inner(centered2, centered2, q))


@uses_precision
def relative_kernel_error(kernel: jax.Array, reference: jax.Array, q: jax.Array | None = None) -> jax.Array:
    """``|K - K_ref|_q / |K_ref|_q`` with the data-weighted Frobenius norm ``|K|_q^2 = sum q_mu q_nu K_{mu nu}^2``."""
    q = _data_weights(reference, q)
    difference = kernel - reference
    return jnp.sqrt(_kernel_inner(difference, difference, q) / _kernel_inner(reference, reference, q))


# ----------------------------------------------------------------------------- kernel noise floor


class KernelFloor(NamedTuple):
    """What a matching law shows when the networks' seed-mean kernel is compared with the theory's (``kernel_floor``).

    ``distance``: the expected ``relative_kernel_error(K_net, K_theory)``, ``sqrt(E|K_net - K_theory|_q^2) / |K_theory|_q``,
    the sum in quadrature of ``networks`` (the S-seed mean's own noise) and ``theory`` (the theory kernel's sampling
    noise); ``alignment``: the expected ``1 - kernel_alignment`` from the same two variances (the part of the centred
    noise orthogonal to the centred kernel, ``1 - A = |delta_perp|^2 / (2 |K_c|^2)`` to second order)."""

    distance: float
    networks: float
    theory: float
    alignment: float


def _unit(kernel: jax.Array, q: jax.Array) -> jax.Array:
    return kernel / jnp.sqrt(_kernel_inner(kernel, kernel, q))


def particle_kernel_variance(features: jax.Array, weights: jax.Array, q: jax.Array | None = None) -> tuple[float, float]:
    """Sampling noise of a particle kernel ``K = sum_i p_i phi_i phi_i^T`` (``features`` (M, P), ``weights`` p (M,)).

    Delta method for self-normalised weights (exact for i.i.d. equal weights): ``E|K - K_inf|_q^2 = sum_i p_i^2
    |phi_i phi_i^T - K|_q^2`` with ``|phi phi^T - K|_q^2 = (sum_mu q_mu phi_mu^2)^2 - 2 phi^T Q K Q phi + |K|_q^2``.
    Returns ``(total, perpendicular)``: the total and the part of the centred noise orthogonal to the centred ``K``
    (what lowers the alignment). Correlated particles (MCMC) make it a lower bound.
    """
    features = jnp.asarray(features)
    weights = jnp.asarray(weights, features.dtype)
    kernel = (features * weights[:, None]).T @ features
    q = _data_weights(kernel, q)
    quad = lambda f, k: jnp.einsum("mp,p,pr,r,mr->m", f, q, k, q, f)
    total = jnp.sum(weights**2 * ((features**2 @ q) ** 2 - 2 * quad(features, kernel) + _kernel_inner(kernel, kernel, q)))
    centred = features - (features @ q)[:, None]
    kc = _centered(kernel, q)
    norm2 = _kernel_inner(kc, kc, q)
    full_c = (centred**2 @ q) ** 2 - 2 * quad(centred, kc) + norm2
    parallel = (quad(centred, kc) - norm2) ** 2 / norm2
    return float(total), float(jnp.sum(weights**2 * (full_c - parallel)))


def kernel_floor(seed_kernels: jax.Array, reference: jax.Array, q: jax.Array | None = None, *, theory_variance: float = 0.0,
                 theory_variance_perpendicular: float = 0.0) -> KernelFloor:
    """The noise floor of comparing the mean of S per-seed network kernels with a theory kernel: ONE definition.

    The compared quantity is ``d = |Kbar_S - K_theory|_q / |K_theory|_q`` with ``Kbar_S`` the mean of the S seeds
    (``seed_kernels`` (S, P, P)) and ``K_theory = reference``. If the networks' law is the theory's, ``Kbar_S - K_theory``
    is the sum of two independent noises, so ``E d^2 |K|^2 = tr_q Sigma / S + theory_variance``:

    - ``tr_q Sigma / S``: the seed mean's variance, estimated without bias from the seeds' spread,
      ``sum_s |K_s - Kbar|_q^2 / (S (S - 1))``. (The old floor, the distance between the means of two halves of the seeds,
      estimates ``4 tr_q Sigma / S``: twice the distance this term gives, and it left the theory's noise out.)
    - ``theory_variance``: ``E|K_theory - K_inf|_q^2`` of the theory's finite sample (``particle_kernel_variance``).

    ``alignment``: ``E(1 - A) = (|delta_c,perp|^2_seeds + theory_variance_perpendicular) / (2 |K_c|_q^2)``, the seeds' part
    from their centred deviations orthogonal to the centred reference. Needs S >= 2.
    """
    seed_kernels = jnp.asarray(seed_kernels)
    if seed_kernels.ndim != 3 or seed_kernels.shape[0] < 2 or seed_kernels.shape[1:] != jnp.shape(reference):
        raise ConfigError(f"kernel_floor needs (S >= 2, P, P) seed kernels matching the (P, P) reference; got "
                          f"{seed_kernels.shape} and {jnp.shape(reference)}")
    q = _data_weights(reference, q)
    seeds = seed_kernels.shape[0]
    deviations = seed_kernels - seed_kernels.mean(axis=0)
    norm2 = _kernel_inner(reference, reference, q)
    networks2 = sum(_kernel_inner(d, d, q) for d in deviations) / (seeds * (seeds - 1))
    unit_c = _unit(_centered(reference, q), q)
    perpendicular = 0.0
    for d in deviations:
        dc = _centered(d, q)
        perpendicular += _kernel_inner(dc, dc, q) - _kernel_inner(dc, unit_c, q) ** 2
    perpendicular = perpendicular / (seeds * (seeds - 1))
    kc_norm2 = _kernel_inner(_centered(reference, q), _centered(reference, q), q)
    return KernelFloor(float(jnp.sqrt((networks2 + theory_variance) / norm2)), float(jnp.sqrt(networks2 / norm2)),
                       float(jnp.sqrt(theory_variance / norm2)),
                       float((perpendicular + theory_variance_perpendicular) / (2 * kc_norm2)))


def half_set_floor_to_kernel_floor(half_set_distance: float, seeds: int, width: int | None = None, effective_sample_size: float | None = None) -> dict:
    """Re-express a stored half-set floor (``relative_kernel_error`` between the means of two halves of S seeds) as
    ``kernel_floor``'s ``distance``, for results written before ``kernel_floor`` existed.

    ``E d_half^2 = 4 tr Sigma / S`` (halves of S/2 seeds), so the seed mean's part is ``d_half / 2``. The theory's part
    needs its particles; from stored numbers only a stand-in: a theory law equal to the networks' has per-neuron kernel
    variance ``N sigma_seed^2`` (at least: a run average lowers the per-seed variance), so ``theory^2 >= N (S d_half^2 / 4) / ESS``.
    Returns both parts and their sum in quadrature (a lower bound on the floor when the stand-in is used).
    """
    networks = half_set_distance / 2
    out = {"networks": networks, "theory": None, "distance": networks}
    if width is not None and effective_sample_size:
        theory = math.sqrt(width * seeds * half_set_distance**2 / 4 / effective_sample_size)
        out.update(theory=theory, distance=math.hypot(networks, theory))
    return out


# ----------------------------------------------------------------------------- the learned part of a kernel


def learned_part(kernel: jax.Array, theory: jax.Array, nngp: jax.Array, q: jax.Array | None = None,
                 floor: KernelFloor | None = None) -> dict:
    """Compare what feature learning adds: the learned parts ``D_net = K_net - K_NNGP`` and ``D_theory = K_theory - K_NNGP``.

    A whole-kernel alignment is dominated by the NNGP part both share (the NNGP itself scores 0.94-0.998 on the
    deep-composition kernels); on the learned part the NNGP predicts ``D = 0`` and so scores by construction
    ``distance = |D_net - 0|_q / |D_net|_q = 1`` and ``alignment = 0``. Returns, for ``"theory"`` and ``"nngp"``:

    - ``distance``: ``|D_net - D|_q / |D_net|_q`` (1: explains none of the learned part; 0: all of it);
    - ``alignment``: ``kernel_alignment(D, D_net)`` (centred; 0 for the NNGP);
    - and ``learned_norm = |D_net|_q / |K_net|_q`` (how much there is to explain), and with ``floor`` (``kernel_floor``
      of the same comparison) ``distance_floor = floor.distance |K_theory|_q / |D_net|_q``, the learned-part distance a
      matching law shows (the noise is the same matrix; only the normalisation changes).
    """
    q = _data_weights(kernel, q)
    norm = lambda k: float(jnp.sqrt(_kernel_inner(k, k, q)))
    learned_net, learned_theory = kernel - nngp, theory - nngp
    net_norm = norm(learned_net)
    if not net_norm > 0:
        raise ConfigError("the network kernel equals the NNGP kernel: there is no learned part to compare")
    out = {"theory": {"distance": norm(learned_net - learned_theory) / net_norm,
                      "alignment": float(kernel_alignment(learned_theory, learned_net, q))},
           "nngp": {"distance": 1.0, "alignment": 0.0},
           "learned_norm": net_norm / norm(kernel)}
    if floor is not None:
        out["distance_floor"] = floor.distance * norm(theory) / net_norm
    return out


# ----------------------------------------------------------------------------- symmetries


def activation_symmetry(activation, *, atol: float = 1e-6) -> str:
    """``"odd"`` if ``phi(-z) = -phi(z)``, ``"even"`` if ``phi(-z) = phi(z)``, else ``"none"``.

    Checked numerically on z in [-10, 10] (401 points) to ``atol`` relative to ``max |phi|``.
    Odd phi: ``(a, w) -> (-a, -w)`` leaves the network and the posterior invariant; even phi:
    ``(a, w) -> (a, -w)`` does.
    """
    phi = get_activation(activation)
    z = np.linspace(-10.0, 10.0, 401)
    values, mirrored = np.asarray(phi(jnp.asarray(z))), np.asarray(phi(jnp.asarray(-z)))
    scale = max(float(np.max(np.abs(values))), 1e-30)
    if np.all(np.abs(mirrored + values) <= atol * scale):
        return "odd"
    if np.all(np.abs(mirrored - values) <= atol * scale):
        return "even"
    return "none"


@uses_precision
def canonicalize(law: NeuronLaw, symmetry: str, *, direction: jax.Array | None = None) -> NeuronLaw:
    """Map each neuron to a representative of its orbit under the activation's symmetry.

    - ``"none"``: the law unchanged.
    - ``"odd"`` (``(a, w) -> (-a, -w)``): the representative has ``a_1 >= 0`` (first readout
      component) when readouts are present, else ``w . direction >= 0``.
    - ``"even"`` (``(a, w) -> (a, -w)``): the representative has ``w . direction >= 0``.

    ``direction`` defaults to the first axis ``e_1``. Neurons on the boundary (= 0) are kept.
    Weights are unchanged: the law of the representatives is the pushforward of the law.
    """
    if symmetry not in SYMMETRIES:
        raise ConfigError(f"symmetry must be one of {SYMMETRIES}, got {symmetry!r}")
    if symmetry == "none":
        return law
    if direction is None:
        direction = jnp.zeros(law.w.shape[-1], law.w.dtype).at[0].set(1.0)
    if symmetry == "odd" and law.a is not None:
        flip = law.a[:, 0] < 0
    else:
        flip = law.w @ direction < 0
    sign = jnp.where(flip, -1.0, 1.0).astype(law.w.dtype)[:, None]
    a = law.a if law.a is None or symmetry == "even" else sign * law.a
    return NeuronLaw(sign * law.w, law.log_weight, a)


# ----------------------------------------------------------------------------- power laws


class PowerLaw(NamedTuple):
    """``y = prefactor * x^exponent`` fitted in log-log space, with the exponent's standard error."""

    exponent: float
    exponent_stderr: float
    prefactor: float


def fit_power_law(x, y, errors=None) -> PowerLaw:
    """Weighted least squares of ``log y = log A + k log x`` (weights ``(y / error)^2``, delta method).

    The exponent's standard error is from the fit's covariance, scaled by the reduced chi^2 when
    no errors are given (then the residual scatter sets it).
    """
    log_x, log_y = np.log(np.asarray(x, np.float64)), np.log(np.asarray(y, np.float64))
    if log_x.shape != log_y.shape or log_x.size < 2 or not (np.all(np.isfinite(log_x)) and np.all(np.isfinite(log_y))):
        raise ConfigError("fit_power_law needs >= 2 positive finite (x, y) pairs of equal length")
    sigma = np.ones_like(log_y) if errors is None else np.asarray(errors, np.float64) / np.asarray(y, np.float64)
    design = np.stack([np.ones_like(log_x), log_x], axis=1) / sigma[:, None]
    coefficients, *_ = np.linalg.lstsq(design, log_y / sigma, rcond=None)
    covariance = np.linalg.inv(design.T @ design)
    dof = log_x.size - 2
    if errors is None:
        residual = log_y - (coefficients[0] + coefficients[1] * log_x)
        covariance = covariance * (residual @ residual / dof if dof > 0 else np.nan)
    return PowerLaw(float(coefficients[1]), float(np.sqrt(covariance[1, 1])), float(np.exp(coefficients[0])))


# ----------------------------------------------------------------------------- all at once


def spread(law: NeuronLaw, space: str = "w") -> float:
    """RMS radius ``sqrt(E|z - E z|^2)`` of a law: the length scale of the default MMD bandwidth and Sinkhorn epsilon."""
    z = particles(law, space)
    centred = z - law.expectation(z)
    return float(jnp.sqrt(law.expectation(jnp.sum(centred * centred, axis=-1))))


@uses_precision
def compare_laws(
    theory: NeuronLaw, empirical: NeuronLaw, *, key: jax.Array, space: str = "w", symmetry: str = "none",
    num_projections: int = 256, epsilon: float | None = None, bandwidth: float | None = None,
    max_particles: int = 2000, tail_mass: float = 1e-6, repeats: int = 10,
    functions: Mapping[str, Callable] | None = None, theory_is_quadrature: bool = False,
) -> dict:
    """All distances between a theory law and an empirical one, each next to its noise floor; JSON-ready.

    Both laws are canonicalised under ``symmetry`` and the theory law is capped with
    ``reduce_particles(max_particles, tail_mass)``. Defaults, stated in the output: MMD
    bandwidth ``h`` = the theory's RMS radius (``spread``), Sinkhorn ``epsilon = 0.05 h^2``.
    Noise floors are ``noise_floor(theory, ..., n=empirical.num_particles, reference=capped theory)``:
    the distance of ``n`` exact samples of the full theory law from the (capped) theory law that
    the empirical law is compared with -- what a perfect network of that width would show. ``functions`` adds
    ``moments`` of both laws with standard errors and their z-score.
    """
    reduce_key, projection_key, floor_key = jax.random.split(key, 3)
    theory = canonicalize(theory, symmetry)
    empirical = canonicalize(empirical, symmetry)
    full_theory = theory
    theory, dropped_mass = reduce_particles(reduce_key, theory, max_particles, tail_mass)
    length = spread(theory, space)
    bandwidth = length if bandwidth is None else float(bandwidth)
    epsilon = 0.05 * length**2 if epsilon is None else float(epsilon)
    sinkhorn = functools.partial(sinkhorn_distance, epsilon=epsilon, space=space, with_convergence=True)
    metrics = {
        "sliced_wasserstein": functools.partial(sliced_wasserstein, key=projection_key, num_projections=num_projections, space=space),
        "sinkhorn": lambda law1, law2: sinkhorn(law1, law2)[0],
        "energy": functools.partial(energy_distance, space=space),
        "mmd": functools.partial(mmd, bandwidth=bandwidth, space=space),
    }
    n = empirical.num_particles
    result = {
        "space": space, "symmetry": symmetry,
        "theory": {"num_particles": full_theory.num_particles, "effective_sample_size": float(full_theory.effective_sample_size()),
                   "compared_particles": theory.num_particles, "dropped_mass": dropped_mass},
        "empirical": {"num_particles": n, "effective_sample_size": float(empirical.effective_sample_size())},
        "settings": {"num_projections": num_projections, "sinkhorn_epsilon": epsilon, "mmd_bandwidth": bandwidth,
                     "noise_floor_repeats": repeats, "noise_floor_n": n},
    }
    for floor_key_i, (name, metric) in zip(jax.random.split(floor_key, len(metrics)), metrics.items()):
        floor = noise_floor(full_theory, metric, key=floor_key_i, n=n, repeats=repeats, reference=theory)
        result[name] = {"distance": float(metric(theory, empirical)), "noise_floor": float(floor.mean), "noise_floor_std": float(floor.std)}
    result["sinkhorn"]["converged"] = bool(sinkhorn(theory, empirical)[1])
    if functions:
        theory_moments = moments(full_theory, functions, space=space, quadrature=theory_is_quadrature)
        empirical_moments = moments(empirical, functions, space=space)
        result["moments"] = {}
        for name in functions:
            (m1, e1), (m2, e2) = theory_moments[name], empirical_moments[name]
            combined = np.sqrt(np.asarray(e1) ** 2 + np.asarray(e2) ** 2)
            z_score = (np.asarray(m2) - np.asarray(m1)) / np.where(combined > 0, combined, np.inf)  # 0 when both errors are 0
            result["moments"][name] = {"theory": np.asarray(m1).tolist(), "theory_stderr": np.asarray(e1).tolist(),
                                       "empirical": np.asarray(m2).tolist(), "empirical_stderr": np.asarray(e2).tolist(),
                                       "z_score": z_score.tolist()}
    return result
