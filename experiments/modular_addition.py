"""Modular addition, square activation, sextic Fourier prior: the paper's Fig. 3, the exact theory, networks.

Rubin, Seroussi & Ringel (ICLR 2024, section 3.2, appendix B) make the square network's single-neuron
law normalizable with the Fourier-mode sextic prior ``Gamma = sum_k P (gamma/6)(|w_k|^6 + |v_k|^6)`` and
reduce it to one two-variable action per Fourier mode (``mft_jax.theory.reduced.modular``, docs/theory.md section 9).
This script computes, with the library:

1. ``paper_fig3``: their Fig. 3 (P = 401, N = 1000, gamma = 1e-4) from the saddle-point equations with the
   paper's numbers taken literally (readout variance ``sigma_a^2/N`` with ``sigma_a^2 = 0.002/N``
   everywhere, correct factors of P): where GMFL-I and GMFL-II start and ``a`` there; plus the
   mixed reading (``0.002/N`` in ``u``, ``0.002`` in the GP eigenvalue) that reproduces their 0.227.
2. ``corrected``: the same from the equations as derived here, both readings of ``sigma_a^2``, saddle
   and the exact per-mode integral, with the paper's sign convention undone (``r = a y``, a > 0).
3. ``exact_theory``: the exact per-mode integral against the saddle at P in ``exact.moduli`` (the
   coexistence coupling ``g_c(P)`` and the GMFL-I onset move with P).
4. ``networks``: Langevin square networks with the same Fourier sextic prior (``mft_jax.priors``) on the
   full table, against the exact theory at the same ``(beta, sa2, gamma)``: the discrepancy coefficient
   ``a``, the fraction of (neuron, mode) pairs beyond the coexistence barrier, each neuron's top-mode share.
5. ``loss_timing``: the Fourier form of the loss (``mft_jax.theory.reduced.modular.fourier_loss``) against the direct loss.
6. ``width_sweep`` (``[width_sweep]``): the networks' ``a`` at one (P, beta) across widths, fitted as
   ``a_inf + c/N`` (and with a ``1/N^2`` term, and through the two largest widths) against the exact theory,
   plus two equilibration checks: a run ``long_factor`` times longer, and a run started in the theory's
   single-neuron law (``mft_jax.theory.reduced.modular.sample_neurons``), and a step-size check (``step_check``: smaller steps over
   the same time span).

Run: ``python -m experiments.modular_addition [--quick] [--config experiments/configs/modular_addition.toml]``.
Network points are cached in ``runs/modular_addition/`` (delete to recompute).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from experiments._common import parse
from mft_jax.analysis.stats import fit_inverse_size
from mft_jax.cli.config import load_toml, section
from mft_jax.errors import ConfigError
from mft_jax.io import pyplot, run_metadata, save_figure, write_results
from mft_jax.model import TwoLayer
from mft_jax.theory.reduced.modular import (
    coexistence_coupling, exact_coexistence, fourier_loss, learned_fraction, library_couplings, mode_powers,
    network_discrepancy, pair_mode, paper_couplings, sample_neurons, sample_pair_modes, saddle, solve_discrepancy,
    top_mode_share,
)
from mft_jax.priors import fourier_sextic
from mft_jax.tasks import make_data
from mft_jax.train.joint import langevin_optimizer, train
from mft_jax.train.network import loss

NAME = "modular_addition"
PAPER = {"gmfl1_sigma2": 0.227, "gmfl2_sigma2": 0.175, "a_at_gmfl2": -0.7}


@dataclasses.dataclass(frozen=True)
class PaperSection:
    """``[paper]``: Fig. 3's parameters and the sigma^2 grid."""

    modulus: int = 401
    width: int = 1000
    sa2_numerator: float = 0.002
    gamma: float = 1e-4
    sigma2_min: float = 0.05
    sigma2_max: float = 0.3
    sigma2_points: int = 26
    points: int = 400  # nodes per axis of the per-mode integral


