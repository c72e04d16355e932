"""The theories of the teacher-student experiment: the paper's equations, the exact population theory, and the
exact theory on the networks' own training sets."""

from __future__ import annotations

import math
import time
import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.analysis.stats import fit_inverse_size
from mft_jax.theory.reduced import rubin
from mft_jax.theory.background import Background, predict
from mft_jax.theory.samplers.importance import importance_sampler
from mft_jax.theory.samplers.mcmc import mcmc_sampler
from mft_jax.theory.gp import gp_predict
from mft_jax.theory.reduced.single_index import hermite_components, reduced_grid_sampler, reduced_population
from mft_jax.theory.two_layer import solve, solve_branches
from mft_jax.tasks import teacher_student
from experiments.teacher_student.config import Q_BINS, network_key, run_settings
from experiments.teacher_student.measure import PREDICTIONS, _mean_se, _paired_difference, _projected, _seed_stats, _versus, hermite_projector, network_test_inputs, theory_model
from experiments.teacher_student.networks import network_run


# ------------------------------------------------------------------------------------------ theories
def paper_theory(setting, sigma2s) -> dict:
    tr = rubin.limit_transition(setting)
    printed = rubin.limit_transition(setting, h1_weight=2.0)
    fine = np.linspace(min(sigma2s), max(sigma2s), 41)
    limit = [rubin.limit_state(setting, float(s)) for s in fine]
    finite = []
    for s in sigma2s:
        b, c, q, p, ok = rubin.finite_d_state(setting, s)
        hist = np.histogram(q, Q_BINS, weights=p)[0]
        finite.append({"sigma2": s, "f1": 1 - b, "f3": setting.eps - c, "converged": ok, "p_q": hist.tolist()})
    return {
        "limit": {"sigma2_c": tr.sigma2_c, "u_c": tr.u_c, "q1": tr.q1, "b_c": tr.b, "spinodal_sigma2": tr.spinodal_sigma2,
                  "spinodal_u": tr.spinodal_u, "as_printed_h1_weight_2": {"sigma2_c": printed.sigma2_c, "u_c": printed.u_c},
                  "curve": [{"sigma2": s.sigma2, "u": s.u, "f1": 1 - s.b, "f3": setting.eps - s.c, "droplets_m": s.m, "q1": s.q1}
                            for s in limit]},
        "finite_d": finite,
    }


def population_theory(setting, sigma2s, *, num_q=161) -> dict:
    eps = setting.eps
    data = reduced_population(setting.d, lambda z: z + eps * (z**3 - 3 * z), num_z=32, num_s=8)
    sampler = reduced_grid_sampler(num_q=num_q, q_max=1.6, num_rho=24)
    points = []
    for s in sigma2s:
        model = theory_model(setting, s)
        t0 = time.time()
        branches = solve_branches(data, model, sampler, key=jax.random.key(0), tol=1e-6)
        point = {"sigma2": s, "u": float(setting.u(s)), "stable": branches.stable, "seconds": time.time() - t0}
        for name, sol in (("gp", branches.gp), ("feature", branches.feature)):
            f1, f3 = hermite_components(sol.law, model, data, sol.residual)
            w = np.asarray(sol.law.weights())
            q = np.asarray(sol.law.w[:, 0])
            point[name] = {"f1": float(f1), "f3": float(f3), "loss": sol.loss, "free_energy": sol.free_energy,
                           "mean_abs_q": float(np.sum(w * np.abs(q))), "converged": sol.converged,
                           "p_q": np.histogram(q, Q_BINS, weights=w)[0].tolist(), "warnings": sol.diagnostics["warnings"]}
        stable = point[branches.stable]
        point["f1"], point["f3"] = stable["f1"], stable["f3"]
        points.append(point)
        print(f"  population s2={s:.3f}: f3 gp {point['gp']['f3']:+.4f} feature {point['feature']['f3']:+.4f}; "
              f"F gp {point['gp']['free_energy']:.6g} feature {point['feature']['free_energy']:.6g} ({point['seconds']:.0f} s)", flush=True)
    return {"points": points, "transition": population_transition(setting, points)}


