"""The paper's Fig. 3 by its equations and the exact per-mode theory (``mft_jax.theory.reduced.modular``)."""

from __future__ import annotations

import dataclasses
import math
import time
import numpy as np

from mft_jax.theory.reduced.modular import coexistence_coupling, exact_coexistence, paper_couplings, saddle, solve_discrepancy
from experiments.modular_addition.config import ExactSection, PAPER, PaperSection


def _phase_boundaries(curve: list[dict]) -> dict:
    """First sigma^2 (scanning down) in GMFL-I and in GMFL-II, by bisection-free interpolation of the grid."""
    out = {"gmfl1_sigma2": None, "gmfl2_sigma2": None, "a_at_gmfl2": None}
    for point in sorted(curve, key=lambda p: -p["sigma2"]):
        if point["phase"] != "GFL" and out["gmfl1_sigma2"] is None:
            out["gmfl1_sigma2"] = point["sigma2"]
        if point["phase"] == "GMFL-II" and out["gmfl2_sigma2"] is None:
            out["gmfl2_sigma2"], out["a_at_gmfl2"] = point["sigma2"], point["a"]
    return out


def saddle_boundaries(modulus, width, sa2_u, sa2_kernel, gamma) -> dict:
    """Closed-form phase boundaries of the saddle-point theory (docs/theory.md section 9).

    GMFL-I starts where ``u a_GP^2 = g_c``; in GMFL-I ``a = sqrt(g_c / u)``; GMFL-II starts where the
    learned fraction reaches 1: ``sqrt(g_c/u) (1 + 4 kappa x_c^2) = 1``. ``u`` uses ``sa2_u``, the GP
    eigenvalue ``kappa`` uses ``sa2_kernel`` (equal in a consistent reading).
    """
    g_c = coexistence_coupling(gamma)
    x_c = saddle(g_c, gamma).learned
    u_coefficient = 2 * sa2_u * modulus**2 / width  # u = u_coefficient / sigma2^2
    k_coefficient = modulus**2 * sa2_kernel  # kappa = k_coefficient / sigma2
    slope = math.sqrt(g_c / u_coefficient)  # a = slope * sigma2 in GMFL-I
    # onset: u a_GP^2 = g_c with a_GP = sigma2 / (sigma2 + 4 k/P^2)  ->  sigma2 + 4 k / P^2 = 1/slope
    onset = 1 / slope - 4 * k_coefficient / modulus**2
    # GMFL-II: slope sigma2 (1 + 4 k x_c^2 / sigma2) = 1  ->  sigma2 = 1/slope - 4 k x_c^2
    full = 1 / slope - 4 * k_coefficient * x_c**2
    return {
        "gmfl1_sigma2": onset if onset > 0 else None,
        "gmfl2_sigma2": full if full > 0 else None,
        "a_at_gmfl1": slope * onset if onset > 0 else None,
        "a_at_gmfl2": slope * full if full > 0 else None,
        "a_slope_in_gmfl1": slope,
        "g_c": g_c,
        "x_c": x_c,
        "kernel_eigenvalue_all_learned": 4 * k_coefficient * x_c**2,
    }


def sigma2_curve(paper: PaperSection, sa2_u: float, sa2_kernel: float, method: str, modulus: int | None = None) -> list[dict]:
    """``a``, learned fraction and phase on the sigma^2 grid (``u`` from ``sa2_u``, ``kappa`` from ``sa2_kernel``)."""
    modulus = modulus or paper.modulus
    curve = []
    for sigma2 in np.linspace(paper.sigma2_max, paper.sigma2_min, paper.sigma2_points):
        u, _ = paper_couplings(modulus, paper.width, sa2_u, float(sigma2))
        _, kappa = paper_couplings(modulus, paper.width, sa2_kernel, float(sigma2))
        solution = solve_discrepancy(u, kappa, paper.gamma, modulus, method=method, points=paper.points)
        curve.append({"sigma2": float(sigma2), "a": solution.a, "learned": solution.learned, "phase": solution.phase, "g": solution.g})
    return curve


