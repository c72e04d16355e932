"""Teacher-student (Rubin, Seroussi & Ringel, ICLR 2024): the paper's equations and the symmetry-reduced exact theory."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax.theory.reduced import rubin
from mft_jax.theory.samplers.grid import grid_sampler
from mft_jax.model import TwoLayer
from mft_jax.theory.reduced.single_index import SingleIndex, angle_rule, reduce_weights, reduced_grid_sampler, reduced_population
from mft_jax.theory.two_layer import solve
from mft_jax.tasks import teacher_student


EPS = -0.3


def _target(z):
    return z + EPS * (z**3 - 3 * z)


def test_paper_integrals_of_appendix_a4(x64):
    """E[H1 erf(w.x)] = 2q/sqrt(pi D), E[H3 erf(w.x)] = -4 q^3 / sqrt(pi D^3) (D = 1 + 2|w|^2): the squares and
    products are the entries of rubin.feature_matrix with the (1,1) weight 4 (the printed App. A.3 has 2)."""
    z, wz = np.polynomial.hermite_e.hermegauss(80)
    wz = wz / wz.sum()
    t, wt = np.polynomial.hermite_e.hermegauss(80)
    wt = wt / wt.sum()
    from scipy.special import erf

    for q, perp2 in ((0.3, 0.5), (1.0, 0.5), (1.4, 0.2)):
        pre = q * z[:, None] + math.sqrt(perp2) * t[None, :]  # w.x with |w_perp|^2 = perp2, x_perp Gaussian
        mean_erf = (erf(pre) * wt).sum(axis=1)
        h1, h3 = np.sum(wz * z * mean_erf), np.sum(wz * (z**3 - 3 * z) * mean_erf) / math.sqrt(6)
        matrix = rubin.feature_matrix(q, perp2)
        np.testing.assert_allclose([[h1 * h1, h1 * h3], [h1 * h3, h3 * h3]], matrix, rtol=1e-8, atol=1e-12)
        assert not np.allclose(h1 * h1, rubin.feature_matrix(q, perp2, h1_weight=2.0)[0, 0], rtol=0.1)  # the printed entry


def test_paper_equations_give_their_critical_coupling():
    """Their eq. 13 + App. A.3 at d -> inf put u_c within 2% of the 30.2 they state (sigma^2_c within 0.005 of 0.18);
    the printed (1,1) entry of App. A.3 (2 q^2 instead of 4 q^2, 10% ... 50% off) misses it by more than 20%."""
    setting = rubin.paper_setting(1.0)
    tr = rubin.limit_transition(setting)
    assert abs(tr.u_c - 30.2) < 0.02 * 30.2 and abs(tr.sigma2_c - 0.18) < 0.005
    assert tr.spinodal_sigma2 > tr.sigma2_c and 0.5 < tr.q1 < 1.0  # the q > 0 well exists before it wins; near q ~ 1
    assert abs(rubin.feature_minimum(tr.b, EPS, tr.u_c, setting.sigma_w2)[1]) < 1e-9  # degenerate with S(0) = 0
    printed = rubin.limit_transition(setting, h1_weight=2.0)
    assert abs(printed.u_c - 30.2) > 0.2 * 30.2
    # u and the GP strength g are invariant under alpha = beta scaling (their eq. 11), up to rounding N, n, d
    for scale in (0.125, 0.5, 2.0):
        other = rubin.paper_setting(scale)
        np.testing.assert_allclose([other.u(0.18), other.g(0.18) ], [setting.u(0.18), setting.g(0.18)], rtol=0.02)


def test_paper_mapping_onto_ours():
    """Their couplings in ours: c = beta^2 sa2 / 2 = u d / 2 and beta sa2 = n sigma_a^2 / sigma^2 = g d (docs/theory.md section 8)."""
    from experiments import teacher_student as bench

    for scale in (0.125, 1.0):
        setting = rubin.paper_setting(scale)
        for sigma2 in (0.1, 0.18, 0.3):
            model = bench.theory_model(setting, sigma2, reduced=False)
            np.testing.assert_allclose([model.coupling, model.beta * model.sa2],
                                       [setting.u(sigma2) * setting.d / 2, setting.g(sigma2) * setting.d], rtol=1e-12)


def test_paper_mixed_phase_keeps_minima_degenerate():
    """Past sigma^2_c a fraction m/d of neurons sits at q1 and S(q1) = S(0) holds; the cubic part is learnt
    (f3 = eps - c moves away from 0) and more so at smaller sigma^2."""
    setting = rubin.paper_setting(1.0)
    above = rubin.limit_state(setting, 0.2)
    assert above.m == 0 and above.c == EPS and above.gap > 0
    states = [rubin.limit_state(setting, s) for s in (0.17, 0.15)]
    for state in states:
        assert state.m > 0 and abs(state.gap) < 1e-8
    assert 0 > EPS - states[0].c > EPS - states[1].c


def test_reduced_features_equal_full_expectations(x64):
    """E_x[r(z) phi(w.x)] over x ~ N(0, I_3) (Gauss-Hermite, 24^3 nodes) equals the reduced overlap
    sum_(z,s) q r(z) phibar(q, rho; z, s) at (q, rho) of the same w; the angle law of d + 1 fails."""
    d = 3
    x, weights = __import__("mft_jax.data", fromlist=["gauss_hermite_normal"]).gauss_hermite_normal(24, d)
    w = np.array([[0.3, 0.4, -0.2], [1.1, -0.5, 0.3], [-0.7, 0.1, 0.9]])
    r = _target(x[:, 0])
    full = (np.asarray(jax.scipy.special.erf(jnp.asarray(w @ x.T))) * (weights * r)).sum(axis=1)
    data = reduced_population(d, _target, num_z=40, num_s=24)
    reduced = reduce_weights(w, np.eye(d)[0])
    for dim, agree in ((d, True), (d + 1, False)):
        model = SingleIndex("erf", dim=dim, angle_nodes=32)
        out = np.asarray(model.overlap(jnp.asarray(reduced), data, data.y))[:, 0] if dim == d else _overlap_wrong_angle(reduced, d, dim)
        assert np.allclose(out, full, rtol=1e-6, atol=1e-9) == agree


def _overlap_wrong_angle(reduced, d, dim):
    """The overlap with the angle law of dimension ``dim`` but the (z, s) law of ``d`` (the power check)."""
    nodes, weights = angle_rule(dim, 32)
    data = reduced_population(d, _target, num_z=40, num_s=24)
    x, q, y = (np.asarray(a) for a in data)
    pre = reduced[:, 0:1, None] * x[None, :, 0:1] + reduced[:, 1:2, None] * x[None, :, 1:2] * nodes
    from scipy.special import erf

    return ((erf(pre) * weights).sum(-1) * (q * y[:, 0])).sum(-1)


def test_reduced_prior_moments(x64):
    """At residual 0 the reduced grid law is the prior: E[q^2] = sw2, E[rho^2] = (d-1) sw2 (d = 4, 12);
    a Jacobian |rho|^(d-1) instead of |rho|^(d-2) moves E[rho^2] by sw2 and fails."""
    for d in (4, 12):
        model = SingleIndex("erf", sw2=0.3, dim=d)
        data = reduced_population(d, _target, num_z=8, num_s=4)
        sampler = reduced_grid_sampler(num_q=81, q_max=3.0, num_rho=64)
        law, state = sampler.update(sampler.init(None, model, data), model, data, jnp.zeros_like(data.y))
        w = law.weights()
        moments = [float(jnp.sum(w * law.w[:, 0] ** 2)), float(jnp.sum(w * law.w[:, 1] ** 2))]
        np.testing.assert_allclose(moments, [0.3, (d - 1) * 0.3], rtol=1e-6)
        assert abs(float(state.info.log_partition)) < 1e-12
        wrong = SingleIndex("erf", sw2=0.3, dim=d + 1)  # same grid, Jacobian of d + 1
        law_w, _ = sampler.update(sampler.init(None, model, data), wrong, data, jnp.zeros_like(data.y))
        assert not np.isclose(float(jnp.sum(law_w.weights() * law_w.w[:, 1] ** 2)), (d - 1) * 0.3, rtol=1e-3)


@pytest.mark.slow
def test_reduced_theory_matches_full_grid_theory_at_d3(x64):
    """The solver on the reduced model and on the full 3-d grid reach one fixed point: loss, free energy and E|q|
    agree within the full grid's own resolution error (measured: 0.17% between 10 and 16 Gauss-Hermite nodes per
    axis; allowed 0.5%); the reduced model with beta 10% off misses by more."""
    d = 3
    kw = dict(activation="erf", sa2=4.0, sw2=0.5, beta=4.0)
    reduced_data = reduced_population(d, _target, num_z=40, num_s=12)
    sampler = reduced_grid_sampler(num_q=161, q_max=6 * math.sqrt(0.5), num_rho=64, rho_width=12)

    def summary(sol):
        w = sol.law.weights()
        return np.array([sol.loss, sol.free_energy, float(jnp.sum(w * jnp.abs(sol.law.w[:, 0])))])

    reduced = summary(solve(reduced_data, SingleIndex(**kw, dim=d, angle_nodes=24), sampler, key=jax.random.key(0)))
    full = summary(solve(teacher_student(d, EPS).population(10), TwoLayer(**kw), grid_sampler(32, 6.0), key=jax.random.key(0)))
    np.testing.assert_allclose(reduced, full, rtol=5e-3)
    off = {**kw, "beta": 4.4}
    wrong = summary(solve(reduced_data, SingleIndex(**off, dim=d, angle_nodes=24), sampler, key=jax.random.key(0)))
    assert not np.allclose(wrong, full, rtol=5e-3)


@pytest.mark.slow
def test_quick_run(tmp_path):
    from experiments import teacher_student as bench

    bench.main(["--quick", "--results", str(tmp_path), "--figures", str(tmp_path), "--runs", str(tmp_path / "runs")])
    saved = json.loads((tmp_path / bench.NAME / "quick.json").read_text())
    t = saved["transition"]
    assert saved["meta"]["config"] and (tmp_path / f"{bench.NAME}.png").stat().st_size > 10_000
    assert t["paper"] == {"u_c": 30.2, "sigma2_c": 0.18} and abs(t["paper_equations"]["u_c"] - 30.2) < 1.0
    assert set(t["exact_population"]) == {"1/8"} and set(t["networks"]) == {"1/8"}
    assert "sigma2_c_err" in t["networks"]["1/8"]
    # --merge-into from the command line: the paper's equations at 0.18 (again) and 0.24 join the stored points
    bench.main(["--quick", "--sigma2", "0.18", "0.24", "--no-networks", "--no-population", "--results", str(tmp_path / "merge"),
                "--figures", str(tmp_path / "merge"), "--runs", str(tmp_path / "runs"), "--merge-into", str(tmp_path / bench.NAME / "quick.json")])
    merged = json.loads((tmp_path / bench.NAME / "quick.json").read_text())["scales"]["1/8"]
    assert [p["sigma2"] for p in merged["paper_equations"]["finite_d"]] == [0.12, 0.18, 0.24, 0.30]
    assert merged["networks"] == saved["scales"]["1/8"]["networks"] and "merged in" in json.loads((tmp_path / bench.NAME / "quick.json").read_text())["run"]


def test_inverse_width_fit_recovers_a_line():
    """``f = f_inf + A/N'`` by weighted least squares: exact on a line (chi^2 0), errors scale with the inputs' errors,
    and a curve in 1/N' shows up as chi^2 >> dof."""
    from experiments import teacher_student as bench

    widths = [88, 176, 352]
    line = [0.7 - 8.0 / N for N in widths]
    fit = bench._fit_inverse_width(widths, line, [0.01] * 3)
    np.testing.assert_allclose([fit["f_inf"], fit["slope"], fit["chi2"]], [0.7, -8.0, 0.0], atol=1e-10)
    wider = bench._fit_inverse_width(widths, line, [0.02] * 3)
    np.testing.assert_allclose(wider["f_inf_se"], 2 * fit["f_inf_se"], rtol=1e-10)
    curved = bench._fit_inverse_width(widths, [0.7 - 8.0 / N + 2000.0 / N**2 for N in widths], [0.001] * 3)
    assert curved["chi2"] > 10 * max(curved["dof"], 1)


