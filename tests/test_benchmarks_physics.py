"""The physics benchmarks: helper logic (fast) and a --quick smoke run of each script (slow)."""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import pytest


from experiments import linear, modular_addition, modular_grokking, teacher_student
from mft_jax.model import TwoLayer
from mft_jax.tasks import make_data


@pytest.mark.parametrize("beta", [0.1, 1.0, 7.0])
def test_linear_closed_form_is_a_fixed_point(x64, beta):
    """The scalar lambda closes the loop u -> Sigma -> r -> E[r x] written with matrices (no scalar formula)."""
    model = TwoLayer("linear", sa2=0.7, sw2=1.3, beta=beta)
    v = np.array([2.0, 1.0])
    exact = linear.exact_solution(model, v)
    u = exact["lambda"] * v
    sigma = np.linalg.inv(np.eye(2) / model.sw2 - 2 * model.coupling * np.outer(u, u))
    # r(x) = v.x - beta sa2 x^T Sigma u (docs/theory.md f = beta sa2 K q r with K = x^T Sigma x'), E[x x^T] = I:
    image = v - model.beta * model.sa2 * sigma @ u
    np.testing.assert_allclose(image, u, rtol=1e-10)  # bisection to machine precision; 1e-10 leaves room for inv()
    np.testing.assert_allclose(exact["covariance"], sigma, rtol=1e-12)
    np.testing.assert_allclose(exact["loss"], 0.5 * u @ u, rtol=1e-12)
    assert exact["g"] < 1


def test_linear_edge_limit(x64):
    """g* increases to g_inf < 1 as beta -> inf; the gap is O(1/beta) (lambda ~ (1 - g)/(beta sa2 sw2))."""
    v2 = 5.0
    g_inf = linear.g_infinity(1.0, 1.0, v2)
    np.testing.assert_allclose(g_inf, v2 * (1 - g_inf) ** 2, rtol=1e-12)  # the defining equation
    values = [linear.exact_solution(TwoLayer("linear", 1.0, 1.0, beta), np.array([2.0, 1.0]))["g"] for beta in (1.0, 10.0, 1e3, 1e6)]
    assert np.all(np.diff(values) > 0) and values[-1] < 1
    assert abs(values[-1] - g_inf) < 10 / 1e6  # O(1/beta) with an O(1) constant (<= 10 here)


def test_teacher_student_mapping_reproduces_the_papers_numbers():
    """Rubin, Seroussi & Ringel's setting (N = 700, n = 3000, d = 150, sigma_a^2 = 8/N) at their sigma^2_c = 0.18
    gives their u_c = 30.2 = n^2 sigma_a^2 / (sigma^4 d N), a number printed in the paper; u is invariant along
    their scaling family (alpha = beta). Power: sigma^2 10% off gives a u 20% off."""
    from mft_jax.theory.reduced import rubin

    setting = rubin.paper_setting(1.0)
    assert abs(setting.u(0.18) - 30.2) < 0.05
    assert abs(setting.u(0.18 * 1.1) - 30.2) > 5
    for scale in (0.125, 0.5, 2.0):
        np.testing.assert_allclose(rubin.paper_setting(scale).u(0.18), setting.u(0.18), rtol=0.02)  # N, d rounded


