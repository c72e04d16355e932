"""Modular addition on a random fraction of the table: the annealed per-mode theory and its critical fraction.

Setting of ``mft_jax.theory.reduced.modular`` (docs/theory.md section 9), trained on a random subset of
``n = f P^2`` of the ``P^2`` pairs with the loss weights ``q_mu = 1/n`` (``mft_jax.tasks.make_split``) and
per-example noise: ``beta(n) = beta_full f``, ``sa2`` fixed, so ``beta(n) q_mu = beta_full / P^2`` for every pair.

**One fixed point per training set.** The fixed point ``r = G(r) = (I + beta sa2 K_r Q)^(-1) y`` is the stationary
point of ``Psi(r) = (beta/2) r^T Q r - beta r^T Q y + log Z1(r)``, ``Z1(r) = E_prior exp(c |S_r(w)|^2)``: since
``grad log Z1 = 2c Q K_r Q r``, ``grad Psi = beta Q (r + beta sa2 K_r Q r - y)``. ``|S_r(w)|^2`` is a convex quadratic in
``r`` for every ``w``, so ``log Z1`` (a log-integral of log-convex functions) is convex and ``Psi`` strictly convex:
at ``N = infinity`` the fixed point is unique (``Psi = -I`` of ``mft_jax.theory.two_layer``). The first-order
transition lives in the single-neuron law (the two wells of one pair mode); two coexisting "branches" are restricted
(metastable) ensembles, i.e. finite width or finite time.

**Annealed approximation** (this module). Replace every training-set sum of a Fourier-structured quantity by ``f``
times its full-table sum (the subset's mean; its fluctuations are dropped, see below), and take the residual
``r = a y`` on the training set. Then

- the overlap ``S_r(w) = sum_mu q_mu r_mu phi(w.x_mu) = (a/n) sum_(mu in train) y_mu phi(w.x_mu) ~ (a/n) f S(w)
  = (a/P^2) S(w)`` is the full table's, and ``c = beta^2 sa2 / 2 = f^2 c_full``: the tilt ``c |S_r|^2`` is ``f^2`` times
  the full table's, so the pair-mode coupling is ``g = f^2 u a^2`` (``u = 4 c_full / P^2``);
- the kernel term ``beta sa2 (K Q r)(x) = f beta_full sa2 (a/n) sum_(nu in train) K(x, x_nu) y_nu
  ~ f kappa (a/P^2) sum_x' K(x, x') y(x') = 4 f kappa a <Phi Psi> y(x)`` (``kappa = beta_full sa2``): ``kappa -> f kappa``.

So the annealed self-consistency is the full table's with ``u -> f^2 u`` and ``kappa -> f kappa``:

    a (1 + 4 f kappa <Phi Psi>_(f^2 u a^2)) = 1                                   (``partial_table_discrepancy``)

and its held-out prediction is ``f(x) = (1 - a) y(x)`` on every pair (relative test loss ``a^2``). The theory's
grokking fraction (``critical_fraction``) is where this unique fixed point leaves the GP phase (GFL -> GMFL-I).
Neglected: the quenched fluctuations of the subset. The first moment self-averages exactly (``E_subset S_r = (a/P^2) S``),
the tilt is quadratic: ``E |S_r|^2 = |(a/P^2) S|^2 + Var_subset S_r`` with ``Var ~ a^2 (1 - f)/(f P^2) E_x[|y|^2 phi^2]``,
fed by every Fourier mode of the neuron (memorisation), while only the matching pairs feed ``|S|^2``: relative size of
order ``(1 - f)/f``, independent of P (measured at P = 11, 23, 41: roughly ``1 + C (1 - f)/f``, C between 0.8 and 2.8;
docs/theory.md section 9). So this is a
mean-field theory of the Fourier-structured part only; ``experiments.modular_grokking critical`` measures the neglected
part on actual training sets (the tilt's and kernel gain's ratio to their annealed values, and the exact map at the
annealed fixed point).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from mft_jax.errors import ConfigError
from mft_jax.theory.reduced.modular import Discrepancy, coexistence_coupling, saddle, solve_discrepancy


def _check_fraction(fraction: float) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)) or not 0 < fraction <= 1:
        raise ConfigError(f"the training fraction must be a number in (0, 1]; got {fraction!r}")
    return float(fraction)


def partial_table_couplings(fraction: float, u: float, kappa: float) -> tuple[float, float]:
    """``(f^2 u, f kappa)``: the full-table couplings (``library_couplings`` at ``beta_full``) on a fraction ``f`` of the
    table, annealed (module docstring): the tilt scales as ``beta^2 = f^2 beta_full^2``, the kernel term as ``beta = f beta_full``."""
    fraction = _check_fraction(fraction)
    return fraction * fraction * u, fraction * kappa


def partial_table_discrepancy(fraction: float, u: float, kappa: float, gamma: float, modulus: int, method: str = "exact",
                              points: int = 900) -> Discrepancy:
    """The annealed fixed point on a fraction ``f`` of the table: ``a (1 + 4 f kappa <Phi Psi>_(f^2 u a^2)) = 1``.

    ``u``, ``kappa``: the full-table couplings (``mft_jax.theory.reduced.modular.library_couplings(P, sa2, beta_full)``);
    ``method``: ``"exact"`` (the exact per-mode integral) or ``"saddle"`` (P -> infinity), as in ``solve_discrepancy``,
    whose phase rule it keeps (GMFL-I: learned modes carry half of ``<Phi Psi>``). At ``f = 1`` it is ``solve_discrepancy``.
    Derivation: module docstring. The returned ``g`` is the pair-mode coupling ``f^2 u a^2``.
    """
    scaled_u, scaled_kappa = partial_table_couplings(fraction, u, kappa)
    return solve_discrepancy(scaled_u, scaled_kappa, gamma, modulus, method=method, points=points)


class CriticalFraction(NamedTuple):
    """Fractions of the table (``None``: not reached at ``f <= 1``) where the annealed fixed point

    - ``spinodal``: first has a learned well, ``g = f^2 u a^2 = sqrt(gamma)`` (``a`` of the fixed point there);
    - ``gmfl1``: leaves the GP phase (GFL -> GMFL-I), the theory's grokking fraction ``f_c``;
    - ``gmfl2``: has every pair mode learned (GMFL-II).

    ``method``: ``"exact"`` (bisection to ``tol``) or ``"saddle"`` (closed forms, ``tol = 0``)."""

    spinodal: float | None
    gmfl1: float | None
    gmfl2: float | None
    method: str
    tol: float


def _saddle_fractions(u: float, kappa: float, gamma: float, modulus: int) -> CriticalFraction:
    """Closed forms. Below ``f_c`` the fixed point is the GP's, ``a_GP(f) = 1/(1 + 4 f kappa/P^2)``; ``f^2 u a_GP^2 = g``
    is ``f sqrt(u) = sqrt(g) (1 + 4 f kappa/P^2)``, so ``f = sqrt(g) / (sqrt(u) - 4 kappa sqrt(g)/P^2)``: ``g = g_c`` gives
    ``f_c``, ``g = sqrt(gamma)`` the spinodal. GMFL-II: inside GMFL-I ``a = sqrt(g_c/u)/f`` and all modes at ``x_c^2 = 3/gamma``
    when ``1/a - 1 = 4 f kappa x_c^2``, i.e. ``f = 1/(sqrt(u/g_c) - 4 kappa x_c^2)``."""
    g_c = coexistence_coupling(gamma)
    x_c = saddle(g_c, gamma).learned

    def within(value: float) -> float | None:
        return value if 0 < value <= 1 else None

    def at_coupling(g: float) -> float | None:
        denominator = math.sqrt(u) - 4 * kappa * math.sqrt(g) / modulus**2
        return within(math.sqrt(g) / denominator) if denominator > 0 else None

    denominator = math.sqrt(u / g_c) - 4 * kappa * x_c**2
    full = within(1.0 / denominator) if denominator > 0 else None
    return CriticalFraction(at_coupling(math.sqrt(gamma)), at_coupling(g_c), full, "saddle", 0.0)


def critical_fraction(u: float, kappa: float, gamma: float, modulus: int, method: str = "exact", tol: float = 1e-4,
                      points: int = 600, grid: int = 40) -> CriticalFraction:
    """The theory's grokking fraction ``f_c`` (GFL -> GMFL-I of the annealed fixed point), its spinodal and GMFL-II.

    ``u``, ``kappa``: full-table couplings (``library_couplings(P, sa2, beta_full)``). ``method="saddle"``: the closed forms
    of ``_saddle_fractions`` (P -> infinity: ``f_c^2 u a_GP(f_c)^2 = g_c = sqrt(4 gamma/3)``). ``method="exact"``: the exact
    per-mode law (``partial_table_discrepancy``); each event is located on ``grid`` fractions in ``(0, 1]`` (its first
    occurrence) and refined by bisection to ``tol`` (a bracketing tolerance, not an error bar: the approximation's error
    is the difference from the quenched check and from the saddle). Events: ``g >= sqrt(gamma)`` (spinodal), phase not
    GFL (``gmfl1``), phase GMFL-II (``gmfl2``).
    """
    if method == "saddle":
        return _saddle_fractions(u, kappa, gamma, modulus)
    if method != "exact":
        raise ConfigError(f"method must be 'exact' or 'saddle', got {method!r}")
    if not (tol > 0 and grid >= 2):
        raise ConfigError(f"critical_fraction needs tol > 0 and grid >= 2; got tol={tol}, grid={grid}")
    cache: dict[float, Discrepancy] = {}

    def at(fraction: float) -> Discrepancy:
        if fraction not in cache:
            cache[fraction] = partial_table_discrepancy(fraction, u, kappa, gamma, modulus, points=points)
        return cache[fraction]

    events = {"spinodal": lambda d: d.g * d.g >= gamma, "gmfl1": lambda d: d.phase != "GFL", "gmfl2": lambda d: d.phase == "GMFL-II"}
    fractions = np.linspace(1.0 / grid, 1.0, grid)
    found = {}
    for name, event in events.items():
        hits = [i for i, f in enumerate(fractions) if event(at(float(f)))]
        if not hits:
            found[name] = None
            continue
        high = float(fractions[hits[0]])
        low = float(fractions[hits[0] - 1]) if hits[0] > 0 else 0.0
        if hits[0] == 0 and event(at(1e-6)):
            found[name] = 0.0
            continue
        while high - low > tol:
            mid = 0.5 * (low + high)
            low, high = (low, mid) if event(at(mid)) else (mid, high)
        found[name] = 0.5 * (low + high)
    return CriticalFraction(found["spinodal"], found["gmfl1"], found["gmfl2"], "exact", tol)
