"""mft_jax.analysis.stats: exact on constructed data, calibrated on noisy data (each with a wrong twin that fails)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mft_jax.analysis import stats


def test_mean_se_is_the_sample_mean_and_its_standard_error():
    v = [1.0, 2.0, 4.0, 9.0]
    mean, se = stats.mean_se(v)
    assert mean == pytest.approx(4.0, rel=1e-12)
    assert se == pytest.approx(np.std(v, ddof=1) / 2.0, rel=1e-12)
    assert math.isnan(stats.mean_se([3.0])[1])
    assert stats.mean_se([1.0, np.nan, 3.0], finite_only=True) == pytest.approx((2.0, 1.0), rel=1e-12)
    assert all(math.isnan(x) for x in stats.mean_se([np.nan], finite_only=True))


def test_fit_inverse_size_is_exact_on_a_line_and_its_errors_scale_with_the_inputs():
    widths = [88, 176, 352]
    line = [0.7 - 8.0 / n for n in widths]
    fit = stats.fit_inverse_size(widths, line, [0.01] * 3)
    np.testing.assert_allclose([fit["limit"], fit["coefficients"][0], fit["chi2"]], [0.7, -8.0, 0.0], atol=1e-10)
    assert fit["dof"] == 1
    wider = stats.fit_inverse_size(widths, line, [0.02] * 3)
    assert wider["limit_se"] == pytest.approx(2 * fit["limit_se"], rel=1e-10)
    curve = [0.7 - 8.0 / n + 2000.0 / n**2 for n in widths]
    assert stats.fit_inverse_size(widths, curve, [0.001] * 3)["chi2"] > 10  # a curve in 1/N shows up as chi^2 >> dof
    quadratic = stats.fit_inverse_size(widths, curve, [0.001] * 3, order=2)  # and the second order takes it exactly
    np.testing.assert_allclose([quadratic["limit"], *quadratic["coefficients"]], [0.7, -8.0, 2000.0], rtol=1e-8)
    assert math.isnan(quadratic["chi2_per_dof"])


def test_fit_inverse_size_limit_error_is_calibrated():
    """Error budget: 2000 noisy fits (4 widths, Gaussian errors of known s.e.); the standardised error of the limit
    z = (limit - truth) / limit_se is N(0, 1), so var(z) = 1 +- sqrt(2/2000) = 0.032 and we accept |var(z) - 1| < 0.1
    (3.1 s.e.), and the coverage P(|z| < 1) = 0.683 +- 0.010, accepted in [0.65, 0.715]. Wrong twin: standard errors
    stated 10% too small give var = 1/0.81 = 1.23, which the same check refuses."""
    rng = np.random.default_rng(0)
    widths = np.array([256.0, 512.0, 1024.0, 2048.0])
    se = np.array([0.004, 0.003, 0.002, 0.0015])
    truth, slope = 0.834, 25.0

    def standardised(stated):
        z = []
        for _ in range(2000):
            fit = stats.fit_inverse_size(widths, truth + slope / widths + se * rng.standard_normal(4), stated)
            z.append((fit["limit"] - truth) / fit["limit_se"])
        return np.array(z)

    z = standardised(se)
    assert abs(np.var(z) - 1) < 0.1 and 0.65 < np.mean(np.abs(z) < 1) < 0.715
    assert not abs(np.var(standardised(0.9 * se)) - 1) < 0.1


def test_fit_inverse_size_refuses_too_few_points_and_bad_errors():
    with pytest.raises(ValueError, match="at least 2 points"):
        stats.fit_inverse_size([100], [1.0], [0.1])
    with pytest.raises(ValueError, match="positive errors"):
        stats.fit_inverse_size([100, 200], [1.0, 1.1], [0.1, 0.0])
    with pytest.raises(ValueError, match="one length"):
        stats.fit_inverse_size([100, 200], [1.0], [0.1, 0.1])


def test_line_in_inverse_size_recovers_the_limit_and_reports_what_it_leaves_out():
    dims = [106, 150, 212]
    line = stats.line_in_inverse_size(dims, [-0.02 + 0.3 / d for d in dims])
    np.testing.assert_allclose([line["limit"], line["slope"], line["max_residual"]], [-0.02, 0.3, 0.0], atol=1e-12)
    curved = stats.line_in_inverse_size(dims, [-0.02 + 0.3 / d + 50.0 / d**2 for d in dims])
    assert curved["max_residual"] > 1e-4


def test_autocorrelation_time_of_an_ar1_chain():
    """AR(1) with coefficient phi has tau = (1 + phi) / (1 - phi) = 9 at phi = 0.8. Budget: 256 chains x 2000 records
    give a relative s.e. ~ sqrt(2 (2 W + 1) / (256 * 2000)) = 1.9% at Sokal's window W = 5 tau (the window's truncation
    bias ~ phi^W is negligible); we accept 6% (3.2 s.e.). Wrong twin: the same check against tau 10% off (9.9) fails."""
    rng = np.random.default_rng(1)
    phi, T, S = 0.8, 2000, 256
    x = np.zeros((T, S))
    noise = rng.standard_normal((T, S))
    for t in range(1, T):
        x[t] = phi * x[t - 1] + noise[t]
    tau = stats.autocorrelation_time(x)
    assert abs(tau / 9.0 - 1) < 0.06
    assert not abs(tau / 9.9 - 1) < 0.06
    assert stats.autocorrelation_time(rng.standard_normal((2000, 8))) == pytest.approx(1.0, abs=0.2)
    assert math.isnan(stats.autocorrelation_time(np.ones((10, 2))))


def test_batch_means_error_from_block_means():
    # 2 seeds x 10 times, 5 blocks of 2: block means are 0,1,2,3,4 (seed 0) and 10..14 (seed 1)
    samples = np.stack([np.repeat(np.arange(5.0), 2), 10 + np.repeat(np.arange(5.0), 2)], axis=1)
    means = np.concatenate([np.arange(5.0), 10 + np.arange(5.0)])
    assert stats.batch_means_error(samples) == pytest.approx(means.std(ddof=1) / math.sqrt(10), rel=1e-12)
    assert math.isnan(stats.batch_means_error(np.ones((3, 2))))
