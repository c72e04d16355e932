"""Every generated table and number of the docs, written from ``results/**/*.json`` between markers.

A document marks a generated span ``<!-- table:NAME -->`` ... ``<!-- /table:NAME -->`` (a table on its own lines,
or a number inside a sentence); ``python -m experiments.report`` rewrites every span of ``README.md``,
``docs/index.md`` and ``docs/results/*.md`` from the results files (``value:NAME`` spans: one number, from ``VALUES``), and ``--check`` changes nothing and exits 1 when a span is stale, a
span names no generator, or a results file records no command (``meta.command``). Only interpretation is
hand-written; a number in a results page comes from here. Tables group runs at build time: no results file is
rewritten."""

from experiments.report.format import MARKER, Derived, Results, Value, lookup, span, _by_sigma2, _z, fixed, num, pm, table, z_score
from experiments.report.tables import CLOVER_METRICS, _composition_rows, _composition_z, _start_refusal, clover_beta_sweep, clover_foreground, clover_grid_check, clover_foreground_ratio, clover_networks, deep_composition_erf40, deep_composition_kernels, deep_composition_losses, deep_composition_step, deep_composition_z, deep_digits_layers, deep_digits_widths, deep_mcmc_erf, deep_mcmc_erf_keys, deep_mcmc_gelu, deep_solver_methods, deep_speed, deep_speed_exponent, linear_networks, linear_sweep, modular_grokking_fractions, neuron_throughput, neuron_throughput_ratio, solver_speed
from experiments.report.modular import ma_fig3, ma_local_slopes, ma_loss_timing, ma_networks, ma_step_shift, ma_width_sweep
from experiments.report.teacher_student import _ts_gibbs, _ts_points, ts_both_predictions, ts_d_to_inf, ts_gibbs_eighth, ts_gibbs_half, ts_half_theory, ts_scale1_f3, ts_scale1_gibbs, ts_scale8_agreement, ts_scale8_components, ts_scale8_first_run_draws, ts_scale8_first_run_mean, ts_scale8_run_length, ts_scale8_starts, ts_scale8_width_sweep, ts_starts, ts_transition
from experiments.report.dynamics import DYNAMICS_VALUES, dynamics_extrapolated, dynamics_grokking, dynamics_grokking_checks, dynamics_headline, dynamics_networks, dynamics_theory
from experiments.report.index import EXPERIMENTS, GENERATORS, _grok_accuracy, experiments_index
from experiments.report.prose import PENDING, SETTINGS, checked, typed_numbers
from experiments.report.values import VALUES
from experiments.report.run import DOCUMENTS, ROOT, documents, main, missing_commands, render
