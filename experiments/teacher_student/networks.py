"""Langevin networks of the teacher-student experiment: runs (cached per setting), their projections on H1, H3,
seed statistics, the transition midpoint and the width sweep."""

from __future__ import annotations

import json
import math
import time
import jax
import jax.numpy as jnp
import numpy as np

from pathlib import Path
from mft_jax.analysis.stats import autocorrelation_time
from mft_jax.io import write_json
from mft_jax.resources import matmul_peak  # noqa: F401  (run.py reports the FLOP rate against it)
from mft_jax.tasks import teacher_student
from mft_jax.train.joint import langevin_optimizer, train
from experiments.teacher_student.config import Q_BINS, network_key, run_settings
from experiments.teacher_student.measure import _eighths, _seed_stats, hermite_projector, theory_model


# ------------------------------------------------------------------------------------------ networks
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
        f1, f3, _ = projector @ model.apply(params, x_test)[:, 0]
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
