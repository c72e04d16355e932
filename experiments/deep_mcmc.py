"""The feature-learning regime of the deep theory: importance against resample-move (MCMC) layer laws.

Three-layer nets on the compositional task of ``experiments/deep_composition.py`` (``xor_product``,
y = (x1 x2)(x3 x4), d = 4, P training points, sa2 = sW2 = sw2 = 1):

1. erf (bounded: every layer law is normalizable; odd, so the network function is odd and cannot fit this
   even target: a test of the sampler in a strongly tilted regime, not of composition) at each beta: ``importance_layers(M)`` (fixed prior
   draws) and ``mcmc_layers(M)`` (particles moved to the laws at the iterate by tempered MALA, over
   ``--keys`` seeds), default solver settings; per solve: converged, iterations, refreshes, seconds, the
   smallest layer ESS, train loss, test loss on fresh points (``DeepSolution.predict``), free energy;
   and the NNGP of the same depth.
2. gelu (growth 1: a layer law is normalizable only while ``1 + min_u m(u) > 0``,
   ``mft_jax.theory.samplers.layers.asymptotic_margin``) by continuation in beta with ``mcmc_layers``: the margin of each
   layer at each fixed point, until no normalizable fixed point is found.

Writes results/deep_mcmc.json. ``--quick``: P = 32, erf at beta 8 and 20, 1 seed, gelu 8 -> 13.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np

from mft_jax import io
from mft_jax.theory.deep import Deep, deep_nngp_predict, importance_layers, mcmc_layers, solve_deep
from mft_jax.tasks import get_task, make_data

ROOT = Path(__file__).resolve().parent.parent


def half_mse(f, y) -> float:
    return float(0.5 * np.mean((np.asarray(f, np.float64) - np.asarray(y, np.float64)) ** 2))


def summary(solution, seconds, test) -> dict:
    return {"converged": solution.converged, "iterations": solution.iterations, "seconds": round(seconds, 2),
            "refreshes": solution.diagnostics["refreshes"], "ess": solution.diagnostics["ess"],
            "train_loss": solution.loss, "test_loss": half_mse(solution.predict(test.x), test.y) if solution.converged else None,
            "free_energy": solution.free_energy, "message": solution.message,
            "normalizability_margin": solution.diagnostics.get("normalizability_margin")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="P = 32, erf beta 8 and 20, 1 seed; gelu 8 -> 13")
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--num-samples", type=int, default=2**13)
    parser.add_argument("--betas", type=float, nargs="*", default=[13.0, 40.0])
    parser.add_argument("--keys", type=int, default=3)
    parser.add_argument("--gelu-betas", type=float, nargs="*", default=[8.0, 13.0, 18.0, 20.0, 22.0, 24.0])
    parser.add_argument("--test-points", type=int, default=1000)
    parser.add_argument("--out", default=str(ROOT / "results" / "deep_mcmc" / "main.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.points, args.betas, args.keys, args.gelu_betas, args.test_points = 32, [8.0, 20.0], 1, [8.0, 13.0], 200
    print(f"deep_mcmc: devices: {', '.join(io.devices())}", flush=True)
    data = make_data("xor_product", n_train=args.points, seed=0)
    test = get_task("xor_product").sample(jax.random.key(99), args.test_points)
    rows = []
    print(f"{'beta':>5} {'sampler':>12} {'conv':>5} {'its':>4} {'refr':>4} {'sec':>6} {'min ESS':>8} {'train':>8} {'test':>8} {'F':>9}")
    for beta in args.betas:
        model = Deep("erf", depth=3, sa2=1.0, sW2=1.0, sw2=1.0, beta=beta)
        row = {"beta": beta, "nngp": {"test_loss": half_mse(deep_nngp_predict(model, data, test.x), test.y)}}
        runs = [("importance", importance_layers(args.num_samples), 0)]
        runs += [(f"mcmc key {k}", mcmc_layers(args.num_samples), k) for k in range(args.keys)]
        for name, sampler, k in runs:
            start = time.perf_counter()
            solution = solve_deep(data, model, sampler, key=jax.random.key(k), tol=1e-5, max_iter=60)
            row[name] = summary(solution, time.perf_counter() - start, test)
            r = row[name]
            print(f"{beta:5.3g} {name:>12} {str(r['converged']):>5} {r['iterations']:4d} {r['refreshes']:4d} {r['seconds']:6.1f} "
                  f"{min(r['ess']):8.0f} {r['train_loss']:8.5f} {r['test_loss'] if r['test_loss'] is not None else float('nan'):8.5f} "
                  f"{r['free_energy']:9.4f}", flush=True)
        mc = [row[f"mcmc key {k}"] for k in range(args.keys) if row[f"mcmc key {k}"]["converged"]]
        if mc:
            for field in ("train_loss", "test_loss", "free_energy"):
                values = np.array([r[field] for r in mc])
                row[f"mcmc_{field}"] = {"mean": float(values.mean()),
                                        "sd_over_keys": float(values.std(ddof=1)) if len(values) > 1 else None, "keys": len(values)}
        print(f"{'':5} NNGP test loss {row['nngp']['test_loss']:.5f}", flush=True)
        rows.append(row)
    gelu, init = [], "gp"
    for beta in args.gelu_betas:
        model = Deep("gelu", depth=3, sa2=1.0, sW2=1.0, sw2=1.0, beta=beta)
        start = time.perf_counter()
        try:
            solution = solve_deep(data, model, mcmc_layers(args.num_samples), key=jax.random.key(0), init=init, tol=1e-5,
                                  max_iter=40, auto=False)
            entry = {"beta": beta, **summary(solution, time.perf_counter() - start, test)}
        except Exception as error:  # noqa: BLE001  (recorded: the end of the normalizable branch)
            entry = {"beta": beta, "converged": False, "message": f"{type(error).__name__}: {error}"}
        gelu.append(entry)
        print(f"gelu beta {beta:5.3g}: converged {entry['converged']}, margins {entry.get('normalizability_margin')}, "
              f"train loss {entry.get('train_loss')}; {entry['message'][:160]}", flush=True)
        if not entry["converged"]:
            break
        init = solution.state
    io.write_json(Path(args.out), {"quick": args.quick, "points": args.points, "num_samples": args.num_samples,
                                   "test_points": args.test_points, "erf": rows, "gelu_continuation": gelu,
                                   "meta": io.run_metadata(vars(args), 0)})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