@pytest.mark.slow
@pytest.mark.parametrize("module", [linear, modular_addition, modular_grokking])  # teacher_student: tests/test_teacher_student.py
def test_quick_run(tmp_path, module):
    results = module.main(["--quick", "--results", str(tmp_path), "--figures", str(tmp_path)])
    saved = json.loads((tmp_path / module.NAME / "quick.json").read_text())
    assert saved["meta"]["config"] and (tmp_path / f"{module.NAME}.png").stat().st_size > 10_000
    if module is linear:
        for point in results["sweep"]:  # grid quadrature of a Gaussian: float32-level agreement
            np.testing.assert_allclose(point["grid"]["loss"], point["exact"]["loss"], rtol=1e-4)
        assert any(p["grid"]["gp_start_refused"] for p in results["sweep"])  # beta = 2 > 1/(sqrt 5 - 1)
    if module is modular_addition:  # Fig. 3's GMFL-I onset in the reading that gives the paper's 0.227; a network point ran
        assert abs(results["paper_fig3"]["readings"]["mixed"]["gmfl1_sigma2"] - modular_addition.PAPER["gmfl1_sigma2"]) < 0.002
        assert all(math.isfinite(point["a"]) for points in results["networks"].values() for point in points)
        sweep = results["width_sweep"]
        assert math.isfinite(sweep["fits"]["inverse_width"]["a_inf"]) and sweep["theory_start"]["start"] == "theory" and sweep["long"]["steps"] > sweep["points"][0]["steps"]
        check = sweep["step_check"]  # the step-size check ran over the same time span as its width's point
        assert [(r["width"], r["step_size"], r["steps"]) for r in check] == [(64, 0.05, 2 * sweep["points"][0]["steps"])]
        assert check[0]["a_at_default_step"] == sweep["points"][0]["a"] and math.isfinite(check[0]["a_minus_default_step_se"])
    if module is modular_grokking:  # every metric finite and in range, for networks and the GP
        for name in ("networks", "gp"):
            for modulus, summary in results[name].items():
                assert all(0 <= v <= 1 for v in summary["test_accuracy"]) and all(v > 0 for v in summary["test_loss"])
        theory = results["theory"]["7"]  # the training-set theory and its full-table check ran and recorded their verdicts
        assert all(0 <= v <= 1 for v in theory["test_accuracy"]) and all(v > 0 for v in theory["test_loss"])
        assert math.isfinite(theory["full_table_check"]["a_train"]) and 0 < theory["full_table_check"]["a_exact"] < 1
        assert all(isinstance(s["converged"], bool) and s["message"] for s in theory["full_table_check"]["solves"])
        # the reported prediction is kernel regression with the law's kernel: on its own training pairs (the full table)
        # f = y - G(r), G = (I + beta sa2 K)^-1 y with K >= 0, so no worse than f = 0; the law's f = beta sa2 K r has no such bound
        assert all(s["test_loss_relative"] <= 1 + 1e-6 and math.isfinite(s["at_iterate"]["test_loss_relative"])
                   for s in theory["full_table_check"]["solves"])
        assert [row["width"] for row in results["width_trend"]["rows"]] == [32, 48]
        rows = results["full_table_networks"]["rows"]  # every width x run length x start ran, against the full-table theory
        assert [(r["steps"], r["step_size"], r["start"]) for r in rows] == [(200, 0.1, "prior"), (400, 0.1, "prior"), (600, 0.03, "prior"), (600, 0.03, "theory")]
        assert all(math.isfinite(r["a"]) and 0 <= r["learned"] <= 1 for r in rows)
        assert 0 < results["full_table_networks"]["theory"]["a"] < 1
        start = results["theory_start"]  # a network started in the full-table theory's law ran on the theory's split
        assert start["start_coupling"] > 0 and all(r["test_loss_relative"] > 0 and r["theory_test_loss_relative"] > 0 for r in start["rows"])


def test_square_activation_refused_then_metastable():
    """phi = z^2: the solver refuses (quartic tilt); with normalizability='metastable' the prior-started
    importance law converges and stays in the well (ESS close to the number of draws at this weak coupling)."""
    from mft_jax.errors import ConfigError, NonNormalizableError
    from mft_jax.theory.samplers.importance import importance_sampler
    from mft_jax.theory.two_layer import solve

    data = make_data("modular_addition", modulus=3)
    model = TwoLayer("square", sa2=12.5, sw2=1.0, beta=0.4)  # beta sa2 = 5, c = beta^2 sa2 / 2 = 1
    with pytest.raises(NonNormalizableError, match="run away"):
        solve(data, model, importance_sampler(512), key=jax.random.key(0))
    solution = solve(data, model, importance_sampler(512), key=jax.random.key(0), normalizability="metastable", tol=1e-4)
    assert solution.converged and solution.diagnostics["ess"] > 0.5 * 512
    with pytest.raises(ConfigError, match="normalizability"):
        solve(data, model, importance_sampler(512), key=jax.random.key(0), normalizability="ignore")


