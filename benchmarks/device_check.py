"""One device check: does mft_jax give the same answers on this machine's accelerator, and how fast is it?

    make device-check                                    # = python -m benchmarks.device_check (at most ~8 min)
    python -m benchmarks.device_check --quick            # the CPU-sized subset CI runs (under ~3 min on 2 cores)
    python -m benchmarks.device_check --write-reference  # on a CPU: store the reference solves in the repo

Prints a line per check and writes ``results/device_check/main.json`` (``--quick``: ``results/device_check/quick.json``):

1. the devices, the backend and the versions of jax, jaxlib and its plugins;
2. the measured float32 matmul rate at each precision: ``highest`` (float32-exact, the library's default) and
   ``default`` (the backend's: TF32 on NVIDIA GPUs, bf16 passes on TPU), and their ratio;
3. the precision-sensitive solves: the README's clover (``continuous_xor``, quadrature 32, ``ramp``, 160^2 grid) at
   beta = 50 / 200 / 1000 with default settings: converged, iterations, and the loss against the CPU reference stored
   in ``results/device_check/cpu_reference.json`` (same within 0.5%); ``--quick``: quadrature 6, a 48^2 grid,
   beta = 50 / 200;
4. the solver and trainer test files under pytest;
5. every benchmark's ``--quick`` (each script under benchmarks/ or experiments/ that has one);
6. the throughput figures of ``benchmarks/neuron_throughput.py --quick``.

``--quick`` and ``--write-reference`` skip 4-6 (CI runs the test suite itself).

Each stage runs under what is left of ``--budget`` seconds (default 480); a stage that does not fit is recorded as
skipped, in words. The verdict line says whether every solve converged to the reference loss; the exit status is
1 if one did not (CI runs ``--quick``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the check runs pytest and the benchmarks as child processes on the same accelerator: no process may take 75% of
# its memory up front (JAX's default), each allocates what it uses (inherited by the children)
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from mft_jax.distributed import initialize_from_environment  # noqa: E402

initialize_from_environment()  # a multi-process job: before any import that touches a JAX backend

from mft_jax import TwoLayer, make_data  # noqa: E402
from mft_jax.io import run_metadata, write_json  # noqa: E402
from mft_jax.resources import matmul_peak  # noqa: E402
from mft_jax.theory.samplers.grid import grid_sampler  # noqa: E402
from mft_jax.theory.two_layer import solve  # noqa: E402

REFERENCE = ROOT / "results" / "device_check" / "cpu_reference.json"
LOSS_RTOL = 0.005
FULL = {"quadrature": 32, "grid": 160, "betas": (50.0, 200.0, 1000.0)}
QUICK = {"quadrature": 6, "grid": 48, "betas": (50.0, 200.0)}
TEST_FILES = ("tests/test_solver.py", "tests/test_precision.py", "tests/test_precision_audit.py", "tests/test_foreground.py",
              "tests/test_joint.py", "tests/test_sharding.py", "tests/test_gibbs.py", "tests/test_deep.py")
PACKAGES = ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "jax-cuda12-pjrt", "jax-cuda13-pjrt", "libtpu", "numpy")


class Budget:
    """Seconds left of the whole check; ``stage(cap)`` is what one stage may take."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def stage(self, cap: float) -> float:
        return max(0.0, min(cap, self.left()))


def say(text: str) -> None:
    print(text, flush=True)


def environment() -> dict:
    versions = {}
    for package in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    devices = jax.devices()
    return {"backend": jax.default_backend(), "devices": [str(d) for d in devices],
            "device_kind": devices[0].device_kind, "process_count": jax.process_count(), "versions": versions,
            "python": platform.python_version(), "platform": platform.platform()}


