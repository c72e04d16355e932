"""Newton-Krylov against Anderson for the deep fixed point, timed in one run (``solve_deep(method=...)``).

The compositional task of ``experiments/deep_composition.py`` (``xor_product``, gelu, depth 3, sa2 = sW2
= sw2 = 1, importance layers) at each beta: both methods from the NNGP start with default settings
(``auto=True``: a stalled solve is retried by continuation), after one untimed warm-up solve per method
that compiles its map (and, for Newton, the GMRES on JVPs). Prints per method: converged, iterations
(a Newton iteration costs up to ~200 map evaluations in its GMRES, an Anderson one a single map evaluation),
seconds, loss, free energy, and the ratio of seconds; writes
results/deep_solver_methods.json. ``--quick``: P = 32, 2^12 draws, beta 8.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax

from mft_jax import io
from mft_jax.theory.deep import Deep, importance_layers, solve_deep
from mft_jax.tasks import make_data

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("newton", "anderson")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="P = 32, 2^12 draws, beta 8")
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--num-samples", type=int, default=2**13)
    parser.add_argument("--betas", type=float, nargs="*", default=[8.0, 13.0])
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument("--max-iter", type=int, default=60)
    parser.add_argument("--out", default=str(ROOT / "results" / "deep_solver_methods" / "main.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.points, args.num_samples, args.betas = 32, 2**12, [8.0]
    print(f"deep_solver_methods: devices: {', '.join(io.devices())}", flush=True)
    data = make_data("xor_product", n_train=args.points, seed=0)
    sampler = importance_layers(args.num_samples)
    model = Deep("gelu", depth=3, sa2=1.0, sW2=1.0, sw2=1.0, beta=args.betas[0])
    for method in METHODS:  # compile once per method, untimed
        solve_deep(data, model, sampler, key=jax.random.key(0), tol=args.tol, max_iter=2, method=method, auto=False)
    rows = []
    print(f"{'beta':>6} {'method':>9} {'conv':>5} {'iters':>6} {'seconds':>8} {'loss':>10} {'free energy':>12}")
    for beta in args.betas:
        row = {"beta": beta}
        for method in METHODS:
            start = time.perf_counter()
            solution = solve_deep(data, model.replace(beta=beta), sampler, key=jax.random.key(0), tol=args.tol,
                                  max_iter=args.max_iter, method=method)
            seconds = time.perf_counter() - start
            row[method] = {"converged": solution.converged, "iterations": solution.iterations, "seconds": round(seconds, 2),
                           "loss": solution.loss, "free_energy": solution.free_energy, "ess": solution.diagnostics["ess"],
                           "message": solution.message}
            print(f"{beta:6.3g} {method:>9} {str(solution.converged):>5} {solution.iterations:6d} {seconds:8.2f} "
                  f"{solution.loss:10.6f} {solution.free_energy:12.5f}", flush=True)
        row["seconds_ratio_newton_over_anderson"] = round(row["newton"]["seconds"] / row["anderson"]["seconds"], 2)
        print(f"{'':6} Newton / Anderson seconds: {row['seconds_ratio_newton_over_anderson']:.2f}"
              f"{'' if row['anderson']['converged'] else ' (Anderson did not converge)'}", flush=True)
        rows.append(row)
    io.write_json(Path(args.out), {"quick": args.quick, "points": args.points, "num_samples": args.num_samples,
                                   "tol": args.tol, "max_iter": args.max_iter, "rows": rows,
                                   "meta": io.run_metadata(vars(args), 0)})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