def population_transition(setting, points) -> dict:
    """Where the branches' free energies cross (first order) or, if both starts reach one state, the steepest f3."""
    s2 = np.array([p["sigma2"] for p in points])
    dF = np.array([p["gp"]["free_energy"] - p["feature"]["free_energy"] for p in points])
    distinct = np.array([abs(p["gp"]["f3"] - p["feature"]["f3"]) > 1e-4 for p in points])
    out = {"distinct_branches_at": s2[distinct].tolist()}
    order = np.argsort(s2)
    s2, dF, f3 = s2[order], dF[order], np.array([points[i]["f3"] for i in order])
    cross = [i for i in range(len(s2) - 1) if distinct[order][i] and distinct[order][i + 1] and dF[i] * dF[i + 1] < 0]
    if cross:
        i = cross[0]
        s2c = s2[i] - dF[i] * (s2[i + 1] - s2[i]) / (dF[i + 1] - dF[i])
        out.update(kind="first order (free energies cross)", sigma2_c=float(s2c))
    elif len(s2) >= 3:
        slope = np.diff(f3) / np.diff(s2)
        i = int(np.argmax(np.abs(slope)))
        out.update(kind="crossover (one state from both starts; steepest f3)", sigma2_c=float(0.5 * (s2[i] + s2[i + 1])))
    else:
        out.update(kind="undetermined (fewer than 3 sigma^2)", sigma2_c=float("nan"))
    out["u_c"] = float(setting.u(out["sigma2_c"]))
    return out


_THEORY_CACHE: dict = {}


def theory_on_training_set(setting, sigma2, draw, args, init=None, points=None) -> tuple[dict, jax.Array]:
    """The exact infinite-width fixed point (``solve``: the full ``TwoLayer`` in d dimensions, the networks' model) on the
    networks' training set ``draw``; f1, f3 of its mean predictor on the networks' test points. Returns (record, residual).

    The single-neuron law puts 2-10% of its mass at ``|w.w*| > 0.45`` (``mass_abs_q_above_0.45``), 4.6 prior sd out, which prior
    draws never reach: importance sampling (``args.theory_samples`` draws) converges there but to the law of the draws
    (recorded as ``importance_start``), so it is only the start (when ``init`` is None). The answer is MCMC
    (``mcmc_sampler``, ``args.theory_mcmc``): the map is so steep (coupling c = u d / 2 ~ 10^3) that damping 0.2
    oscillates with period 2; damping 0.05 settles at the sampler's noise floor. Per key: one MCMC solve from ``init``,
    then ``refresh`` sampler updates at its final residual, f1, f3 averaged over them; ``args.theory_keys`` keys.
    ``points``: instead of the networks' set, a fresh sample of this many points (key ``5000 + draw``), same model."""

    cache_key = (setting, round(float(sigma2), 8), draw, points)
    if cache_key in _THEORY_CACHE:
        return _THEORY_CACHE[cache_key]
    x_test = network_test_inputs(setting, args)
    projector = hermite_projector(x_test[:, 0])
    model = theory_model(setting, sigma2, reduced=False)
    task = teacher_student(setting.d, setting.eps)
    data = task.training_set(jax.random.key(1000 + draw), setting.n) if points is None else task.training_set(jax.random.key(5000 + draw), points)
    out = {"draw": draw, "points": data.num_points}
    if init is None:
        t0 = time.time()
        sol = solve(data, model, importance_sampler(args.theory_samples), key=jax.random.key(0))
        f1, f3 = _projected(projector, sol.predict(x_test))
        out["importance_start"] = {"f1": f1, "f3": f3, "loss": float(sol.loss), "converged": bool(sol.converged),
                                   "message": sol.message, "ess": float(sol.diagnostics["ess"]),
                                   "warnings": list(sol.diagnostics["warnings"]), "seconds": time.time() - t0}
        init = sol.residual
    else:
        out["start"] = "the MCMC residual of the previous (larger) sigma^2 on this draw"
    cfg = args.theory_mcmc
    sampler = mcmc_sampler(cfg["chains"], cfg["steps"], num_warmup=cfg["warmup"])
    solves, residuals = [], []
    for k in range(args.theory_keys):
        t0 = time.time()
        sol = solve(data, model, sampler, key=jax.random.key(100 + k), init=init, damping=cfg["damping"], tol=1e-3,
                    max_iter=cfg["max_iter"])
        state = sampler.init(jax.random.key(200 + k), model, data)
        state = state._replace(position=jnp.asarray(sol.law.w, state.position.dtype),
                               step_size=jnp.asarray(sol.diagnostics["step_size"], state.position.dtype))
        laws = [sol.law]
        for _ in range(cfg["refresh"]):
            law, state = sampler.update(state, model, data, sol.residual)
            laws.append(law)
        fs = np.array([_projected(projector, predict(model, law, data, sol.residual, x_test)) for law in laws])
        # kernel regression with each law's kernel: beta sa2 K(x, X) G(r), G(r) = (I + beta sa2 K Q)^-1 y (equal to the
        # above at a fixed point; off it, the law's own prediction amplifies r - G(r) along the learned directions)
        fs_kr = np.array([_projected(projector, Background(model, law, data).predict(x_test)) for law in laws])
        q = np.abs(np.asarray(sol.law.w)[:, 0])
        diag = sol.diagnostics
        solves.append({"key": 100 + k, "f1": float(fs[:, 0].mean()), "f3": float(fs[:, 1].mean()),
                       "f1_laws": fs[:, 0].tolist(), "f3_laws": fs[:, 1].tolist(), "loss": float(sol.loss),
                       "f1_kernel_regression": float(fs_kr[:, 0].mean()), "f3_kernel_regression": float(fs_kr[:, 1].mean()),
                       "f1_kernel_regression_laws": fs_kr[:, 0].tolist(), "f3_kernel_regression_laws": fs_kr[:, 1].tolist(),
                       "converged": bool(sol.converged), "message": sol.message, "iterations": int(sol.iterations),
                       "final_change": float(diag["change"]), "change_history": [float(c) for c in sol.history["change"]],
                       "acceptance_rate": float(diag["acceptance_rate"]), "autocorrelation_time": float(diag["autocorrelation_time"]),
                       "warnings": list(diag["warnings"]), "mass_abs_q_above_0.45": float(np.mean(q > 0.45)),
                       "mean_abs_q": float(q.mean()), "seconds": time.time() - t0})
        residuals.append(sol.residual)
    out.update(solves=solves, sampler={"name": "mcmc", **cfg, "tol": 1e-3},
               stopped_at_noise_floor=all("noise floor" in r["message"] for r in solves))
    for name in PREDICTIONS:
        out[name], out[name + "_se"] = _mean_se([r[name] for r in solves])
    out["nngp"] = dict(zip(("f1", "f3"), _projected(projector, gp_predict(data, model, x_test))))
    residual = jnp.mean(jnp.stack(residuals), axis=0)
    _THEORY_CACHE[cache_key] = (out, residual)
    return out, residual


