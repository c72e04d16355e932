"""Cost of the deep fixed-point map against the number of data points P (issue 10, item 5).

The single-site law of a hidden layer above the first lives in R^P, so one evaluation of the map
``G`` of docs/theory.md 6.3 (every layer law by importance sampling, its kernel ``Phi_l`` and the
Stein estimate of ``Phihat_(l-1)``, the readout residual) costs O(M P^2) for M particles per layer
plus O(P^3) for the Cholesky factors. Per P (task ``xor_product``: x ~ N(0, I_4),
y = (x1 x2)(x3 x4); ``Deep(depth=3)``, beta = 20, where the fixed point is a few Newton steps
from the NNGP and beta = 50 already needs continuation at P = 64), this script measures, in one run:

- the wall time of one evaluation of the library's jitted forward pass ``mft_jax.theory.deep._forward_jit``
  at the NNGP state (``block_until_ready``; the first call's excess over the median of the repeats is
  reported as compile time), its FLOP count from XLA's cost analysis, and the resulting FLOP rate as
  a fraction of this machine's float32 matmul rate measured just before and after it (the better of
  the two; ``mft_jax.resources.matmul_peak`` on 4096^2 matrices), since the machine is shared and its
  load changes between P;
- the importance sampler's effective sample size per layer at the NNGP start for each ``--samples``;
- where a solve is affordable (P <= ``--solve-max-points``): ``solve_deep`` to its fixed point
  (compiling everything), then the wall time of the first Newton iteration from the NNGP start
  (GMRES on JVPs of the map, the line search and the next map evaluation: the first difference of
  the solver's ``history["seconds"]`` in a compiled two-iteration solve, median of
  ``--newton-repeats``), and the ESS per layer at the fixed point for each ``--samples`` (the fixed
  point is solved with the smallest; the larger particle sets are evaluated at its state);
- the library's memory estimate of a solve (``LayerSampler.memory_bytes``; sizes it refuses are
  recorded with its message instead of being run);
- the exponent of a log-log fit of the map's time against P.

Activation: ``erf`` by default, whose NNGP kernel (the start) has a closed form; tanh or gelu need a
64^2-node Gauss-Hermite rule per pair of points for the NNGP start, which at P = 4096 costs more than
the map itself. The map's cost does not depend on the activation beyond elementwise work.
Writes ``results/deep_speed.json`` after every P (``--resume`` keeps the P already there) and
``figures/deep_speed.png``. ``--quick``: P = 64, 128, 256 with 2^10 and 2^12 samples.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import jax
import numpy as np

from mft_jax import io
from mft_jax.theory.deep import Deep, _forward, _forward_jit, importance_layers, nngp_state, solve_deep
from mft_jax.errors import ConfigError
from mft_jax.tasks import make_data
from benchmarks.neuron_throughput import matmul_peak

ROOT = Path(__file__).resolve().parent.parent


def timed(fn):
    """``(result, seconds)`` of ``fn()`` with every output blocked on."""
    start = time.perf_counter()
    result = jax.block_until_ready(fn())
    return result, time.perf_counter() - start


def forward_flops(model, sampler, particles, data, state) -> float | None:
    """FLOPs of one forward pass by XLA's cost analysis (the model closed over: the traced call is ``_forward_jit``'s);
    None where the backend has no cost analysis (``Lowered.cost_analysis()`` returns None on some GPU builds)."""
    lowered = jax.jit(lambda p, d, s: _forward(model, sampler, p, d, s)).lower(particles, data, state)
    try:
        cost = lowered.cost_analysis()
    except Exception:  # noqa: BLE001  (a backend without the analysis may raise instead of returning None)
        cost = None
    cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
    if not cost or "flops" not in cost:
        return None
    return float(cost["flops"])


def measure(P: int, args) -> dict:
    """Timings, ESS and memory of the deep map at ``P`` data points."""
    data = make_data(args.task, n_train=P, seed=0)
    model = Deep(args.activation, depth=args.depth, beta=args.beta)
    sampler = importance_layers(args.timing_samples)
    row = {"P": P, "num_samples": args.timing_samples, "memory_estimate_bytes": sampler.memory_bytes(model, data),
           "particles": {str(M): [m for m, _ in importance_layers(M).particle_counts(model, data)] for M in args.samples},
           "load_average_start": os.getloadavg()}  # particles: draws per layer (at least P + 1 antithetic pairs)
    try:
        particles, row["init_seconds"] = timed(lambda: sampler.init(jax.random.key(0), model, data))
    except ConfigError as error:  # the library's memory guard: record what it said, run nothing
        row["refused"] = str(error)
        print(f"P = {P}: refused: {error}", flush=True)
        return row
    state, row["nngp_seconds"] = timed(lambda: nngp_state(model, data))
    peaks = [matmul_peak(args.peak_size, 3)]  # the machine's matmul rate just before and after the map's timing
    forward, first = timed(lambda: _forward_jit(model, sampler, particles, data, state))
    seconds, spent = [], 0.0
    while len(seconds) < args.repeats and (not seconds or spent < args.budget):
        _, t = timed(lambda: _forward_jit(model, sampler, particles, data, state))
        seconds.append(t)
        spent += t
    peaks.append(matmul_peak(args.peak_size, 3))
    row["matmul_peak_flops"] = max(peaks)
    row["matmul_peaks"] = peaks
    row["map_seconds"] = float(np.median(seconds))
    row["map_seconds_all"] = seconds
    row["compile_seconds"] = max(first - row["map_seconds"], 0.0)
    row["flops"] = forward_flops(model, sampler, particles, data, state)
    row["flop_rate"] = None if row["flops"] is None else row["flops"] / row["map_seconds"]
    row["fraction_of_peak"] = None if row["flops"] is None else row["flop_rate"] / row["matmul_peak_flops"]
    row["ess_nngp"] = {str(args.timing_samples): [float(s.ess) for s in forward.stats]}
    del particles, forward
    for M in args.samples:
        if M == args.timing_samples or (M > args.timing_samples and P > args.ess_max_points):
            continue
        more = importance_layers(M)
        particles = more.init(jax.random.key(0), model, data)
        row["ess_nngp"][str(M)] = [float(s.ess) for s in _forward_jit(model, more, particles, data, state).stats]
        del particles
    if P <= args.solve_max_points:
        row.update(solve_at(data, model, args))
        row["newton_over_map"] = row["newton_seconds"] / row["map_seconds"]  # both with the same M when --samples starts at it
    row["load_average_end"] = os.getloadavg()
    print(f"P = {P:5d}: map {row['map_seconds']:.3g} s (compile {row['compile_seconds']:.3g} s, {len(seconds)} repeats), "
          + (f"FLOPs unavailable (no XLA cost analysis on this backend); matmul peak " if row["flops"] is None else
             f"{row['flops'] / 1e9:.3g} GFLOP = {100 * row['fraction_of_peak']:.3g}% of the matmul peak ")
          + f"({row['matmul_peak_flops'] / 1e9:.3g} GFLOP/s, {args.peak_size}^2 float32, best of 3, before/after); "
          f"ESS at the NNGP start {_ess_text(row['ess_nngp'])}"
          + (f"; Newton iteration {row['newton_seconds']:.3g} s ({row['solve']['iterations']} iterations, "
             f"{row['solve']['message']}); ESS at the fixed point {_ess_text(row['ess_fixed_point'])}" if "solve" in row else "")
          + f"; memory estimate {row['memory_estimate_bytes'] / 2**30:.3g} GiB; load {row['load_average_end'][0]:.2f}", flush=True)
    return row


def solve_at(data, model, args) -> dict:
    """Solve with the fewest samples; Newton iteration time; ESS of every ``--samples`` set at that fixed point."""
    first = min(args.samples)
    sampler = importance_layers(first)
    start = time.perf_counter()
    solution = solve_deep(data, model, sampler, key=jax.random.key(0), tol=args.tol, max_iter=args.max_iter)
    total = time.perf_counter() - start
    steps = []  # compiled by the solve above: two iterations from the NNGP start, timed by the solver's own history
    for _ in range(args.newton_repeats):
        probe = solve_deep(data, model, sampler, key=jax.random.key(0), tol=1e-30, max_iter=2, auto=False)  # two full iterations (no tol is reached)
        steps.append(float(np.diff(probe.history["seconds"])[0]))
    out = {"solve": {"num_samples": first, "converged": solution.converged, "iterations": solution.iterations,
                     "seconds": total, "message": solution.message, "loss": solution.loss},
           "newton_seconds": float(np.median(steps)), "newton_seconds_all": steps,
           "ess_fixed_point": {str(first): solution.diagnostics["ess"]}}
    for M in args.samples:
        if M != first:
            more = importance_layers(M)
            particles = more.init(jax.random.key(0), model, data)
            out["ess_fixed_point"][str(M)] = [float(s.ess) for s in _forward_jit(model, more, particles, data, solution.state).stats]
    return out


def _ess_text(ess: dict) -> str:
    return ", ".join(f"M = {M}: " + "/".join(f"{e:.4g}" for e in values) for M, values in ess.items())


def scaling_exponent(rows) -> float | None:
    """Slope of ``log(map seconds)`` against ``log P`` (least squares)."""
    done = [r for r in rows if "map_seconds" in r]
    if len(done) < 2:
        return None
    return float(np.polyfit(np.log([r["P"] for r in done]), np.log([r["map_seconds"] for r in done]), 1)[0])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="P = 64, 128, 256; 2^10 and 2^12 samples; solves at P <= 128")
    parser.add_argument("--points", type=int, nargs="*", default=None, help="P values (default 256 .. 4096)")
    parser.add_argument("--samples", type=int, nargs="*", default=None, help="particle counts for the ESS (default 2^13 2^15)")
    parser.add_argument("--timing-samples", type=int, default=None, help="particles per layer of the timed map (default: the fewest --samples)")
    parser.add_argument("--repeats", type=int, default=3, help="timed evaluations per P (after the compiling one)")
    parser.add_argument("--peak-size", type=int, default=None, help="matrix size of the matmul peak (default 4096; quick 1024)")
    parser.add_argument("--budget", type=float, default=120.0, help="stop repeating after this many seconds of timed evaluations")
    parser.add_argument("--ess-max-points", type=int, default=None, help="larger --samples only up to this P (default 1024)")
    parser.add_argument("--solve-max-points", type=int, default=None, help="solve to the fixed point up to this P (default 256)")
    parser.add_argument("--task", default="xor_product")
    parser.add_argument("--activation", default="erf")
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--beta", type=float, default=20.0)
    parser.add_argument("--newton-repeats", type=int, default=2)
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument("--max-iter", type=int, default=30)
    parser.add_argument("--out", default=None)
    parser.add_argument("--figure", default=None)
    parser.add_argument("--resume", action="store_true", help="keep the P already in --out")
    args = parser.parse_args(argv)
    quick = args.quick
    args.points = args.points or ([64, 128, 256] if quick else [256, 512, 1024, 2048, 4096])
    args.samples = sorted(args.samples or ([2**10, 2**12] if quick else [2**13, 2**15]))
    args.timing_samples = args.timing_samples or args.samples[0]
    args.peak_size = args.peak_size or (1024 if quick else 4096)
    args.ess_max_points = args.ess_max_points or (256 if quick else 1024)
    args.solve_max_points = args.solve_max_points or (128 if quick else 256)
    suffix = "_quick" if quick else ""
    out = Path(args.out or ROOT / "results" / "deep_speed" / ("quick.json" if quick else "main.json"))
    figure = Path(args.figure or ROOT / "figures" / f"deep_speed{suffix}.png")
    print(f"deep_speed: devices: {', '.join(io.devices())}", flush=True)

    rows = []
    if args.resume and out.is_file():
        rows = [r for r in json.loads(out.read_text())["points"] if r["P"] in args.points]
    payload = {}
    for P in args.points:
        if any(r["P"] == P for r in rows):
            continue
        rows.append(measure(P, args))
        rows.sort(key=lambda r: r["P"])
        payload = {
            "quick": quick, "task": args.task, "model": Deep(args.activation, depth=args.depth, beta=args.beta).settings(),
            "timing_samples": args.timing_samples, "samples": args.samples,
            "matmul_peak_flops": max(r.get("matmul_peak_flops", 0.0) for r in rows), "exponent": scaling_exponent(rows), "points": rows,
            "machine": {"device": str(jax.devices()[0]), "jax": jax.__version__, "cpu_count": os.cpu_count(),
                        "load_average": os.getloadavg()},
            "meta": io.run_metadata(vars(args), 0),
        }
        io.write_json(out, payload)
    if not payload:
        payload = json.loads(out.read_text())
    print(f"time per map evaluation ~ P^{payload['exponent']:.2f} (log-log fit over P = "
          f"{', '.join(str(r['P']) for r in rows if 'map_seconds' in r)})" if payload["exponent"] is not None else "", flush=True)
    plot(payload, figure)
    print(f"deep_speed: wrote {out} and {figure}")


def plot(payload, path) -> None:
    plt = io.pyplot()

    rows = [r for r in payload["points"] if "map_seconds" in r]
    P = np.array([r["P"] for r in rows], float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.loglog(P, [r["map_seconds"] for r in rows], "o-", label=f"map G (M = {payload['timing_samples']})")
    compiled = [r for r in rows if r["compile_seconds"] > 0]  # first call minus the median: 0 when load noise hides it
    left.loglog([r["P"] for r in compiled], [r["compile_seconds"] for r in compiled], "x:", color="0.5", label="compile")
    newton = [r for r in rows if r.get("newton_seconds")]
    if newton:
        left.loglog([r["P"] for r in newton], [r["newton_seconds"] for r in newton], "s", color="C3",
                    label=f"Newton iteration (M = {newton[0]['solve']['num_samples']})")
    if payload.get("exponent") is not None and len(P) > 1:
        fit = np.exp(np.polyfit(np.log(P), np.log([r["map_seconds"] for r in rows]), 1))
        left.loglog(P, fit[1] * P ** np.log(fit[0]), "k--", lw=0.7, label=f"fit ~ P^{payload['exponent']:.2f}")
    left.set_xticks(P, [str(int(p)) for p in P])
    left.minorticks_off()
    left.set_xlabel("data points P")
    left.set_ylabel("seconds")
    left.legend(fontsize=7)
    left.set_title(f"{payload['machine']['device']}, load {payload['machine']['load_average'][0]:.1f}", fontsize=8)
    for i, M in enumerate(payload["samples"]):
        for layer in range(payload["model"]["depth"] - 1):
            for key, style in (("ess_nngp", "o-"), ("ess_fixed_point", "s--")):
                have = [r for r in rows if str(M) in r.get(key, {})]
                if have:
                    right.semilogx([r["P"] for r in have], [r[key][str(M)][layer] / r["particles"][str(M)][layer] for r in have],
                                   style, color=f"C{i}",
                                   alpha=1.0 if layer else 0.5,
                                   label=f"layer {layer + 1}, M = {M}, {'NNGP start' if key == 'ess_nngp' else 'fixed point'}")
    right.set_xticks(P, [str(int(p)) for p in P])
    right.minorticks_off()
    right.set_xlabel("data points P")
    right.set_ylabel("ESS / number of draws")
    right.legend(fontsize=6)
    fig.suptitle(f"deep map cost: {payload['task']}, {payload['model']['activation']}, depth {payload['model']['depth']}, "
                 f"beta = {payload['model']['beta']:g}")
    io.save_figure(fig, path, dpi=130)


make_figures = io.figure_redrawer("deep_speed", plot)

if __name__ == "__main__":
    main()
