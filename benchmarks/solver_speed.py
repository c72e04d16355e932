"""Solver speed on configs/clover.toml: Anderson (as shipped) vs plain damped iteration vs Newton ascent, one run.

Prints iterations, wall time and their ratios (all with ``auto=False``: the algorithms alone), the
beta = 200 case (the default solve, which escalates by itself, vs plain damping 0.5, whose
residual-change history is printed, vs Newton ascent on the starting grid), and a sweep of 16 betas timed twice in the same run: with the
model's hyperparameters traced (as shipped: one compilation of the fixed-point map) and with a
compilation per beta (what a static model argument cost before; emulated by clearing the map's jit
cache before each beta), printing the time ratio and the number of compilations of each. Writes
results/solver_speed.json. ``--quick``: a 48^2 grid on a 12^2-point clover.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import jax
import numpy as np

from mft_jax import io
from mft_jax.cli.config import data_from, load_toml, model_from, section
from mft_jax.cli.solve import SECTIONS, SolverConfig, make_sampler
from mft_jax.theory.samplers.grid import grid_sampler
from mft_jax.theory.two_layer import fixed_point_map, solve
from mft_jax.tasks import make_data

ROOT = Path(__file__).resolve().parent.parent


def timed(data, model, sampler, **options):
    start = time.perf_counter()
    solution = solve(data, model, sampler, key=jax.random.key(0), **options)
    seconds = time.perf_counter() - start
    return solution, {
        "converged": solution.converged, "settled": solution.diagnostics["settled"], "iterations": solution.iterations,
        "seconds": round(seconds, 2),
        "loss": solution.loss, "free_energy": solution.free_energy, "message": solution.message,
        "change_history": [float(f"{c:.4g}") for c in solution.history["change"]], **{k: v for k, v in options.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "clover.toml"))
    parser.add_argument("--out", default=str(ROOT / "results" / "solver_speed" / "main.json"))
    parser.add_argument("--quick", action="store_true", help="48^2 grid on a 12^2-point clover (smoke test)")
    args = parser.parse_args()
    print(f"solver_speed: devices: {', '.join(io.devices())}", flush=True)
    raw = load_toml(args.config, SECTIONS)
    config = section(SolverConfig, raw.get("solver"), "solver")
    data, model, sampler = data_from(raw), model_from(raw), make_sampler(config)
    if args.quick:
        data, sampler = make_data("continuous_xor", quadrature=12), grid_sampler(48, 6.0)
    solve(data, model, sampler, key=jax.random.key(0), max_iter=1, auto=False)  # compile the fixed-point map
    solve(data, model, sampler, key=jax.random.key(0), max_iter=1, auto=False, newton=True)  # ... and the Newton step

    shipped = dict(tol=config.tol, anderson=config.anderson, damping=config.damping, max_iter=config.max_iter, auto=False)
    _, anderson = timed(data, model, sampler, **shipped)
    _, damped = timed(data, model, sampler, tol=config.tol, anderson=0, damping=0.1, max_iter=2000, auto=False)
    _, newton = timed(data, model, sampler, tol=config.tol, max_iter=config.max_iter, auto=False, newton=True)
    ratio_iterations = damped["iterations"] / anderson["iterations"]
    ratio_seconds = damped["seconds"] / anderson["seconds"]
    print(f"beta = {model.beta:g}: Anderson {anderson['iterations']} iterations, {anderson['seconds']} s "
          f"(converged {anderson['converged']}); damping 0.1 {damped['iterations']} iterations, {damped['seconds']} s "
          f"(converged {damped['converged']}); ratio {ratio_iterations:.1f}x iterations, {ratio_seconds:.1f}x time")
    print(f"beta = {model.beta:g}: Newton ascent {newton['iterations']} iterations, {newton['seconds']} s "
          f"(converged {newton['converged']}, loss {newton['loss']:.6f} vs Anderson {anderson['loss']:.6f}); "
          f"Anderson / Newton time {anderson['seconds'] / newton['seconds']:.2f}x")

    hot = model.replace(beta=200.0)
    _, hot_shipped = timed(data, hot, sampler, tol=config.tol)
    _, hot_damped = timed(data, hot, sampler, tol=config.tol, anderson=0, damping=0.5, max_iter=40, auto=False)
    hot_newton_solution, hot_newton = timed(data, hot, sampler, tol=config.tol, max_iter=config.max_iter, auto=False, newton=True)
    hot_newton["ess"] = hot_newton_solution.diagnostics["ess"]
    print(f"beta = 200: the default solve converged {hot_shipped['converged']} "
          f"in {hot_shipped['iterations']} iterations, {hot_shipped['seconds']} s; {hot_shipped['message']}")
    print(f"beta = 200: plain damping 0.5 converged {hot_damped['converged']} after {hot_damped['iterations']} iterations; "
          f"relative change history: {np.array2string(np.array(hot_damped['change_history']), precision=3)}")
    print(f"beta = 200: Newton ascent on the starting grid converged {hot_newton['converged']} in {hot_newton['iterations']} "
          f"iterations, {hot_newton['seconds']} s (law on {hot_newton['ess']:.1f} effective nodes: the default re-grids it); "
          f"relative change history: {np.array2string(np.array(hot_newton['change_history']), precision=3)}")

    sweep = sweep_compilations(data, model, sampler, config.tol)
    print(f"sweep of {len(sweep['betas'])} betas: traced model {sweep['traced']['seconds']} s with "
          f"{sweep['traced']['compilations']} compilation(s); a compilation per beta {sweep['per_beta']['seconds']} s with "
          f"{sweep['per_beta']['compilations']}; ratio {sweep['time_ratio']:.2f}x")

    io.write_json(args.out, {
        "config": args.config,
        "quick": args.quick,
        "beta_50": {"anderson": anderson, "damped_0.1": damped, "newton": newton, "iteration_ratio": ratio_iterations,
                    "time_ratio": ratio_seconds, "anderson_over_newton_time": anderson["seconds"] / newton["seconds"]},
        "beta_200": {"shipped": hot_shipped, "damped_0.5": hot_damped, "newton": hot_newton},
        "sweep": sweep,
        "note": "wall-clock seconds, fixed-point map compiled before timing",
        "load_average_1min_at_end": os.getloadavg()[0],  # above the core count: other processes shared the CPU
        "meta": io.run_metadata(raw, config.seed),
    })
    print(f"wrote {args.out}")


def sweep_compilations(data, model, sampler, tol, num=16):
    """Solve at ``num`` betas from 5 to 80 twice: traced (one compilation) and compiling per beta; time both."""
    betas = [float(b) for b in np.geomspace(5.0, 80.0, num)]
    options = dict(key=jax.random.key(0), tol=tol, adapt_grid=False)  # a fixed grid: compilation cost alone
    result = {"betas": betas}
    for name, clear in (("per_beta", True), ("traced", False)):
        fixed_point_map.clear_cache()
        compilations, start, losses = 0, time.perf_counter(), []
        for beta in betas:
            if clear:
                compilations += fixed_point_map._cache_size()
                fixed_point_map.clear_cache()  # what a static model argument did: a new compilation for a new beta
            losses.append(solve(data, model.replace(beta=beta), sampler, **options).loss)
        compilations += fixed_point_map._cache_size()
        result[name] = {"seconds": round(time.perf_counter() - start, 2), "compilations": compilations, "losses": losses}
    result["time_ratio"] = result["per_beta"]["seconds"] / result["traced"]["seconds"]
    return result


if __name__ == "__main__":
    main()