def test_inverse_width_fit_recovers_a_line_and_its_error():
    """``a(N) = a_inf + c/N`` (and ``+ d/N^2`` at order 2) exactly: the fit returns it with chi2 = 0; with Gaussian noise of known s.e. the pull
    ``(a_inf - truth)/se`` over 400 noisy replicas has mean ~0 and sd ~1 (within 0.15 and 1 +- 0.15: 3-4 s.e. of those
    estimates: 0.05 and 0.035). Power: a fit that ignored the 1/N term would be off by at least c/N_max ~ 1e-2, > 30 s.e."""
    widths = np.array([256, 512, 1024, 2048])
    truth, slope, se = 0.85, 20.0, np.array([6e-4, 1e-3, 2e-4, 3e-4])
    fit = modular_addition.fit_inverse_width(widths, truth + slope / widths, se)
    np.testing.assert_allclose([fit["a_inf"], fit["c"][0], fit["chi2_per_dof"]], [truth, slope, 0.0], atol=1e-10)
    curved = modular_addition.fit_inverse_width(widths, truth + slope / widths - 3e3 / widths**2, se, order=2)
    np.testing.assert_allclose([curved["a_inf"], *curved["c"]], [truth, slope, -3e3], rtol=1e-8)
    rng = np.random.default_rng(0)
    pulls = []
    for _ in range(400):
        noisy = modular_addition.fit_inverse_width(widths, truth + slope / widths + se * rng.standard_normal(4), se)
        pulls.append((noisy["a_inf"] - truth) / noisy["a_inf_se"])
    assert abs(np.mean(pulls)) < 0.15 and abs(np.std(pulls) - 1) < 0.15
    assert slope / widths.max() > 30 * fit["a_inf_se"]


def test_width_sweep_step_check_refuses_bad_step_sizes():
    """``[width_sweep] step_sizes`` / ``step_widths``: a zero or negative step, or a non-integer width, is refused in words
    before anything runs."""
    from mft_jax.errors import ConfigError

    for bad in ({"step_sizes": [0.0]}, {"step_sizes": [0.05, -0.1]}, {"step_sizes": [0.05], "step_widths": [256.5]}):
        with pytest.raises(ConfigError, match=r"step_sizes must be positive numbers and step_widths positive integers"):
            modular_addition.WidthSweepSection(**bad)
    assert modular_addition.WidthSweepSection(step_sizes=[0.05], step_widths=[64]).step_sizes == [0.05]


def test_grokking_transition_interpolates_the_first_crossing():
    fractions = [0.1, 0.3, 0.5, 0.7]
    assert modular_grokking.transition(fractions, [1.2, 0.9, 0.3, 0.6], 0.5) == pytest.approx(0.3 + 0.2 * 0.4 / 0.6)
    assert modular_grokking.transition(fractions, [0.4, 0.9, 0.3, 0.6], 0.5) == 0.1
    assert math.isnan(modular_grokking.transition(fractions, [1.2, 0.9, 0.6, 0.6], 0.5))
    assert modular_grokking.transition(fractions, [0.0, 0.2, 0.8, 1.0], 0.5, falling=False) == pytest.approx(0.4)


def test_grokking_run_lists_are_refused_in_words_when_they_do_not_pair_up():
    """``[full_table_networks]`` and ``[theory_start]`` take one entry per run in parallel lists: unequal or empty lists,
    or an unknown start, are refused naming the section and what is allowed."""
    from mft_jax.cli.config import section
    from mft_jax.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\[full_table_networks\].*same, nonzero length"):
        section(modular_grokking.FullTableSection, {"widths": [], "steps": [], "step_sizes": [], "starts": []}, "full_table_networks")
    with pytest.raises(ConfigError, match=r"\[full_table_networks\].*same, nonzero length; got 2, 1, 1, 1"):
        section(modular_grokking.FullTableSection, {"widths": [256, 512]}, "full_table_networks")
    with pytest.raises(ConfigError, match="'prior' or 'theory'"):
        section(modular_grokking.FullTableSection, {"starts": ["teacher"]}, "full_table_networks")
    with pytest.raises(ConfigError, match=r"\[theory_start\] fractions and steps"):
        section(modular_grokking.TheoryStartSection, {"fractions": [0.5], "steps": [1, 2]}, "theory_start")
    grokking = modular_grokking.GrokkingSection(moduli=[11, 23], betas=[3000.0, 3000.0])
    with pytest.raises(ConfigError, match=r"\[theory\] moduli must be a nonempty subset of \[grokking\] moduli \[11, 23\].*got \[97\]"):
        modular_grokking.check_theory_moduli(modular_grokking.TheorySection(moduli=[97]), grokking)
    modular_grokking.check_theory_moduli(modular_grokking.TheorySection(moduli=[23, 11]), grokking)  # a subset in any order
