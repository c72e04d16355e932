"""The reduced equations of Rubin, Seroussi & Ringel (ICLR 2024) for the erf teacher-student, as written.

Their setting (docs/theory.md section 8): ``f(x) = sum_i a_i erf(w_i . x)``, ``x ~ N(0, I_d)``,
``y = H1(w*.x) + eps H3(w*.x)``, ``a_i^2`` averaging ``sigma_a^2 / N``, ``w ~ N(0, sigma_w^2/d I)``,
noise ``sigma^2``, n samples. Two invariant couplings (their eq. 11):

    u = n^2 sigma_a^2 / (sigma^4 d N)      (effective interaction)
    g = n sigma_a^2 / (sigma^2 d)          (GP strength per input dimension)

Their eq. 13 (the action of the order parameter ``q = w.w*``, with ``|w_perp|^2`` replaced by its
mean ``sigma_w^2``), ``D(q) = 1 + 2 (sigma_w^2 + q^2)``:

    S(q) = d [ q^2/(2 sigma_w^2) - (2u/pi) (q^2/D) (b - 2 c q^2/D)^2 ]

and App. A.3: the discrepancy ``sigma^2 t = b H1 + c H3`` solves the 2 x 2 equivalent-kernel equation

    [b, sqrt(6) c] = (I + (n/sigma^2) Qt)^(-1) [1, sqrt(6) eps],
    (n/sigma^2) Qt = g d < [[4 q^2/(pi D), -8 q^4/(sqrt(6) pi D^2)], [., 8 q^6/(3 pi D^3)]] >_S

(the integrals of their App. A.4: ``E[H1 erf(w.x)] = 2q/sqrt(pi D)``, ``E[H3/sqrt(6) erf] =
-4 q^3/sqrt(6 pi D^3)``). The printed matrix of App. A.3 has ``2 q^2`` in the (1,1) entry, half
the square of their own A.4 integral; ``h1_weight`` selects it (4: the integral, 2: as printed).

``d -> infinity`` (the saddle point): the GP phase has ``c = eps`` and ``q ~ N(0, 1/(d S''(0)))`` with
``S''(0)/d = 1/sigma_w^2 - 4 u b^2/(pi D0)``, ``D0 = 1 + 2 sigma_w^2``, so ``b`` solves
``b = S''/(S'' + A)``, ``A = h1_weight g / (pi D0)``. The first-order transition is where the
``q > 0`` minimum of ``S/d`` reaches ``S(0) = 0``; past it a fraction ``m/d`` of the neurons sits at
``+-q1`` (their mixed phase), ``m`` fixed by keeping the two minima degenerate.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.optimize import brentq, root

Q_SCAN = np.linspace(0.02, 3.0, 3000)  # where the q > 0 minimum of S/d is searched


class PaperSetting(NamedTuple):
    """The paper's hyperparameters at one scale alpha = beta = ``scale`` (their eq. 11 / Table 1)."""

    N: int
    n: int
    d: int
    sigma_w2: float
    sigma_a2: float
    eps: float

    def u(self, sigma2):
        """``u = n^2 sigma_a^2 / (sigma^4 d N)``."""
        return self.n**2 * self.sigma_a2 / (np.asarray(sigma2) ** 2 * self.d * self.N)

    def g(self, sigma2):
        """``g = n sigma_a^2 / (sigma^2 d)``."""
        return self.n * self.sigma_a2 / (np.asarray(sigma2) * self.d)


def paper_setting(scale: float = 1.0, *, N=700, n=3000, d=150, sigma_w2=0.5, readout=8.0, eps=-0.3) -> PaperSetting:
    """``N -> s N, d -> sqrt(s) d, sigma_a^2 -> sigma_a^2/sqrt(s), n -> s n`` (sigma^2 fixed for alpha = beta = s),
    from their alpha = beta = 1 values ``N = 700, n = 3000, d = 150, sigma_w^2 = 0.5, sigma_a^2 = 8/N``; N, n, d rounded."""
    return PaperSetting(int(round(N * scale)), int(round(n * scale)), int(round(d * math.sqrt(scale))), sigma_w2,
                        readout / N / math.sqrt(scale), eps)


def action(q, b, c, u, sigma_w2):
    """``S(q)/d`` of their eq. 13."""
    q2 = np.asarray(q) ** 2
    D = 1.0 + 2.0 * (sigma_w2 + q2)
    return q2 / (2 * sigma_w2) - (2 * u / math.pi) * (q2 / D) * (b - 2 * c * q2 / D) ** 2


