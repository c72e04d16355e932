"""``python -m experiments.teacher_student``: the run, its results file and figures."""

from __future__ import annotations

import json
import time
import jax
import numpy as np

from fractions import Fraction
from pathlib import Path
from experiments._common import results_file, run_name
from mft_jax.theory.reduced import rubin
from mft_jax.io import run_metadata, write_json
from experiments.teacher_student.config import FULL, NAME, PAPER, network_key, parse
from experiments.teacher_student.figures import make_figures
from experiments.teacher_student.merge import check_merge_target, merge_scale, settings_entries
from experiments.teacher_student.networks import matmul_peak, networks, step_flops
from experiments.teacher_student.summary import attach_gibbs_versus_theory, attach_networks, attach_population, print_table, transition_summary
from experiments.teacher_student.theory import paper_theory, population_theory, sample_check, training_set_theory, width_sweep


# ------------------------------------------------------------------------------------------ main
def main(argv=None) -> dict:
    args = parse(argv)
    if args.merge_into:
        check_merge_target(args.merge_into, args)
    t_start = time.time()
    results = {"meta": {**run_metadata({k: v for k, v in vars(args).items()}), "config": vars(args)},
               "run": "quick" if args.quick else ("full" if (args.scales == FULL["scales"] and args.seeds >= FULL["seeds"]
                 and args.draws >= FULL["draws"] and args.steps >= FULL["steps"]) else
                 f"partial: scales {args.scales}, {args.draws} draws x {args.seeds} seeds x {args.steps} steps"), "paper": PAPER, "scales": {}}
    peak = matmul_peak()
    results["machine"] = {"float32_matmul_peak_flops": peak, "device": str(jax.devices()[0])}
    print(f"float32 matmul peak (2048^2): {peak / 1e9:.1f} GFLOP/s", flush=True)
    for name in args.scales:
        setting = rubin.paper_setting(float(Fraction(name)))
        print(f"scale {name}: {setting}", flush=True)
        entry = {"setting": setting._asdict(), "paper_equations": paper_theory(setting, args.sigma2)}
        if not args.no_population:
            entry["population"] = population_theory(setting, args.sigma2)
        if args.population_sigma2:
            entry["population_extra"] = population_theory(setting, args.population_sigma2)
        written = settings_entries(args, name)
        if network_key(args) in written:
            key = network_key(args)
            entry[key] = networks(setting, args.sigma2, args)
            rate = np.mean([p["prior"]["steps_per_second"] for p in entry[key]["points"]])
            entry[key]["flops_per_second"] = rate * step_flops(setting, args.seeds)
            entry[key]["fraction_of_peak"] = entry[key]["flops_per_second"] / peak
            print(f"  Langevin: {entry[key]['flops_per_second'] / 1e9:.2f} GFLOP/s = "
                  f"{entry[key]['fraction_of_peak']:.2f} of the measured matmul peak (Langevin steps only)", flush=True)
        if "training_set_theory" in written:
            entry["training_set_theory"] = training_set_theory(setting, args.sigma2, args)
        if "sample_check" in written:
            entry["sample_check"] = sample_check(setting, args)
        if network_key(args, "width_sweep") in written:
            entry[network_key(args, "width_sweep")] = width_sweep(setting, args)
        results["scales"][name] = entry
    results["seconds"] = time.time() - t_start
    target = results_file(args.results, NAME, run_name(NAME, args.run, args.quick))
    if args.merge_into:
        target = Path(args.merge_into)
        merged = json.loads(target.read_text())
        for name, entry in results["scales"].items():
            merged["scales"][name] = merge_scale(merged["scales"].get(name, {}), entry, rubin.paper_setting(float(Fraction(name))))
        parts = ["the paper's equations"] + [f"the {k}" for k in ("population", "networks") if not getattr(args, "no_" + k)]
        parts = [f"the {network_key(args)}" if part == "the networks" else part for part in parts]
        parts += ["the population theory at extra sigma^2"] * bool(args.population_sigma2)
        parts += (["the training-set theory"] * bool(args.training_set_theory) + ["the width sweep"] * bool(args.widths)
                  + [f"the {args.sample_check}-point sample check"] * bool(args.sample_check))
        merged["run"] += f"; merged in: scales {', '.join(results['scales'])}: {', '.join(parts)} (--merge-into)"
        merged.setdefault("merged_runs", []).append({"meta": results["meta"], "machine": results["machine"], "seconds": results["seconds"]})
        results = merged
    for entry in results["scales"].values():
        attach_networks(entry)
        attach_population(entry)
        attach_gibbs_versus_theory(entry)
    results["transition"] = transition_summary(results)
    write_json(target, results)
    print_table(results)
    make_figures(results, args.figures)
    return results