@pytest.mark.slow
def test_training_set_theory_and_width_sweep_run(tmp_path):
    """Smoke: ``--training-set-theory`` and ``--widths`` write their keys (theory per draw, networks per width, the 1/N' fit)."""
    from experiments import teacher_student as bench

    bench.main(["--quick", "--no-population", "--sigma2", "0.3", "--training-set-theory", "--widths", "16", "32",
                "--width-sigma2", "0.3", "--steps", "200", "--results", str(tmp_path), "--figures", str(tmp_path),
                "--runs", str(tmp_path / "runs")])
    entry = json.loads((tmp_path / bench.NAME / "quick.json").read_text())["scales"]["1/8"]
    point = entry["training_set_theory"]["points"][0]
    assert point["draws"][0]["solves"] and "networks" in point["draws"][0] and math.isfinite(point["draws"][0]["nngp"]["f1"])
    solve = point["draws"][0]["solves"][0]  # both predictions of every law: the law's own and kernel regression with its kernel
    assert len(solve["f1_laws"]) == len(solve["f1_kernel_regression_laws"]) and math.isfinite(solve["f3_kernel_regression"])
    sweep = entry["width_sweep"]["points"][0]
    assert [r["width"] for r in sweep["networks"]] == [16, 32] and "f_inf" in sweep["fit_f1"]


