"""Rubin, Seroussi & Ringel (ICLR 2024) erf teacher-student at the paper's own scales: their Fig. 2 and transition.

Task: ``x ~ N(0, I_d)``, ``y = H1(w*.x) + eps H3(w*.x)``, ``|w*| = 1``, ``eps = -0.3``; their alpha = beta = 1 values
``N = 700, n = 3000, d = 150, sigma_w^2 = 0.5, sigma_a^2 = 8/N``, scaled by their eq. 11 to alpha = beta = s
(``mft_jax.theory.reduced.rubin.paper_setting``). Map onto docs/theory.md (section 8): ``sa2 = N sigma_a^2``,
``sw2 = sigma_w^2/d``, ``beta = n/(sigma^2 N)`` (so ``beta N L`` is their likelihood), ``c = u d / 2``.

Three theories and the networks, per scale and sigma^2:

1. ``paper``: their eq. 13 + App. A.3 (``mft_jax.theory.reduced.rubin``), at d -> inf (saddle point: u_c, sigma^2_c,
   spinodal, the mixed phase) and at the scale's own d (the q-integrals by quadrature).
2. ``population``: our exact infinite-width theory at the scale's d on the population with effective data
   n/sigma^2 (``mft_jax.theory.reduced.single_index``: the (q, rho) law on a grid, (z, s) quadrature), from the GP start
   and from the feature start (``solve_branches``), both free energies.
3. ``networks``: Langevin networks (``mft_jax.train.joint``, float32, seeds vmapped), data draws x init
   seeds, from the prior and from neurons placed at ``w.w* = +-1``; the mean output over the kept samples
   projected on H1 and H3 over fresh test points; the law of ``w.w*`` over all neurons, seeds and samples.
   Step size and length: each run reports the integrated autocorrelation time of the cubic component
   (``tau_f3_records``). That time is the fast collective mode's and does not set the run length: at scale 1/8,
   sigma^2 = 0.18, 4000 steps leave f1 0.08 and f3 15% short of what 16000 steps reach, and at sigma^2 = 0.10 f3 is
   still drifting after 64000 (``--steps``; results/teacher_student_equilibration*.json; the slow variables are the
   readouts, relaxing over ~``beta sa2`` time units). ``--readout-gibbs K`` removes that mode: an exact draw of the
   readouts from their Gaussian conditional law before every K-th step (``mft_jax.train.gibbs``; the same posterior),
   kept as ``networks_gibbs`` (and ``width_sweep_gibbs``) next to the plain-Langevin ``networks``, and paired by draw
   with the training-set theory (``attach_gibbs_versus_theory``); ``f3_eighths`` (f3 over each eighth of the run)
   shows whether a run still drifts.
4. ``training_set_theory`` (``--training-set-theory``): the exact infinite-width theory (``mft_jax.theory.two_layer.solve``,
   the full ``TwoLayer`` in d dimensions, the networks' model) on each network training set itself (finite n,
   infinite N): MCMC from an importance-sampling start (``theory_on_training_set``), ``--theory-keys`` independent
   solves (their spread is the error); its mean predictor projected on H1, H3 on the networks' test points, next to
   the networks of the same draw (prior start) and the population theory; the NNGP on the same set for reference.
   With ``--no-networks`` and no checkpointed run of a draw (networks run elsewhere, e.g. on a GPU, and merged with
   ``--merge-into``), the comparison is with the scale's networks pooled over the same draws (``attach_networks``).
5. ``width_sweep`` (``--widths 88 176 352``): networks of width N' with the *same* ``TwoLayer`` model (sa2, sw2,
   beta: in the paper's units sigma_a^2 and sigma^2 scale as 1/N') on one draw (``--width-draw``) at
   ``--width-sigma2``, with a fit ``f = f_inf + A/N'`` (weighted least squares) next to the training-set theory.
6. ``population_extra`` (``--population-sigma2 0.19 0.21``): the population theory at extra sigma^2; with the scales'
   population points it feeds ``transition.exact_population_d_to_inf`` (``large_d_limit``: per sigma^2 the line
   f3 = f3_inf + B/d over the scales with d >= 100, and where f3_inf vanishes).
7. ``sample_check`` (``--sample-check 1500``): the training-set solve on a fresh sample of that many points at the same
   model; it must approach the population theory (a check of the MCMC route where the exact reduced solver applies).

Run: ``python -m experiments.teacher_student [--quick] [--scales 1/8 1/2] [--sigma2 0.15 0.2] [--seeds 4]
[--draws 2] [--steps 20000] [--no-networks] [--no-population] [--training-set-theory] [--widths 88 176 352
--width-sigma2 0.10 0.18] [--sample-check 1500] [--readout-gibbs 10] [--population-sigma2 0.19 0.21]``. Network runs are checkpointed under ``runs/teacher_student``
(one JSON per (scale, sigma^2, start, draw)); a rerun skips finished ones.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from fractions import Fraction
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from experiments._common import results_file, run_name
from mft_jax.analysis.stats import autocorrelation_time, fit_inverse_size, line_in_inverse_size, mean_se
from mft_jax.theory.reduced import rubin
from mft_jax.theory.background import Background, predict
from mft_jax.theory.samplers.importance import importance_sampler
from mft_jax.theory.samplers.mcmc import mcmc_sampler
from mft_jax.theory.gp import gp_predict
from mft_jax.io import pyplot, run_metadata, save_figure, write_json
from mft_jax.model import TwoLayer
from mft_jax.theory.reduced.single_index import SingleIndex, hermite_components, reduce_weights, reduced_grid_sampler, reduced_population
from mft_jax.theory.two_layer import solve, solve_branches
from mft_jax.tasks import teacher_student
from mft_jax.train.joint import langevin_optimizer, train
from mft_jax.train.network import predict as network_predict

NAME = "teacher_student"
PAPER = {"u_c": 30.2, "sigma2_c": 0.18}
Q_BINS = np.linspace(-1.6, 1.6, 81)
FULL = {"scales": ["1/8", "1/2", "1", "2"], "sigma2": [0.10, 0.15, 0.17, 0.18, 0.19, 0.20, 0.25, 0.30],
        "seeds": 4, "draws": 4, "steps": 40000, "step_size": 0.01, "test_points": 3000,
        "theory_samples": 100_000, "theory_keys": 2, "width_sigma2": [0.10, 0.18],
        "theory_mcmc": {"chains": 1024, "steps": 60, "warmup": 30, "damping": 0.05, "max_iter": 60, "refresh": 4}}
QUICK = {"scales": ["1/8"], "sigma2": [0.12, 0.18, 0.30], "seeds": 2, "draws": 1, "steps": 600, "step_size": 0.01,
         "test_points": 3000, "theory_samples": 20_000, "theory_keys": 2, "width_sigma2": [0.18],
         "theory_mcmc": {"chains": 256, "steps": 20, "warmup": 10, "damping": 0.05, "max_iter": 25, "refresh": 2}}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="scale 1/8, three sigma^2, short network runs (< 5 min on 2 cores)")
    p.add_argument("--scales", nargs="+", default=None, help="alpha = beta values, e.g. 1/8 1/2 1 2")
    p.add_argument("--sigma2", nargs="+", type=float, default=None, help="noise variances")
    p.add_argument("--network-scales", nargs="+", default=None, help="scales that get networks (default: --scales)")
    p.add_argument("--seeds", type=int, default=None, help="init seeds per data draw (vmapped)")
    p.add_argument("--draws", type=int, default=None, help="training-set draws")
    p.add_argument("--steps", type=int, default=None, help="Langevin steps per run")
    p.add_argument("--step-size", type=float, default=None)
    p.add_argument("--readout-gibbs", type=int, default=None, metavar="K",
                   help="networks: an exact Gibbs draw of the readouts before every K-th Langevin step (the same posterior, "
                        "no slow readout relaxation; mft_jax.train.gibbs). Default: plain Langevin")
    p.add_argument("--no-networks", action="store_true")
    p.add_argument("--population-sigma2", nargs="+", type=float, default=None, metavar="S2",
                   help="extra sigma^2 values for the exact population theory only (kept as population_extra; they refine "
                        "its d -> inf extrapolation over the scales, large_d_limit)")
    p.add_argument("--no-population", action="store_true")
    p.add_argument("--runs", default=str(ROOT / "runs" / NAME), help="checkpoint directory")
    p.add_argument("--results", default=str(ROOT / "results"), help="results directory (the run writes teacher_student/RUN.json in it)")
    p.add_argument("--run", default=None, help="the run's name (default main, or quick with --quick)")
    p.add_argument("--figures", default=str(ROOT / "figures"))
    p.add_argument("--training-set-theory", action="store_true",
                   help="exact infinite-width theory on each network training set (finite n), next to its networks")
    p.add_argument("--theory-samples", type=int, default=None,
                   help="importance draws from the prior for the start of the training-set theory (the first sigma^2 of a draw)")
    p.add_argument("--theory-keys", type=int, default=None, help="independent MCMC solves per point (their spread: the error)")
    p.add_argument("--theory-chains", type=int, default=None, help="MCMC chains of the training-set theory (default 1024; quick 256)")
    p.add_argument("--theory-damping", type=float, default=None, help="damping of the MCMC fixed-point iteration (default 0.05)")
    p.add_argument("--widths", nargs="+", type=int, default=None,
                   help="width sweep: network widths N' with the same TwoLayer model (sa2, sw2, beta), e.g. 88 176 352")
    p.add_argument("--width-sigma2", nargs="+", type=float, default=None, help="sigma^2 values of the width sweep")
    p.add_argument("--width-draw", type=int, default=0, help="training-set draw of the width sweep")
    p.add_argument("--sample-check", type=int, default=None, metavar="POINTS",
                   help="the training-set solve on a fresh sample of POINTS points at the same model (checks the MCMC route against the population theory)")
    p.add_argument("--sample-check-sigma2", nargs="+", type=float, default=[0.18])
    p.add_argument("--merge-into", default=None, metavar="JSON",
                   help="update this results file's scales with what this run computed, point by point in sigma^2 (keeping the "
                        "rest; refused if the file's points of that kind come from a run with other settings), and write it back")
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    for key in ("scales", "sigma2", "seeds", "draws", "steps", "step_size"):
        if getattr(args, key) is None:
            setattr(args, key, base[key])
    args.test_points = base["test_points"]
    args.theory_samples = args.theory_samples or base["theory_samples"]
    args.theory_keys = args.theory_keys or base["theory_keys"]
    args.theory_mcmc = dict(base["theory_mcmc"])
    for key in ("chains", "damping"):
        if getattr(args, "theory_" + key) is not None:
            args.theory_mcmc[key] = getattr(args, "theory_" + key)
    args.width_sigma2 = args.width_sigma2 or base["width_sigma2"]
    args.network_scales = args.network_scales or args.scales
    return args


def theory_model(setting: rubin.PaperSetting, sigma2: float, reduced=True):
    """Their hyperparameters in our conventions (module docstring)."""
    kw = dict(activation="erf", sa2=setting.N * setting.sigma_a2, sw2=setting.sigma_w2 / setting.d,
              beta=setting.n / (sigma2 * setting.N))
    return SingleIndex(**kw, dim=setting.d, angle_nodes=12) if reduced else TwoLayer(**kw)


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


# ------------------------------------------------------------------------------------------ networks
def matmul_peak(n=2048, repeats=5) -> float:
    """Measured float32 matmul rate (FLOP/s) of this machine, best of ``repeats``."""
    a = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(repeats))
    return 2 * n**3 / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def network_run(setting, sigma2, start, draw, args, x_test, width=None, cached_only=False) -> dict | None:
    """One data draw, ``args.seeds`` vmapped init seeds: time-averaged f1, f3 per seed after burn-in, histogram of q.
    ``width``: the number of neurons N' (default the setting's N), with the setting's ``TwoLayer`` model unchanged.
    ``cached_only``: return the checkpointed run's record if there is one, else None (train nothing)."""
    N = setting.N if width is None else int(width)
    tag = ("" if N == setting.N else f"_N{N}") + ("" if args.readout_gibbs is None else f"_g{args.readout_gibbs}")
    path = Path(args.runs) / f"s{setting.d}_{sigma2:.4f}_{start}_{draw}_{args.seeds}x{args.steps}{tag}.json"
    if path.exists():
        return json.loads(path.read_text())
    if cached_only:
        return None
    d = setting.d
    model = theory_model(setting, sigma2, reduced=False)
    task = teacher_student(d, setting.eps)
    data = task.training_set(jax.random.key(1000 + draw), setting.n)
    projector = hermite_projector(x_test[:, 0])

    def observe(params):
        f1, f3, _ = projector @ network_predict(params, model, x_test)[:, 0]
        return {"f1": f1, "f3": f3, "q": params["w"][:, 0]}

    init = None
    key = jax.random.key(draw * 7919 + (0 if start == "prior" else 1))
    if start == "teacher":
        k1, k2, k3 = jax.random.split(key, 3)
        w = math.sqrt(model.sw2) * jax.random.normal(k1, (args.seeds, N, d))
        sign = jnp.where(jax.random.bernoulli(k2, 0.5, (args.seeds, N)), 1.0, -1.0)
        w = w.at[..., 0].set(sign)
        a = math.sqrt(model.sa2) * jax.random.normal(k3, (args.seeds, N, 1))
        init = {"a": a, "w": w}
    chunk = max(args.steps // 100, 1)
    t0 = time.time()
    result = train(key, model, N, data, langevin_optimizer(model, args.step_size), args.steps, num_seeds=args.seeds,
                   chunk=chunk, observables=observe, progress=False, init_params=init,
                   readout_gibbs_every=args.readout_gibbs,
                   out_dir=str(path.with_suffix("")), resume=(path.with_suffix("") / "checkpoint.npz").exists(), checkpoint_every=max(args.steps // 5, chunk))
    seconds = time.time() - t0
    hist = result.history
    kept = hist["step"] > args.steps // 2
    f1 = np.asarray(hist["f1"])[kept]  # (records, seeds)
    f3 = np.asarray(hist["f3"])[kept]
    q = np.asarray(hist["q"])[kept]  # (records, seeds, N)
    out = {"sigma2": sigma2, "start": start, "draw": draw, "width": N, "seeds": args.seeds, "steps": args.steps, "chunk": chunk,
           "step_size": args.step_size, "readout_gibbs_every": args.readout_gibbs, "f1_seeds": f1.mean(axis=0).tolist(), "f3_seeds": f3.mean(axis=0).tolist(),
           "tau_f3_records": autocorrelation_time(np.asarray(hist["f3"])[kept]),
           "f3_trace": np.asarray(hist["f3"]).mean(axis=1).tolist(), "trace_step": np.asarray(hist["step"]).tolist(),
           "q_hist": np.histogram(np.abs(q).reshape(-1), np.abs(Q_BINS[Q_BINS >= 0]))[0].tolist(),
           "q_counts": np.histogram(q.reshape(-1), Q_BINS)[0].tolist(), "seconds": seconds,
           "steps_per_second": args.steps / seconds}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, out)
    return out


def hermite_projector(z) -> jax.Array:
    """Least-squares coefficients of ``(H1, H3, H5)(z)`` on the test points: (3, P). A plain ``mean(f H3)/6``
    leaks ``f1 mean(z H3)/6`` (about 0.014 at 3000 points) from the large linear part into the cubic one."""
    z = np.asarray(z, dtype=float)
    basis = np.stack([z, z**3 - 3 * z, z**5 - 10 * z**3 + 15 * z], axis=1)
    return jnp.asarray(np.linalg.pinv(basis), jnp.float32)


def step_flops(setting, seeds) -> float:
    """FLOPs of one Langevin step of ``seeds`` networks: forward ``w x^T`` and its two backward products (6 N d n)."""
    return 6.0 * setting.N * setting.d * setting.n * seeds


def networks(setting, sigma2s, args) -> dict:
    x_test = jax.random.normal(jax.random.key(424242), (args.test_points, setting.d))
    points = []
    for s in sigma2s:
        per_start = {}
        for start in ("prior", "teacher"):
            runs = [network_run(setting, s, start, draw, args, x_test) for draw in range(args.draws)]
            pooled = {name: np.concatenate([r[name] for r in runs]) for name in ("f1_seeds", "f3_seeds")}
            per_draw = [{"draw": r["draw"], "seeds": len(r["f3_seeds"]), **_seed_stats(r)} for r in runs]
            per_start[start] = {**_seed_stats(pooled), "runs": len(pooled["f3_seeds"]), "per_draw": per_draw, "f3_eighths": _eighths([r["f3_trace"] for r in runs]), "tau_f3_records": float(np.nanmean([r["tau_f3_records"] for r in runs])),
                                "q_counts": np.sum([r["q_counts"] for r in runs], axis=0).tolist(),
                                "steps_per_second": float(np.mean([r["steps_per_second"] for r in runs]))}
        a, b = per_start["prior"], per_start["teacher"]
        gap = abs(a["f3"] - b["f3"]) / math.sqrt(a["f3_se"] ** 2 + b["f3_se"] ** 2) if a["runs"] > 1 else float("nan")
        points.append({"sigma2": s, "u": float(setting.u(s)), **per_start, "starts_differ_in_se": gap,
                       "hysteresis": bool(gap > 3)})
        print(f"  networks s2={s:.3f}: f3 prior {a['f3']:+.4f}+-{a['f3_se']:.4f}, teacher {b['f3']:+.4f}+-{b['f3_se']:.4f} "
              f"({gap:.1f} se apart); tau(f3) ~ {a['tau_f3_records']:.1f} records; {a['steps_per_second']:.0f} steps/s", flush=True)
    return {"points": points, "transition": network_transition(setting, points), **run_settings(args)[network_key(args)]}


def network_transition(setting, points, draws=2000) -> dict:
    """sigma^2 where the prior-start f3 crosses the midpoint of its extremes (linear interpolation); error by
    resampling each point within its standard error."""
    pts = sorted(points, key=lambda p: p["sigma2"])
    s2 = np.array([p["sigma2"] for p in pts])
    f3 = np.array([p["prior"]["f3"] for p in pts])
    se = np.nan_to_num(np.array([p["prior"]["f3_se"] for p in pts]))
    if len(s2) < 2:
        return {"sigma2_c": float("nan"), "sigma2_c_err": float("nan")}

    def crossing(values):
        mid = 0.5 * (values.min() + values.max())
        for i in range(len(values) - 1):
            if (values[i] - mid) * (values[i + 1] - mid) <= 0 and values[i] != values[i + 1]:
                return s2[i] + (mid - values[i]) * (s2[i + 1] - s2[i]) / (values[i + 1] - values[i])
        return float("nan")

    rng = np.random.default_rng(0)
    samples = np.array([crossing(f3 + se * rng.standard_normal(len(f3))) for _ in range(draws)])
    value = crossing(f3)
    return {"sigma2_c": float(value), "sigma2_c_err": float(np.nanstd(samples)), "u_c": float(setting.u(value)),
            "method": "midpoint crossing of the prior-start cubic component; error: resampling within standard errors"}


# ------------------------------------------------------------------------------------------ finite n vs finite N
def _eighths(traces) -> list[float]:
    """Means of the recorded f3 (averaged over runs) over the eight consecutive eighths of the run: flat means relaxed."""
    trace = np.mean([np.asarray(t, float) for t in traces], axis=0)
    return [float(part.mean()) for part in np.array_split(trace, 8)]


def _mean_se(values) -> tuple[float, float]:
    return mean_se(values, finite_only=True)


def _seed_stats(run) -> dict:
    """``{f1, f1_se, f3, f3_se}``: mean and s.e. over the seeds of ``run["f1_seeds"]``, ``run["f3_seeds"]``."""
    out = {}
    for name in ("f1", "f3"):
        out[name], out[name + "_se"] = _mean_se(run[name + "_seeds"])
    return out


# The theory's two predictions on the networks' test points (``theory_on_training_set``): the law's own at the iterate
# (``f1``, ``f3``) and kernel regression with the law's kernel (``*_kernel_regression``; absent from older runs). Each is
# compared with the networks' f1, f3 (theory name -> the networks' component it predicts).
PREDICTIONS = {"f1": "f1", "f3": "f3", "f1_kernel_regression": "f1", "f3_kernel_regression": "f3"}


def _paired_difference(pairs, name, theory_name=None) -> tuple[float, float]:
    """Networks' ``name`` minus the theory's ``theory_name`` (default: the same) on the same training set, averaged over
    the (networks, theory) pairs of draws; error: the networks' s.e. over seeds and the theory's sampler error (none
    from a single solve), in quadrature."""
    th_name = name if theory_name is None else theory_name
    gap = float(np.mean([net[name] - th[th_name] for net, th in pairs]))
    se = math.sqrt(sum(net[name + "_se"] ** 2 + np.nan_to_num(th[th_name + "_se"]) ** 2 for net, th in pairs)) / len(pairs)
    return gap, se


def network_test_inputs(setting, args) -> jax.Array:
    """The networks' test points (``networks``): the Hermite components of every predictor are taken on these."""
    return jax.random.normal(jax.random.key(424242), (args.test_points, setting.d))


_THEORY_CACHE: dict = {}


def _projected(projector, f) -> tuple[float, float]:
    f1, f3, _ = (float(v) for v in np.asarray(projector @ f[:, 0]))
    return f1, f3


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


def _versus(a, a_se, b, b_se) -> float:
    """``(a - b)`` in combined standard errors (nan-safe: a missing error counts as 0)."""
    se = math.sqrt(np.nan_to_num(a_se) ** 2 + np.nan_to_num(b_se) ** 2)
    return float((a - b) / se) if se > 0 else float("nan")


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


def attach_population(entry) -> None:
    """Add the population theory's f1, f3 (same sigma^2) and the finite-n shift to each training-set-theory point."""
    if "population" not in entry:
        return
    population = {round(p["sigma2"], 6): p for p in entry["population"]["points"]}
    for point in entry.get("sample_check", {}).get("points", []):
        pop = population.get(round(point["sigma2"], 6))
        if pop is not None:
            point["population_f1"], point["population_f3"] = pop["f1"], pop["f3"]
    if "training_set_theory" not in entry:
        return
    for point in entry["training_set_theory"]["points"]:
        pop = population.get(round(point["sigma2"], 6))
        if pop is None:
            continue
        point["population_f1"], point["population_f3"] = pop["f1"], pop["f3"]
        point["theory_minus_population_f1"] = point["f1"] - pop["f1"]
        point["theory_minus_population_f3"] = point["f3"] - pop["f3"]
        if "networks_f1" in point:
            point["networks_minus_population_f1"] = point["networks_f1"] - pop["f1"]
            point["networks_minus_population_f3"] = point["networks_f3"] - pop["f3"]
            for name in ("f1", "f3"):
                total = point["networks_" + name] - pop[name]
                point["finite_n_share_" + name] = float((point[name] - pop[name]) / total) if total else float("nan")


def attach_networks(entry) -> None:
    """Where a training-set-theory point has no networks of its own draws (``--no-networks`` without cached runs, e.g.
    networks run on another machine and merged), compare it with the scale's networks (prior start) pooled over the same
    draws: ``networks_minus_theory_*`` = pooled network mean - draw-averaged theory, error from the networks' s.e. over
    runs (draw-to-draw spread included) and the theory's sampler error."""
    if "training_set_theory" not in entry or "networks" not in entry:
        return
    nets = {round(p["sigma2"], 6): p["prior"] for p in entry["networks"]["points"]}
    for point in entry["training_set_theory"]["points"]:
        net = nets.get(round(point["sigma2"], 6))
        if net is None or any("networks" in r for r in point["draws"]):
            continue
        point["networks_source"] = "the scale's networks (prior start) pooled over the same draws"
        for name, component in PREDICTIONS.items():
            if name not in point:  # a run before the kernel-regression record
                continue
            point["networks_" + component], point["networks_" + component + "_se"] = net[component], net[component + "_se"]
            gap = net[component] - point[name]
            se = math.sqrt(net[component + "_se"] ** 2 + np.nan_to_num(point[name + "_sampler_se"]) ** 2)
            point["networks_minus_theory_" + name], point["networks_minus_theory_" + name + "_se"] = gap, se


def network_key(args, base="networks") -> str:
    """Where a scale keeps its networks (``base``: ``networks`` or ``width_sweep``): as ``base`` (plain Langevin) or
    ``base + "_gibbs"`` (Langevin with exact Gibbs draws of the readouts, ``--readout-gibbs``): the same posterior by
    two samplers, kept side by side."""
    return base if args.readout_gibbs is None else base + "_gibbs"


def attach_gibbs_versus_theory(entry) -> None:
    """``networks_gibbs.versus_training_set_theory``: per sigma^2 and start, networks minus the theory on the same
    training sets, paired by draw (over the draws both have), error from the networks' s.e. over seeds and the
    theory's sampler error."""
    if "networks_gibbs" not in entry or "training_set_theory" not in entry:
        return
    theory = {round(p["sigma2"], 6): {r["draw"]: r for r in p["draws"]} for p in entry["training_set_theory"]["points"]}
    rows = []
    for point in entry["networks_gibbs"]["points"]:
        by_draw = theory.get(round(point["sigma2"], 6))
        if by_draw is None:
            continue
        row = {"sigma2": point["sigma2"]}
        for start in ("prior", "teacher"):
            pairs = [(net, by_draw[net["draw"]]) for net in point[start].get("per_draw", []) if net["draw"] in by_draw]
            if not pairs:
                continue
            row[start] = {"draws": [net["draw"] for net, _ in pairs]}
            for name, component in PREDICTIONS.items():
                if not all(name in th for _, th in pairs):  # a theory run before the kernel-regression record
                    continue
                gap, se = _paired_difference(pairs, component, name)
                row[start].update({"networks_" + component: float(np.mean([net[component] for net, _ in pairs])),
                                   "theory_" + name: float(np.mean([th[name] for _, th in pairs])),
                                   "minus_theory_" + name: gap, "minus_theory_" + name + "_se": se,
                                   "minus_theory_" + name + "_in_se": _versus(gap, se, 0.0, 0.0)})
        rows.append(row)
    entry["networks_gibbs"]["versus_training_set_theory"] = rows


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


# ------------------------------------------------------------------------------------------ merging runs
SETTING_NAMES = ("sampler", "steps", "step_size", "seeds", "draws", "widths", "draw", "num_points")  # run_settings' fields


def run_settings(args) -> dict:
    """The run-level settings of each per-scale entry this run writes (written into the entry): the points of two
    runs can be merged only where these agree."""
    sampler = "Langevin" if args.readout_gibbs is None else f"Langevin with an exact Gibbs draw of the readouts every {args.readout_gibbs} steps"
    langevin = {"steps": args.steps, "step_size": args.step_size, "seeds": args.seeds}
    return {network_key(args): {"sampler": sampler, **langevin, "draws": args.draws},
            "training_set_theory": {"sampler": {"start": {"name": "importance", "num_samples": args.theory_samples},
                                                "mcmc": args.theory_mcmc, "keys": args.theory_keys}},
            "sample_check": {"num_points": args.sample_check},
            network_key(args, "width_sweep"): {"widths": list(args.widths or []), "draw": args.width_draw, **langevin}}


def _settings_differ(previous: dict, settings: dict) -> list[str]:
    """The run-level settings in which a stored entry and a new run's differ, in words (JSON-normalised)."""
    settings = json.loads(json.dumps(settings))
    return [f"{k} {previous[k]!r} -> {v!r}" for k, v in settings.items() if k in previous and previous[k] != v]


def _mixing_refused(where: str, differ: list[str]) -> SystemExit:
    """The refusal of a merge that would mix points of runs with other settings, naming them."""
    return SystemExit(f"--merge-into: {where} holds points of a run with other settings ({'; '.join(differ)}); points of "
                      "different runs are not mixed: write this run to its own file (--results DIR)")


def settings_entries(args, name) -> list:
    """The entries of scale ``name`` that carry run settings (``run_settings``) and that this run writes: the networks
    (where the scale gets them), the training-set theory, the sample check, the width sweep. One predicate for what
    ``main`` computes and what ``check_merge_target`` must not mix."""
    return ([network_key(args)] * (not args.no_networks and name in args.network_scales)
            + ["training_set_theory"] * bool(args.training_set_theory) + ["sample_check"] * bool(args.sample_check)
            + [network_key(args, "width_sweep")] * bool(args.widths))


def check_merge_target(path, args) -> None:
    """``--merge-into``: refuse before computing anything if the file is missing or holds, for a scale and entry this run
    writes, points of a run with other settings (the merge would mix them)."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"--merge-into: {str(path)!r} does not exist (run without --merge-into to create a results file)")
    try:
        stored = json.loads(path.read_text())["scales"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise SystemExit(f"--merge-into: {str(path)!r} is not a teacher_student results file ({error!r})") from None
    settings_of = run_settings(args)
    for name in args.scales:
        for key in settings_entries(args, name):
            settings = settings_of[key]
            previous = stored.get(name, {}).get(key)
            differ = _settings_differ(previous, settings) if isinstance(previous, dict) else []
            if differ:
                raise _mixing_refused(f"scale {name}, entry {key!r} of {str(path)!r}", differ)


def _merge_points(old: list, new: list) -> list:
    """Two runs' per-sigma^2 points: the new run's replace the old run's at equal sigma^2, the rest are kept; sorted."""
    by_sigma2 = {round(p["sigma2"], 6): p for p in old}
    by_sigma2.update({round(p["sigma2"], 6): p for p in new})
    return [by_sigma2[k] for k in sorted(by_sigma2)]


def merge_scale(old: dict, new: dict, setting) -> dict:
    """One scale's entry of a results file updated with a new run's (``--merge-into``), point by point in sigma^2:
    a run at a few sigma^2 replaces those points and keeps the others (their transitions recomputed from the merged
    points). Points of runs with different settings (steps, step size, seeds, draws, sampler, widths) are not mixed:
    that is refused, naming the setting (write such a run to its own file with ``--results``)."""
    out = dict(old)
    for key, value in new.items():
        previous = old.get(key)
        if key == "paper_equations" and isinstance(previous, dict):
            limit = {**value["limit"], "curve": _merge_points(previous["limit"]["curve"], value["limit"]["curve"])}
            out[key] = {"limit": limit, "finite_d": _merge_points(previous["finite_d"], value["finite_d"])}
            continue
        if not (isinstance(value, dict) and "points" in value and isinstance(previous, dict) and "points" in previous):
            out[key] = value
            continue
        differ = _settings_differ(previous, {k: value[k] for k in SETTING_NAMES if k in value})
        if differ:  # check_merge_target refuses this before the run; here for direct callers
            raise _mixing_refused(f"scale entry {key!r}", differ)
        merged = {**previous, **value, "points": _merge_points(previous["points"], value["points"])}
        if "transition" in value:
            transition = population_transition if key.startswith("population") else network_transition
            merged["transition"] = transition(setting, merged["points"])
        out[key] = merged
    return out


# ------------------------------------------------------------------------------------------ main
def main(argv=None) -> dict:
    args = parse(argv)
    if args.merge_into:
        check_merge_target(args.merge_into, args)
    t_start = time.time()
    results = {"meta": {**run_metadata({k: v for k, v in vars(args).items()}), "config": vars(args)},
               "run": "quick" if args.quick else ("full" if (args.scales == FULL["scales"] and args.seeds >= FULL["seeds"]
                 and args.draws >= FULL["draws"] and args.steps >= FULL["steps"]) else
                 f"partial: scales {args.scales}, {args.draws} draws x {args.seeds} seeds x {args.steps} steps"), "paper": PAPER, "scales": {}}
    peak = matmul_peak()
    results["machine"] = {"float32_matmul_peak_flops": peak, "device": str(jax.devices()[0])}
    print(f"float32 matmul peak (2048^2): {peak / 1e9:.1f} GFLOP/s", flush=True)
    for name in args.scales:
        setting = rubin.paper_setting(float(Fraction(name)))
        print(f"scale {name}: {setting}", flush=True)
        entry = {"setting": setting._asdict(), "paper_equations": paper_theory(setting, args.sigma2)}
        if not args.no_population:
            entry["population"] = population_theory(setting, args.sigma2)
        if args.population_sigma2:
            entry["population_extra"] = population_theory(setting, args.population_sigma2)
        written = settings_entries(args, name)
        if network_key(args) in written:
            key = network_key(args)
            entry[key] = networks(setting, args.sigma2, args)
            rate = np.mean([p["prior"]["steps_per_second"] for p in entry[key]["points"]])
            entry[key]["flops_per_second"] = rate * step_flops(setting, args.seeds)
            entry[key]["fraction_of_peak"] = entry[key]["flops_per_second"] / peak
            print(f"  Langevin: {entry[key]['flops_per_second'] / 1e9:.2f} GFLOP/s = "
                  f"{entry[key]['fraction_of_peak']:.2f} of the measured matmul peak (Langevin steps only)", flush=True)
        if "training_set_theory" in written:
            entry["training_set_theory"] = training_set_theory(setting, args.sigma2, args)
        if "sample_check" in written:
            entry["sample_check"] = sample_check(setting, args)
        if network_key(args, "width_sweep") in written:
            entry[network_key(args, "width_sweep")] = width_sweep(setting, args)
        results["scales"][name] = entry
    results["seconds"] = time.time() - t_start
    target = results_file(args.results, NAME, run_name(NAME, args.run, args.quick))
    if args.merge_into:
        target = Path(args.merge_into)
        merged = json.loads(target.read_text())
        for name, entry in results["scales"].items():
            merged["scales"][name] = merge_scale(merged["scales"].get(name, {}), entry, rubin.paper_setting(float(Fraction(name))))
        parts = ["the paper's equations"] + [f"the {k}" for k in ("population", "networks") if not getattr(args, "no_" + k)]
        parts = [f"the {network_key(args)}" if part == "the networks" else part for part in parts]
        parts += ["the population theory at extra sigma^2"] * bool(args.population_sigma2)
        parts += (["the training-set theory"] * bool(args.training_set_theory) + ["the width sweep"] * bool(args.widths)
                  + [f"the {args.sample_check}-point sample check"] * bool(args.sample_check))
        merged["run"] += f"; merged in: scales {', '.join(results['scales'])}: {', '.join(parts)} (--merge-into)"
        merged.setdefault("merged_runs", []).append({"meta": results["meta"], "machine": results["machine"], "seconds": results["seconds"]})
        results = merged
    for entry in results["scales"].values():
        attach_networks(entry)
        attach_population(entry)
        attach_gibbs_versus_theory(entry)
    results["transition"] = transition_summary(results)
    write_json(target, results)
    print_table(results)
    make_figures(results, args.figures)
    return results


LARGE_D_MIN = 100  # scales used by large_d_limit: d >= 100 (1/2, 1, 2); at d = 53 f3 is not yet linear in 1/d


def large_d_limit(results, tol=1e-3) -> dict:
    """The exact population theory at d -> inf: per sigma^2 computed at every scale with ``d >= LARGE_D_MIN``, the
    least-squares line ``f3 = f3_inf + B / d`` (and its largest residual). Where ``f3_inf`` vanishes (``|f3_inf| < tol``)
    the cubic component is an O(1/d) effect that disappears with the scale: the GP side of a transition; the
    transition lies between the last sigma^2 with ``f3_inf < -tol`` and the first with ``|f3_inf| < tol``."""
    tables = {}
    for entry in results["scales"].values():
        if entry["setting"]["d"] < LARGE_D_MIN:
            continue
        points = entry.get("population", {}).get("points", []) + entry.get("population_extra", {}).get("points", [])
        if points:
            tables[entry["setting"]["d"]] = {round(p["sigma2"], 6): p["f3"] for p in points}
    if len(tables) < 3:
        return {}
    dims = sorted(tables)
    common = sorted(set.intersection(*(set(t) for t in tables.values())))
    rows = []
    for s in common:
        f3 = np.array([tables[d][s] for d in dims])
        line = line_in_inverse_size(dims, f3)
        rows.append({"sigma2": s, "f3_inf": line["limit"], "slope": line["slope"], "max_residual": line["max_residual"],
                     "f3_by_d": f3.tolist()})
    learned = [r["sigma2"] for r in rows if r["f3_inf"] < -tol]
    vanished = [r["sigma2"] for r in rows if abs(r["f3_inf"]) < tol and (not learned or r["sigma2"] > max(learned))]
    bracket = [max(learned), min(vanished)] if learned and vanished else None
    u = rubin.paper_setting(1.0).u
    return {"dims": dims, "points": rows, "tol": tol, "sigma2_c_bracket": bracket,
            "u_c_bracket": None if bracket is None else [float(u(bracket[1])), float(u(bracket[0]))],
            "method": "exact population theory at every scale with d >= 100; per sigma^2 the line f3 = f3_inf + B/d "
                      "by least squares; the transition lies between the last sigma^2 with f3_inf < -tol and the "
                      "first with |f3_inf| < tol"}


def transition_summary(results) -> dict:
    scales = results["scales"]
    first = next(iter(scales.values()))["paper_equations"]["limit"]
    out = {"paper": PAPER, "paper_equations": {"u_c": first["u_c"], "sigma2_c": first["sigma2_c"],
                                               "spinodal_sigma2": first["spinodal_sigma2"]},
           "exact_population": {}, "networks": {}, "networks_gibbs": {}, "run": results["run"]}
    for name, entry in scales.items():
        if "population" in entry:
            t = entry["population"]["transition"]
            out["exact_population"][name] = {"sigma2_c": t["sigma2_c"], "u_c": t["u_c"], "kind": t["kind"]}
        for key in ("networks", "networks_gibbs"):
            if key in entry:
                t = entry[key]["transition"]
                out[key][name] = {"sigma2_c": t["sigma2_c"], "sigma2_c_err": t["sigma2_c_err"]}
    out["exact_population_d_to_inf"] = large_d_limit(results)
    return out


def print_table(results) -> None:
    t = results["transition"]
    print(f"\ntransition ({results['run']} run): paper sigma2_c = {PAPER['sigma2_c']}, u_c = {PAPER['u_c']}")
    print(f"  paper's equations (d -> inf): sigma2_c = {t['paper_equations']['sigma2_c']:.4f}, u_c = {t['paper_equations']['u_c']:.2f}")
    for name, v in t["exact_population"].items():
        print(f"  exact population, scale {name}: sigma2_c = {v['sigma2_c']:.4f}, u_c = {v['u_c']:.2f} ({v['kind']})")
    limit = t.get("exact_population_d_to_inf")
    if limit:
        print(f"  exact population, d -> inf (f3 = f3_inf + B/d over d = {limit['dims']}): " + ", ".join(
            f"{r['sigma2']:.3f}: {r['f3_inf']:+.4f}" for r in limit["points"]) + f"; transition in {limit['sigma2_c_bracket']}")
    for key in ("networks", "networks_gibbs"):
        for name, v in t.get(key, {}).items():
            print(f"  {key}, scale {name}: sigma2_c = {v['sigma2_c']:.4f} +- {v['sigma2_c_err']:.4f}")
    for name, entry in results["scales"].items():
        for row in entry.get("networks_gibbs", {}).get("versus_training_set_theory", []):
            print(f"  scale {name} s2={row['sigma2']:.3f}: Gibbs-readout networks - theory on the sets: " + "; ".join(
                f"{start} start " + ", ".join(f"{name} {row[start]['minus_theory_' + name]:+.4f} "
                                              f"({row[start]['minus_theory_' + name + '_in_se']:+.1f} se)"
                                              for name in PREDICTIONS if "minus_theory_" + name in row[start])
                for start in ("prior", "teacher") if start in row))
    for name, entry in results["scales"].items():
        for p in entry.get("training_set_theory", {}).get("points", []):
            line = f"  scale {name} s2={p['sigma2']:.3f}: theory on the sets f1 {p['f1']:.4f} f3 {p['f3']:+.4f}"
            if "networks_minus_theory_f3" in p:
                line += "; networks - theory " + ", ".join(
                    f"{c} {p['networks_minus_theory_' + c]:+.4f} +- {p['networks_minus_theory_' + c + '_se']:.4f} "
                    f"({_versus(p['networks_minus_theory_' + c], p['networks_minus_theory_' + c + '_se'], 0.0, 0.0):+.1f} se)"
                    for c in PREDICTIONS if "networks_minus_theory_" + c in p)
            print(line)


def make_figures(results, outdir) -> list:
    plt = pyplot()

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    centers = 0.5 * (Q_BINS[1:] + Q_BINS[:-1])
    width = Q_BINS[1] - Q_BINS[0]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, entry) in enumerate(results["scales"].items()):
        color = colors[k % len(colors)]
        s2s = [p["sigma2"] for p in entry["paper_equations"]["finite_d"]]
        pick = (int(np.argmax(s2s)), int(np.argmin(s2s)))  # (a) before (largest sigma^2), (b) after
        for ax, i in zip(axes[:2], pick):
            for point in [p for p in entry.get("population", {}).get("points", []) if abs(p["sigma2"] - s2s[i]) < 1e-9]:
                p = np.asarray(point[point["stable"]]["p_q"])
                ax.plot(centers, -np.log(np.maximum(p / width, 1e-300)), color=color, label=f"exact population, s = {name}")
            p = np.asarray(entry["paper_equations"]["finite_d"][i]["p_q"])
            ax.plot(centers, -np.log(np.maximum(p / width, 1e-300)), "--", color=color, label=f"paper eqs, d = {entry['setting']['d']}")
            for key, marker, label in (("networks", "x", "networks"), ("networks_gibbs", "^", "networks, Gibbs readouts")):
                match = [p for p in entry.get(key, {}).get("points", []) if abs(p["sigma2"] - s2s[i]) < 1e-9]
                if match:
                    counts = np.asarray(match[0]["prior"]["q_counts"], float)
                    dens = counts / max(counts.sum(), 1) / width
                    ok = dens > 0
                    ax.plot(centers[ok], -np.log(dens[ok]), marker, color=color, mfc="none", label=f"{label}, s = {name}")
            ax.set_title(f"{'(a) before' if i == pick[0] else '(b) after'}: sigma^2 = {s2s[i]:.2f}")
        lim = entry["paper_equations"]["limit"]["curve"]
        if k == 0:
            axes[2].plot([c["sigma2"] for c in lim], [c["f3"] for c in lim], "k-", label="paper eqs, d -> inf")
        axes[2].plot(s2s, [p["f3"] for p in entry["paper_equations"]["finite_d"]], "--", color=color, label=f"paper eqs, s = {name}")
        if "population" in entry:
            pts = entry["population"]["points"]
            axes[2].plot([p["sigma2"] for p in pts], [p["gp"]["f3"] for p in pts], "-", color=color, label=f"exact population (GP start), s = {name}")
            axes[2].plot([p["sigma2"] for p in pts], [p["feature"]["f3"] for p in pts], ":", color=color)
        for key, markers, label in (("networks", ("o", "s"), "networks"), ("networks_gibbs", ("^", "^"), "networks, Gibbs readouts")):
            pts = entry.get(key, {}).get("points", [])
            if not pts:
                continue
            for start, marker in zip(("prior", "teacher"), markers):
                axes[2].errorbar([p["sigma2"] for p in pts], [p[start]["f3"] for p in pts], yerr=[p[start]["f3_se"] for p in pts],
                                 fmt=marker, color=color, mfc="none" if start == "teacher" else color,
                                 label=f"{label} ({start} start), s = {name}")
    for ax in axes[:2]:
        ax.set_xlabel("q = w.w*")
        ax.set_ylabel("-log p(q)")
        ax.set_ylim(-3, 40)
        ax.legend(fontsize=6)
    limit = results.get("transition", {}).get("exact_population_d_to_inf")
    if limit:
        axes[2].plot([r["sigma2"] for r in limit["points"]], [r["f3_inf"] for r in limit["points"]], "k:", marker=".",
                     label=f"exact population, d -> inf (fit over d = {', '.join(map(str, limit['dims']))})")
    axes[2].axvline(PAPER["sigma2_c"], color="grey", lw=0.5)
    axes[2].set_xlabel("sigma^2")
    axes[2].set_ylabel("cubic component f3 = E[f H3]/6 (teacher: eps = -0.3)")
    axes[2].set_title("(c) cubic component" + (" (quick)" if results["run"] == "quick" else " (full)" if results["run"] == "full" else " (partial run)"))
    axes[2].legend(fontsize=6)
    return [str(save_figure(fig, Path(outdir) / f"{NAME}.png"))] + finite_n_figure(results, outdir)


def finite_n_figure(results, outdir) -> list:
    """``teacher_student_finite_n.png``: f1 and f3 vs sigma^2 (population theory, theory on each training set,
    networks per draw) and the width sweep against 1/N' (fit and the theory on the same set)."""
    plt = pyplot()
    entries = [(name, e) for name, e in results["scales"].items() if "training_set_theory" in e or "width_sweep" in e]
    if not entries:
        return []
    fig, grid = plt.subplots(len(entries), 4, figsize=(19, 4.3 * len(entries)), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axes, (name, entry) in zip(grid, entries):
        for ax, comp in zip(axes[:2], ("f1", "f3")):
            if "population" in entry:
                pts = entry["population"]["points"]
                ax.plot([p["sigma2"] for p in pts], [p[comp] for p in pts], "k-", label="population theory")
            if "training_set_theory" in entry:
                pts = entry["training_set_theory"]["points"]
                s2 = [p["sigma2"] for p in pts]
                for j in range(len(pts[0]["draws"])):
                    c = colors[j % len(colors)]
                    ax.errorbar(s2, [p["draws"][j][comp] for p in pts], yerr=[np.nan_to_num(p["draws"][j][comp + "_se"]) for p in pts],
                                fmt="--", color=c, label=f"theory on training set {j} (N = inf)")
                    if all(comp + "_kernel_regression" in p["draws"][j] for p in pts):
                        ax.plot(s2, [p["draws"][j][comp + "_kernel_regression"] for p in pts], ":", color=c,
                                label=f"theory on training set {j}, kernel regression with its laws' kernels")
                    if "networks" in pts[0]["draws"][j]:
                        ax.errorbar(s2, [p["draws"][j]["networks"][comp] for p in pts],
                                    yerr=[p["draws"][j]["networks"][comp + "_se"] for p in pts], fmt="o", color=c,
                                    label=f"networks on training set {j} (N = {entry['setting']['N']})")
                for j in range(len(pts[0]["draws"])):  # Gibbs-readout networks on set j, prior start
                    rows = [(p["sigma2"], d) for p in entry.get("networks_gibbs", {}).get("points", [])
                            for d in p["prior"].get("per_draw", []) if d["draw"] == j]
                    if rows:
                        ax.errorbar([s for s, _ in rows], [d[comp] for _, d in rows], yerr=[np.nan_to_num(d[comp + "_se"]) for _, d in rows],
                                    fmt="^", color=colors[j % len(colors)], mfc="none",
                                    label=f"networks on set {j}, Gibbs readouts (N = {entry['setting']['N']})")
                if "networks_source" in pts[0]:
                    ax.errorbar(s2, [p["networks_" + comp] for p in pts], yerr=[p["networks_" + comp + "_se"] for p in pts],
                                fmt="ks", mfc="none", label=f"networks on both sets, pooled (N = {entry['setting']['N']})")
            ax.set_xlabel("sigma^2")
            ax.set_ylabel(f"{comp} (teacher: {1 if comp == 'f1' else entry['setting']['eps']})")
            ax.set_title(f"({'a' if comp == 'f1' else 'b'}) scale {name}, {comp}: theory on the sets vs networks")
            ax.legend(fontsize=6)
        if "width_sweep" in entry:
            for ax, comp in zip(axes[2:], ("f1", "f3")):
                for k, point in enumerate(entry["width_sweep"]["points"]):
                    c = colors[k % len(colors)]
                    rows = point["networks"]
                    x = [1 / r["width"] for r in rows]
                    ax.errorbar(x, [r[comp] for r in rows], yerr=[r[comp + "_se"] for r in rows], fmt="o", color=c,
                                label=f"networks, sigma^2 = {point['sigma2']:.2f}")
                    fit = point["fit_" + comp]
                    if fit:
                        xs = np.linspace(0, max(x) * 1.05, 20)
                        ax.plot(xs, fit["f_inf"] + fit["slope"] * xs, "-", color=c, lw=0.8)
                    th = point["theory"]
                    ax.errorbar([0], [th[comp]], yerr=[np.nan_to_num(th[comp + "_se"])], fmt="*", ms=12, color=c,
                                label=f"theory on the set (N = inf), sigma^2 = {point['sigma2']:.2f}")
                ax.set_xlabel("1 / N'  (same sa2, sw2, beta)")
                ax.set_ylabel(comp)
                ax.set_title(f"({'c' if comp == 'f1' else 'd'}) scale {name}, {comp} vs width, draw {entry['width_sweep']['draw']}")
                ax.legend(fontsize=6)
        else:
            for ax in axes[2:]:
                ax.axis("off")
    return [str(save_figure(fig, Path(outdir) / f"{NAME}_finite_n.png"))]


if __name__ == "__main__":
    main()
