"""The clover solve under emulated reduced-precision matmuls on CPU, at each precision setting (issue 26).

    python -m experiments.precision_emulation [--beta 200] [--quadrature 6] [--grid 48]

Emulates an accelerator's default float32 matmul on CPU (tests/precision_emulation.py: every ``dot_general`` below
``HIGHEST`` gets its operands rounded to TF32's 10 or bf16's 7 mantissa bits) and runs the default clover solve at
the library's default precision (``"highest"``) and at the backend's (``"fast"``). Writes
``results/precision_emulation/main.json`` (``beta<beta>.json`` for another beta) with the command.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax

from mft_jax import TwoLayer, make_data
from mft_jax.io import run_metadata, write_json
from mft_jax.precision import matmul_precision
from mft_jax.theory.samplers.grid import grid_sampler
from mft_jax.theory.two_layer import solve
from tests.precision_emulation import BF16_BITS, FLOAT32_MANTISSA, TF32_BITS, emulate  # the CPU emulation the suite uses

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beta", type=float, default=200.0)
    parser.add_argument("--quadrature", type=int, default=6)
    parser.add_argument("--grid", type=int, default=48)
    args = parser.parse_args()
    data = make_data("continuous_xor", quadrature=args.quadrature)
    model = TwoLayer("ramp", sa2=1.0, sw2=1.0, beta=args.beta)
    rows = []
    for emulated, bits in (("float32", FLOAT32_MANTISSA), ("tf32", TF32_BITS), ("bf16", BF16_BITS)):
        for setting in ("highest", "fast"):
            if emulated == "float32" and setting == "fast":
                continue  # no rounding to emulate: the same as highest on CPU
            start = time.perf_counter()
            with emulate(bits), matmul_precision(setting):
                solution = solve(data, model, grid_sampler(args.grid, 6.0), key=jax.random.key(0))
            row = {"matmuls": emulated, "precision": setting, "converged": bool(solution.converged),
                   "iterations": int(solution.iterations), "loss": float(solution.loss),
                   "final_change": float(solution.history["change"][-1]), "seconds": time.perf_counter() - start}
            rows.append(row)
            print(row, flush=True)
    exact = rows[0]["loss"]
    for row in rows:
        row["loss_relative_to_exact"] = row["loss"] / exact - 1
    out = ROOT / "results" / "precision_emulation" / ("main.json" if args.beta == 200.0 else f"beta{args.beta:g}.json")
    write_json(out, {"problem": {"task": "continuous_xor", "quadrature": args.quadrature, "activation": "ramp",
                                 "beta": args.beta, "grid": args.grid, "solve": "defaults"},
                     "rows": rows, "meta": run_metadata(vars(args), 0)})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