def fig3(paper: PaperSection) -> tuple[dict, dict]:
    """``paper_fig3`` (literal numbers) and ``corrected`` (as derived; both sigma_a^2 readings; exact and saddle)."""
    n = paper.width
    literal = paper.sa2_numerator / n  # "sigma_a^2 = 0.002/N", readout variance sigma_a^2/N
    readings = {
        "literal": (literal, literal),
        "mixed": (literal, paper.sa2_numerator),  # 0.002/N in u, 0.002 in the GP eigenvalue
        "variance_0.002_over_N": (paper.sa2_numerator, paper.sa2_numerator),  # "a^2 averages sigma_a^2/N", sigma_a^2 = 0.002
    }
    boundaries = {name: saddle_boundaries(paper.modulus, n, *pair, paper.gamma) for name, pair in readings.items()}
    # what the paper's GMFL-II at 0.175 implies for the kernel eigenvalue with all modes learned (mixed reading)
    mixed = boundaries["mixed"]
    # 1/|a| - 1 = 4 sigma_a^2 lambda / sigma^2 with lambda = P^2 <Phi Psi> (1 under the prior), sigma_a^2 = 0.002
    implied = (1 / (mixed["a_slope_in_gmfl1"] * PAPER["gmfl2_sigma2"]) - 1) * PAPER["gmfl2_sigma2"] / paper.sa2_numerator
    paper_fig3 = {
        "gmfl1_sigma2": boundaries["literal"]["gmfl1_sigma2"],
        "gmfl2_sigma2": boundaries["literal"]["gmfl2_sigma2"],
        "a_at_gmfl2": boundaries["literal"]["a_at_gmfl2"],
        "a_at_0.175": -mixed["a_slope_in_gmfl1"] * PAPER["gmfl2_sigma2"],  # paper's sign
        "sign_convention": "paper: a < 0 (a = -1: f = 0); here the same numbers with that sign",
        "readings": boundaries,
        "implied_eigenvalue_for_paper_gmfl2": implied / 4,
        "correct_eigenvalue_all_learned": paper.modulus**2 * mixed["x_c"] ** 2,  # lambda = P^2 <Phi Psi> (1 under the prior)
        "paper": PAPER,
        "curve_saddle_literal": sigma2_curve(paper, literal, literal, "saddle"),
        "curve_saddle_mixed": sigma2_curve(paper, literal, paper.sa2_numerator, "saddle"),
    }
    for key in ("a_at_gmfl2",):
        if paper_fig3[key] is not None:
            paper_fig3[key] = -paper_fig3[key]
    start = time.perf_counter()
    exact_curve = sigma2_curve(paper, literal, literal, "exact")
    corrected = {
        "convention": "r = a y, a = 1/(1 + 4 kappa <Phi Psi>) > 0; readout variance sigma_a^2/N with sigma_a^2 = 0.002/N",
        **{k: boundaries["literal"][k] for k in ("gmfl1_sigma2", "gmfl2_sigma2", "a_at_gmfl1", "a_at_gmfl2", "a_slope_in_gmfl1", "g_c", "x_c")},
        "a_at_0.175": mixed["a_slope_in_gmfl1"] * PAPER["gmfl2_sigma2"],
        "exact_boundaries": _phase_boundaries(exact_curve),
        "learned_fraction_at_0.175": float(np.interp(0.175, *zip(*sorted((p["sigma2"], p["learned"]) for p in exact_curve)))),
        "variance_0.002_over_N": boundaries["variance_0.002_over_N"],
        "curve_exact": exact_curve,
        "seconds_exact_curve": time.perf_counter() - start,
    }
    return paper_fig3, corrected


def exact_theory(paper: PaperSection, exact: ExactSection) -> dict:
    """Exact per-mode theory vs saddle at each P (Fig. 3's N, sigma_a^2, gamma): g_c(P) and the GMFL-I onset."""
    out = {}
    literal = paper.sa2_numerator / paper.width
    g_c = coexistence_coupling(paper.gamma)
    for modulus in exact.moduli:
        start = time.perf_counter()
        g_exact = exact_coexistence(paper.gamma, modulus, exact.points)
        bounds = saddle_boundaries(modulus, paper.width, literal, literal, paper.gamma)
        grid = dataclasses.replace(paper, points=exact.points)
        # the onset scales like sigma2 ~ P (u ~ P^2 / sigma2^2): scan around the saddle's onset
        onset = bounds["gmfl1_sigma2"]
        grid = dataclasses.replace(grid, sigma2_max=1.1 * onset, sigma2_min=0.9 * onset, sigma2_points=21)
        curve = sigma2_curve(grid, literal, literal, "exact", modulus)
        saddle_curve = sigma2_curve(grid, literal, literal, "saddle", modulus)
        out[str(modulus)] = {
            "g_c_exact": g_exact, "g_c_saddle": g_c, "g_c_ratio": g_exact / g_c,
            "gmfl1_sigma2_saddle": onset, "gmfl1_sigma2_exact": _phase_boundaries(curve)["gmfl1_sigma2"],
            "sigma2_grid_step": (grid.sigma2_max - grid.sigma2_min) / (grid.sigma2_points - 1),
            "curve_exact": curve, "curve_saddle": saddle_curve, "seconds": time.perf_counter() - start,
        }
        print(f"exact theory P = {modulus}: g_c(P)/g_c = {g_exact / g_c:.5f}; GMFL-I onset sigma^2 saddle {onset:.5g}, "
              f"exact {out[str(modulus)]['gmfl1_sigma2_exact']} (grid step {out[str(modulus)]['sigma2_grid_step']:.2g})", flush=True)
    return out