@dataclasses.dataclass(frozen=True)
class ExactSection:
    """``[exact]``: moduli at which the exact per-mode theory is compared with the saddle (Fig. 3's other numbers)."""

    moduli: list = dataclasses.field(default_factory=lambda: [23, 41, 401])
    points: int = 400


@dataclasses.dataclass(frozen=True)
class NetworkSection:
    """``[networks]``: Langevin networks with the Fourier sextic prior, library units (mean-field scaling)."""

    moduli: list = dataclasses.field(default_factory=lambda: [23])
    betas: list = dataclasses.field(default_factory=lambda: [30.0, 100.0])
    kappa: float = 10.0  # beta sa2 (sa2 = kappa / beta)
    gamma: float = 10.0
    width: int = 1024
    num_seeds: int = 2
    steps: int = 5000
    burn_in: int = 2500
    record_every: int = 250
    step_size: float = 0.1
    theory_points: int = 300
    seed: int = 0
    timing_moduli: list = dataclasses.field(default_factory=lambda: [23, 41, 101])


@dataclasses.dataclass(frozen=True)
class WidthSweepSection:
    """``[width_sweep]``: the gap in ``a`` between networks and theory at one (P, beta) (other settings from
    ``[networks]``): ``a(N)`` across ``widths`` fitted as ``a_inf + c/N``; a run ``long_factor`` times longer and a
    run started in the theory's single-neuron law (``start = "theory"``), both at ``long_width`` (equilibration); the
    discretisation: each of ``step_sizes`` at each of ``step_widths`` over the same time span (steps, burn-in and
    record interval scaled by ``[networks] step_size / h``), against the sweep's point at that width."""

    modulus: int = 23
    beta: float = 100.0
    widths: list = dataclasses.field(default_factory=lambda: [256, 512, 1024, 2048])
    num_seeds: int = 4
    long_width: int = 1024
    long_factor: int = 4
    step_sizes: list = dataclasses.field(default_factory=list)  # step-size check: each at every step_widths width
    step_widths: list = dataclasses.field(default_factory=lambda: [256])

    def __post_init__(self):
        bad = [h for h in self.step_sizes if not (isinstance(h, (int, float)) and h > 0)]
        if bad or any(not (isinstance(n, int) and n > 0) for n in self.step_widths):
            raise ConfigError(f"[width_sweep] step_sizes must be positive numbers and step_widths positive integers; got "
                              f"step_sizes = {self.step_sizes}, step_widths = {self.step_widths}")


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


