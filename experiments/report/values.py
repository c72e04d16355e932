"""Inline generated numbers: ``<!-- value:NAME -->0.52<!-- /value:NAME -->`` inside a sentence of the docs.

Each NAME is one entry of ``VALUES``: a results run, a key path into its JSON and a format (``format.Value``), or a
function of the results (``format.Derived``, or a function returning the text) for a number computed from several
keys (a ratio, a relative error, a range). The modular pages' entries live in ``modular.MODULAR_VALUES``, the
teacher-student page's in ``teacher_student.TS_VALUES``, the training-dynamics page's in ``dynamics.DYNAMICS_VALUES``."""

from __future__ import annotations

from typing import Callable

from experiments.report.dynamics import DYNAMICS_VALUES
from experiments.report.format import Derived, Results, Value, span as _span
from experiments.report.grokking import GROKKING_VALUES
from experiments.report.modular import MODULAR_VALUES
from experiments.report.teacher_student import TS_VALUES


def _trailing_within(history, rel: float) -> int:
    """How many of the last entries of ``history`` lie within ``rel`` (relative) of the last one."""
    last, n = history[-1], 0
    for h in reversed(history):
        if abs(h - last) > rel * abs(last):
            break
        n += 1
    return n


def _nngp_factor(r: Results, layer: str) -> float:
    m = r("deep_digits/main")["mean_sq_entries"][layer]
    return m["theory"] / m["nngp"]


def _erf(r: Results, beta: float) -> dict:
    return next(row for row in r("deep_mcmc/main")["erf"] if row["beta"] == beta)


def _gelu_edge(r: Results) -> float:
    """beta where the line through the last two converged layer-2 margins of the gelu continuation reaches 0."""
    (b0, m0), (b1, m1) = [(g["beta"], g["normalizability_margin"][-1]) for g in r("deep_mcmc/main")["gelu_continuation"] if g["converged"]][-2:]
    return b1 + m1 * (b1 - b0) / (m0 - m1)


def _clover_fits(r: Results):
    from experiments.report.tables import CLOVER_METRICS

    return [((key, label), r("clover/main")["fits"][key]) for key, label in CLOVER_METRICS]


def _radius(r: Results, beta: float, decimals: int) -> str:
    """``|w|`` mean +- sd of the law at ``beta`` from the default start (the first grid-check row at that beta)."""
    p = next(p for p in r("clover/grid_check")["rows"] if p["beta"] == beta)
    return f"{p['radius_mean']:.{decimals}f} +- {p['radius_sd']:.{decimals}f}"


def _spread(r: Results, beta: float, key: str) -> float:
    from experiments.report.tables import clover_grid_spread

    return clover_grid_spread(r, beta, key)


def _dc_ratio(r: Results, run: str, depth: str, layer: str, key: str, over: str = "noise_floor") -> float:
    """A layer's kernel distance ``key`` over its distance ``over`` (deep composition run ``run``)."""
    dist = r(f"deep_composition/{run}")["layers"][depth][layer]["distance"]
    return dist[key] / dist[over]


def _dc_test_pair(r: Results, depth: int) -> str:
    losses = r("deep_composition/main")["losses"]
    return f"{losses[f'mft_depth{depth}']['test']:.4f} vs {losses[f'gp_depth{depth}']['test']:.4f}"


def _dc_gap(r: Results, run: str, depth: int, split: str) -> str:
    """``|networks - theory|`` of one loss and its size in the networks' standard errors."""
    losses = r(f"deep_composition/{run}")["losses"]
    net, mft = losses[f"networks_depth{depth}"], losses[f"mft_depth{depth}"]
    gap = abs(net[split] - mft[split])
    return f"{gap:.4f} (depth {depth}, {gap / net[f'{split}_sem']:.1f} s.e.)"


def _dc_gp_gap(r: Results, run: str, depth: int) -> float:
    losses = r(f"deep_composition/{run}")["losses"]
    return abs(losses[f"gp_depth{depth}"]["test"] - losses[f"mft_depth{depth}"]["test"])


def _dc_excess(r: Results, run: str, depth: int) -> float:
    losses = r(f"deep_composition/{run}")["losses"]
    return losses[f"networks_depth{depth}"]["train"] / losses[f"mft_depth{depth}"]["train"] - 1


