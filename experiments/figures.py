"""`make figures`: redraw figures/*.png of every experiment and speed benchmark from results/NAME/main.json.

For each module in ``BENCHMARKS`` (``experiments.NAME`` or ``benchmarks.NAME``): if it defines
``make_figures(results, outdir)``, load ``results/NAME/main.json`` and redraw its figures; if the JSON
is missing, run the benchmark (``main([])``, which writes it) first. Modules absent from the
checkout or without ``make_figures`` are listed as skipped. Exits 1 if any benchmark failed.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("experiments", "benchmarks")
BENCHMARKS = ("clover", "linear", "teacher_student", "modular_addition", "solver_speed", "neuron_throughput", "deep_digits", "deep_speed", "deep_composition", "modular_grokking")


def load_benchmark(name: str):
    """The module ``experiments.NAME`` or ``benchmarks.NAME``, or None when this checkout has neither."""
    for package in PACKAGES:
        if (ROOT / package / f"{name}.py").is_file() or (ROOT / package / name / "__init__.py").is_file():
            return importlib.import_module(f"{package}.{name}")
    return None


def run_main(module) -> None:
    """``module.main([])`` (the full run); ``main()`` for scripts whose ``main`` takes no arguments."""
    takes_argv = bool(inspect.signature(module.main).parameters)
    status = module.main([]) if takes_argv else module.main()
    if isinstance(status, int) and status != 0:
        raise RuntimeError(f"{module.__name__}.main exited with status {status}")


def redraw(name: str, results_dir: Path, figures_dir: Path, *, run_missing: bool = True) -> tuple[str, list[str]]:
    """``(status, paths)`` for one benchmark: status is redrawn | ran + redrawn | skipped: why."""
    module = load_benchmark(name)
    if module is None:
        return "skipped: not in this checkout", []
    if not callable(getattr(module, "make_figures", None)):
        return "skipped: no make_figures", []
    path = results_dir / name / "main.json"
    status = "redrawn"
    if not path.is_file():
        if not run_missing:
            return f"skipped: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} missing (--no-run)", []
        run_main(module)
        if not path.is_file():
            raise RuntimeError(f"{name}.main([]) ran but wrote no {path}")
        status = "ran + redrawn"
    results = json.loads(path.read_text())
    return status, [str(p) for p in module.make_figures(results, outdir=str(figures_dir))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="redraw only these benchmarks")
    parser.add_argument("--no-run", action="store_true", help="do not run benchmarks whose JSON is missing")
    parser.add_argument("--results", default=str(ROOT / "results"), help="directory of NAME/main.json")
    parser.add_argument("--figures", default=str(ROOT / "figures"), help="directory for the PNGs")
    args = parser.parse_args(argv)
    results_dir, figures_dir = Path(args.results), Path(args.figures)
    figures_dir.mkdir(parents=True, exist_ok=True)
    rows, failed = [], False
    for name in args.only or BENCHMARKS:
        start = time.perf_counter()
        try:
            status, paths = redraw(name, results_dir, figures_dir, run_missing=not args.no_run)
        except Exception as error:  # noqa: BLE001 - report every benchmark, then fail
            traceback.print_exc()
            status, paths, failed = f"FAILED: {type(error).__name__}: {error}", [], True
        rows.append((name, status, f"{time.perf_counter() - start:.0f}", paths))
    width = max(len(name) for name, *_ in rows)
    print(f"{'benchmark':<{width}}  {'time (s)':>8}  status / figures")
    for name, status, seconds, paths in rows:
        print(f"{name:<{width}}  {seconds:>8}  {status}")
        for path in paths:
            print(f"{'':<{width}}  {'':>8}    {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
