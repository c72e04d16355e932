"""The experiments index (README and the site's home page) and the registry of every generator by name."""

from __future__ import annotations

from experiments.report.dynamics import GROKKING_P23, GROKKING_P23_CHECKS, GROKKING_P23_SWEEP, dynamics_extrapolated, dynamics_grokking, dynamics_grokking_checks, dynamics_headline, dynamics_minibatch, dynamics_networks, dynamics_theory
from experiments.report.format import Results, table
from experiments.report.tables import clover_beta_sweep, clover_foreground, clover_grid_check, clover_foreground_ratio, clover_networks, deep_composition_erf40, deep_composition_kernels, deep_composition_losses, deep_composition_step, deep_composition_z, deep_digits_layers, deep_digits_widths, deep_mcmc_erf, deep_mcmc_erf_keys, deep_mcmc_gelu, deep_solver_methods, deep_speed, deep_speed_exponent, linear_networks, linear_sweep, modular_grokking_fractions, neuron_throughput, neuron_throughput_ratio, solver_speed
from experiments.report.grokking import GROKKING_TABLES
from experiments.report.modular import ma_fig3, ma_fig3_readings, ma_loss_timing, ma_networks, ma_width_sweep, mg_checks, mg_full_table_networks, mg_theory, mg_theory_start, mg_width_trend
from experiments.report.teacher_student import ts_both_predictions, ts_gibbs_eighth, ts_gibbs_half, ts_half_theory, ts_scale1_f3, ts_scale1_gibbs, ts_scale8_agreement, ts_scale8_components, ts_scale8_first_run_draws, ts_scale8_first_run_mean, ts_scale8_run_length, ts_scale8_starts, ts_scale8_width_sweep, ts_starts, ts_transition


EXPERIMENTS = [
    # name, question, command, runtime, headline(r), page
    ("clover", "Does the theory's neuron law match trained networks' neurons on the seed's clover?", "python -m experiments.clover", "~14 min",
     lambda r: "N = {width}: sliced W2 {d:.3f} vs noise floor {f:.3f}".format(width=r("clover/main")["networks"][-1]["width"],
                                                                           d=r("clover/main")["networks"][-1]["summary"]["sliced_wasserstein"]["distance"],
                                                                           f=r("clover/main")["networks"][-1]["summary"]["sliced_wasserstein"]["noise_floor"])),
    ("linear", "Does the solver reproduce the exact linear-network theory?", "python -m experiments.linear", "~9 min",
     lambda r: "grid solve within {:.1g} (relative) of the exact loss at every beta".format(
         max(abs(p["grid"]["loss"] - p["exact"]["loss"]) / p["exact"]["loss"] for p in r("linear/main")["sweep"]))),
    ("teacher_student", "Where is Rubin et al.'s erf teacher-student transition, in theory and in networks?", "python -m experiments.teacher_student", "~4 min (quick); hours in full",
     lambda r: "scale-1 networks: smooth curve, midpoint sigma^2 = {:.3f}".format(r("teacher_student/main")["transition"]["networks"]["1"]["sigma2_c"])),
    ("modular_addition", "Do Langevin networks on modular addition reach the exact per-mode theory?", "python -m experiments.modular_addition", "~1 h",
     lambda r: "P = 23: a = {:.3f} at N = {} vs theory {:.3f}".format(r("modular_addition/main")["width_sweep"]["points"][-1]["a"],
                                                                   r("modular_addition/main")["width_sweep"]["points"][-1]["width"],
                                                                   r("modular_addition/main")["width_sweep"]["theory"]["a"])),
    ("modular_grokking", "Is grokking on part of the table the infinite-width theory's?", "python -m experiments.modular_grokking", "~100 min",
     lambda r: "P = 23 networks' held-out accuracy at fraction 0.9: {:.2f}".format(_grok_accuracy(r, "23", 0.9))),
    ("clover_beta_sweep", "Does the default solve converge from beta = 1 to 1000?", "python -m experiments.clover_beta_sweep", "~1 min",
     lambda r: "{} of {} betas converged and resolved".format(sum(p["converged"] and p["resolved"] for p in r("clover_beta_sweep/main")["rows"]),
                                                          len(r("clover_beta_sweep/main")["rows"]))),
    ("deep_digits", "Do deep (two hidden layers) theory kernels match networks on real data?", "python -m experiments.deep_digits", "~4 min on an H100",
     lambda r: "kernel alignment {:.6f} / {:.6f} (layers 1 / 2)".format(*[r("deep_digits/main")["alignment"][k] for k in ("layer1", "layer2")])),
    ("deep_composition", "Do two- and three-layer theories match networks on a compositional task?", "python -m experiments.deep_composition", "~5 min",
     lambda r: "depth-2 train loss: theory {:.4f}, networks {:.4f}".format(r("deep_composition/main")["losses"]["mft_depth2"]["train"],
                                                                           r("deep_composition/main")["losses"]["networks_depth2"]["train"])),
    ("deep_mcmc", "Can resample-move MCMC reach the deep feature-learning regime?", "python -m experiments.deep_mcmc", "~12 min",
     lambda r: "erf, beta = 40: min ESS {:.0f} of 8192".format(min(min(row[k]["ess"]) for row in r("deep_mcmc/main")["erf"] if row["beta"] == 40.0
                                                                     for k in row if k.startswith("mcmc key")))),
    ("dynamics", "Does the theory of the whole training run (loss curves, neuron laws in time) match Langevin networks?", "python -m experiments.dynamics", "~10 min",
     dynamics_headline),
]


