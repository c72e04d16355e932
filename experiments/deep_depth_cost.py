"""Why a very deep config does not answer: the deep solver's time to its first iteration against depth.

The deep forward map (mft_jax.theory.deep) unrolls one block per hidden layer into one XLA program, so its
compile time grows with the depth; this times ``solve_deep`` with ``max_iter = 1`` (the compilations and one
step) on the importance sampler at a few depths, after a warm-up solve that pays the depth-independent
compilations, and fits ``seconds ~ depth^k`` to the CPU seconds (all threads: ``time.process_time``; the wall
time is recorded too, with the load average, since on a shared machine it measures the neighbours). The CLI's depth limit
(mft_jax.cli.config.MAX_DEPTH) and its estimate come from these numbers. Writes results/deep_depth_cost/main.json.

    python -m experiments.deep_depth_cost [--depths 3 6 12 24 48] [--samples 500]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

from mft_jax import io
from mft_jax.tasks import make_data
from mft_jax.theory.deep import Deep, importance_layers, solve_deep

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[3, 6, 12, 24, 48])
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--out", default=str(ROOT / "results" / "deep_depth_cost" / "main.json"))
    args = parser.parse_args()
    data = make_data("continuous_xor", quadrature=4)
    rows = []
    solve_deep(data, Deep("erf", 3, beta=2.0), importance_layers(args.samples), key=jax.random.key(1), max_iter=1, auto=False)
    for depth in args.depths:
        model = Deep("erf", depth, beta=2.0)
        start, cpu = time.perf_counter(), time.process_time()
        solve_deep(data, model, importance_layers(args.samples), key=jax.random.key(0), max_iter=1, auto=False)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
        rows.append({"depth": depth, "seconds": seconds, "cpu_seconds": cpu_seconds, "load_average": os.getloadavg()[0]})
        print(f"depth {depth:4d}: {cpu_seconds:8.2f} CPU s ({seconds:.1f} s wall, load {os.getloadavg()[0]:.1f}) to the first "
              "iteration (compile + 1 step)", flush=True)
    depths = np.array([r["depth"] for r in rows], float)
    seconds = np.array([r["cpu_seconds"] for r in rows], float)
    exponent, log_scale = np.polyfit(np.log(depths), np.log(seconds), 1)
    print(f"fit: CPU seconds ~ {np.exp(log_scale):.3g} * depth^{exponent:.2f}; depth 300 -> {np.exp(log_scale) * 300 ** exponent:.0f} s")
    io.write_json(args.out, {"rows": rows, "load_average": os.getloadavg(),
                             "cpu_count": os.cpu_count(), "fit_exponent": exponent,
                             "fit_scale_seconds": float(np.exp(log_scale)), "samples": args.samples,
                             "meta": io.run_metadata(vars(args))})


if __name__ == "__main__":
    main()
