"""Rubin, Seroussi & Ringel (ICLR 2024) erf teacher-student at the paper's own scales: their Fig. 2 and transition.

Task: ``x ~ N(0, I_d)``, ``y = H1(w*.x) + eps H3(w*.x)``, ``|w*| = 1``, ``eps = -0.3``; their alpha = beta = 1 values
``N = 700, n = 3000, d = 150, sigma_w^2 = 0.5, sigma_a^2 = 8/N``, scaled by their eq. 11 to alpha = beta = s
(``mft_jax.rubin.paper_setting``). Map onto docs/theory.md (section 8): ``sa2 = N sigma_a^2``,
``sw2 = sigma_w^2/d``, ``beta = n/(sigma^2 N)`` (so ``beta N L`` is their likelihood), ``c = u d / 2``.

Three theories and the networks, per scale and sigma^2:

1. ``paper``: their eq. 13 + App. A.3 (``mft_jax.rubin``), at d -> inf (saddle point: u_c, sigma^2_c,
   spinodal, the mixed phase) and at the scale's own d (the q-integrals by quadrature).
2. ``population``: our exact infinite-width theory at the scale's d on the population with effective data
   n/sigma^2 (``mft_jax.single_index``: the (q, rho) law on a grid, (z, s) quadrature), from the GP start
   and from the feature start (``solve_branches``), both free energies.
3. ``networks``: Langevin networks (``mft_jax.train.joint``, float32, seeds vmapped), data draws x init
   seeds, from the prior and from neurons placed at ``w.w* = +-1``; the mean output over the kept samples
   projected on H1 and H3 over fresh test points; the law of ``w.w*`` over all neurons, seeds and samples.
   Step size and length: a pilot run measures the integrated autocorrelation time of the cubic component.

Run: ``python benchmarks/teacher_student.py [--quick] [--scales 1/8 1/2] [--sigma2 0.15 0.2] [--seeds 4]
[--draws 2] [--steps 20000] [--no-networks]``. Network runs are checkpointed under ``runs/teacher_student``
(one JSON per (scale, sigma^2, start, draw)); a rerun skips finished ones.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from fractions import Fraction
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from mft_jax import rubin  # noqa: E402
from mft_jax.io import run_metadata, write_json  # noqa: E402
from mft_jax.model import TwoLayer  # noqa: E402
from mft_jax.single_index import SingleIndex, hermite_components, reduce_weights, reduced_grid_sampler, reduced_population  # noqa: E402
from mft_jax.solver import solve_branches  # noqa: E402
from mft_jax.tasks import teacher_student  # noqa: E402
from mft_jax.train.joint import langevin_optimizer, train  # noqa: E402
from mft_jax.train.network import predict as network_predict  # noqa: E402

NAME = "teacher_student"
PAPER = {"u_c": 30.2, "sigma2_c": 0.18}
Q_BINS = np.linspace(-1.6, 1.6, 81)
FULL = {"scales": ["1/8", "1/2", "1", "2"], "sigma2": [0.10, 0.15, 0.17, 0.18, 0.19, 0.20, 0.25, 0.30],
        "seeds": 4, "draws": 4, "steps": 40000, "step_size": 0.01, "test_points": 3000}
QUICK = {"scales": ["1/8"], "sigma2": [0.12, 0.18, 0.30], "seeds": 2, "draws": 1, "steps": 600, "step_size": 0.01,
         "test_points": 3000}


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
    p.add_argument("--no-networks", action="store_true")
    p.add_argument("--no-population", action="store_true")
    p.add_argument("--runs", default=str(ROOT / "runs" / NAME), help="checkpoint directory")
    p.add_argument("--results", default=str(ROOT / "results"))
    p.add_argument("--figures", default=str(ROOT / "figures"))
    p.add_argument("--merge-into", default=None, metavar="JSON",
                   help="update this results file's scales with what this run computed (keeping the rest) and write it back")
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    for key in ("scales", "sigma2", "seeds", "draws", "steps", "step_size"):
        if getattr(args, key) is None:
            setattr(args, key, base[key])
    args.test_points = base["test_points"]
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


def autocorrelation_time(series: np.ndarray) -> float:
    """Integrated autocorrelation time (in records) of a (T, S) series, averaged over seeds; Sokal's window c = 5."""
    x = series - series.mean(axis=0)
    T = x.shape[0]
    var = np.mean(x * x)
    if var == 0 or T < 4:
        return float("nan")
    rho = np.array([np.mean(x[: T - k] * x[k:]) / var for k in range(T // 2)])
    tau = 1.0
    for k in range(1, len(rho)):
        tau = 1 + 2 * rho[1 : k + 1].sum()
        if k >= 5 * tau:
            break
    return float(max(tau, 1.0))


def network_run(setting, sigma2, start, draw, args, x_test) -> dict:
    """One data draw, ``args.seeds`` vmapped init seeds: time-averaged f1, f3 per seed after burn-in, histogram of q."""
    path = Path(args.runs) / f"s{setting.d}_{sigma2:.4f}_{start}_{draw}_{args.seeds}x{args.steps}.json"
    if path.exists():
        return json.loads(path.read_text())
    d, N = setting.d, setting.N
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
                   out_dir=str(path.with_suffix("")), resume=(path.with_suffix("") / "checkpoint.npz").exists(), checkpoint_every=max(args.steps // 5, chunk))
    seconds = time.time() - t0
    hist = result.history
    kept = hist["step"] > args.steps // 2
    f1 = np.asarray(hist["f1"])[kept]  # (records, seeds)
    f3 = np.asarray(hist["f3"])[kept]
    q = np.asarray(hist["q"])[kept]  # (records, seeds, N)
    out = {"sigma2": sigma2, "start": start, "draw": draw, "seeds": args.seeds, "steps": args.steps, "chunk": chunk,
           "step_size": args.step_size, "f1_seeds": f1.mean(axis=0).tolist(), "f3_seeds": f3.mean(axis=0).tolist(),
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
            f3 = np.concatenate([r["f3_seeds"] for r in runs])
            f1 = np.concatenate([r["f1_seeds"] for r in runs])
            n = len(f3)
            per_start[start] = {"f3": float(f3.mean()), "f3_se": float(f3.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
                                "f1": float(f1.mean()), "f1_se": float(f1.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
                                "runs": n, "tau_f3_records": float(np.nanmean([r["tau_f3_records"] for r in runs])),
                                "q_counts": np.sum([r["q_counts"] for r in runs], axis=0).tolist(),
                                "steps_per_second": float(np.mean([r["steps_per_second"] for r in runs]))}
        a, b = per_start["prior"], per_start["teacher"]
        gap = abs(a["f3"] - b["f3"]) / math.sqrt(a["f3_se"] ** 2 + b["f3_se"] ** 2) if a["runs"] > 1 else float("nan")
        points.append({"sigma2": s, "u": float(setting.u(s)), **per_start, "starts_differ_in_se": gap,
                       "hysteresis": bool(gap > 3)})
        print(f"  networks s2={s:.3f}: f3 prior {a['f3']:+.4f}+-{a['f3_se']:.4f}, teacher {b['f3']:+.4f}+-{b['f3_se']:.4f} "
              f"({gap:.1f} se apart); tau(f3) ~ {a['tau_f3_records']:.1f} records; {a['steps_per_second']:.0f} steps/s", flush=True)
    return {"points": points, "transition": network_transition(setting, points)}


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


# ------------------------------------------------------------------------------------------ main
def main(argv=None) -> dict:
    args = parse(argv)
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
        if not args.no_networks and name in args.network_scales:
            entry["networks"] = networks(setting, args.sigma2, args)
            rate = np.mean([p["prior"]["steps_per_second"] for p in entry["networks"]["points"]])
            entry["networks"]["flops_per_second"] = rate * step_flops(setting, args.seeds)
            entry["networks"]["fraction_of_peak"] = entry["networks"]["flops_per_second"] / peak
            print(f"  Langevin: {entry['networks']['flops_per_second'] / 1e9:.2f} GFLOP/s = "
                  f"{entry['networks']['fraction_of_peak']:.2f} of the measured matmul peak", flush=True)
        results["scales"][name] = entry
    results["seconds"] = time.time() - t_start
    target = Path(args.results) / f"{NAME}.json"
    if args.merge_into:
        target = Path(args.merge_into)
        merged = json.loads(target.read_text())
        for name, entry in results["scales"].items():
            merged["scales"].setdefault(name, {}).update(entry)
        parts = ["the paper's equations"] + [f"the {k}" for k in ("population", "networks") if not getattr(args, "no_" + k)]
        merged["run"] += f"; merged in: scales {', '.join(results['scales'])}: {', '.join(parts)} (--merge-into)"
        merged.setdefault("merged_runs", []).append({"meta": results["meta"], "machine": results["machine"], "seconds": results["seconds"]})
        results = merged
    results["transition"] = transition_summary(results)
    write_json(target, results)
    print_table(results)
    make_figures(results, args.figures)
    return results


def transition_summary(results) -> dict:
    scales = results["scales"]
    first = next(iter(scales.values()))["paper_equations"]["limit"]
    out = {"paper": PAPER, "paper_equations": {"u_c": first["u_c"], "sigma2_c": first["sigma2_c"],
                                               "spinodal_sigma2": first["spinodal_sigma2"]},
           "exact_population": {}, "networks": {}, "run": results["run"]}
    for name, entry in scales.items():
        if "population" in entry:
            t = entry["population"]["transition"]
            out["exact_population"][name] = {"sigma2_c": t["sigma2_c"], "u_c": t["u_c"], "kind": t["kind"]}
        if "networks" in entry:
            t = entry["networks"]["transition"]
            out["networks"][name] = {"sigma2_c": t["sigma2_c"], "sigma2_c_err": t["sigma2_c_err"]}
    return out


def print_table(results) -> None:
    t = results["transition"]
    print(f"\ntransition ({results['run']} run): paper sigma2_c = {PAPER['sigma2_c']}, u_c = {PAPER['u_c']}")
    print(f"  paper's equations (d -> inf): sigma2_c = {t['paper_equations']['sigma2_c']:.4f}, u_c = {t['paper_equations']['u_c']:.2f}")
    for name, v in t["exact_population"].items():
        print(f"  exact population, scale {name}: sigma2_c = {v['sigma2_c']:.4f}, u_c = {v['u_c']:.2f} ({v['kind']})")
    for name, v in t["networks"].items():
        print(f"  networks, scale {name}: sigma2_c = {v['sigma2_c']:.4f} +- {v['sigma2_c_err']:.4f}")


def make_figures(results, outdir) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    centers = 0.5 * (Q_BINS[1:] + Q_BINS[:-1])
    width = Q_BINS[1] - Q_BINS[0]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, entry) in enumerate(results["scales"].items()):
        color = colors[k % len(colors)]
        s2s = [p["sigma2"] for p in entry["paper_equations"]["finite_d"]]
        pick = (int(np.argmax(s2s)), int(np.argmin(s2s)))  # (a) before (largest sigma^2), (b) after
        for ax, i in zip(axes[:2], pick):
            if "population" in entry:
                p = np.asarray(entry["population"]["points"][i][entry["population"]["points"][i]["stable"]]["p_q"])
                ax.plot(centers, -np.log(np.maximum(p / width, 1e-300)), color=color, label=f"exact population, s = {name}")
            p = np.asarray(entry["paper_equations"]["finite_d"][i]["p_q"])
            ax.plot(centers, -np.log(np.maximum(p / width, 1e-300)), "--", color=color, label=f"paper eqs, d = {entry['setting']['d']}")
            if "networks" in entry:
                counts = np.asarray(entry["networks"]["points"][i]["prior"]["q_counts"], float)
                dens = counts / max(counts.sum(), 1) / width
                ok = dens > 0
                ax.plot(centers[ok], -np.log(dens[ok]), "x", color=color, label=f"networks, s = {name}")
            ax.set_title(f"{'(a) before' if i == pick[0] else '(b) after'}: sigma^2 = {s2s[i]:.2f}")
        lim = entry["paper_equations"]["limit"]["curve"]
        if k == 0:
            axes[2].plot([c["sigma2"] for c in lim], [c["f3"] for c in lim], "k-", label="paper eqs, d -> inf")
        axes[2].plot(s2s, [p["f3"] for p in entry["paper_equations"]["finite_d"]], "--", color=color, label=f"paper eqs, s = {name}")
        if "population" in entry:
            pts = entry["population"]["points"]
            axes[2].plot([p["sigma2"] for p in pts], [p["gp"]["f3"] for p in pts], "-", color=color, label=f"exact population (GP start), s = {name}")
            axes[2].plot([p["sigma2"] for p in pts], [p["feature"]["f3"] for p in pts], ":", color=color)
        if "networks" in entry:
            pts = entry["networks"]["points"]
            for start, marker in (("prior", "o"), ("teacher", "s")):
                axes[2].errorbar([p["sigma2"] for p in pts], [p[start]["f3"] for p in pts], yerr=[p[start]["f3_se"] for p in pts],
                                 fmt=marker, color=color, mfc="none" if start == "teacher" else color,
                                 label=f"networks ({start} start), s = {name}")
    for ax in axes[:2]:
        ax.set_xlabel("q = w.w*")
        ax.set_ylabel("-log p(q)")
        ax.set_ylim(-3, 40)
        ax.legend(fontsize=6)
    axes[2].axvline(PAPER["sigma2_c"], color="grey", lw=0.5)
    axes[2].set_xlabel("sigma^2")
    axes[2].set_ylabel("cubic component f3 = E[f H3]/6 (teacher: eps = -0.3)")
    axes[2].set_title("(c) cubic component" + (" (quick)" if results["run"] == "quick" else " (full)" if results["run"] == "full" else " (partial run)"))
    axes[2].legend(fontsize=6)
    fig.tight_layout()
    Path(outdir).mkdir(parents=True, exist_ok=True)
    path = Path(outdir) / f"{NAME}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [str(path)]


if __name__ == "__main__":
    main()