def feature_matrix(q, sigma_w2, h1_weight=4.0):
    """``[[h1_weight q^2/(pi D), -8 q^4/(sqrt6 pi D^2)], [., 8 q^6/(3 pi D^3)]]`` per q: (..., 2, 2)."""
    q = np.asarray(q, dtype=float)
    D = 1.0 + 2.0 * (sigma_w2 + q * q)
    a = h1_weight * q**2 / (math.pi * D)
    o = -8 * q**4 / (math.sqrt(6) * math.pi * D**2)
    z = 8 * q**6 / (3 * math.pi * D**3)
    return np.stack([np.stack([a, o], -1), np.stack([o, z], -1)], -2)


def discrepancy(kernel_g, eps):
    """``(b, c)`` from ``[b, sqrt6 c] = (I + (n/sigma^2) Qt)^(-1) [1, sqrt6 eps]``; ``kernel_g`` = (n/sigma^2) Qt."""
    b, c6 = np.linalg.solve(np.eye(2) + kernel_g, np.array([1.0, math.sqrt(6) * eps]))
    return float(b), float(c6 / math.sqrt(6))


# ----------------------------------------------------------------------------------- d -> infinity
def gp_phase_b(u, g, sigma_w2, h1_weight=4.0):
    """``b`` of the GP phase at ``d -> inf``: ``b = S''/(S'' + A)``, ``S'' = 1/sigma_w^2 - 4 u b^2/(pi D0)``."""
    D0 = 1 + 2 * sigma_w2
    kappa = 4 * u / (math.pi * D0)
    A = h1_weight * g / (math.pi * D0)
    b_max = math.sqrt(1 / (sigma_w2 * kappa)) * (1 - 1e-12)

    def residual(b):
        curvature = 1 / sigma_w2 - kappa * b * b
        return b * (curvature + A) - curvature

    return brentq(residual, 0.0, b_max, xtol=1e-14)


def feature_minimum(b, c, u, sigma_w2):
    """``(q1, S(q1)/d)``: the q > 0 minimum of the action (on ``Q_SCAN``, refined by a parabola)."""
    values = action(Q_SCAN, b, c, u, sigma_w2)
    i = int(np.clip(np.argmin(values), 1, len(Q_SCAN) - 2))
    y0, y1, y2 = values[i - 1 : i + 2]
    h = Q_SCAN[1] - Q_SCAN[0]
    denom = y0 - 2 * y1 + y2
    shift = 0.5 * h * (y0 - y2) / denom if denom > 0 else 0.0
    q1 = Q_SCAN[i] + shift
    return float(q1), float(action(q1, b, c, u, sigma_w2))


class LimitState(NamedTuple):
    """The ``d -> inf`` state at one sigma^2: discrepancy ``(b, c)``, droplet density ``m`` (fraction m/d at +-q1)."""

    sigma2: float
    u: float
    b: float
    c: float
    m: float
    q1: float
    gap: float  # S(q1)/d - S(0)/d: > 0 in the GP phase, 0 in the mixed phase


def limit_state(setting: PaperSetting, sigma2: float, h1_weight=4.0, m_max=200.0) -> LimitState:
    """Their reduced equations at ``d -> inf`` (module docstring): GP phase, or the mixed phase with degenerate minima."""
    u, g = float(setting.u(sigma2)), float(setting.g(sigma2))
    sw2, eps = setting.sigma_w2, setting.eps
    b = gp_phase_b(u, g, sw2, h1_weight)
    q1, gap = feature_minimum(b, eps, u, sw2)
    if gap >= 0:
        return LimitState(sigma2, u, b, eps, 0.0, q1, gap)

    D0 = 1 + 2 * sw2
    b_max = math.sqrt(math.pi * D0 / (4 * u * sw2))

    def solve_bc(m):
        """The 2 x 2 equations with the GP saddle (variance 1/(d S''(0))) plus droplets m/d at their own q1."""

        def mismatch(x):
            b_, c_ = x
            b_ = min(max(b_, 1e-9), b_max * (1 - 1e-9))
            q1_, _ = feature_minimum(b_, c_, u, sw2)
            curvature = 1 / sw2 - 4 * u * b_ * b_ / (math.pi * D0)
            gp = np.array([[h1_weight / (math.pi * D0 * curvature), 0.0], [0.0, 0.0]])
            nb, nc = discrepancy(g * (gp + m * feature_matrix(q1_, sw2, h1_weight)), eps)
            return [nb - b_, nc - c_]

        sol = root(mismatch, [b, eps], method="hybr", options={"xtol": 1e-12})
        b_, c_ = sol.x
        q1_, gap_ = feature_minimum(b_, c_, u, sw2)
        return b_, c_, q1_, gap_

    try:
        m = brentq(lambda m: solve_bc(m)[3], 0.0, m_max, xtol=1e-10)
    except ValueError:  # no degenerate mixture up to m_max droplets per d: beyond the mixed phase (their GMFL-II)
        return LimitState(sigma2, u, float("nan"), float("nan"), float("nan"), float("nan"), float("nan"))
    b, c, q1, gap = solve_bc(m)
    return LimitState(sigma2, u, b, c, m, q1, gap)


