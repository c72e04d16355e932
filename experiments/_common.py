"""What every experiment shares: the command line (``--quick``, ``--config``, ``--results``, ``--figures``) and
where a run's results file goes (``results/EXPERIMENT/RUN.json``, one immutable file per run)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mft_jax.io import devices

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
CONFIGS = ROOT / "experiments" / "configs"


def run_name(experiment: str, name: str | None = None, quick: bool = False) -> str:
    """The run's file stem: ``name`` without a leading ``EXPERIMENT_`` (``clover_demo`` -> ``demo``), ``main`` for
    the experiment's own name or no name, ``quick`` for a ``--quick`` run without a name."""
    if not name or name == experiment:
        return "quick" if quick and not name else "main"
    return name[len(experiment) + 1:] if name.startswith(experiment + "_") else name


def results_file(results_dir: str | Path, experiment: str, run: str) -> Path:
    """``results_dir/EXPERIMENT/RUN.json``: the file one run writes (and no other run rewrites)."""
    return Path(results_dir) / experiment / f"{run}.json"


def parse(name: str, description: str, argv=None) -> argparse.Namespace:
    """Arguments of ``python -m experiments.NAME``; ``args.config`` resolved to ``experiments/configs/NAME[_quick].toml``
    by default and ``args.out`` to ``RESULTS/NAME/{main|quick|RUN}.json``."""
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{name}", description=description)
    parser.add_argument("--quick", action="store_true", help=f"reduced run (experiments/configs/{name}_quick.toml)")
    parser.add_argument("--config", default=None, help=f"TOML config (default experiments/configs/{name}.toml)")
    parser.add_argument("--run", default=None, help="the run's name: writes RESULTS/NAME/RUN.json (default main, or quick)")
    parser.add_argument("--results", default=str(RESULTS), help=f"results directory (the run writes {name}/RUN.json in it)")
    parser.add_argument("--figures", default=str(ROOT / "figures"), help="directory for the PNGs")
    args = parser.parse_args(argv)
    args.config = args.config or str(CONFIGS / f"{name}{'_quick' if args.quick else ''}.toml")
    args.out = results_file(args.results, name, run_name(name, args.run, args.quick))
    print(f"{name}: devices: {', '.join(devices())}", flush=True)
    return args