def training_set_theory(setting, sigma2s, args) -> dict:
    """Per sigma^2 and training-set draw: the theory on that set (finite n, N = inf; ``theory_on_training_set``, from the
    largest sigma^2 down, each warm-started from the last) and the networks trained on it (prior start, ``args.seeds``
    seeds; cached runs reused); the draw average; population values are attached in ``attach_population``."""
    x_test = network_test_inputs(setting, args)
    rows = {}
    for draw in range(args.draws):
        residual = None
        for s in sorted(sigma2s, reverse=True):
            t0 = time.time()
            row, residual = theory_on_training_set(setting, s, draw, args, init=residual)
            row = dict(row)
            # the networks of this draw (prior start; cached runs reused, also with --no-networks; without a cached run
            # --no-networks leaves them out and ``attach_networks`` compares with the scale's pooled networks instead)
            run = network_run(setting, s, "prior", draw, args, x_test, cached_only=args.no_networks)
            if run is not None:
                row["networks"] = {**_seed_stats(run), "seeds": len(run["f1_seeds"]),
                                   "f1_seeds": run["f1_seeds"], "f3_seeds": run["f3_seeds"], "steps": run["steps"]}
                row["networks_minus_theory_in_se"] = {k: _versus(row["networks"][c], row["networks"][c + "_se"], row[k], row[k + "_se"])
                                                      for k, c in PREDICTIONS.items()}
            rows[(s, draw)] = row
            net = row.get("networks", {})
            print(f"  training-set theory s2={s:.3f} draw {draw}: f1 {row['f1']:.4f}+-{row['f1_se']:.4f} f3 {row['f3']:+.4f}"
                  f"+-{row['f3_se']:.4f} (kernel regression f1 {row['f1_kernel_regression']:.4f} f3 {row['f3_kernel_regression']:+.4f}; "
                  f"{'noise floor' if row['stopped_at_noise_floor'] else 'see message'}); networks f1 "
                  f"{net.get('f1', float('nan')):.4f}+-{net.get('f1_se', float('nan')):.4f} f3 {net.get('f3', float('nan')):+.4f}"
                  f"+-{net.get('f3_se', float('nan')):.4f}; NNGP f1 {row['nngp']['f1']:.3f} ({time.time() - t0:.0f} s)", flush=True)
    points = []
    for s in sigma2s:
        per_draw = [rows[(s, draw)] for draw in range(args.draws)]
        point = {"sigma2": s, "u": float(setting.u(s)), "draws": per_draw}
        for name, component in PREDICTIONS.items():
            point[name], point[name + "_se"] = _mean_se([r[name] for r in per_draw])  # over draws
            point[name + "_sampler_se"] = math.sqrt(sum(np.nan_to_num(r[name + "_se"]) ** 2 for r in per_draw)) / len(per_draw)
            if all("networks" in r for r in per_draw):
                pooled = np.concatenate([r["networks"][component + "_seeds"] for r in per_draw])
                point["networks_" + component], point["networks_" + component + "_se"] = _mean_se(pooled)
                point["networks_minus_theory_" + name], point["networks_minus_theory_" + name + "_se"] = _paired_difference(
                    [(r["networks"], r) for r in per_draw], component, name)  # paired by draw
        points.append(point)
    return {"points": points, **run_settings(args)["training_set_theory"],
            "method": "mft_jax.theory.two_layer.solve on each network training set with theory_model(reduced=False), MCMC from an "
                      "importance-sampling start (theory_on_training_set); f1, f3 by least squares on the networks' test "
                      "points; errors: theory over MCMC keys, networks over init seeds; point values: means over draws "
                      "(f*_se: their spread over draws)"}


