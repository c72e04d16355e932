"""The clover (configs/clover.toml) solved with the default settings at beta from 1 to 1000.

Issue 7's target: with default ``[solver]`` settings the solver reaches the fixed point at every beta
and the grid resolves the law (it re-grids by itself where it must). Prints, per beta: converged,
iterations, seconds, the effective number of grid nodes the law sits on, the final grid, and the
automatic steps taken; writes results/clover_beta_sweep.json. ``--quick``: a 12^2-point clover on a
48^2 starting grid at beta 1, 10, 100, 500.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax

from mft_jax import io
from mft_jax.config import data_from, load_toml, model_from, section
from mft_jax.foreground.grid import MIN_NODES, grid_sampler
from mft_jax.jobs.solve import SECTIONS, SolverConfig, make_sampler
from mft_jax.solver import solve
from mft_jax.tasks import make_data

ROOT = Path(__file__).resolve().parent.parent
BETAS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
QUICK_BETAS = (1.0, 10.0, 100.0, 500.0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "clover.toml"))
    parser.add_argument("--out", default=str(ROOT / "results" / "clover_beta_sweep.json"))
    parser.add_argument("--quick", action="store_true", help="12^2 points, 48^2 grid, beta 1, 10, 100, 500")
    parser.add_argument("--betas", type=float, nargs="*", default=None)
    args = parser.parse_args(argv)
    print(f"clover_beta_sweep: devices: {', '.join(io.devices())}", flush=True)
    raw = load_toml(args.config, SECTIONS)
    config = section(SolverConfig, raw.get("solver"), "solver")
    data, model, sampler = data_from(raw), model_from(raw), make_sampler(config)
    betas = args.betas or BETAS
    if args.quick:
        data, sampler, betas = make_data("continuous_xor", quadrature=12), grid_sampler(48, 6.0), args.betas or QUICK_BETAS
    rows = []
    print(f"{'beta':>7} {'conv':>5} {'iters':>6} {'seconds':>8} {'ESS nodes':>10} {'final grid':>20}  automatic steps")
    for beta in betas:
        start = time.perf_counter()
        solution = solve(data, model.replace(beta=beta), sampler, key=jax.random.key(config.seed))  # default settings
        seconds = time.perf_counter() - start
        grid = solution.diagnostics["sampler"]
        row = {
            "beta": beta, "converged": solution.converged, "iterations": solution.iterations,
            "seconds": round(seconds, 2), "ess_nodes": solution.diagnostics["ess"],
            "resolved": solution.diagnostics["ess"] >= MIN_NODES and not solution.diagnostics["warnings"],
            "nodes_per_axis": grid["nodes_per_axis"], "spans": grid["spans"], "loss": solution.loss,
            "free_energy": solution.free_energy, "actions": list(solution.actions), "message": solution.message,
        }
        rows.append(row)
        print(f"{beta:7g} {str(row['converged']):>5} {row['iterations']:6d} {row['seconds']:8.1f} {row['ess_nodes']:10.1f} "
              f"{' x '.join(map(str, grid['nodes_per_axis'])):>11} on +-{max(abs(e) for s in grid['spans'] for e in s):4.2f}  "
              f"{len(row['actions'])} step(s)", flush=True)
    io.write_json(args.out, {
        "config": args.config, "quick": args.quick, "rows": rows,
        "all_converged_and_resolved": all(r["converged"] and r["resolved"] for r in rows),
        "meta": io.run_metadata(raw, config.seed),
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