def test_training_set_theory_without_networks_of_its_draws_is_compared_with_the_pooled_networks(tmp_path):
    """Networks run elsewhere and merged: ``network_run(cached_only=True)`` trains nothing without a checkpointed run, and
    ``attach_networks`` compares the draw-averaged theory with the scale's pooled prior-start networks (error: the
    networks' s.e. and the theory's sampler error in quadrature); points with networks of their own draws, or without a
    network point at their sigma^2, are left alone."""
    from types import SimpleNamespace

    from experiments import teacher_student as bench
    from mft_jax.theory.reduced import rubin

    args = SimpleNamespace(runs=str(tmp_path), seeds=2, steps=100, readout_gibbs=None)
    assert bench.network_run(rubin.paper_setting(0.125), 0.18, "prior", 0, args, None, cached_only=True) is None
    assert not any(tmp_path.iterdir())  # nothing trained or written
    own = {"networks": {"f3": -0.02}}
    entry = {"networks": {"points": [{"sigma2": 0.18, "prior": {"f1": 0.70, "f1_se": 0.004, "f3": -0.0110, "f3_se": 0.0004}},
                                     {"sigma2": 0.25, "prior": {"f1": 0.60, "f1_se": 0.003, "f3": -0.0070, "f3_se": 0.0002}}]},
             "training_set_theory": {"points": [
                 {"sigma2": 0.18, "f1": 0.75, "f3": -0.0166, "f1_sampler_se": 0.006, "f3_sampler_se": 0.0003, "draws": [{}, {}]},
                 {"sigma2": 0.25, "f1": 0.62, "f3": -0.0076, "f1_sampler_se": 0.003, "f3_sampler_se": 0.0002, "draws": [own, own]},
                 {"sigma2": 0.30, "f1": 0.54, "f3": -0.0055, "f1_sampler_se": 0.002, "f3_sampler_se": 0.0002, "draws": [{}, {}]}]}}
    bench.attach_networks(entry)
    pooled, has_own, missing = entry["training_set_theory"]["points"]
    assert pooled["networks_f3"] == -0.0110 and pooled["networks_f1_se"] == 0.004
    np.testing.assert_allclose([pooled["networks_minus_theory_f3"], pooled["networks_minus_theory_f3_se"]], [0.0056, 0.0005], rtol=1e-9)
    np.testing.assert_allclose([pooled["networks_minus_theory_f1"], pooled["networks_minus_theory_f1_se"]],
                               [-0.05, (0.004**2 + 0.006**2) ** 0.5], rtol=1e-9)
    assert "networks_source" not in has_own and "networks_source" not in missing and "networks_f3" not in missing