def sample_check(setting, args) -> dict:
    """The same solve (``theory_on_training_set``) on a fresh sample of ``args.sample_check`` points at the same model
    (beta of the n-point set): as that sample grows it approaches the population theory, which checks the MCMC route
    against the exact reduced solver where both apply."""
    points = []
    for s in args.sample_check_sigma2:
        row, _ = theory_on_training_set(setting, s, 0, args, points=args.sample_check)
        points.append({"sigma2": s, **row})
        print(f"  sample check s2={s:.3f}, {args.sample_check} fresh points: f1 {row['f1']:.4f}+-{row['f1_se']:.4f} "
              f"f3 {row['f3']:+.4f}+-{row['f3_se']:.4f}; kernel regression with the laws' kernels: f1 {row['f1_kernel_regression']:.4f}"
              f"+-{row['f1_kernel_regression_se']:.4f} f3 {row['f3_kernel_regression']:+.4f}+-{row['f3_kernel_regression_se']:.4f}", flush=True)
    return {"points": points, **run_settings(args)["sample_check"]}


def _fit_inverse_width(widths, values, errors) -> dict:
    """``f = f_inf + A / N'`` (``mft_jax.analysis.stats.fit_inverse_size``) under this experiment's keys: f_inf, slope,
    their errors, chi^2 and dof; {} with fewer than 2 points or a non-positive error."""
    if len(widths) < 2 or not np.all(np.asarray(errors, float) > 0):
        return {}
    fit = fit_inverse_size(widths, values, errors)
    return {"f_inf": fit["limit"], "f_inf_se": fit["limit_se"], "slope": fit["coefficients"][0],
            "slope_se": fit["coefficients_se"][0], "chi2": fit["chi2"], "dof": fit["dof"]}


def width_sweep(setting, args) -> dict:
    """Networks of width N' (``args.widths``) with the setting's ``TwoLayer`` model on draw ``args.width_draw`` (prior
    start), at ``args.width_sigma2``; the 1/N' extrapolation next to the theory on the same training set."""
    x_test = network_test_inputs(setting, args)
    points = []
    for s in args.width_sigma2:
        rows = []
        for N in args.widths:
            run = network_run(setting, s, "prior", args.width_draw, args, x_test, width=N)
            row = {"width": N, "seeds": len(run["f1_seeds"]), "tau_f3_records": run["tau_f3_records"],
                   "seconds": run["seconds"], "f1_seeds": run["f1_seeds"], "f3_seeds": run["f3_seeds"]}
            row.update(_seed_stats(run))
            rows.append(row)
            print(f"  width sweep s2={s:.3f} N'={N}: f1 {row['f1']:.4f}+-{row['f1_se']:.4f} f3 {row['f3']:+.4f}"
                  f"+-{row['f3_se']:.4f} ({run['seconds']:.0f} s)", flush=True)
        theory, _ = theory_on_training_set(setting, s, args.width_draw, args)
        point = {"sigma2": s, "draw": args.width_draw, "networks": rows,
                 "theory": {k: theory[k] for k in (*PREDICTIONS, *(name + "_se" for name in PREDICTIONS), "stopped_at_noise_floor")}}
        for name in ("f1", "f3"):
            fit = _fit_inverse_width([r["width"] for r in rows], [r[name] for r in rows], [r[name + "_se"] for r in rows])
            if fit:
                for key, th in (("f_inf_minus_theory_in_se", name),
                                ("f_inf_minus_theory_kernel_regression_in_se", name + "_kernel_regression")):
                    fit[key] = _versus(fit["f_inf"], fit["f_inf_se"], theory[th], theory[th + "_se"])
            point["fit_" + name] = fit
            if fit:
                print(f"  width sweep s2={s:.3f}: {name}(N' -> inf) = {fit['f_inf']:.4f}+-{fit['f_inf_se']:.4f} "
                      f"(chi2 {fit['chi2']:.1f}/{fit['dof']}), theory on the set {theory[name]:.4f}+-{theory[name + '_se']:.4f} "
                      f"(kernel regression {theory[name + '_kernel_regression']:.4f}+-{theory[name + '_kernel_regression_se']:.4f})", flush=True)
        points.append(point)
    return {"points": points, **run_settings(args)[network_key(args, "width_sweep")], "method": "same TwoLayer model (sa2, sw2, beta) at every width; Langevin from the "
            "prior; f = f_inf + A/N' by weighted least squares over the seeds' standard errors"}
