"""Modular addition with a square activation and a sextic Fourier prior (docs/theory.md section 9).

Setting (Rubin, Seroussi & Ringel, ICLR 2024, section 3.2 and appendix B): all P^2 pairs (n, m) of
Z_P, two-hot inputs ``x = e_n (+) e_m`` in R^(2P), targets ``y_p = delta_{p,(n+m) mod P} - 1/P``,
``phi(z) = z^2``, weight prior ``exp(-|w|^2/2 - Gamma(w))`` with the Fourier sextic
``Gamma = sum_k P (gamma/6)(|w_k|^6 + |v_k|^6)`` (``mft_jax.priors.fourier_sextic``). P is odd.

Writing ``w = (u, v)`` (halves), ``w_k = (1/P) sum_n u_n e^(2 pi i k n/P)`` (``v_k`` likewise),
``Phi_k = |w_k|^2``, ``Psi_k = |v_k|^2``:

- overlap with the target: ``S_p(w) = sum_x y_p(x) (w.x)^2 = 2 [(u * v)_p - (sum u)(sum v)/P]``
  (circular convolution) ``= 2P sum_{k != 0} w_k v_k e^(-2 pi i k p/P)``, so ``|S|^2 = 4 P^3 sum_{k!=0} Phi_k Psi_k``;
- on the full table the residual is exactly ``r = a y`` (translation and dilation symmetry of Z_P);
  the single-neuron law then factorises over the (P-1)/2 conjugate pairs ``(k, P-k)``: each pair has
  the law ``exp(-2P A(Phi, Psi)) dPhi dPsi`` on [0, inf)^2 (uniform phases) with the per-mode action

      A = (Phi + Psi)/2 - g Phi Psi + (gamma/6)(Phi^3 + Psi^3),   g = u a^2,

  ``u = 4 c / P^2`` in library units (``c = beta^2 sa2/2``), ``u = 2 sigma_a^2 P^2/(N sigma^4)`` in the paper's;
- self-consistency: ``f = beta sa2 K Q r`` and ``sum_x' K(x, x') y(x') = 4 P^2 <Phi Psi> y(x)`` give

      a = 1 / (1 + 4 kappa <Phi Psi>_g),   kappa = beta sa2 = P^2 sigma_a^2 / sigma^2,

  ``<Phi Psi> = 1/P^2`` under the Gaussian prior (the GP: ``a_GP = 1/(1 + 4 kappa/P^2)``).

This module gives the exact per-mode integral (``pair_mode``), its large-P saddle points
(``saddle``), the self-consistent discrepancy coefficient and phase (``solve_discrepancy``), the paper's Fig. 3
onsets (closed forms ``saddle_phase_boundaries``; the paper's own finite-P two-saddle mixture ``mixture_discrepancy``,
``mixture_phase_boundaries``), and for networks the exact Fourier form of the loss (``fourier_loss``) and Fourier
diagnostics.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import quad
from scipy.special import logsumexp

from mft_jax.theory.background import predict_from_kernel, residual_from_kernel
from mft_jax.errors import ConfigError
from mft_jax.priors import fourier_coefficients

# ---------------------------------------------------------------------------------------------
# Networks: the exact Fourier form of the loss on the full table, and Fourier diagnostics
# ---------------------------------------------------------------------------------------------


def _halves(w: jax.Array) -> tuple[jax.Array, jax.Array, int]:
    if w.shape[-1] % 2:
        raise ConfigError(f"modular-addition weights live in R^(2P); got dimension {w.shape[-1]}")
    modulus = w.shape[-1] // 2
    return w[..., :modulus], w[..., modulus:], modulus


def target_overlap(w: jax.Array) -> jax.Array:
    """``S_p(w) = sum_{n,m} y_p(n, m) (u_n + v_m)^2 = 2 [(u * v)_p - (sum u)(sum v)/P]``: (M, P) for w (M, 2P).

    The circular convolution ``(u * v)_p = sum_n u_n v_{p-n}`` is computed by FFT.
    """
    u, v, modulus = _halves(w)
    convolution = jnp.fft.irfft(jnp.fft.rfft(u, axis=-1) * jnp.fft.rfft(v, axis=-1), n=modulus, axis=-1)
    return 2.0 * (convolution - jnp.sum(u, -1, keepdims=True) * jnp.sum(v, -1, keepdims=True) / modulus)


def feature_gram(w: jax.Array) -> jax.Array:
    """``G_ij = sum_{n,m} (u_in + v_im)^2 (u_jn + v_jm)^2``: (M, M), in O(M^2 P) instead of O(M^2 P^2)."""
    u, v, modulus = _halves(w)
    u2, v2 = u * u, v * v
    su, sv, su2, sv2 = (jnp.sum(z, -1) for z in (u, v, u2, v2))
    outer = lambda p, q: p[:, None] * q[None, :]
    return (
        modulus * (u2 @ u2.T + v2 @ v2.T)
        + outer(su2, sv2) + outer(sv2, su2)
        + 2 * ((u2 @ u.T) * sv[None, :] + (v2 @ v.T) * su[None, :])
        + 2 * ((u @ u2.T) * sv[:, None] + (v @ v2.T) * su[:, None])
        + 4 * (u @ u.T) * (v @ v.T)
    )


def fourier_loss(params: dict, model, data=None) -> jax.Array:
    """``L = 1/(2P^2) sum_{n,m} |f(n, m) - y(n, m)|^2`` on the full table, without forming the P^2 x P outputs.

    ``sum |f|^2 = sum_ij (a_i . a_j) G_ij / D^2``, ``sum f . y = sum_i a_i . S(w_i) / D``, ``sum |y|^2 = P (P - 1)``,
    ``D = N`` (mean-field) or ``sqrt(N)``. Equal to ``mft_jax.train.joint.loss`` on
    ``make_data("modular_addition", modulus=P)`` (tested); ``data`` is accepted for the trainer's signature.
    """
    a, w = params["a"], params["w"]
    modulus = w.shape[-1] // 2
    norm = model.readout_norm(a.shape[0])
    output_power = jnp.sum((a @ a.T) * feature_gram(w)) / norm**2
    cross = jnp.sum(a * target_overlap(w)) / norm
    return (output_power - 2.0 * cross + modulus * (modulus - 1)) / (2.0 * modulus**2)


def mode_powers(w: jax.Array) -> jax.Array:
    """``(Phi_k, Psi_k) = (|w_k|^2, |v_k|^2)`` for the pair modes k = 1..(P-1)/2: (M, 2, (P-1)/2)."""
    u, v, modulus = _halves(w)
    coefficients = fourier_coefficients(jnp.stack([u, v], axis=-2))
    return jnp.abs(coefficients[..., 1 : (modulus - 1) // 2 + 1]) ** 2


def network_discrepancy(params: dict, model) -> jax.Array:
    """``a = 1 - sum_x f . y / sum_x |y|^2`` of a network on the full table (``r = a y`` when the symmetry holds)."""
    a, w = params["a"], params["w"]
    modulus = w.shape[-1] // 2
    norm = model.readout_norm(a.shape[0])
    return 1.0 - jnp.sum(a * target_overlap(w)) / (norm * modulus * (modulus - 1))


def learned_fraction(w: jax.Array, threshold: float) -> jax.Array:
    """Fraction of (neuron, pair mode) with ``Phi_k Psi_k > threshold^2`` (the mode sits at the nonzero saddle)."""
    powers = mode_powers(w)
    return jnp.mean(powers[..., 0, :] * powers[..., 1, :] > threshold**2)


def top_mode_share(powers: jax.Array) -> jax.Array:
    """Per neuron: the share of ``sum_k (Phi_k + Psi_k)`` (pair modes) in its strongest pair mode; ``powers`` (..., 2, K)."""
    total = powers[..., 0, :] + powers[..., 1, :]
    return jnp.max(total, axis=-1) / jnp.sum(total, axis=-1)


# ---------------------------------------------------------------------------------------------
# The reduced theory: one pair mode
# ---------------------------------------------------------------------------------------------


class Saddle(NamedTuple):
    """Stationary points of ``A`` on the diagonal ``Phi = Psi = x``: ``1 - 2 g x + gamma x^2 = 0``.

    ``barrier`` (x_-) and ``learned`` (x_+) are NaN when ``g^2 < gamma`` (only the zero saddle);
    ``action`` is ``A(x_+, x_+) = x_+ - g x_+^2 + gamma x_+^3 / 3`` (the zero saddle has ``A = 0``).
    """

    barrier: float
    learned: float
    action: float


def saddle(g: float, gamma: float) -> Saddle:
    """The diagonal saddle points of the per-mode action (a nonzero one exists iff ``g^2 >= gamma``)."""
    if gamma <= 0 or g * g < gamma:
        return Saddle(math.nan, math.nan, math.nan)
    root = math.sqrt(g * g - gamma)
    barrier, learned = (g - root) / gamma, (g + root) / gamma
    return Saddle(barrier, learned, learned - g * learned**2 + gamma * learned**3 / 3)


def coexistence_coupling(gamma: float) -> float:
    """``g_c = sqrt(4 gamma / 3)``: the nonzero saddle's action ties the zero saddle's (P -> infinity).

    There ``x_+ = 3 g_c / (2 gamma) = sqrt(3 / gamma)`` (double root of ``1 - g x + gamma x^2/3``).
    """
    return math.sqrt(4.0 * gamma / 3.0)


class PairMode(NamedTuple):
    """Moments of one pair mode's law ``exp(-2P A) dPhi dPsi``: ``log_partition``, ``phi_psi = <Phi Psi>``,
    ``phi = <Phi>``, ``learned`` = mass beyond the barrier (``Phi Psi > x_-^2``; 0 without a nonzero saddle),
    ``learned_share`` = the part of ``<Phi Psi>`` carried by that mass."""

    log_partition: float
    phi_psi: float
    phi: float
    learned: float
    learned_share: float


def _grid(g: float, gamma: float, modulus: int, points: int) -> np.ndarray:
    """Nodes in Phi: geometric from 1e-5/P (the zero well, scale 1/P) plus dense patches at x_-, x_+."""
    stationary = saddle(g, gamma)
    top = max(80.0 / modulus, (120.0 / (modulus * gamma)) ** (1 / 3) if gamma > 0 else 0.0)
    if g > 0 and gamma == 0:
        raise ConfigError("pair_mode with g > 0 needs gamma > 0 (otherwise the law is not normalizable)")
    if not math.isnan(stationary.learned):
        top = max(top, 2.5 * stationary.learned)
    nodes = [np.geomspace(1e-5 / modulus, top, points), [0.0]]
    for x in (stationary.barrier, stationary.learned):
        if not math.isnan(x):
            curvature = 2 * modulus * max(gamma * x - g, 0.0) + (2 * modulus) ** (2 / 3) * (gamma * x + 1e-300) ** (1 / 3)
            width = 1.0 / math.sqrt(curvature)
            nodes.append(np.linspace(max(x - 14 * width, 0.0), x + 14 * width, points // 2))
    return np.unique(np.concatenate(nodes))


def _pair_mode_grid(g: float, gamma: float, modulus: int, points: int):
    """Nodes ``x`` and the normalised masses ``prob[i, j]`` of ``(Phi, Psi) = (x_i, x_j)``, and ``log Z``."""
    if g < 0 or gamma < 0 or modulus < 3 or modulus % 2 == 0:
        raise ConfigError(f"pair_mode needs g >= 0, gamma >= 0 and an odd modulus >= 3; got g={g}, gamma={gamma}, modulus={modulus}")
    x = _grid(g, gamma, modulus, points)
    weights = np.zeros_like(x)
    weights[1:] += np.diff(x) / 2
    weights[:-1] += np.diff(x) / 2
    one = -2 * modulus * (x / 2 + gamma * x**3 / 6)
    log_w = np.log(weights, where=weights > 0, out=np.full_like(x, -np.inf))
    exponent = (one + log_w)[:, None] + (one + log_w)[None, :] + 2 * modulus * g * np.outer(x, x)
    log_z = logsumexp(exponent)
    return x, np.exp(exponent - log_z), float(log_z)


def pair_mode(g: float, gamma: float, modulus: int, points: int = 900, threshold: float | None = None) -> PairMode:
    """The exact two-variable integral ``Z = int_0^inf int_0^inf exp(-2P A(Phi, Psi)) dPhi dPsi`` and its moments.

    Trapezoid rule on a product grid adapted to the wells (``_grid``), in log space; tested against
    brute-force quadrature (scipy) and against the saddle points at large P. ``learned`` counts the mass
    with ``Phi Psi > threshold^2`` (default: the barrier ``x_-`` of this g).
    """
    x, prob, log_z = _pair_mode_grid(g, gamma, modulus, points)
    product = np.outer(x, x)
    barrier = saddle(g, gamma).barrier if threshold is None else threshold
    beyond = product > barrier**2 if not math.isnan(barrier) else np.zeros_like(product, dtype=bool)
    phi_psi = float(np.sum(prob * product))
    learned_share = float(np.sum((prob * product)[beyond])) / phi_psi
    return PairMode(log_z, phi_psi, float(np.sum(prob.sum(1) * x)), float(np.sum(prob[beyond])), learned_share)


def sample_pair_modes(rng: np.random.Generator, g: float, gamma: float, modulus: int, size, points: int = 600) -> np.ndarray:
    """``size`` independent draws of ``(Phi, Psi)`` from one pair mode's law (grid nodes): shape (*size, 2)."""
    x, prob, _ = _pair_mode_grid(g, gamma, modulus, points)
    index = rng.choice(prob.size, size=size, p=prob.ravel() / prob.sum())
    return np.stack([x[index // x.size], x[index % x.size]], axis=-1)


def exact_coexistence(gamma: float, modulus: int, points: int = 900) -> float:
    """``g_c(P)``: the coupling at which one pair mode is equally likely in the zero and the learned well."""
    low, high = math.sqrt(gamma) * 1.0000001, 2.0 * coexistence_coupling(gamma) + 4.0 / modulus
    for _ in range(40):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if pair_mode(mid, gamma, modulus, points).learned < 0.5 else (low, mid)
    return 0.5 * (low + high)


# ---------------------------------------------------------------------------------------------
# Self-consistency for the discrepancy coefficient a (r = a y) and the phase
# ---------------------------------------------------------------------------------------------


class Discrepancy(NamedTuple):
    """Self-consistent ``a`` (``r = a y``; 1: f = 0, 0: f = y), the coupling ``g = u a^2``, ``<Phi Psi>``, the
    fraction ``learned`` of pair modes at the nonzero saddle, and the phase (``"GFL"``, ``"GMFL-I"``, ``"GMFL-II"``)."""

    a: float
    g: float
    phi_psi: float
    learned: float
    phase: str


def solve_discrepancy(u: float, kappa: float, gamma: float, modulus: int, method: str = "exact", points: int = 900) -> Discrepancy:
    """Solve ``a (1 + 4 kappa <Phi Psi>_{u a^2}) = 1``.

    ``method="exact"``: ``<Phi Psi>`` from the exact per-mode integral; the left side increases with
    ``a``, so the root is unique (bisection). Phase: GMFL-II when at least 99% of the pair modes sit at
    the nonzero saddle; GMFL-I when the modes at the nonzero saddle carry at least half of ``<Phi Psi>``
    (the kernel's eigenvalue on the target), however few they are; GFL otherwise.

    ``method="saddle"`` (P -> infinity, the paper's treatment): ``<Phi Psi> = 1/P^2`` at the zero saddle,
    ``x_+(g)^2`` at the nonzero one, any mixture at ``g = g_c``: GFL if ``u a_GP^2 < g_c``; else GMFL-I with
    ``a = sqrt(g_c/u)`` and learned fraction ``p`` from the equation while ``p <= 1``; else GMFL-II.
    """
    if method == "saddle":
        g_c = coexistence_coupling(gamma)
        m0 = 1.0 / modulus**2
        a_gp = 1.0 / (1.0 + 4 * kappa * m0)
        if u * a_gp**2 <= g_c:
            return Discrepancy(a_gp, u * a_gp**2, m0, 0.0, "GFL")
        a_mixed = math.sqrt(g_c / u)
        x_c = saddle(g_c, gamma).learned
        p = ((1 / a_mixed - 1) / (4 * kappa) - m0) / (x_c**2 - m0)
        if p <= 1:
            return Discrepancy(a_mixed, g_c, p * x_c**2 + (1 - p) * m0, p, "GMFL-I")
        low, high = 0.0, a_mixed  # GMFL-II: a (1 + 4 kappa x_+(u a^2)^2) = 1 with u a^2 > g_c
        for _ in range(200):
            mid = 0.5 * (low + high)
            value = mid * (1 + 4 * kappa * saddle(max(u * mid * mid, g_c), gamma).learned ** 2)
            low, high = (mid, high) if value < 1 else (low, mid)
        a = 0.5 * (low + high)
        return Discrepancy(a, u * a * a, saddle(u * a * a, gamma).learned ** 2, 1.0, "GMFL-II")
    if method != "exact":
        raise ConfigError(f"method must be 'exact' or 'saddle', got {method!r}")
    low, high = 0.0, 1.0
    for _ in range(48):
        mid = 0.5 * (low + high)
        value = mid * (1 + 4 * kappa * pair_mode(u * mid * mid, gamma, modulus, points).phi_psi)
        low, high = (mid, high) if value < 1 else (low, mid)
    a = 0.5 * (low + high)
    mode = pair_mode(u * a * a, gamma, modulus, points)
    phase = "GMFL-II" if mode.learned >= 0.99 else ("GMFL-I" if mode.learned_share >= 0.5 else "GFL")
    return Discrepancy(a, u * a * a, mode.phi_psi, mode.learned, phase)


EIGENVALUE_CONVENTIONS = ("kernel", "per_mode")


class PhaseBoundaries(NamedTuple):
    """Closed-form phase boundaries in sigma^2 of the saddle-point theory on the full table (``saddle_phase_boundaries``).

    ``gmfl1_sigma2`` / ``gmfl2_sigma2``: where GMFL-I / GMFL-II start (None when the closed form is not positive);
    ``a_at_gmfl1`` / ``a_at_gmfl2``: ``|a|`` there (the paper's sign is ``-|a|``); ``slope``: ``a = slope sigma^2`` inside
    GMFL-I; ``eigenvalue_prior`` / ``eigenvalue_learned``: the target eigenvalue under the prior and with every pair mode
    learned, in the stated ``convention``; ``g_c``, ``x_c``: coexistence coupling and the learned well there."""

    gmfl1_sigma2: float | None
    gmfl2_sigma2: float | None
    a_at_gmfl1: float | None
    a_at_gmfl2: float | None
    slope: float
    eigenvalue_prior: float
    eigenvalue_learned: float
    g_c: float
    x_c: float
    convention: str


def saddle_phase_boundaries(modulus: int, width: int, sa2_u: float, sa2_kernel: float, gamma: float,
                            convention: str = "kernel") -> PhaseBoundaries:
    """Where GMFL-I and GMFL-II start in ``sigma^2`` (paper's units, Fig. 3) from the saddle-point closed forms.

    Paper units: readout variance ``sa2 / N``, noise ``sigma^2``, all ``n = P^2`` pairs, so (``paper_couplings``)
    ``u = 2 sa2_u P^2 / (N sigma^4)`` and the GP weight on the target is ``sa2_kernel lambda / sigma^2``, where
    ``lambda`` is the target eigenvalue of the kernel. The self-consistency reads ``a (1 + sa2_kernel lambda / sigma^2) = 1``.

    - GMFL-I: the coupling ``g = u a^2`` reaches ``g_c = sqrt(4 gamma/3)`` at ``a = a_GP``; inside it ``a = sqrt(g_c/u)
      = slope sigma^2`` with ``slope = sqrt(g_c N / (2 sa2_u P^2))``; so it starts at
      ``sigma^2 = 1/slope - sa2_kernel lambda_prior``.
    - GMFL-II: every pair mode at the learned well ``x_c = sqrt(3/gamma)`` (``<Phi Psi> = x_c^2``) while ``a`` still sits
      at ``slope sigma^2``: ``slope sigma^2 (1 + sa2_kernel lambda_learned / sigma^2) = 1``, so it starts at
      ``sigma^2 = 1/slope - sa2_kernel lambda_learned``, with ``|a| = slope sigma^2`` there.

    Two conventions for ``lambda`` (one meaning each):

    - ``"kernel"``: the eigenvalue of the Gram matrix over the P^2 training pairs, ``sum_x' K(x, x') y(x') = lambda y(x)``
      with ``lambda = 4 P^2 <Phi Psi>`` (module docstring): ``lambda_prior = 4`` (``<Phi Psi> = 1/P^2``),
      ``lambda_learned = 4 P^2 x_c^2``. This is the equation as derived here (``solve_discrepancy``); with Fig. 3's
      numbers it gives GMFL-I at 0.2360 and no GMFL-II (``1/slope - 4 P^2 sa2 x_c^2 < 0``).
    - ``"per_mode"``: the eigenvalue of one pair mode, ``lambda = <Phi Psi>`` (the Gram eigenvalue without its ``4 P^2``):
      ``lambda_prior = 1/P^2``, ``lambda_learned = x_c^2 = 3/gamma``. With Fig. 3's numbers (``sa2 = 0.002/N``, literal)
      GMFL-I at 0.2360, GMFL-II at ``0.2360 - sa2 * 3/gamma = 0.1760`` with ``|a| = 0.7458``: the paper's GMFL-II (0.175)
      and ``a`` (about -0.7 to -0.75 there). Its GMFL-I is the kernel convention's to within ``4 sa2 = 8e-6``.

    The two differ by exactly ``4 P^2`` in ``lambda_learned`` (6.4e5 at P = 401): the factor the paper's GMFL-II needs
    in the literal reading of ``sigma_a^2`` (the 6.4e8 of the ``mixed`` reading is this times ``N``).
    """
    if convention not in EIGENVALUE_CONVENTIONS:
        raise ConfigError(f"eigenvalue convention must be one of {EIGENVALUE_CONVENTIONS}; got {convention!r}")
    if modulus < 3 or width < 1 or sa2_u <= 0 or sa2_kernel <= 0 or gamma <= 0:
        raise ConfigError(f"saddle_phase_boundaries needs modulus >= 3, width >= 1 and positive sa2_u, sa2_kernel, gamma; "
                          f"got modulus={modulus}, width={width}, sa2_u={sa2_u}, sa2_kernel={sa2_kernel}, gamma={gamma}")
    g_c = coexistence_coupling(gamma)
    x_c = saddle(g_c, gamma).learned
    slope = math.sqrt(g_c * width / (2 * sa2_u * modulus**2))
    scale = 4 * modulus**2 if convention == "kernel" else 1.0
    prior, learned = scale / modulus**2, scale * x_c**2
    onset = 1 / slope - sa2_kernel * prior
    full = 1 / slope - sa2_kernel * learned
    positive = lambda s: s if s > 0 else None
    return PhaseBoundaries(positive(onset), positive(full), slope * onset if onset > 0 else None,
                           slope * full if full > 0 else None, slope, prior, learned, g_c, x_c, convention)


class MixtureState(NamedTuple):
    """One sigma^2 of the paper's finite-P mixture (``mixture_discrepancy``): ``|a|``, the coupling ``g = u a^2``, the
    action gap ``S = S_k(w_+, w_+) - S_k(0, 0)`` of the learned saddle (+inf without one), the learned fraction
    ``q = 4 e^(-S) / (1 + 4 e^(-S))`` and the target eigenvalue ``lambda`` in the stated convention."""

    a: float
    g: float
    action_gap: float
    learned: float
    eigenvalue: float


def _mixture_eigenvalue(a: float, u: float, sa2: float, gamma: float, modulus: int, scale: float):
    g = u * a * a
    x = saddle(g, gamma).learned
    if math.isnan(x):
        return g, math.inf, 0.0, 0.0
    gap = modulus * (x - g * x * x + gamma * x**3 / 3)
    learned = 1.0 / (1.0 + math.exp(min(gap - math.log(4.0), 700.0)))
    return g, gap, learned, sa2 * scale * x * x * learned


def mixture_discrepancy(modulus: int, width: int, sa2: float, gamma: float, sigma2: float,
                        convention: str = "per_mode") -> MixtureState:
    """The paper's own finite-P equations for ``a`` (Rubin, Seroussi & Ringel, app. B.3-B.4), solved at one ``sigma2``.

    Per Fourier mode k (their eq. 34 with the sextic ``Gamma``), on the diagonal ``Phi = Psi = x``, the action is
    ``S_k = P (x - g x^2 + gamma x^3 / 3)``, ``g = u a^2``, ``u = 2 sa2 P^2 / (N sigma^4)`` (their eq. 16). Their eq. 41
    keeps two saddles, the zero one and ``x_+ = (g + sqrt(g^2 - gamma)) / gamma`` with weight ``4 e^(-S_k(x_+))``, and
    drops the zero saddle's ``O(P^-2)`` share of ``<|w_k|^2 |v_k|^2>`` (eq. 42):

        <Phi Psi> = x_+^2 q,    q = 4 e^(-S) / (1 + 4 e^(-S)),    S = S_k(x_+) - S_k(0).

    The target eigenvalue is ``lambda = sa2 <Phi Psi>`` (their eq. 37, ``convention="per_mode"``) or the Gram eigenvalue
    ``4 P^2 sa2 <Phi Psi>`` (``"kernel"``), and ``|a| = sigma2 / (lambda(a) + sigma2)`` (their eq. 38; the paper's sign
    is ``a < 0``). ``a (1 + lambda(a) / sigma2)`` increases with ``a``: one root, found by bisection.
    """
    if convention not in EIGENVALUE_CONVENTIONS:
        raise ConfigError(f"eigenvalue convention must be one of {EIGENVALUE_CONVENTIONS}; got {convention!r}")
    if modulus < 3 or width < 1 or sa2 <= 0 or gamma <= 0 or sigma2 <= 0:
        raise ConfigError(f"mixture_discrepancy needs modulus >= 3, width >= 1 and positive sa2, gamma, sigma2; got "
                          f"modulus={modulus}, width={width}, sa2={sa2}, gamma={gamma}, sigma2={sigma2}")
    u, _ = paper_couplings(modulus, width, sa2, sigma2)
    scale = 4.0 * modulus**2 if convention == "kernel" else 1.0
    low, high = 0.0, 1.0
    for _ in range(120):
        mid = 0.5 * (low + high)
        eigenvalue = _mixture_eigenvalue(mid, u, sa2, gamma, modulus, scale)[3]
        low, high = (mid, high) if mid * (1 + eigenvalue / sigma2) < 1 else (low, mid)
    a = 0.5 * (low + high)
    g, gap, learned, eigenvalue = _mixture_eigenvalue(a, u, sa2, gamma, modulus, scale)
    return MixtureState(a, g, gap, learned, eigenvalue)


class MixtureBoundaries(NamedTuple):
    """Onsets of GMFL-I / GMFL-II in ``sigma^2`` in the paper's finite-P mixture (``mixture_phase_boundaries``), None when
    not reached; ``|a|`` and the learned fraction there; the action gap ``gap`` that defines them; the convention."""

    gmfl1_sigma2: float | None
    gmfl2_sigma2: float | None
    a_at_gmfl1: float | None
    a_at_gmfl2: float | None
    learned_at_gmfl1: float | None
    learned_at_gmfl2: float | None
    gap: float
    convention: str


def mixture_phase_boundaries(modulus: int, width: int, sa2: float, gamma: float, gap: float = 3.0,
                             convention: str = "per_mode") -> MixtureBoundaries:
    """GMFL-I and GMFL-II as the paper's section 3.2.1 words them, in its finite-P mixture (``mixture_discrepancy``).

    "At around sigma^2 = 0.227 [the Phi != 0 saddles] come within O(1) of the saddle at S_k(0, 0) ... the beginning of
    the mixed phase (GMFL-I)"; they "go from being O(1) above the Phi = 0 saddle to O(1) below that saddle at
    sigma^2 = 0.175 ... the beginning of the GMFL-II phase". With one O(1) number ``gap`` for both: GMFL-I starts at
    the largest sigma^2 where the self-consistent action gap ``S`` falls to ``+gap``, GMFL-II where it falls to ``-gap``
    (``S`` decreases with sigma^2; bisection). Inside GMFL-I ``a`` is pinned near ``sqrt(g_c/u)``, so ``S = +gap`` is
    reached where a fraction ``q = 4 e^(-gap) / (1 + 4 e^(-gap))`` of the modes is learned, not at the coexistence point
    ``q -> 0`` (``saddle_phase_boundaries``); the paper does not state ``gap``.
    """
    if gap <= 0:
        raise ConfigError(f"the action gap that defines the onsets must be positive (an O(1) number); got {gap}")
    coexistence = saddle_phase_boundaries(modulus, width, sa2, sa2, gamma, convention)
    top = 1.5 / coexistence.slope
    state = lambda s2: mixture_discrepancy(modulus, width, sa2, gamma, s2, convention)  # noqa: E731

    def crossing(level: float):
        low = top
        for _ in range(40):  # walk down until the gap is below the level
            low *= 0.7
            if state(low).action_gap < level:
                break
        else:
            return None, None, None
        high = top
        for _ in range(80):
            mid = 0.5 * (low + high)
            low, high = (mid, high) if state(mid).action_gap < level else (low, mid)
        at = state(0.5 * (low + high))
        return 0.5 * (low + high), at.a, at.learned

    one, two = crossing(gap), crossing(-gap)
    return MixtureBoundaries(one[0], two[0], one[1], two[1], one[2], two[2], gap, convention)


def paper_couplings(modulus: int, width: int, sa2_paper: float, sigma2: float) -> tuple[float, float]:
    """``(u, kappa)`` in the paper's units: readout variance ``sa2_paper / N``, noise ``sigma2``, n = P^2 points.

    ``u = 2 sa2_paper P^2 / (N sigma2^2)``, ``kappa = P^2 sa2_paper / sigma2``. Library units: ``sa2 = N sa2_paper``,
    ``beta = P^2 / (N sigma2)`` (then ``c = beta^2 sa2 / 2`` and ``u = 4c/P^2``, ``kappa = beta sa2``).
    """
    return 2 * sa2_paper * modulus**2 / (width * sigma2**2), modulus**2 * sa2_paper / sigma2


def library_couplings(modulus: int, sa2: float, beta: float) -> tuple[float, float]:
    """``(u, kappa) = (2 beta^2 sa2 / P^2, beta sa2)`` for a library ``TwoLayer`` (mean-field scaling)."""
    return 2 * beta**2 * sa2 / modulus**2, beta * sa2


# ---------------------------------------------------------------------------------------------
# Weights from the per-mode law; the prior kernel (NNGP of the square network with the Fourier sextic prior)
# ---------------------------------------------------------------------------------------------


def _zero_mode_grid(gamma: float, modulus: int, points: int = 4001) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and normalised masses of the real ``k = 0`` mode ``s = u_0``: law ``exp(-P s^2/2 - P (gamma/6) s^6) ds``."""
    half = 12.0 / math.sqrt(modulus)
    s = np.linspace(-half, half, points)
    log_w = -modulus * (s * s / 2 + gamma * s**6 / 6)
    mass = np.exp(log_w - log_w.max())
    return s, mass / mass.sum()


def sample_neurons(rng: np.random.Generator, g: float, gamma: float, modulus: int, size: int, points: int = 600) -> np.ndarray:
    """``size`` weights ``w = (u, v)`` in R^(2P) drawn from the single-neuron law at coupling ``g`` (docs/theory.md section 9).

    Each pair mode ``(k, P-k)`` independently: ``(Phi_k, Psi_k)`` from ``exp(-2P A(Phi, Psi))`` (``sample_pair_modes``),
    phases uniform, ``u_k = sqrt(Phi_k) e^(i theta_k)``, ``v_k = sqrt(Psi_k) e^(i chi_k)``; the real ``k = 0`` modes
    ``u_0, v_0`` from ``exp(-P s^2/2 - P (gamma/6) s^6)`` (the tilt does not see them). Then
    ``u_n = u_0 + 2 sum_(k=1)^((P-1)/2) sqrt(Phi_k) cos(theta_k - 2 pi k n/P)`` (``v`` likewise). ``g = 0``: the prior.
    """
    pairs = (modulus - 1) // 2
    powers = sample_pair_modes(rng, g, gamma, modulus, (size, pairs), points=points)  # (size, K, 2)
    phases = rng.uniform(0.0, 2 * np.pi, (size, pairs, 2))
    s, mass = _zero_mode_grid(gamma, modulus)
    zero = rng.choice(s, size=(size, 2), p=mass)
    k = np.arange(1, pairs + 1)
    n = np.arange(modulus)
    angle = phases[:, :, None, :] - 2 * np.pi * k[None, :, None, None] * n[None, None, :, None] / modulus  # (size, K, P, 2)
    halves = zero[:, None, :] + 2 * np.sum(np.sqrt(powers)[:, :, None, :] * np.cos(angle), axis=1)  # (size, P, 2)
    return np.concatenate([halves[..., 0], halves[..., 1]], axis=-1)


def prior_correlations(gamma: float, modulus: int) -> tuple[np.ndarray, np.ndarray]:
    """``C(d) = E[u_n u_(n+d)]`` and ``D(d) = E[u_n^2 u_(n+d)^2]`` (d = 0..P-1) under the prior ``exp(-|w|^2/2 - Gamma)``.

    With independent modes of uniform phase, ``u_n = s + sum_k a_k(n)``, ``a_k(n) = 2 sqrt(Phi_k) cos(theta_k - 2 pi k n/P)``:
    ``E[a_k(0) a_k(d)] = 2 <Phi> cos(phi_k)``, ``E[a_k(0)^2 a_k(d)^2] = <Phi^2> (4 + 2 cos 2 phi_k)``, ``phi_k = 2 pi k d/P``,
    and for a sum of independent symmetric terms ``E[X^2 Y^2] = (sum E a^2)(sum E b^2) + 2 (sum E ab)^2
    + sum_k (E a_k^2 b_k^2 - E a_k^2 E b_k^2 - 2 (E a_k b_k)^2)``. One pair mode's ``Phi`` has the law
    ``exp(-2P (Phi/2 + gamma Phi^3/6)) dPhi`` (prior: ``Phi``, ``Psi`` independent); ``s = u_0`` that of ``_zero_mode_grid``.
    Gaussian prior (gamma = 0): ``C = delta_(d,0)``, ``D = 1 + 2 delta_(d,0)``.
    """
    def moments(log_density, lower, upper, orders):
        scale = quad(lambda t: math.exp(log_density(t)), lower, upper, epsabs=0, epsrel=1e-13, limit=200)[0]
        return [quad(lambda t: t**k * math.exp(log_density(t)), lower, upper, epsabs=0, epsrel=1e-13, limit=200)[0] / scale for k in orders]

    m1, m2 = moments(lambda t: -2 * modulus * (t / 2 + gamma * t**3 / 6), 0.0, 80.0 / modulus, (1, 2))
    s2, s4 = moments(lambda t: -modulus * (t * t / 2 + gamma * t**6 / 6), -12.0 / math.sqrt(modulus), 12.0 / math.sqrt(modulus), (2, 4))
    pairs = (modulus - 1) // 2
    angle = 2 * np.pi * np.outer(np.arange(modulus), np.arange(1, pairs + 1)) / modulus  # (d, k)
    var = s2 + 2 * m1 * pairs  # sum E a^2 (= sum E b^2)
    cross = s2 + np.sum(2 * m1 * np.cos(angle), axis=1)  # sum E ab = C(d)
    excess = (s4 - 3 * s2**2) + np.sum(m2 * (4 + 2 * np.cos(2 * angle)) - 4 * m1**2 - 8 * m1**2 * np.cos(angle) ** 2, axis=1)
    return cross, var * var + 2 * cross**2 + excess


def prior_kernel(x1: jax.Array, x2: jax.Array, gamma: float) -> np.ndarray:
    """NNGP kernel ``K(x, x') = E[(w.x)^2 (w.x')^2]`` of the square network under the prior ``exp(-|w|^2/2 - Gamma)``,
    ``Gamma = fourier_sextic(gamma)``, for two-hot inputs ``x = e_n (+) e_m``, ``x' = e_n' (+) e_m'``: (P1, P2).

    ``w.x = u_n + v_m`` with ``u``, ``v`` independent and translation invariant, so
    ``K = D(n - n') + D(m - m') + 2 C(0)^2 + 4 C(n - n') C(m - m')`` (``prior_correlations``). gamma = 0 gives the
    Gaussian closed form ``q11 q22 + 2 q12^2`` (``mft_jax.theory.gp.nngp_kernel("square", 1, ...)``).
    """
    x1, x2 = np.asarray(x1), np.asarray(x2)
    modulus = x1.shape[-1] // 2
    c, d = prior_correlations(float(gamma), modulus)
    n1, m1 = np.argmax(x1[:, :modulus], 1), np.argmax(x1[:, modulus:], 1)
    n2, m2 = np.argmax(x2[:, :modulus], 1), np.argmax(x2[:, modulus:], 1)
    dn, dm = (n1[:, None] - n2[None, :]) % modulus, (m1[:, None] - m2[None, :]) % modulus
    return d[dn] + d[dm] + 2 * c[0] ** 2 + 4 * c[dn] * c[dm]


def prior_gp_predict(data, model, x_new: jax.Array, gamma: float) -> jax.Array:
    """GP prediction with ``prior_kernel`` in the library's convention (``mft_jax.theory.gp``): ``r = (I + beta sa2 K Q)^(-1) y``
    on the data, ``f(x) = beta sa2 sum_nu K(x, x_nu) q_nu r_nu`` at ``x_new`` (M, 2P): (M, P)."""
    gram = jnp.asarray(prior_kernel(data.x, data.x, gamma), data.x.dtype)
    residual = residual_from_kernel(model, data, gram)
    kernel = jnp.asarray(prior_kernel(x_new, data.x, gamma), data.x.dtype)
    return predict_from_kernel(model, data, residual, kernel)