def clover_solve(quadrature: int, grid: int, beta: float) -> dict:
    data = make_data("continuous_xor", quadrature=quadrature)
    model = TwoLayer("ramp", sa2=1.0, sw2=1.0, beta=beta)
    start = time.perf_counter()
    solution = solve(data, model, grid_sampler(grid, 6.0), key=jax.random.key(0))
    return {"converged": bool(solution.converged), "iterations": int(solution.iterations), "loss": float(solution.loss),
            "seconds": time.perf_counter() - start, "message": solution.message}


def solve_key(quadrature: int, grid: int, beta: float) -> str:
    return f"clover_q{quadrature}_grid{grid}_beta{beta:g}"


def solves(sizes: dict, budget: Budget, reference: dict) -> dict:
    rows = {}
    for beta in sizes["betas"]:
        key = solve_key(sizes["quadrature"], sizes["grid"], beta)
        if budget.left() < 20:
            rows[key] = {"skipped": f"{budget.left():.0f} s of the budget left"}
            say(f"  {key}: skipped ({rows[key]['skipped']})")
            continue
        row = clover_solve(sizes["quadrature"], sizes["grid"], beta)
        ref = reference.get(key)
        if ref is not None:
            row["reference_loss"] = ref["loss"]
            row["loss_relative_difference"] = row["loss"] / ref["loss"] - 1
            row["matches_reference"] = bool(row["converged"] and abs(row["loss_relative_difference"]) <= LOSS_RTOL)
        rows[key] = row
        versus = (f"loss {row['loss']:.6g} vs CPU reference {ref['loss']:.6g} ({100 * row['loss_relative_difference']:+.3f}%)"
                  if ref else f"loss {row['loss']:.6g} (no CPU reference stored)")
        say(f"  {key}: converged={row['converged']} in {row['iterations']} iterations, {versus}, {row['seconds']:.1f} s")
    return rows


def run_command(command: list[str], timeout: float) -> dict:
    if timeout < 5:
        return {"command": command, "skipped": "no budget left"}
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        return {"command": command, "returncode": done.returncode, "seconds": time.perf_counter() - start, "tail": tail}
    except subprocess.TimeoutExpired:
        return {"command": command, "returncode": None, "seconds": time.perf_counter() - start, "timed_out": True}


def quick_benchmarks() -> list[str]:
    """The modules of ``benchmarks/`` and ``experiments/`` (scripts and packages) that take ``--quick``, as
    ``python -m`` names."""
    names = []
    for folder in ("benchmarks", "experiments"):
        for path in sorted((ROOT / folder).iterdir()):
            source = path / "__main__.py" if path.is_dir() else path
            if path.name.startswith("_") or path.stem == Path(__file__).stem or source.suffix != ".py" or not source.is_file():
                continue
            text = "".join(p.read_text() for p in (path.glob("*.py") if path.is_dir() else [path]))
            if "--quick" in text:
                names.append(f"{folder}.{path.stem}")
    return names