def _grok_accuracy(r: Results, modulus: str, fraction: float) -> float:
    net = r("modular_grokking/main")["networks"][modulus]
    return net["test_accuracy"][net["fractions"].index(fraction)]


def experiments_index(r: Results, pages: str = "docs/results/") -> str:
    rows = []
    for name, question, command, runtime, headline in EXPERIMENTS:
        rows.append([question, f"`{command}`", runtime, headline(r), f"[{name}]({pages}{name}.md)"])
    return table(["question", "command", "runtime", "headline (generated)", "page"], rows)


GENERATORS = {
    "experiments": experiments_index,
    "experiments-site": lambda r: experiments_index(r, pages="results/"),
    "clover_networks": clover_networks,
    "clover_foreground": clover_foreground,
    "clover_foreground_ratio": clover_foreground_ratio,
    "linear_sweep": linear_sweep,
    "linear_networks": linear_networks,
    "clover_beta_sweep": clover_beta_sweep,
    "clover_grid_check": clover_grid_check,
    "solver_speed": solver_speed,
    "neuron_throughput": neuron_throughput,
    "neuron_throughput_ratio": neuron_throughput_ratio,
    "deep_digits_layers": deep_digits_layers,
    "deep_digits_widths": deep_digits_widths,
    "deep_composition_losses": deep_composition_losses,
    "deep_composition_kernels": deep_composition_kernels,
    "deep_composition_kernels_erf40": lambda r: deep_composition_kernels(r, ("erf40_depth2_long", "erf40_depth3_long")),
    "deep_composition_z": deep_composition_z,
    "deep_composition_step": deep_composition_step,
    "deep_composition_erf40": deep_composition_erf40,
    "deep_speed": deep_speed,
    "deep_mcmc_erf": deep_mcmc_erf,
    "deep_mcmc_erf_keys": deep_mcmc_erf_keys,
    "deep_mcmc_gelu": deep_mcmc_gelu,
    "deep_solver_methods": deep_solver_methods,
    "deep_speed_exponent": deep_speed_exponent,
    "modular_grokking_fractions": modular_grokking_fractions,
    "ma_fig3": ma_fig3,
    "ma_fig3_readings": ma_fig3_readings,
    "mg_theory": mg_theory,
    "mg_width_trend": mg_width_trend,
    "mg_full_table_networks": mg_full_table_networks,
    "mg_theory_start": mg_theory_start,
    "mg_checks": mg_checks,
    **GROKKING_TABLES,
    "ma_networks": ma_networks,
    "ma_width_sweep": ma_width_sweep,
    "ma_loss_timing": ma_loss_timing,
    "ts_scale8_components": ts_scale8_components,
    "ts_scale8_starts": ts_scale8_starts,
    "ts_scale8_agreement": ts_scale8_agreement,
    "ts_scale8_width_sweep": ts_scale8_width_sweep,
    "ts_scale8_first_run_draws": ts_scale8_first_run_draws,
    "ts_scale8_first_run_mean": ts_scale8_first_run_mean,
    "ts_scale8_run_length": ts_scale8_run_length,
    "ts_half_theory": ts_half_theory,
    "ts_gibbs_eighth": ts_gibbs_eighth,
    "ts_gibbs_half": ts_gibbs_half,
    "ts_both_predictions": ts_both_predictions,
    "ts_scale1_gibbs": ts_scale1_gibbs,
    "ts_scale1_f3": ts_scale1_f3,
    "ts_starts": ts_starts,
    "ts_transition": ts_transition,
    "dynamics_networks": dynamics_networks,
    "dynamics_theory": dynamics_theory,
    "dynamics_extrapolated": dynamics_extrapolated,
    "dynamics_grokking": dynamics_grokking,
    "dynamics_grokking_checks": dynamics_grokking_checks,
    "dynamics_grokking_p23": lambda r: dynamics_grokking(r, GROKKING_P23),
    "dynamics_grokking_p23_checks": lambda r: dynamics_grokking_checks(r, GROKKING_P23_CHECKS),
    "dynamics_grokking_p23_sweep": lambda r: dynamics_grokking(r, GROKKING_P23_SWEEP),
    "dynamics_minibatch": dynamics_minibatch,
}