class Transition(NamedTuple):
    sigma2_c: float
    u_c: float
    q1: float
    b: float
    spinodal_sigma2: float  # where the q > 0 local minimum first exists (GP phase, larger sigma^2)
    spinodal_u: float


def limit_transition(setting: PaperSetting, h1_weight=4.0, bracket=(0.05, 0.6)) -> Transition:
    """``sigma^2_c`` where the q > 0 minimum of their eq. 13 (GP-phase b, c = eps) reaches ``S(0) = 0``, and the spinodal."""
    sw2, eps = setting.sigma_w2, setting.eps

    def gap(sigma2):
        u, g = float(setting.u(sigma2)), float(setting.g(sigma2))
        return feature_minimum(gp_phase_b(u, g, sw2, h1_weight), eps, u, sw2)[1]

    def has_local_minimum(sigma2):
        u, g = float(setting.u(sigma2)), float(setting.g(sigma2))
        values = action(Q_SCAN, gp_phase_b(u, g, sw2, h1_weight), eps, u, sw2)
        interior = (values[1:-1] < values[:-2]) & (values[1:-1] < values[2:])
        return bool(interior.any())

    s2c = brentq(gap, *bracket, xtol=1e-12)
    lo, hi = s2c, bracket[1]
    if has_local_minimum(hi):
        spin = float("nan")
    else:
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if has_local_minimum(mid) else (lo, mid)
        spin = 0.5 * (lo + hi)
    u, g = float(setting.u(s2c)), float(setting.g(s2c))
    b = gp_phase_b(u, g, sw2, h1_weight)
    q1, _ = feature_minimum(b, eps, u, sw2)
    return Transition(float(s2c), float(setting.u(s2c)), q1, b, spin, float(setting.u(spin)))


# ----------------------------------------------------------------------------------- finite d
def finite_d_state(setting: PaperSetting, sigma2: float, *, init=None, h1_weight=4.0, num_q=4001, q_max=2.5,
                   tol=1e-12):
    """Their eq. 13 + App. A.3 at the setting's own d, the q-integrals done by quadrature (``num_q`` nodes on
    ``[-q_max, q_max]``), solved (Powell hybrid root of the 2 x 2 map) from ``init = (b, c)`` (default: the prior's law of q, ``S = d q^2/(2 sigma_w^2)``).
    Returns ``(b, c, q_nodes, p(q) on the nodes, converged)``."""
    u, g, d = float(setting.u(sigma2)), float(setting.g(sigma2)), setting.d
    sw2, eps = setting.sigma_w2, setting.eps
    q = np.linspace(-q_max, q_max, num_q)
    features = feature_matrix(q, sw2, h1_weight)

    def law(b, c):
        log_p = -d * action(q, b, c, u, sw2)
        p = np.exp(log_p - log_p.max())
        return p / p.sum()

    if init is None:
        p = np.exp(-d * q * q / (2 * sw2))
        b, c = discrepancy(g * d * np.einsum("q,qij->ij", p / p.sum(), features), eps)
    else:
        b, c = init
    def mismatch(x):
        nb, nc = discrepancy(g * d * np.einsum("q,qij->ij", law(*x), features), eps)
        return [nb - x[0], nc - x[1]]

    sol = root(mismatch, [b, c], method="hybr", options={"xtol": tol})
    b, c = (float(v) for v in sol.x)
    converged = bool(sol.success) and max(abs(v) for v in mismatch([b, c])) < 1e-8
    return b, c, q, law(b, c), converged
