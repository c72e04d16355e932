"""Solver speed on configs/clover.toml: Anderson (as shipped) vs plain damped iteration, one run.

Prints iterations, wall time and their ratios, and the beta = 200 case (shipped solver with
continuation vs plain damping 0.5, whose residual-change history is printed). Writes
results/solver_speed.json. The fixed-point map is compiled by a warm-up call before timing.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import jax
import numpy as np

from mft_jax import io
from mft_jax.config import data_from, load_toml, model_from, section
from mft_jax.jobs.solve import SECTIONS, SolverConfig, make_sampler
from mft_jax.solver import solve

ROOT = Path(__file__).resolve().parent.parent


def timed(data, model, sampler, **options):
    start = time.perf_counter()
    solution = solve(data, model, sampler, key=jax.random.key(0), **options)
    seconds = time.perf_counter() - start
    return solution, {
        "converged": solution.converged, "iterations": solution.iterations, "seconds": round(seconds, 2),
        "loss": solution.loss, "free_energy": solution.free_energy, "message": solution.message,
        "change_history": [float(f"{c:.4g}") for c in solution.history["change"]], **{k: v for k, v in options.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "clover.toml"))
    parser.add_argument("--out", default=str(ROOT / "results" / "solver_speed.json"))
    args = parser.parse_args()
    raw = load_toml(args.config, SECTIONS)
    config = section(SolverConfig, raw.get("solver"), "solver")
    data, model, sampler = data_from(raw), model_from(raw), make_sampler(config)
    solve(data, model, sampler, key=jax.random.key(0), max_iter=1)  # compile the fixed-point map

    shipped = dict(tol=config.tol, anderson=config.anderson, damping=config.damping, max_iter=config.max_iter)
    _, anderson = timed(data, model, sampler, **shipped)
    _, damped = timed(data, model, sampler, tol=config.tol, anderson=0, damping=0.1, max_iter=2000)
    ratio_iterations = damped["iterations"] / anderson["iterations"]
    ratio_seconds = damped["seconds"] / anderson["seconds"]
    print(f"beta = {model.beta:g}: Anderson {anderson['iterations']} iterations, {anderson['seconds']} s "
          f"(converged {anderson['converged']}); damping 0.1 {damped['iterations']} iterations, {damped['seconds']} s "
          f"(converged {damped['converged']}); ratio {ratio_iterations:.1f}x iterations, {ratio_seconds:.1f}x time")

    hot = model.replace(beta=200.0)
    solve(data, hot, sampler, key=jax.random.key(0), max_iter=1)  # compile at the new beta
    _, hot_shipped = timed(data, hot, sampler, tol=config.tol, anderson=config.anderson, damping=0.2,
                           continuation=6, beta_start=20.0, max_iter=config.max_iter)
    _, hot_damped = timed(data, hot, sampler, tol=config.tol, anderson=0, damping=0.5, max_iter=40)
    print(f"beta = 200: shipped (Anderson, damping 0.2, continuation 6 from beta 20) converged {hot_shipped['converged']} "
          f"in {hot_shipped['iterations']} iterations, {hot_shipped['seconds']} s; {hot_shipped['message']}")
    print(f"beta = 200: plain damping 0.5 converged {hot_damped['converged']} after {hot_damped['iterations']} iterations; "
          f"relative change history: {np.array2string(np.array(hot_damped['change_history']), precision=3)}")

    io.write_json(args.out, {
        "config": args.config,
        "beta_50": {"anderson": anderson, "damped_0.1": damped, "iteration_ratio": ratio_iterations, "time_ratio": ratio_seconds},
        "beta_200": {"shipped": hot_shipped, "damped_0.5": hot_damped},
        "note": "wall-clock seconds, fixed-point map compiled before timing",
        "load_average_1min_at_end": os.getloadavg()[0],  # above the core count: other processes shared the CPU
        "meta": io.run_metadata(raw, config.seed),
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