def test_gibbs_networks_are_paired_with_the_theory_on_their_own_training_sets():
    """``attach_gibbs_versus_theory``: Gibbs-readout networks minus the theory on the same training set, averaged over
    the draws both have (a network draw without theory is left out), error from both errors in quadrature over draws;
    the theory's kernel-regression prediction is compared with the same networks where every paired solve has it."""
    from experiments import teacher_student as bench

    def net(draw, f1, f3):
        return {"draw": draw, "f1": f1, "f1_se": 0.004, "f3": f3, "f3_se": 0.0006}

    entry = {"networks_gibbs": {"points": [
                {"sigma2": 0.18, "prior": {"per_draw": [net(0, 0.73, -0.0195), net(1, 0.70, -0.0140), net(2, 0.9, -0.05)]},
                 "teacher": {"per_draw": [net(0, 0.74, -0.0200)]}},
                {"sigma2": 0.40, "prior": {"per_draw": [net(0, 0.4, -0.002)]}, "teacher": {"per_draw": []}}]},
             "training_set_theory": {"points": [{"sigma2": 0.18, "draws": [
                 {"draw": 0, "f1": 0.743, "f1_se": 0.011, "f3": -0.0199, "f3_se": 0.0004,
                  "f3_kernel_regression": -0.0190, "f3_kernel_regression_se": 0.0001},
                 {"draw": 1, "f1": 0.767, "f1_se": 0.005, "f3": -0.0133, "f3_se": 0.0002}]}]}}
    bench.attach_gibbs_versus_theory(entry)
    (row,) = entry["networks_gibbs"]["versus_training_set_theory"]  # sigma^2 = 0.40 has no theory
    prior, teacher = row["prior"], row["teacher"]
    assert prior["draws"] == [0, 1] and teacher["draws"] == [0]
    np.testing.assert_allclose(prior["minus_theory_f3"], ((-0.0195 + 0.0199) + (-0.0140 + 0.0133)) / 2, rtol=1e-9)
    se = (2 * 0.0006**2 + 0.0004**2 + 0.0002**2) ** 0.5 / 2
    np.testing.assert_allclose([prior["minus_theory_f3_se"], prior["minus_theory_f3_in_se"]], [se, -0.00015 / se], rtol=1e-9)
    np.testing.assert_allclose([teacher["minus_theory_f1"], teacher["minus_theory_f1_se"]], [-0.003, (0.004**2 + 0.011**2) ** 0.5], rtol=1e-9)
    np.testing.assert_allclose([teacher["minus_theory_f3_kernel_regression"], teacher["minus_theory_f3_kernel_regression_se"]],
                               [-0.0200 + 0.0190, (0.0006**2 + 0.0001**2) ** 0.5], rtol=1e-9)
    assert "minus_theory_f3_kernel_regression" not in prior  # draw 1's solve has no kernel-regression record