def _dc_train(r: Results, run: str, depth: int) -> str:
    net = r(f"deep_composition/{run}")["losses"][f"networks_depth{depth}"]
    return f"{net['train']:.4f} ± {net['train_sem']:.4f}"


def _gelu_last(r: Results) -> dict:
    g = [g for g in r("deep_mcmc/main")["gelu_continuation"] if g["converged"]][-1]
    return {"m": g["normalizability_margin"][-1], "b": g["beta"]}


VALUES: dict[str, Callable[[Results], str]] = {
    # linear
    "linear_g_infinity": Value("linear/main", "g_infinity", ".3f"),
    "linear_networks_num_seeds": Value("linear/main", "config.benchmark.num_seeds", "d"),
    # solver_speed
    "ss_load_average": Value("solver_speed/main", "load_average_1min_at_end", ".2f"),
    "ss_damped_change": Value("solver_speed/main", ("beta_200", "damped_0.5", "change_history", -1), ".3f"),
    "ss_damped_flat": Derived(lambda r: _trailing_within(r("solver_speed/main")["beta_200"]["damped_0.5"]["change_history"], 0.01), "d"),
    "ss_damped_iterations": Value("solver_speed/main", ("beta_200", "damped_0.5", "iterations"), "d"),
    "ss_newton_iterations": Value("solver_speed/main", "beta_200.newton.iterations", "d"),
    "ss_newton_seconds": Value("solver_speed/main", "beta_200.newton.seconds", ".1f"),
    "ss_newton_changes": lambda r: ", ".join(f"{c:.2g}" for c in r("solver_speed/main")["beta_200"]["newton"]["change_history"]),
    "ss_newton_ess": Value("solver_speed/main", "beta_200.newton.ess", ".1f"),
    "ss_shipped_iterations": Value("solver_speed/main", "beta_200.shipped.iterations", "d"),
    "ss_shipped_seconds": Value("solver_speed/main", "beta_200.shipped.seconds", ".1f"),
    "ss_shipped_loss": Value("solver_speed/main", "beta_200.shipped.loss", ".6f"),
    "ss_sweep_size": Derived(lambda r: len(r("solver_speed/main")["sweep"]["betas"]), "d"),
    "ss_sweep_first": Value("solver_speed/main", "sweep.betas.0", "g"),
    "ss_sweep_last": Value("solver_speed/main", "sweep.betas.-1", "g"),
    "ss_traced_seconds": Value("solver_speed/main", "sweep.traced.seconds", ".1f"),
    "ss_traced_compilations": Value("solver_speed/main", "sweep.traced.compilations", "d"),
    "ss_static_seconds": Value("solver_speed/main", "sweep.per_beta.seconds", ".1f"),
    "ss_static_compilations": Value("solver_speed/main", "sweep.per_beta.compilations", "d"),
    "ss_sweep_ratio": Derived(lambda r: r("solver_speed/main")["sweep"]["per_beta"]["seconds"] / r("solver_speed/main")["sweep"]["traced"]["seconds"], ".2f"),
    # deep_digits
    "dd_peer_layer1": Value("deep_digits/main", "peer.alignment.layer1", ".3f"),
    "dd_peer_layer2": Value("deep_digits/main", "peer.alignment.layer2", ".3f"),
    "dd_ess": lambda r: " and ".join(f"{e:.0f}" for e in r("deep_digits/main")["theory"]["ess"]),
    "dd_iterations": Value("deep_digits/main", "theory.iterations", "d"),
    "dd_theory_seconds": Value("deep_digits/main", "theory.seconds", ".1f"),
    "dd_seeds": Value("deep_digits/main", "widths.0.seeds", "d"),
    "dd_nngp_alignment": lambda r: " and ".join(f"{v:.4f}" for v in r("deep_digits/main")["widths"][-1]["alignment_nngp"].values()),
    "dd_distance_trend": lambda r: " -> ".join(f"{max(w['distance'].values()):.1%}" for w in (r("deep_digits/main")["widths"][0], r("deep_digits/main")["widths"][-1])),
    "dd_replica_distance": lambda r: " / ".join(f"{v:.4f}" for v in r("deep_digits/main")["theory"]["replica_distance"].values()),
    "dd_mean_sq_agreement": Derived(lambda r: max(abs(m["networks"] - m["theory"]) / m["theory"] for m in r("deep_digits/main")["mean_sq_entries"].values()), ".1%"),
    "dd_nngp_factor_layer1": Derived(lambda r: _nngp_factor(r, "layer1"), ".1f"),
    "dd_nngp_factor_layer2": Derived(lambda r: _nngp_factor(r, "layer2"), ".1f"),
    # deep_mcmc
    "dm_importance_excess": Derived(lambda r: _erf(r, 40)["importance"]["train_loss"] / _erf(r, 40)["mcmc_train_loss"]["mean"] - 1, ".0%"),
    "dm_importance_ess_fraction": Derived(lambda r: min(_erf(r, 40)["importance"]["ess"]) / r("deep_mcmc/main")["num_samples"], ".0%"),
    "dm_gelu_edge": Derived(lambda r: _gelu_edge(r), ".0f"),
    # clover
    "cl_loss": Value("clover/main", "theory.loss", ".5f"),
    "cl_free_energy": Value("clover/main", "theory.free_energy", ".4f"),
    "cl_iterations": Value("clover/main", "theory.iterations", "d"),
    "cl_gp_loss": Value("clover/main", "theory.gp_loss", ".5f"),
    "cl_exponents": lambda r: ", ".join(f"{f['exponent']:.2f} ± {f['exponent_stderr']:.2f} ({label})" for (key, label), f in _clover_fits(r)),
    "cl_floor_exponents": lambda r: ", ".join(f"{f['floor_exponent']:.2f} ± {f['floor_exponent_stderr']:.2f}" for _, f in _clover_fits(r)),
    "cl_width": Value("clover/main", "networks.-1.width", "d"),
    "cl_leaf_masses": lambda r: " / ".join(f"{m[k]['mean']:.3f}" for m in [r("clover/main")["networks"][-1]["moments"][0]] for k in ("P(++)", "P(+-)", "P(-+)", "P(--)")),
    "cl_leaf_se": Derived(lambda r: max(m["stderr"] for k, m in r("clover/main")["networks"][-1]["moments"][0].items() if k.startswith("P(")), ".3f"),
    "cl_net_w2": lambda r: "{mean:.3f} ± {stderr:.3f}".format(**r("clover/main")["networks"][-1]["moments"][0]["E|w|^2"]),
    "cl_theory_w2": Value("clover/main", ("theory", "moments", "E|w|^2", "mean"), ".3f"),
    "cl_loss_excess": Derived(lambda r: r("clover/main")["networks"][-1]["loss"] - r("clover/main")["theory"]["loss"], ".4f"),
    "cl_gp_fg_ratio": Value("clover/main", "gp_foreground.to_background.sliced_wasserstein.ratio_to_floor", ".0f"),
    "cl_fg_loss": Value("clover/main", "foreground.loss", ".4f"),
    "cl_fg_background_loss": Value("clover/main", "foreground.background_loss", ".4f"),
    "cl_fg_w2": lambda r: "{mean:.2f} ± {stderr:.2f}".format(**r("clover/main")["foreground"]["moments"]["E|w|^2"]),
    # clover_beta_sweep
    "cb_radius_500": lambda r: _radius(r, 500.0, 2),
    "cb_radius_1000": lambda r: _radius(r, 1000.0, 2),
    "cb_grid_check_minutes": Derived(lambda r: sum(p["seconds"] for p in r("clover/grid_check")["rows"]) / 60, ".1f"),
    "cb_loss_spread_500": Derived(lambda r: _spread(r, 500.0, "loss"), ".2%"),
    "cb_fe_spread_500": Derived(lambda r: _spread(r, 500.0, "free_energy"), ".2%"),
    "cb_loss_spread_1000": Derived(lambda r: _spread(r, 1000.0, "loss"), ".2%"),
    "cb_fe_spread_1000": Derived(lambda r: _spread(r, 1000.0, "free_energy"), ".2%"),
    "cb_scalar_spread_1000": Derived(lambda r: max(_spread(r, 1000.0, k) for k in ("loss", "free_energy")), ".1%"),
    # deep_composition
    "dc_layer2_floor_ratio": Derived(lambda r: _dc_ratio(r, "main", "depth3", "layer2", "theory"), ".1f"),
    "dc_layer2_nngp_ratio": Derived(lambda r: _dc_ratio(r, "main", "depth3", "layer2", "nngp"), ".0f"),
    "dc_test_depth2": lambda r: _dc_test_pair(r, 2),
    "dc_test_depth3": lambda r: _dc_test_pair(r, 3),
    "dc_beta13_iterations": Value("deep_solver_methods/main", "rows.1.newton.iterations", "d"),
    "dc_beta13_ess": lambda r: " / ".join(f"{e:.0f}" for e in r("deep_solver_methods/main")["rows"][1]["newton"]["ess"]),
    "dc_erf_depth2_iterations": Value("deep_composition/erf40_depth2_long", "theory.depth2.iterations", "d"),
    "dc_erf_depth2_ess": Value("deep_composition/erf40_depth2_long", "theory.depth2.ess.0", ".0f"),
    "dc_erf_depth3_iterations": Value("deep_composition/erf40_depth3_long", "theory.depth3.iterations", "d"),
    "dc_erf_depth3_refreshes": Value("deep_composition/erf40_depth3_long", "theory.depth3.refreshes", "d"),
    "dc_erf_depth3_ess": lambda r: " / ".join(f"{e:.0f}" for e in r("deep_composition/erf40_depth3_long")["theory"]["depth3"]["ess"]),
    "dc_erf_depth2_minutes": Derived(lambda r: r("deep_composition/erf40_depth2_long")["networks"]["depth2"]["seconds"] / 60, ".0f"),
    "dc_erf_depth3_minutes": Derived(lambda r: r("deep_composition/erf40_depth3_long")["networks"]["depth3"]["seconds"] / 60, ".0f"),
    "dc_erf_nngp_ratio": lambda r: _span([_dc_ratio(r, run, dk, lk, "nngp", over="theory") for run in ("erf40_depth2_long", "erf40_depth3_long")
                                          for dk, layers in r(f"deep_composition/{run}")["layers"].items() for lk in layers], ".0f"),
    "dc_erf_test_gap_depth2": lambda r: _dc_gap(r, "erf40_depth2_long", 2, "test"),
    "dc_erf_test_gap_depth3": lambda r: _dc_gap(r, "erf40_depth3_long", 3, "test"),
    "dc_erf_gp_gap_depth2": Derived(lambda r: _dc_gp_gap(r, "erf40_depth2_long", 2), ".3f"),
    "dc_erf_gp_gap_depth3": Derived(lambda r: _dc_gp_gap(r, "erf40_depth3_long", 3), ".3f"),
    "dc_erf_train_excess_depth2": Derived(lambda r: _dc_excess(r, "erf40_depth2_long", 2), ".1%"),
    "dc_erf_train_excess_depth3": Derived(lambda r: _dc_excess(r, "erf40_depth3_long", 3), ".1%"),
    "dc_erf_halves_depth2": lambda r: " -> ".join(f"{v:.4f}" for v in r("deep_composition/erf40_depth2_long")["losses"]["networks_depth2"]["train_halves"]),
    "dc_erf_halves_depth3": lambda r: " -> ".join(f"{v:.4f}" for v in r("deep_composition/erf40_depth3_long")["losses"]["networks_depth3"]["train_halves"]),
    "dc_erf_short_steps": Value("deep_composition/erf40", "steps", "d"),
    "dc_erf_short_depth2_n256": lambda r: _dc_train(r, "erf40_depth2_width256", 2),
    "dc_erf_short_depth2_n256_width": Value("deep_composition/erf40_depth2_width256", "width", "d"),
    "dc_erf_short_depth2": lambda r: _dc_train(r, "erf40", 2),
    "dc_erf_short_depth3": lambda r: _dc_train(r, "erf40", 3),
    "dc_erf_short_width": Value("deep_composition/erf40", "width", "d"),
    # shortfalls (and the pages it summarises)
    "sf_fg_leaf_z": Derived(lambda r: max(abs(m["mean"] - 0.25) / m["stderr"] for k, m in r("clover/main")["foreground"]["moments"].items() if k.startswith("P(")), ".1f"),
    "ts_paper_sigma2_c": Value("teacher_student/main", "transition.paper.sigma2_c", "g"),
    "ts_paper_u_c": Value("teacher_student/main", "transition.paper.u_c", "g"),
    "ts_network_midpoints": lambda r: _span([e["sigma2_c"] for key in ("networks", "networks_gibbs")
                                             for e in r("teacher_student/main")["transition"].get(key, {}).values() if "sigma2_c" in e], ".3f"),
    "ma_width_sweep_a": lambda r: ", ".join(f"{p['a']:.3f}" for p in r("modular_addition/main")["width_sweep"]["points"]),
    "ma_width_sweep_widths": lambda r: ", ".join(str(p["width"]) for p in r("modular_addition/main")["width_sweep"]["points"]),
    "ma_theory_a": Value("modular_addition/main", "width_sweep.theory.a", ".3f"),
    "ma_a_inf_quadratic": lambda r: "{a_inf:.4f} +- {a_inf_se:.4f}".format(**r("modular_addition/main")["width_sweep"]["fits"]["inverse_width_quadratic"]),
    "ma_a_inf_gap": Derived(lambda r: r("modular_addition/main")["width_sweep"]["fits"]["inverse_width_quadratic"]["a_inf"] - r("modular_addition/main")["width_sweep"]["theory"]["a"], ".3f"),
    "dm_erf40_train": Value("deep_mcmc/main", "erf.1.mcmc_train_loss.mean", ".4f"),
    "dm_erf40_min_ess": Derived(lambda r: min(min(_erf(r, 40)[k]["ess"]) for k in _erf(r, 40) if k.startswith("mcmc key")), ".0f"),
    "dm_gelu_last_margin": lambda r: "{m:.3f} at beta = {b:g}".format(**_gelu_last(r)),
    "dm_gelu_stop_beta": Derived(lambda r: next(g["beta"] for g in r("deep_mcmc/main")["gelu_continuation"] if not g["converged"]), "g"),
    "lin_importance_bias": lambda r: _span([abs(p["importance"]["loss"] - p["exact"]["loss"]) / p["exact"]["loss"] for p in r("linear/main")["sweep"] if p["exact"]["g"] >= 0.5], ".1%"),
    # neuron_throughput
    "nt_load_average": Value("neuron_throughput/main", "machine.load_average_before.0", ".1f"),
    "nt_flop_rate": Derived(lambda r: r("neuron_throughput/main")["jax_flop_rate"] / 1e9, ".1f"),
    "nt_fraction_of_peak": Value("neuron_throughput/main", "fraction_of_peak", ".0%"),
    "nt_peak": Derived(lambda r: r("neuron_throughput/main")["matmul_peak_flops"] / 1e9, ".0f"),
    # deep_speed
    "ds_flops_per_mp2": lambda r: _span([p["flops"] / (p["num_samples"] * p["P"] ** 2) for p in r("deep_speed/main")["points"]], ".0f"),
    "ds_jax": Value("deep_speed/main", "machine.jax", "s"),
    "ds_load_average": lambda r: _span([p[k][0] for p in r("deep_speed/main")["points"] for k in ("load_average_end",)], ".1f"),
    "ds_compile": lambda r: _span([p["compile_seconds"] for p in r("deep_speed/main")["points"] if p["compile_seconds"] > 0], ".1f"),
    "ds_peaks": lambda r: _span([f / 1e9 for p in r("deep_speed/main")["points"] for f in p["matmul_peaks"]], ".0f"),
    "ds_newton_iterations": Value("deep_speed/main", "points.0.solve.iterations", "d"),
    "ds_newton_seconds": Value("deep_speed/main", "points.0.newton_seconds", ".1f"),
    "ds_newton_over_map": Value("deep_speed/main", "points.0.newton_over_map", ".0f"),
    "ds_ess_fixed_point": lambda r: " / ".join(f"{v:.0f}" for v in r("deep_speed/main")["points"][0]["ess_fixed_point"]["8192"]),
    "ds_min_ess_fraction": Derived(lambda r: min(v / int(m) for p in r("deep_speed/main")["points"] for m, vs in p["ess_nngp"].items() for v in vs), ".1%"),
    "ds_newton_minutes_4096": Derived(lambda r: r("deep_speed/main")["points"][0]["newton_over_map"] * r("deep_speed/main")["points"][-1]["map_seconds"] / 60, ".0f"),
    "nt_blocks": lambda r: ", ".join(f"{b}: {v:.2g}" for b, v in r("neuron_throughput/main")["gradient_evaluations_per_second_by_block"].items()),
}
VALUES.update(MODULAR_VALUES)
VALUES.update(GROKKING_VALUES)
VALUES.update(TS_VALUES)
VALUES.update(DYNAMICS_VALUES)
