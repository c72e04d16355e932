"""The generated tables and numbers of the theory's grokking fraction (``results/modular_grokking/annealed.json`` from
``python -m experiments.modular_grokking critical``, ``results/modular_grokking/critical_fraction.json`` from ``summary``)."""

from __future__ import annotations

from experiments.report.format import Derived, Results, num, pm, table


def _annealed(r: Results) -> dict:
    return r("modular_grokking/annealed")


def _critical(r: Results) -> dict:
    return r("modular_grokking/critical_fraction")["critical_fraction"]


def _f(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def mg_critical_fraction(r: Results) -> str:
    """Per P: the theory's f_c (annealed, exact per-mode law) with its error, the saddle's, the spinodal and GMFL-II, the
    quenched crossings, and the networks' transition."""
    rows = []
    for modulus, entry in sorted(_critical(r).items(), key=lambda kv: int(kv[0])):
        if entry.get("theory") is None:
            continue
        err = entry["theory_err"]
        theory = f"**{entry['theory']:.3f} ± {err:.3f}**" + (" (lower bound on the error)" if entry["theory_err_is_lower_bound"] else "")
        spin = entry["spinodals"]
        quenched = entry.get("theory_quenched")
        departure = (f"{pm(quenched['departure_from_gp'], quenched['departure_from_gp_se'], 3)}" if quenched and quenched["found"] == quenched["splits"]
                     else (f"beyond the grid ({quenched['found']}/{quenched['splits']} splits in it)" if quenched else "not run"))
        crossing = (f"{pm(quenched['level_crossing'], quenched['level_crossing_se'], 3)} ({quenched['level_found']}/{quenched['splits']}; level "
                    f"{quenched['level']:.3f})" if quenched and quenched["level_found"] == quenched["splits"]
                    else (f"beyond the grid (level {quenched['level']:.3f})" if quenched else "not run"))
        below1 = (f"{pm(quenched['below_1'], quenched['below_1_se'], 3)}" if quenched and quenched["below_1_found"] == quenched["splits"]
                  else ("beyond the grid" if quenched else "not run"))
        nets = pm(entry["networks"], entry["networks_err"], 3) if entry.get("networks") is not None else "not run"
        rows.append([modulus, theory, _f(entry["theory_saddle"]), f"{_f(spin['theory_learned_well_appears'])} / {_f(spin['theory_learned_well_appears_saddle'])}",
                     _f(spin["theory_gmfl2"]) if spin["theory_gmfl2"] is not None else "not reached", departure, below1, crossing, nets])
    return table(["P", "theory f_c (annealed, exact per-mode)", "saddle f_c", "learned well appears (exact / saddle)", "GMFL-II",
                  "quenched: held-out loss below the GP's", "quenched: below f = 0's", "quenched: at the annealed level `a(f_c)^2`",
                  "networks (prior start)"], rows)


def mg_quenched(r: Results) -> str:
    """The exact map at the annealed fixed point on actual training sets (mean over splits)."""
    rows = []
    for modulus, check in sorted(_annealed(r)["quenched"].items(), key=lambda kv: int(kv[0])):
        for row in check["rows"]:
            rows.append([modulus, f"{row['fraction']:.2f}", f"{row['a']:.3f}", row["phase"], f"{row['learned']:.2f}",
                         f"{row['annealed_test_loss_relative']:.3f}", pm(row["quenched_test_loss_relative"], row["quenched_test_loss_relative_se"], 3),
                         f"{row['quenched_test_accuracy']:.2f}", f"{row['gp_test_loss_relative']:.3f}", f"{row['map_mismatch']:.2f}",
                         f"{row['a_eff'] / row['a']:.2f}", f"{row['tilt_ratio']:.2f}", f"{row['kernel_gain_ratio']:.2f}"])
    return table(["P", "fraction", "annealed a", "phase", "learned", "annealed held-out loss a^2", "quenched held-out loss",
                  "quenched acc.", "GP", "`\\|G(r) - r\\|/\\|r\\|`", "a_eff / a", "tilt / annealed", "kernel gain / annealed"], rows)


def mg_kinetics(r: Results) -> str:
    """The per-mode barrier and the run length (single-neuron units) at the networks' transition and at the theory's f_c."""
    rows = []
    for modulus, k in sorted(_annealed(r)["kinetics"].items(), key=lambda kv: int(kv[0])):
        for label, point in (("networks' transition", k), ("theory f_c", k["at_fc"])):
            rows.append([modulus, label, f"{point['fraction']:.3f}", f"{point['g_memorising']:.1f}",
                         num(point["barrier_2P_A"], 3) if point["barrier_2P_A"] is not None else "no learned well",
                         num(point["arrhenius_factor"], 3) if point["arrhenius_factor"] is not None else "-",
                         f"{point['linear_growth_rate']:.2f}", f"{point['run_length_natural_units']:.3f}"])
    return table(["P", "where", "fraction", "g (memorising, a_GP)", "barrier 2P A(x_-)", "exp(barrier)", "growth rate 2 g <Psi> - 1",
                  "run length steps h / beta(n)"], rows)


GROKKING_TABLES = {"mg_critical_fraction": mg_critical_fraction, "mg_quenched": mg_quenched, "mg_kinetics": mg_kinetics}

GROKKING_VALUES = {
    "mg_fc_23": Derived(lambda r: _critical(r)["23"]["theory"], ".3f"),
    "mg_fc_err_23": Derived(lambda r: _critical(r)["23"]["theory_err"], ".3f"),
    "mg_fc_11": Derived(lambda r: _critical(r)["11"]["theory"], ".3f"),
    "mg_fc_err_11": Derived(lambda r: _critical(r)["11"]["theory_err"], ".3f"),
    "mg_fc_97": Derived(lambda r: _critical(r)["97"]["theory"], ".3f"),
    "mg_tilt_ratio_23": lambda r: "-".join(f"{x:.1f}" for x in (min(_critical(r)["23"]["theory_curve"]["tilt_ratio"]),
                                                                 max(_critical(r)["23"]["theory_curve"]["tilt_ratio"]))),
    "mg_tilt_ratio_11": lambda r: "-".join(f"{x:.1f}" for x in (min(_critical(r)["11"]["theory_curve"]["tilt_ratio"]),
                                                                 max(_critical(r)["11"]["theory_curve"]["tilt_ratio"]))),
}
"""The ``value:`` spans of the grokking-fraction part of the modular-grokking page (merged into ``VALUES``)."""
