"""The teacher-student experiment's settings: the paper's numbers, the full and quick runs, the command line."""

from __future__ import annotations

import argparse
import numpy as np

from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]


NAME = "teacher_student"


PAPER = {"u_c": 30.2, "sigma2_c": 0.18}


Q_BINS = np.linspace(-1.6, 1.6, 81)


FULL = {"scales": ["1/8", "1/2", "1", "2"], "sigma2": [0.10, 0.15, 0.17, 0.18, 0.19, 0.20, 0.25, 0.30],
        "seeds": 4, "draws": 4, "steps": 40000, "step_size": 0.01, "test_points": 3000,
        "theory_samples": 100_000, "theory_keys": 2, "width_sigma2": [0.10, 0.18],
        "theory_mcmc": {"chains": 1024, "steps": 60, "warmup": 30, "damping": 0.05, "max_iter": 60, "refresh": 4}}


QUICK = {"scales": ["1/8"], "sigma2": [0.12, 0.18, 0.30], "seeds": 2, "draws": 1, "steps": 600, "step_size": 0.01,
         "test_points": 3000, "theory_samples": 20_000, "theory_keys": 2, "width_sigma2": [0.18],
         "theory_mcmc": {"chains": 256, "steps": 20, "warmup": 10, "damping": 0.05, "max_iter": 25, "refresh": 2}}


def parse(argv=None):
    p = argparse.ArgumentParser(prog="python -m experiments.teacher_student", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="scale 1/8, three sigma^2, short network runs (< 5 min on 2 cores)")
    p.add_argument("--scales", nargs="+", default=None, help="alpha = beta values, e.g. 1/8 1/2 1 2")
    p.add_argument("--sigma2", nargs="+", type=float, default=None, help="noise variances")
    p.add_argument("--network-scales", nargs="+", default=None, help="scales that get networks (default: --scales)")
    p.add_argument("--seeds", type=int, default=None, help="init seeds per data draw (vmapped)")
    p.add_argument("--draws", type=int, default=None, help="training-set draws")
    p.add_argument("--steps", type=int, default=None, help="Langevin steps per run")
    p.add_argument("--step-size", type=float, default=None)
    p.add_argument("--readout-gibbs", type=int, default=None, metavar="K",
                   help="networks: an exact Gibbs draw of the readouts before every K-th Langevin step (the same posterior, "
                        "no slow readout relaxation; mft_jax.train.gibbs). Default: plain Langevin")
    p.add_argument("--no-networks", action="store_true")
    p.add_argument("--population-sigma2", nargs="+", type=float, default=None, metavar="S2",
                   help="extra sigma^2 values for the exact population theory only (kept as population_extra; they refine "
                        "its d -> inf extrapolation over the scales, large_d_limit)")
    p.add_argument("--no-population", action="store_true")
    p.add_argument("--runs", default=str(ROOT / "runs" / NAME), help="checkpoint directory")
    p.add_argument("--results", default=str(ROOT / "results"), help="results directory (the run writes teacher_student/RUN.json in it)")
    p.add_argument("--run", default=None, help="the run's name (default main, or quick with --quick)")
    p.add_argument("--figures", default=str(ROOT / "figures"))
    p.add_argument("--training-set-theory", action="store_true",
                   help="exact infinite-width theory on each network training set (finite n), next to its networks")
    p.add_argument("--theory-samples", type=int, default=None,
                   help="importance draws from the prior for the start of the training-set theory (the first sigma^2 of a draw)")
    p.add_argument("--theory-keys", type=int, default=None, help="independent MCMC solves per point (their spread: the error)")
    p.add_argument("--theory-chains", type=int, default=None, help="MCMC chains of the training-set theory (default 1024; quick 256)")
    p.add_argument("--theory-damping", type=float, default=None, help="damping of the MCMC fixed-point iteration (default 0.05)")
    p.add_argument("--widths", nargs="+", type=int, default=None,
                   help="width sweep: network widths N' with the same TwoLayer model (sa2, sw2, beta), e.g. 88 176 352")
    p.add_argument("--width-sigma2", nargs="+", type=float, default=None, help="sigma^2 values of the width sweep")
    p.add_argument("--width-draw", type=int, default=0, help="training-set draw of the width sweep")
    p.add_argument("--sample-check", type=int, default=None, metavar="POINTS",
                   help="the training-set solve on a fresh sample of POINTS points at the same model (checks the MCMC route against the population theory)")
    p.add_argument("--sample-check-sigma2", nargs="+", type=float, default=[0.18])
    p.add_argument("--merge-into", default=None, metavar="JSON",
                   help="update this results file's scales with what this run computed, point by point in sigma^2 (keeping the "
                        "rest; refused if the file's points of that kind come from a run with other settings), and write it back")
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    for key in ("scales", "sigma2", "seeds", "draws", "steps", "step_size"):
        if getattr(args, key) is None:
            setattr(args, key, base[key])
    args.test_points = base["test_points"]
    args.theory_samples = args.theory_samples or base["theory_samples"]
    args.theory_keys = args.theory_keys or base["theory_keys"]
    args.theory_mcmc = dict(base["theory_mcmc"])
    for key in ("chains", "damping"):
        if getattr(args, "theory_" + key) is not None:
            args.theory_mcmc[key] = getattr(args, "theory_" + key)
    args.width_sigma2 = args.width_sigma2 or base["width_sigma2"]
    args.network_scales = args.network_scales or args.scales
    return args


def network_key(args, base="networks") -> str:
    """Where a scale keeps its networks (``base``: ``networks`` or ``width_sweep``): as ``base`` (plain Langevin) or
    ``base + "_gibbs"`` (Langevin with exact Gibbs draws of the readouts, ``--readout-gibbs``): the same posterior by
    two samplers, kept side by side."""
    return base if args.readout_gibbs is None else base + "_gibbs"


# ------------------------------------------------------------------------------------------ merging runs
SETTING_NAMES = ("sampler", "steps", "step_size", "seeds", "draws", "widths", "draw", "num_points")  # run_settings' fields


def run_settings(args) -> dict:
    """The run-level settings of each per-scale entry this run writes (written into the entry): the points of two
    runs can be merged only where these agree."""
    sampler = "Langevin" if args.readout_gibbs is None else f"Langevin with an exact Gibbs draw of the readouts every {args.readout_gibbs} steps"
    langevin = {"steps": args.steps, "step_size": args.step_size, "seeds": args.seeds}
    return {network_key(args): {"sampler": sampler, **langevin, "draws": args.draws},
            "training_set_theory": {"sampler": {"start": {"name": "importance", "num_samples": args.theory_samples},
                                                "mcmc": args.theory_mcmc, "keys": args.theory_keys}},
            "sample_check": {"num_points": args.sample_check},
            network_key(args, "width_sweep"): {"widths": list(args.widths or []), "draw": args.width_draw, **langevin}}