def network_point(key, modulus: int, beta: float, net: NetworkSection, cache: Path, start: str = "prior") -> dict:
    """Langevin networks vs the exact theory at one (P, beta); cached as JSON.

    ``start``: ``"prior"`` (prior draws) or ``"theory"`` (first-layer weights drawn from the exact theory's
    single-neuron law at its self-consistent coupling, ``mft_jax.theory.reduced.modular.sample_neurons``; readouts from the prior).
    """
    suffix = ("" if start == "prior" else f"_start{start}") + ("" if net.step_size == NetworkSection.step_size else f"_h{net.step_size:g}")  # default: the old name
    path = cache / f"P{modulus}_beta{beta:g}_N{net.width}_S{net.num_seeds}_T{net.steps}{suffix}.json"
    if path.is_file():
        return json.loads(path.read_text())
    sa2 = net.kappa / beta
    model = TwoLayer("square", sa2=sa2, sw2=1.0, beta=beta, penalty=fourier_sextic(net.gamma))
    data = make_data("modular_addition", modulus=modulus)
    threshold = saddle(coexistence_coupling(net.gamma), net.gamma).barrier
    observe = lambda p: {"a": network_discrepancy(p, model), "learned": learned_fraction(p["w"], threshold)}
    u, kappa = library_couplings(modulus, sa2, beta)
    theory = solve_discrepancy(u, kappa, net.gamma, modulus, points=net.theory_points)
    init_params = None
    if start == "theory":
        rng = np.random.default_rng([net.seed, modulus, net.width])
        w = sample_neurons(rng, theory.g, net.gamma, modulus, net.num_seeds * net.width, points=net.theory_points)
        a = math.sqrt(sa2) * rng.standard_normal((net.num_seeds, net.width, modulus))
        init_params = {"a": a, "w": w.reshape(net.num_seeds, net.width, 2 * modulus)}
    elif start != "prior":
        raise ValueError(f"start must be 'prior' or 'theory', got {start!r}")
    clock = time.perf_counter()
    result = train(key, model, net.width, data, langevin_optimizer(model, net.step_size), net.steps, num_seeds=net.num_seeds,
                   chunk=net.record_every, observables=observe, progress=False, init_params=init_params)
    seconds = time.perf_counter() - clock
    history = result.history
    kept = history["step"] > net.burn_in
    half = kept & (history["step"] > (net.burn_in + net.steps) / 2)
    record = {"P": modulus, "beta": beta, "sa2": sa2, "gamma": net.gamma, "width": net.width, "seconds": seconds,
              "load_average": os.getloadavg()[0], **({} if start == "prior" else {"start": start}), "steps": net.steps,
              "num_seeds": net.num_seeds}
    for name in ("a", "learned", "loss"):
        values = np.asarray(history[name], dtype=float)
        per_seed = values[kept].mean(axis=0)
        record[name] = float(per_seed.mean())
        record[name + "_se"] = float(per_seed.std(ddof=1) / math.sqrt(len(per_seed))) if len(per_seed) > 1 else float("nan")
        record[name + "_first_half"] = float(values[kept & ~half].mean())
        record[name + "_second_half"] = float(values[half].mean())
        record[name + "_trace"] = values.mean(axis=1).tolist()
    record["steps_recorded"] = history["step"].tolist()
    powers = np.asarray(mode_powers(result.params["w"].reshape(-1, 2 * modulus)), dtype=float)
    record["top_mode_share"] = float(np.mean(top_mode_share(powers)))
    record["top_mode_share_hist"] = np.histogram(np.asarray(top_mode_share(powers)), bins=20, range=(0, 1))[0].tolist()
    record["example_spectra"] = (powers[:6, 0] + powers[:6, 1]).tolist()
    # theory at the same (beta, sa2, gamma)
    gp = 1 / (1 + 4 * kappa / modulus**2)
    rng = np.random.default_rng(net.seed)
    samples = sample_pair_modes(rng, theory.g, net.gamma, modulus, (4096, (modulus - 1) // 2), points=net.theory_points)
    shares = np.asarray(top_mode_share(jnp.asarray(np.moveaxis(samples, -1, -2))))
    prior = sample_pair_modes(rng, 0.0, net.gamma, modulus, (4096, (modulus - 1) // 2), points=net.theory_points)
    record["theory"] = {
        "a": theory.a, "a_gp": gp, "g": theory.g, "g_over_g_c": theory.g / coexistence_coupling(net.gamma), "phase": theory.phase,
        "learned": pair_mode(theory.g, net.gamma, modulus, net.theory_points, threshold=threshold).learned,
        "loss": theory.a**2 * (modulus - 1) / (2 * modulus),
        "top_mode_share": float(shares.mean()), "top_mode_share_hist": np.histogram(shares, bins=20, range=(0, 1))[0].tolist(),
        "prior_top_mode_share": float(np.asarray(top_mode_share(jnp.asarray(np.moveaxis(prior, -1, -2)))).mean()),
        "finite_width_ratio": 12 * kappa / net.width,
    }
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return record


def _summary(point: dict) -> dict:
    """The numbers of a network point the width sweep reports (the traces stay in the cache)."""
    keys = ("width", "steps", "num_seeds", "a", "a_se", "a_first_half", "a_second_half", "learned", "learned_se", "seconds",
            "load_average", "a_trace", "learned_trace", "steps_recorded")
    return {**{k: point[k] for k in keys if k in point}, "start": point.get("start", "prior")}


def fit_inverse_width(widths, values, errors, order: int = 1) -> dict:
    """``a(N) = a_inf + sum_(j=1..order) c_j / N^j`` (``mft_jax.analysis.stats.fit_inverse_size``) under this
    experiment's keys: ``a_inf``, ``c`` and their errors, ``chi2`` and ``chi2_per_dof``."""
    fit = fit_inverse_size(widths, values, errors, order=order)
    return {"order": order, "widths": fit["sizes"], "a_inf": fit["limit"], "a_inf_se": fit["limit_se"], "c": fit["coefficients"],
            "c_se": fit["coefficients_se"], "chi2": fit["chi2"], "chi2_per_dof": fit["chi2_per_dof"]}


def width_sweep(key, sweep: WidthSweepSection, net: NetworkSection, cache: Path) -> dict:
    """``a(N)`` at one (P, beta) across widths, fitted as ``a_inf + c/N``, against the exact theory; equilibration:
    the same point run ``long_factor`` times longer (burn-in scaled alike) and from the theory's neuron law."""
    points = []
    for index, width in enumerate(sweep.widths):
        setting = dataclasses.replace(net, width=int(width), num_seeds=sweep.num_seeds)
        point = network_point(jax.random.fold_in(key, 7000 + index), sweep.modulus, float(sweep.beta), setting, cache)
        points.append(point)
        print(f"width sweep P = {sweep.modulus}, beta = {sweep.beta:g}, N = {width}: a = {point['a']:.4f} +- {point['a_se']:.2g} "
              f"(halves {point['a_first_half']:.4f} / {point['a_second_half']:.4f}); learned {point['learned']:.4f} "
              f"[{point['seconds']:.0f} s, load {point['load_average']:.1f}]", flush=True)
    theory = points[0]["theory"]
    widths, values, errors = ([p[k] for p in points] for k in ("width", "a", "a_se"))
    fits = {"inverse_width": fit_inverse_width(widths, values, errors),
            "inverse_width_quadratic": fit_inverse_width(widths, values, errors, order=2) if len(points) > 3 else None,
            "inverse_width_two_largest": fit_inverse_width(widths[-2:], values[-2:], errors[-2:])}
    for name, fit in fits.items():
        if fit is None:
            continue
        fit["pull"] = (fit["a_inf"] - theory["a"]) / fit["a_inf_se"]
        print(f"width sweep fit ({name}, N = {fit['widths']}): a_inf = {fit['a_inf']:.4f} +- {fit['a_inf_se']:.2g} "
              f"(chi2 {fit['chi2']:.3g}, per dof {fit['chi2_per_dof']:.3g}); theory a = {theory['a']:.4f} ({fit['pull']:+.1f} s.e.)", flush=True)
    long_net = dataclasses.replace(net, width=sweep.long_width, num_seeds=sweep.num_seeds)
    longer = dataclasses.replace(long_net, steps=net.steps * sweep.long_factor, burn_in=net.burn_in * sweep.long_factor)
    checks = {
        "long": network_point(jax.random.fold_in(key, 7100), sweep.modulus, float(sweep.beta), longer, cache),
        "theory_start": network_point(jax.random.fold_in(key, 7200), sweep.modulus, float(sweep.beta), long_net, cache, start="theory"),
    }
    for name, point in checks.items():
        print(f"equilibration ({name}) N = {point['width']}, {point['steps']} steps: a = {point['a']:.4f} +- {point['a_se']:.2g} "
              f"(halves {point['a_first_half']:.4f} / {point['a_second_half']:.4f}); learned {point['learned']:.4f} vs theory "
              f"{theory['learned']:.4f} [{point['seconds']:.0f} s]", flush=True)
    return {"P": sweep.modulus, "beta": sweep.beta, "theory": {k: theory[k] for k in ("a", "a_gp", "learned", "g", "phase")},
            "points": [_summary(p) for p in points], "fits": fits, **{name: _summary(p) for name, p in checks.items()},
            "step_check": step_check(key, sweep, net, cache, {p["width"]: p for p in points})}


def step_check(key, sweep: WidthSweepSection, net: NetworkSection, cache: Path, at_default: dict) -> list[dict]:
    """The discretisation bias of ``a``: the sweep's point at width ``N`` rerun at each smaller step ``h`` over the same
    time span (``[networks] step_size / h`` times the steps; fresh keys), ``a(h) - a(step_size)`` with the seeds' errors
    combined. Langevin's stationary bias is O(h), so ``a(h) - a(step_size)`` estimates ``-(1 - h/step_size)`` times the
    bias at ``step_size``: a difference within errors bounds it by those errors."""
    rows = []
    for i, width in enumerate(sweep.step_widths):
        base = at_default.get(int(width)) or network_point(jax.random.fold_in(key, 7300 + i), sweep.modulus, float(sweep.beta),
                                                          dataclasses.replace(net, width=int(width), num_seeds=sweep.num_seeds), cache)
        for j, h in enumerate(sweep.step_sizes):
            factor = net.step_size / float(h)
            varied = dataclasses.replace(net, width=int(width), num_seeds=sweep.num_seeds, step_size=float(h),
                                         steps=round(net.steps * factor), burn_in=round(net.burn_in * factor),
                                         record_every=round(net.record_every * factor))
            point = network_point(jax.random.fold_in(key, 7400 + 100 * i + j), sweep.modulus, float(sweep.beta), varied, cache)
            diff = point["a"] - base["a"]
            diff_se = math.hypot(point["a_se"], base["a_se"])
            rows.append({**_summary(point), "step_size": float(h), "a_at_default_step": base["a"], "a_at_default_step_se": base["a_se"],
                         "a_minus_default_step": diff, "a_minus_default_step_se": diff_se})
            print(f"step check P = {sweep.modulus}, N = {width}: h = {h:g} x {varied.steps} steps: a = {point['a']:.4f} +- {point['a_se']:.2g} "
                  f"(halves {point['a_first_half']:.4f} / {point['a_second_half']:.4f}); minus h = {net.step_size:g}: {diff:+.4f} +- "
                  f"{diff_se:.2g} [{point['seconds']:.0f} s]", flush=True)
    return rows


def loss_timing(moduli, width: int = 256) -> dict:
    """Seconds per jitted value-and-grad of the Fourier-form loss and the direct loss, same run (load average noted)."""
    out = {}
    for modulus in moduli:
        model = TwoLayer("square", sa2=1.0, sw2=1.0, beta=1.0)
        data = make_data("modular_addition", modulus=modulus)
        params = jax.tree.map(lambda z: z, {"a": jax.random.normal(jax.random.key(0), (width, modulus)),
                                            "w": jax.random.normal(jax.random.key(1), (width, 2 * modulus))})
        times = {}
        for name, fn in (("fourier", fourier_loss), ("direct", loss)):
            step = jax.jit(jax.value_and_grad(lambda p: fn(p, model, data)))
            jax.block_until_ready(step(params))
            start, repeats = time.perf_counter(), 5
            for _ in range(repeats):
                jax.block_until_ready(step(params))
            times[name] = (time.perf_counter() - start) / repeats
        out[str(modulus)] = {**times, "direct_over_fourier": times["direct"] / times["fourier"], "width": width, "load_average": os.getloadavg()[0]}
        print(f"loss timing P = {modulus}, N = {width}: Fourier {times['fourier'] * 1e3:.1f} ms, direct {times['direct'] * 1e3:.1f} ms "
              f"(direct/Fourier {out[str(modulus)]['direct_over_fourier']:.2f}; load {out[str(modulus)]['load_average']:.1f})", flush=True)
    return out


def main(argv=None) -> dict:
    args = parse(NAME, __doc__.splitlines()[0], argv)
    raw = load_toml(args.config, {"paper", "exact", "networks", "width_sweep"})
    paper = section(PaperSection, raw.get("paper"), "paper")
    exact = section(ExactSection, raw.get("exact"), "exact")
    net = section(NetworkSection, raw.get("networks"), "networks")
    sweep = section(WidthSweepSection, raw["width_sweep"], "width_sweep") if "width_sweep" in raw else None
    with jax.enable_x64(True):
        paper_fig3, corrected = fig3(paper)
        print(f"Fig. 3, literal numbers (saddle): GMFL-I from sigma^2 = {paper_fig3['gmfl1_sigma2']:.4f}, GMFL-II from "
              f"{paper_fig3['gmfl2_sigma2']}; mixed reading: GMFL-I from {paper_fig3['readings']['mixed']['gmfl1_sigma2']:.4f}; "
              f"a at 0.175 = {paper_fig3['a_at_0.175']:.3f}; paper {PAPER}", flush=True)
        print(f"corrected (exact per-mode integral): {corrected['exact_boundaries']}, learned fraction at 0.175: "
              f"{corrected['learned_fraction_at_0.175']:.3g}", flush=True)
        theory = exact_theory(paper, exact)
    timing = loss_timing(net.timing_moduli)
    networks = {}
    cache = ROOT / "runs" / NAME
    key = jax.random.key(net.seed)
    for modulus in net.moduli:
        networks[str(modulus)] = []
        for index, beta in enumerate(net.betas):
            point = network_point(jax.random.fold_in(key, 1000 * modulus + index), modulus, float(beta), net, cache)
            networks[str(modulus)].append(point)
            th = point["theory"]
            print(f"networks P = {modulus}, beta = {beta:g}, sa2 = {point['sa2']:.3g}, N = {net.width}: a = {point['a']:.4f} +- {point['a_se']:.2g} "
                  f"(halves {point['a_first_half']:.4f} / {point['a_second_half']:.4f}); theory a = {th['a']:.4f} (GP {th['a_gp']:.4f}, {th['phase']}); "
                  f"learned {point['learned']:.4f} vs {th['learned']:.4f}; top-mode share {point['top_mode_share']:.3f} vs {th['top_mode_share']:.3f} "
                  f"(prior {th['prior_top_mode_share']:.3f}) [{point['seconds']:.0f} s]", flush=True)
    widths = width_sweep(jax.random.fold_in(key, 1), sweep, net, cache) if sweep is not None else None
    results = {"paper_fig3": paper_fig3, "corrected": corrected, "exact_theory": theory, "networks": networks,
               "width_sweep": widths, "loss_timing": timing, "config": raw, "meta": run_metadata(raw, net.seed)}
    write_results(args.out, results, make_figures, args.figures)
    return results


def make_figures(results: dict, outdir="figures") -> list:
    """Phase diagram (a vs sigma^2, Fig. 3), networks vs theory, Fourier spectra of trained neurons, a(N) of the width sweep."""
    plt = pyplot()

    outdir = Path(outdir)
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    ax = axes[0]
    p3, corr = results["paper_fig3"], results["corrected"]
    for key, style, label in (("curve_saddle_literal", "C0-", "saddle, literal (0.002/N everywhere)"),
                              ("curve_saddle_mixed", "C1--", "saddle, mixed reading (0.002 in GP eigenvalue)")):
        curve = p3[key]
        ax.plot([p["sigma2"] for p in curve], [p["a"] for p in curve], style, label=label)
    exact = corr["curve_exact"]
    ax.plot([p["sigma2"] for p in exact], [p["a"] for p in exact], "k:", lw=2, label="exact per-mode integral (P = 401)")
    ax.axvline(PAPER["gmfl1_sigma2"], color="gray", lw=0.8, ls="--", label="paper: GMFL-I 0.227, GMFL-II 0.175")
    ax.axvline(PAPER["gmfl2_sigma2"], color="gray", lw=0.8, ls="--")
    ax.plot([PAPER["gmfl2_sigma2"]], [-PAPER["a_at_gmfl2"]], "rx", ms=9, label="paper: |a| = 0.7 at 0.175")
    ax.set(xlabel=r"$\sigma^2$", ylabel=r"discrepancy coefficient $|a|$ ($r = a\,y$)", title="Fig. 3: P = 401, N = 1000, $\\gamma$ = 1e-4")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.semilogy([p["sigma2"] for p in exact], [max(p["learned"], 1e-12) for p in exact], "k-o", ms=3)
    ax.set(xlabel=r"$\sigma^2$", ylabel="fraction of pair modes at the nonzero saddle", title="mixed phase: how many modes learn (exact)")
    paths.append(save_figure(fig, outdir / f"{NAME}.png", dpi=120))

    nets = results["networks"]
    if any(nets.values()):
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
        for i, (modulus, points) in enumerate(nets.items()):
            betas = [p["beta"] for p in points]
            axes[0].errorbar(betas, [p["a"] for p in points], [p["a_se"] for p in points], fmt="o", color=f"C{i}", label=f"networks P = {modulus}")
            axes[0].plot(betas, [p["theory"]["a"] for p in points], "-", color=f"C{i}", label=f"exact theory P = {modulus}")
            axes[0].plot(betas, [p["theory"]["a_gp"] for p in points], ":", color=f"C{i}", label=f"GP P = {modulus}")
            axes[1].errorbar(betas, [p["learned"] for p in points], [p["learned_se"] for p in points], fmt="o", color=f"C{i}", label=f"networks P = {modulus}")
            axes[1].plot(betas, [p["theory"]["learned"] for p in points], "-", color=f"C{i}", label=f"exact theory P = {modulus}")
            last = points[-1]
            edges = np.linspace(0, 1, 21)
            centres = 0.5 * (edges[1:] + edges[:-1])
            for hist, style, label in ((last["top_mode_share_hist"], "o-", "networks"), (last["theory"]["top_mode_share_hist"], "-", "theory")):
                hist = np.asarray(hist, float)
                axes[2].plot(centres, hist / hist.sum(), style, color=f"C{i}", label=f"{label} P = {modulus}, beta = {last['beta']:g}")
        axes[0].set(xlabel=r"$\beta$ (sa2 = $\kappa/\beta$)", ylabel="a", title="discrepancy coefficient")
        axes[1].set(xlabel=r"$\beta$", ylabel="fraction beyond the barrier", title="(neuron, mode) pairs at the nonzero saddle")
        axes[2].set(xlabel="share of the top pair mode in a neuron's power", ylabel="fraction of neurons", title="one frequency or all?")
        for ax in axes:
            ax.legend(fontsize=7)
        paths.append(save_figure(fig, outdir / f"{NAME}_networks.png", dpi=120))
    sweep = results.get("width_sweep")
    if sweep:
        fig, ax = plt.subplots(figsize=(6, 4.3))
        inverse = np.array([1.0 / p["width"] for p in sweep["points"]])
        ax.errorbar(inverse, [p["a"] for p in sweep["points"]], [p["a_se"] for p in sweep["points"]], fmt="ko", label="networks (from the prior)")
        for name, marker in (("long", "v"), ("theory_start", "s")):
            point = sweep[name]
            ax.errorbar([1.0 / point["width"]], [point["a"]], [point["a_se"]], fmt=marker, mfc="none", ms=9,
                        label=f"{name.replace('_', ' ')} ({point['steps']} steps)")
        labelled = set()
        for row in sweep.get("step_check", []):
            first = row["step_size"] not in labelled
            labelled.add(row["step_size"])
            ax.errorbar([1.0 / row["width"]], [row["a"]], [row["a_se"]], fmt="D", mfc="none", ms=7, color="C3",
                        label=f"step {row['step_size']:g} (same time span)" if first else None)
        grid = np.linspace(0, inverse.max() * 1.05, 100)
        for (name, fit), style in zip(sweep["fits"].items(), ("C0-", "C1--", "C2:")):
            if fit:
                curve = fit["a_inf"] + sum(c * grid ** (j + 1) for j, c in enumerate(fit["c"]))
                ax.plot(grid, curve, style, label=f"{name}: a_inf = {fit['a_inf']:.4f} +- {fit['a_inf_se']:.1g}")
        ax.axhline(sweep["theory"]["a"], color="r", lw=1, label=f"exact theory {sweep['theory']['a']:.4f}")
        ax.set(xlabel="1/N", ylabel="a", title=f"P = {sweep['P']}, beta = {sweep['beta']:g}: a(N)")
        ax.legend(fontsize=7)
        paths.append(save_figure(fig, outdir / f"{NAME}_width.png", dpi=120))
    return paths


if __name__ == "__main__":
    main()