def test_large_d_limit_extrapolates_the_population_theory_in_one_over_d():
    """``large_d_limit``: per sigma^2 the line f3 = f3_inf + B/d over the scales with d >= 100 (d = 53 left out), extra
    sigma^2 points included; the transition is bracketed by the last sigma^2 with f3_inf < -tol and the first with
    |f3_inf| < tol. Exact on synthetic lines; fewer than three large-d scales give nothing."""
    from experiments import teacher_student as bench

    limit = {0.10: -0.06, 0.18: -0.02, 0.21: -0.004, 0.22: -0.0004, 0.30: 0.0}

    def entry(d, sigma2s, extra=()):
        def points(values):
            return {"points": [{"sigma2": s, "f3": limit[s] - 0.9 / d} for s in values]}
        return {"setting": {"d": d}, "population": points(sigma2s), **({"population_extra": points(extra)} if extra else {})}

    scales = {"1/8": entry(53, [0.10, 0.30]), "1/2": entry(106, [0.10, 0.18, 0.30], [0.21, 0.22]),
              "1": entry(150, [0.10, 0.18, 0.30], [0.21, 0.22]), "2": entry(212, [0.10, 0.18, 0.30], [0.21, 0.22])}
    out = bench.large_d_limit({"scales": scales})
    assert out["dims"] == [106, 150, 212] and [r["sigma2"] for r in out["points"]] == [0.10, 0.18, 0.21, 0.22, 0.30]
    np.testing.assert_allclose([r["f3_inf"] for r in out["points"]], [limit[s] for s in (0.10, 0.18, 0.21, 0.22, 0.30)], atol=1e-12)
    np.testing.assert_allclose([r["slope"] for r in out["points"]], -0.9, rtol=1e-9)
    assert out["sigma2_c_bracket"] == [0.21, 0.22] and out["u_c_bracket"][0] < out["u_c_bracket"][1]
    del scales["2"]
    assert bench.large_d_limit({"scales": scales}) == {}


