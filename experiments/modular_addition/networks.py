"""Langevin networks on the full table: runs (cached), the width sweep with its 1/N extrapolation, the step-size
check and the loss timing."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import jax
import jax.numpy as jnp
import numpy as np

from pathlib import Path
from mft_jax.analysis.stats import fit_inverse_size
from mft_jax.model import TwoLayer
from mft_jax.theory.reduced.modular import coexistence_coupling, fourier_loss, learned_fraction, library_couplings, mode_powers, network_discrepancy, pair_mode, sample_neurons, sample_pair_modes, saddle, solve_discrepancy, top_mode_share
from mft_jax.priors import fourier_sextic
from mft_jax.tasks import make_data
from mft_jax.train.joint import langevin_optimizer, train
from mft_jax.train.joint import loss
from experiments.modular_addition.config import NetworkSection, WidthSweepSection


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
