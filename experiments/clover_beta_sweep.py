"""The clover (configs/clover.toml) solved with the default settings at beta from 1 to 1000.

Issue 7's target: with default ``[solver]`` settings the solver reaches the fixed point at every beta
and the grid resolves the law (it re-grids by itself where it must). Prints, per beta: converged,
iterations, seconds, the effective number of grid nodes the law sits on, the final grid, and the
automatic steps taken; writes results/clover_beta_sweep.json. ``--quick``: a 12^2-point clover on a
48^2 starting grid at beta 1, 10, 100, 500.

``--grid-check``: grid convergence instead. At each beta (default 500 and 1000) the default solve is
started from three grids (160^2 on +-6, 240^2 on +-6, 200^2 on +-4), each re-gridded its own way; prints
and writes (results/clover_grid_check.json) the loss, free energy, effective nodes, the law's |w| (mean and
sd) and its mass in 10-degree bins of the angle of w: what agrees across grids is resolved.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np

from mft_jax import io
from mft_jax.cli.config import data_from, load_toml, model_from, section
from mft_jax.theory.samplers.grid import MIN_NODES, grid_sampler
from mft_jax.cli.solve import SECTIONS, SolverConfig, make_sampler
from mft_jax.theory.two_layer import solve
from mft_jax.tasks import make_data

ROOT = Path(__file__).resolve().parent.parent
BETAS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
QUICK_BETAS = (1.0, 10.0, 100.0, 500.0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "clover.toml"))
    parser.add_argument("--out", default=str(ROOT / "results" / "clover_beta_sweep" / "main.json"))
    parser.add_argument("--quick", action="store_true", help="12^2 points, 48^2 grid, beta 1, 10, 100, 500")
    parser.add_argument("--betas", type=float, nargs="*", default=None)
    parser.add_argument("--grid-check", action="store_true", help="solve from three starting grids per beta (default 500, 1000)")
    args = parser.parse_args(argv)
    if args.grid_check:
        return grid_check(args)
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


GRID_STARTS = ((160, 6.0), (240, 6.0), (200, 4.0))


def grid_check(args) -> None:
    raw = load_toml(args.config, SECTIONS)
    config = section(SolverConfig, raw.get("solver"), "solver")
    data, model = data_from(raw), model_from(raw)
    out = args.out if args.out != str(ROOT / "results" / "clover_beta_sweep" / "main.json") else str(ROOT / "results" / "clover" / "grid_check.json")
    rows = []
    for beta in args.betas or (500.0, 1000.0):
        for size, extent in GRID_STARTS:
            start = time.perf_counter()
            solution = solve(data, model.replace(beta=beta), grid_sampler(size, extent), key=jax.random.key(config.seed))
            w, weight = np.asarray(solution.law.w, float), np.asarray(solution.law.weights(), float)
            radius = np.linalg.norm(w, axis=1)
            mean_radius = float(weight @ radius)
            angle = np.degrees(np.arctan2(w[:, 1], w[:, 0]))
            bins, _ = np.histogram(angle, bins=36, range=(-180, 180), weights=weight)
            row = {
                "beta": beta, "start": [size, extent], "converged": solution.converged, "iterations": solution.iterations,
                "seconds": round(time.perf_counter() - start, 1), "loss": solution.loss, "free_energy": solution.free_energy,
                "ess_nodes": solution.diagnostics["ess"], "final_grid": solution.diagnostics["sampler"],
                "radius_mean": mean_radius, "radius_sd": float(np.sqrt(weight @ radius**2 - mean_radius**2)),
                "angle_mass_10deg": [round(float(b), 4) for b in bins],
            }
            rows.append(row)
            print(f"beta {beta:g}, start {size}^2 on +-{extent:g}: converged {row['converged']}, loss {row['loss']:.6f}, "
                  f"free energy {row['free_energy']:.6f}, ESS {row['ess_nodes']:.1f}, |w| {row['radius_mean']:.3f} +- "
                  f"{row['radius_sd']:.3f}, {row['seconds']} s", flush=True)
            print("  mass per 10 degrees of angle(w):", " ".join(f"{b:.2f}" for b in bins), flush=True)
    io.write_json(out, {"config": args.config, "rows": rows, "meta": io.run_metadata(raw, config.seed)})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