def test_merge_into_combines_points_by_sigma2_and_refuses_to_mix_runs(tmp_path):
    """``--merge-into`` (``merge_scale``): a run at a few sigma^2 replaces those points of a stored entry and keeps the
    others, the transition recomputed from the merged points (a wholesale replacement would drop 0.10 and 0.30 here and
    its transition would be that of 0.18 and 0.20 alone); a stored entry from a run with other settings is refused in
    words, before anything is computed (``check_merge_target``)."""
    from types import SimpleNamespace

    from experiments import teacher_student as bench
    from mft_jax.theory.reduced import rubin

    setting = rubin.paper_setting(0.125)

    def net(s2, f3):
        return {"sigma2": s2, "prior": {"f3": f3, "f3_se": 1e-4}}

    def paper(*s2s):
        return {"limit": {"sigma2_c": 0.178, "curve": [{"sigma2": s, "f3": 0.0} for s in s2s]},
                "finite_d": [{"sigma2": s, "f3": -s} for s in s2s]}

    settings = {"sampler": "Langevin", "steps": 100, "step_size": 0.01, "seeds": 2, "draws": 1}
    old = {"setting": {"d": 53}, "paper_equations": paper(0.10, 0.30),
           "networks": {"points": [net(0.10, -0.060), net(0.18, -0.030), net(0.30, -0.010)], "transition": {}, **settings}}
    new = {"setting": {"d": 53}, "paper_equations": paper(0.18),
           "networks": {"points": [net(0.18, -0.020), net(0.20, -0.015)], "transition": {}, **settings}}
    merged = bench.merge_scale(old, new, setting)
    points = merged["networks"]["points"]
    assert [p["sigma2"] for p in points] == [0.10, 0.18, 0.20, 0.30] and points[1]["prior"]["f3"] == -0.020
    assert merged["networks"]["transition"] == bench.network_transition(setting, points)
    assert merged["networks"]["transition"]["sigma2_c"] < 0.18  # the midpoint of -0.060 .. -0.010, not of -0.020 .. -0.015
    assert [p["sigma2"] for p in merged["paper_equations"]["finite_d"]] == [0.10, 0.18, 0.30]
    assert [p["sigma2"] for p in merged["paper_equations"]["limit"]["curve"]] == [0.10, 0.18, 0.30]

    longer = {"networks": {**new["networks"], "steps": 400}}
    with pytest.raises(SystemExit, match=r"'networks' holds points of a run with other settings \(steps 100 -> 400\)"):
        bench.merge_scale(old, longer, setting)
    target = tmp_path / "teacher_student.json"
    target.write_text(json.dumps({"scales": {"1/8": old}}))
    args = SimpleNamespace(scales=["1/8"], network_scales=["1/8"], no_networks=False, training_set_theory=False, readout_gibbs=None,
                           steps=400, step_size=0.01, seeds=2, draws=1, theory_samples=10, theory_mcmc={}, theory_keys=1,
                           sample_check=None, widths=None, width_draw=0)
    with pytest.raises(SystemExit, match=r"scale 1/8, entry 'networks' .* \(steps 100 -> 400\)"):
        bench.check_merge_target(target, args)
    bench.check_merge_target(target, SimpleNamespace(**{**vars(args), "steps": 100}))  # same settings: accepted
    bench.check_merge_target(target, SimpleNamespace(**{**vars(args), "no_networks": True}))  # writes no networks: nothing to mix
    with pytest.raises(SystemExit, match="does not exist"):
        bench.check_merge_target(tmp_path / "missing.json", args)