def neuron_throughput(budget: Budget) -> dict:
    """``benchmarks/neuron_throughput.py --quick`` through its ``main`` (its own JSON, read back)."""
    if budget.left() < 30:
        return {"skipped": f"{budget.left():.0f} s of the budget left"}
    from benchmarks import neuron_throughput as throughput

    out = ROOT / "results" / "neuron_throughput" / "device_check.json"
    argv, sys.argv = sys.argv, ["neuron_throughput.py", "--quick", "--out", str(out)]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            throughput.main()
    except SystemExit as stop:  # argparse refusing --out in a version without it: say so
        return {"error": f"neuron_throughput.main exited with {stop.code}"}
    finally:
        sys.argv = argv
    figures = json.loads(out.read_text())
    keep = ("neuron_updates_per_second", "fraction_of_peak", "matmul_peak_flops", "jax_flop_rate", "gradient_evaluations_per_second_by_block")
    return {k: figures[k] for k in keep if k in figures}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the CPU-sized subset (CI): small solves, no pytest, no benchmarks")
    parser.add_argument("--write-reference", action="store_true", help="store the solves of this run (on a CPU) as the reference")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for the whole check (default 480)")
    parser.add_argument("--out", default=None, help="default results/device_check/main.json (--quick: results/device_check/quick.json)")
    args = parser.parse_args(argv)
    budget = Budget(args.budget)
    sizes = QUICK if args.quick else FULL
    out = Path(args.out) if args.out else ROOT / "results" / "device_check" / ("quick.json" if args.quick else "main.json")
    report = {"meta": run_metadata(vars(args), argv=argv), "quick": args.quick}

    report["environment"] = env = environment()
    say(f"device check on {env['backend']}: {env['devices']}; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))

    size = 1024 if args.quick or env["backend"] == "cpu" else 8192
    rates = {p: matmul_peak(size, precision=p) for p in ("highest", "default")}
    report["matmul"] = {"size": size, "flops_per_second": rates, "default_over_highest": rates["default"] / rates["highest"]}
    say(f"float32 {size}^2 matmul: highest {rates['highest'] / 1e12:.3g} TFLOP/s, default {rates['default'] / 1e12:.3g} TFLOP/s "
        f"(x{rates['default'] / rates['highest']:.2f})")

    reference = json.loads(REFERENCE.read_text())["solves"] if REFERENCE.is_file() else {}
    say("precision-sensitive solves (default settings):")
    report["solves"] = solves(sizes, budget, reference)
    if args.write_reference:
        if env["backend"] != "cpu":
            say("--write-reference: refused, the reference must come from a CPU run")
        else:
            stored = json.loads(REFERENCE.read_text()) if REFERENCE.is_file() else {"solves": {}}
            stored["solves"].update({k: {f: v[f] for f in ("converged", "iterations", "loss")}
                                     for k, v in report["solves"].items() if "loss" in v})
            stored["meta"] = {**report["meta"], "environment": env}
            write_json(REFERENCE, stored)
            say(f"wrote the reference solves to {REFERENCE.relative_to(ROOT)}")

    if args.quick or args.write_reference:
        why = "--quick (CI runs the test suite itself)" if args.quick else "--write-reference (the solves only)"
        report["tests"] = report["benchmarks"] = report["neuron_throughput"] = f"skipped with {why}"
        say(f"pytest, benchmark --quick runs and neuron_throughput: skipped with {why}")
    else:
        python = sys.executable
        files = [f for f in TEST_FILES if (ROOT / f).is_file()]
        report["tests"] = run_command([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files], budget.stage(180))
        say(f"pytest {' '.join(files)}: {report['tests'].get('tail', report['tests'])[-1:]}")
        report["benchmarks"] = {}
        for name in quick_benchmarks():
            if name == "benchmarks.neuron_throughput":
                continue  # below, through its main
            result = run_command([python, "-m", name, "--quick"], budget.stage(60))
            report["benchmarks"][name] = result
            status = result.get("skipped") or ("timed out" if result.get("timed_out") else f"exit {result['returncode']}")
            say(f"  {name} --quick: {status} ({result.get('seconds', 0):.0f} s)")
        report["neuron_throughput"] = figures = neuron_throughput(budget)
        say(f"neuron_throughput --quick: {json.dumps(figures.get('neuron_updates_per_second', figures))}")

    checked = [r for r in report["solves"].values() if "matches_reference" in r]
    report["verdict"] = {
        "solves_converged": all(r.get("converged", False) for r in report["solves"].values() if "loss" in r),
        "solves_match_reference": bool(checked) and all(r["matches_reference"] for r in checked),
        "solves_compared": len(checked),
        "seconds_left_of_budget": budget.left(),
    }
    if not args.write_reference:  # a reference run writes the reference only
        write_json(out, report)  # process 0 only (mft_jax.io)
    say(f"verdict: {report['verdict']}" + ("" if args.write_reference else f"; wrote {out}"))
    verdict = report["verdict"]
    return 0 if args.write_reference or (verdict["solves_converged"] and verdict["solves_match_reference"]) else 1


if __name__ == "__main__":
    sys.exit(main())
