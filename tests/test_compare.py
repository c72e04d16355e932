"""Distances, noise floors, moments, kernel alignment and symmetries of ``mft_jax.analysis.compare``.

Closed forms used (X ~ N(m1, s^2 I_d), Y ~ N(m2, s^2 I_d), Gaussian kernel of bandwidth h):
``E k(X, X') = (h^2 / (h^2 + 2 s^2))^(d/2)``, ``E k(X, Y) = E k(X, X') exp(-|m1 - m2|^2 / (2 (h^2 + 2 s^2)))``;
in d = 1, ``E|N(mu, sig^2)| = sig sqrt(2/pi) exp(-mu^2 / (2 sig^2)) + mu erf(mu / (sqrt(2) sig))``.
For n i.i.d. equal-weight samples the V-statistics add the diagonal terms:
``E[MMD_V^2] = 2 (1/n + (1 - 1/n) E k(X, X')) - 2 E k(X, Y)`` and
``E[ED_V^2] = 2 E|X - Y| - 2 (1 - 1/n) E|X - X'|``.
"""

import functools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax.analysis import compare
from mft_jax.data import gauss_hermite_normal
from mft_jax.errors import ConfigError
from mft_jax.neurons import NeuronLaw

# Statistical tests: the mean over R repeats is within K_SIGMA standard errors of the closed form.
# With R = 16 the t-statistic has 15 dof; P(|t_15| > 6) < 1e-4, the false-failure rate per check.
REPEATS = 16
K_SIGMA = 6.0


def _gaussian_law(key, n, mean, scale=1.0):
    mean = jnp.asarray(mean, jnp.float32)
    return NeuronLaw.from_samples(mean + scale * jax.random.normal(key, (n, mean.shape[0])))


# Tests with power (a 10% error in the checked mean must fail, shown by wrong twins): R = 128 repeats, so the
# t-statistic has 127 dof; P(|t_127| > 4.5) = 1.5e-5, the false-failure rate per check for a fresh seed.
POWER_REPEATS = 128
K_POWER = 4.5


def _repeat_two_samples(metric, key, n, mean1, mean2, repeats=REPEATS):
    """``metric`` between independent size-n samples of N(mean1, I) and N(mean2, I), ``repeats`` times."""

    def one(repeat_key):
        key1, key2 = jax.random.split(repeat_key)
        return metric(_gaussian_law(key1, n, mean1), _gaussian_law(key2, n, mean2))

    return np.asarray(jax.lax.map(jax.jit(one), jax.random.split(key, repeats)), np.float64)


def _assert_mean_matches(values, expected):
    stderr = values.std(ddof=1) / math.sqrt(values.size)
    assert abs(values.mean() - expected) < K_SIGMA * stderr, (values.mean(), expected, stderr)


def _assert_mean_matches_with_power(values, expected):
    """The mean of ``values`` within K_POWER standard errors of ``expected``, and the wrong twins, ``expected`` x 0.9
    and x 1.1, outside them (the same criterion rejects a 10% error). Returns the three t-statistics."""
    stderr = values.std(ddof=1) / math.sqrt(values.size)
    t = [abs(values.mean() - factor * expected) / stderr for factor in (1.0, 0.9, 1.1)]
    assert t[0] < K_POWER, (values.mean(), expected, stderr, t)
    assert min(t[1:]) > K_POWER, ("a 10% error passes", values.mean(), expected, stderr, t)
    return t


def _mmd2_expected(n, shift, bandwidth, d, scale=1.0):
    same = (bandwidth**2 / (bandwidth**2 + 2 * scale**2)) ** (d / 2)
    cross = same * math.exp(-(shift**2) / (2 * (bandwidth**2 + 2 * scale**2)))
    return 2 * (1 / n + (1 - 1 / n) * same) - 2 * cross


# ----------------------------------------------------------------------------- identical clouds


def test_identical_clouds_are_at_distance_zero():
    law = _gaussian_law(jax.random.PRNGKey(0), 100, [0.0, 0.0, 0.0])
    key = jax.random.PRNGKey(1)
    # sliced: the same sorted projections on both sides -> exactly 0.
    assert float(compare.sliced_wasserstein(law, law, key=key, num_projections=256)) == 0.0
    # energy/MMD: E k(X,X') + E k(Y,Y') - 2 E k(X,Y) with bit-identical sums -> 0 up to float32
    # summation roundoff (~1e-6 of O(1) terms), i.e. a distance below sqrt(1e-6) * 10.
    assert float(compare.energy_distance(law, law)) < 1e-2
    assert float(compare.mmd(law, law, bandwidth=1.0)) < 1e-2
    # Sinkhorn: the xy and xx solves differ by their stopping point; threshold 1e-6 on marginals
    # times costs of O(10) leaves |S_eps| < 1e-4, a distance below 1e-2.
    assert float(compare.sinkhorn_distance(law, law, epsilon=0.5, threshold=1e-6)) < 1e-2


# ----------------------------------------------------------------------------- known shifts


def test_sinkhorn_divergence_of_a_translate_is_the_squared_shift():
    # Exact: |z - z' - m|^2 differs from |z - z'|^2 by a separable term, so the entropic plan is
    # unchanged and S_eps(mu, mu + m) = |m|^2 for every eps. Residual error: the stopping
    # threshold 1e-6 on the marginals times costs of O(10): relative 1e-4 on |m|^2 ~ 1.
    law = _gaussian_law(jax.random.PRNGKey(2), 100, [0.0, 0.0, 0.0])
    shift = jnp.array([0.6, -0.8, 0.3])
    moved = NeuronLaw.from_samples(law.w + shift)
    distance = compare.sinkhorn_distance(law, moved, epsilon=0.5, threshold=1e-6)
    np.testing.assert_allclose(float(distance), float(jnp.linalg.norm(shift)), rtol=1e-3)


def test_sliced_wasserstein_of_a_translate():
    # Each direction theta moves the projected cloud rigidly by theta.m, so SW2^2 is the mean of
    # (theta.m)^2 over K random directions: mean |m|^2 / d, and (theta.e)^2 ~ Beta(1/2, (d-1)/2)
    # has variance 2 (d - 1) / (d^2 (d + 2)). Within 4 standard errors (false-failure rate < 1e-4). Power: with 4096
    # projections the standard error is 1.4% of |m|^2 / d, so the wrong twins (x 0.9, x 1.1) sit ~7 of them away.
    d, num_projections = 3, 4096
    law = _gaussian_law(jax.random.PRNGKey(3), 100, [0.0] * d)
    shift = jnp.array([0.6, -0.8, 0.3])
    moved = NeuronLaw.from_samples(law.w + shift)
    distance = compare.sliced_wasserstein(law, moved, key=jax.random.PRNGKey(4), num_projections=num_projections)
    shift2 = float(shift @ shift)
    stderr = shift2 * math.sqrt(2 * (d - 1) / (d**2 * (d + 2)) / num_projections)
    assert abs(float(distance) ** 2 - shift2 / d) < 4 * stderr
    for factor in (0.9, 1.1):  # wrong twins: a 10% error in SW2^2 fails the same criterion
        assert abs(float(distance) ** 2 - factor * shift2 / d) > 4 * stderr, factor


# Error budget of the four tests below: the mean of R repeats within 4.5 standard errors (t with R - 1 dof) of the
# closed form. Shifted laws: n = 400, R = 128, standard error ~1.3% of the value. Two samples of the same law (shift
# 0, the noise floor): n MMD^2 tends to a weighted chi-square whose sd is ~0.7-1 x its mean whatever n, so the floor
# needs R = 8192 repeats (of n = 32) for a standard error of ~1%. Either way the wrong twins (the closed form x 0.9 and
# x 1.1) sit 7-10 s.e. away and fail the same criterion (the t-statistics are printed with -s). Float reordering
# moves a mean of R float32 distances by ~1e-6 of it (< 1e-3 s.e.); another seed by ~1 s.e.
POWER_SETTINGS = [(1.0, 400, POWER_REPEATS), (0.0, 32, 8192)]  # (shift, n, repeats)


@pytest.mark.parametrize("shift, n, repeats", POWER_SETTINGS)
def test_mmd_between_shifted_gaussians_matches_closed_form(shift, n, repeats):
    bandwidth = 1.5
    metric = functools.partial(compare.mmd, bandwidth=bandwidth)
    values = _repeat_two_samples(metric, jax.random.PRNGKey(5), n, [0.0, 0.0], [shift, 0.0], repeats) ** 2
    print("MMD^2 t (right, x 0.9, x 1.1):", _assert_mean_matches_with_power(values, _mmd2_expected(n, shift, bandwidth, d=2)))


@pytest.mark.parametrize("shift, n, repeats", POWER_SETTINGS)
def test_energy_distance_between_shifted_gaussians_matches_closed_form(shift, n, repeats):
    values = _repeat_two_samples(compare.energy_distance, jax.random.PRNGKey(6), n, [0.0], [shift], repeats) ** 2
    sigma = math.sqrt(2.0)  # X - Y ~ N(shift, 2)
    cross = sigma * math.sqrt(2 / math.pi) * math.exp(-(shift**2) / (2 * sigma**2)) + shift * math.erf(shift / (math.sqrt(2) * sigma))
    same = sigma * math.sqrt(2 / math.pi)
    print("ED^2 t (right, x 0.9, x 1.1):", _assert_mean_matches_with_power(values, 2 * cross - 2 * (1 - 1 / n) * same))


# ----------------------------------------------------------------------------- weights


@pytest.mark.slow  # default-suite budget: moved to make test-slow (2026-12-01, suite 12:19 on this machine)
def test_weights_are_respected_exactly():
    # The measure sum_i (c_i / sum c) delta(z_i) is the same measure as z_i repeated c_i times:
    # every distance between the two is 0, and both are at the same distance from a third cloud.
    key = jax.random.PRNGKey(7)
    points = jax.random.normal(key, (40, 2))
    counts = jnp.arange(40) % 4 + 1  # sums to 100
    weighted = NeuronLaw(points, jnp.log(counts.astype(jnp.float32)))
    repeated = NeuronLaw.from_samples(jnp.repeat(points, np.asarray(counts), axis=0))
    unweighted = NeuronLaw.from_samples(points)
    other = _gaussian_law(jax.random.PRNGKey(8), 100, [0.5, 0.0])  # sizes 40 and 100: few compilations
    metrics = {
        "sliced": functools.partial(compare.sliced_wasserstein, key=jax.random.PRNGKey(9), num_projections=256),
        "sinkhorn": functools.partial(compare.sinkhorn_distance, epsilon=0.5, threshold=1e-6),
        "energy": compare.energy_distance,
        "mmd": functools.partial(compare.mmd, bandwidth=1.0),
    }
    for name, metric in metrics.items():
        # float32 roundoff on O(1) distances (Sinkhorn: its 1e-6 threshold on O(10) costs)
        np.testing.assert_allclose(float(metric(weighted, other)), float(metric(repeated, other)), rtol=2e-3, atol=2e-3, err_msg=name)
        assert float(metric(weighted, repeated)) < 2e-2, name
        assert float(metric(unweighted, repeated)) > 0.05, name  # dropping the weights changes the law


def test_importance_weighted_law_matches_its_target_within_noise():
    # Proposals N(0, I) reweighted by N(m, I) / N(0, I) = exp(m.w - |m|^2/2) represent N(m, I):
    # the MMD^2 to a fresh size-n sample of N(m, I) has the closed-form two-sample expectation
    # up to the weighted law's own noise, 1/ESS instead of 1/n (ESS ~ 0.8 M here, M = 5 n).
    m, n, bandwidth = jnp.array([0.7, 0.0]), 200, 1.5

    def one(repeat_key):
        key1, key2 = jax.random.split(repeat_key)
        proposals = jax.random.normal(key1, (5 * n, 2))
        weighted = NeuronLaw(proposals, proposals @ m)
        return compare.mmd(weighted, _gaussian_law(key2, n, m), bandwidth=bandwidth) ** 2, 1.0 / weighted.effective_sample_size()

    values, inverse_ess = jax.lax.map(jax.jit(one), jax.random.split(jax.random.PRNGKey(10), REPEATS))
    same = bandwidth**2 / (bandwidth**2 + 2)  # E k(X, X') in d = 2
    expected = (1 - same) * (1 / n + float(inverse_ess.mean()))  # E MMD_V^2 of two samples of the same law
    _assert_mean_matches(np.asarray(values, np.float64), expected)


# ----------------------------------------------------------------------------- noise floor


@pytest.mark.parametrize("n", [100, 400])
def test_noise_floor_shrinks_like_one_over_sqrt_n(n):
    # Two i.i.d. size-n samples of one law: E[MMD_V^2] = 2 (1 - E k(X, X')) / n exactly, so the
    # floor scales as 1/sqrt(n). The law is a 20000-particle sample of N(0, I_2): the bootstrap's
    # duplicate draws shift E k(X, X') by ~1/20000, far below the statistical tolerance.
    law = _gaussian_law(jax.random.PRNGKey(11), 20000, [0.0, 0.0])
    bandwidth = 1.5
    floor = compare.noise_floor(law, functools.partial(compare.mmd, bandwidth=bandwidth), key=jax.random.PRNGKey(12), n=n, repeats=REPEATS)
    assert floor.values.shape == (REPEATS,)
    _assert_mean_matches(np.asarray(floor.values, np.float64) ** 2, _mmd2_expected(n, 0.0, bandwidth, d=2))


def test_noise_floor_against_the_law_is_one_sample():
    # metric(law, size-n sample of law): E[MMD_V^2] = (1 - E k(X, X')) / n, half the two-sample value.
    law = _gaussian_law(jax.random.PRNGKey(13), 2000, [0.0, 0.0])
    bandwidth, n = 1.5, 100
    floor = compare.noise_floor(law, functools.partial(compare.mmd, bandwidth=bandwidth), key=jax.random.PRNGKey(14), n=n, repeats=REPEATS, reference=law)
    same = bandwidth**2 / (bandwidth**2 + 2)
    # The law itself is a 2000-point cloud: its own E k(X, X') includes the 1/2000 diagonal.
    _assert_mean_matches(np.asarray(floor.values, np.float64) ** 2, (1 - same) * (1 / n - 1 / 2000))


def test_reduce_particles_drops_the_tail_and_caps():
    log_weight = jnp.concatenate([jnp.zeros(100), jnp.full(900, -30.0)])  # 900 particles with mass ~1e-11
    law = NeuronLaw(jax.random.normal(jax.random.PRNGKey(15), (1000, 2)), log_weight)
    reduced, dropped = compare.reduce_particles(jax.random.PRNGKey(16), law, max_particles=500, tail_mass=1e-6)
    assert reduced.num_particles == 100 and 0 < dropped < 1e-6
    capped, _ = compare.reduce_particles(jax.random.PRNGKey(16), law, max_particles=50, tail_mass=1e-6)
    assert capped.num_particles == 50
    assert bool(jnp.all(jnp.isin(capped.w[:, 0], law.w[:100, 0])))  # draws only from the kept particles


# ----------------------------------------------------------------------------- moments


def test_moments_of_equal_weights_are_mean_and_std_over_sqrt_m():
    w = jax.random.normal(jax.random.PRNGKey(17), (500, 2))
    result = compare.moments(NeuronLaw.from_samples(w), {"first": lambda z: z[:, 0]})["first"]
    np.testing.assert_allclose(float(result.mean), float(jnp.mean(w[:, 0])), rtol=1e-5)  # float32 sums
    np.testing.assert_allclose(float(result.stderr), float(jnp.std(w[:, 0]) / math.sqrt(500)), rtol=1e-4)


def test_moments_of_a_quadrature_law_are_exact_with_zero_error(x64):
    nodes, weights = gauss_hermite_normal(8, 2)
    law = NeuronLaw(jnp.asarray(nodes), jnp.log(jnp.asarray(weights)))
    result = compare.moments(law, {"norm2": lambda z: jnp.sum(z * z, axis=-1), "fourth": lambda z: z[:, 0] ** 4}, quadrature=True)
    # Gauss-Hermite with 8 nodes is exact for degree <= 15: E|w|^2 = 2, E w_1^4 = 3.
    np.testing.assert_allclose(float(result["norm2"].mean), 2.0, rtol=1e-12)
    np.testing.assert_allclose(float(result["fourth"].mean), 3.0, rtol=1e-12)
    assert float(result["norm2"].stderr) == 0.0


def test_importance_weighted_standard_errors_are_calibrated():
    # Estimate E_{N(m,1)}[w] = m from reweighted N(0,1) proposals, 64 times: the z-scores
    # (estimate - m) / stderr have standard deviation 1 if the delta-method error is right. The
    # sample sd of 64 z-scores has relative sd 1/sqrt(126) = 9%: [0.7, 1.3] is > 3.3 of those.
    m = 0.8

    def one(key):
        w = jax.random.normal(key, (2000, 1))
        moment = compare.moments(NeuronLaw(w, m * w[:, 0]), {"mean": lambda z: z[:, 0]})["mean"]
        return (moment.mean - m) / moment.stderr

    z_scores = np.asarray(jax.lax.map(jax.jit(one), jax.random.split(jax.random.PRNGKey(18), 64)))
    assert 0.7 < z_scores.std() < 1.3
    assert abs(z_scores.mean()) < 4 / math.sqrt(64) * 1.3  # 4 standard errors of the mean z


# ----------------------------------------------------------------------------- kernels


def test_kernel_alignment_and_relative_error(x64):
    key1, key2, key3 = jax.random.split(jax.random.PRNGKey(19), 3)
    features = jax.random.normal(key1, (30, 5))
    kernel = features @ features.T
    q = jax.random.uniform(key2, (30,)) + 0.1
    q = q / q.sum()
    other_features = jax.random.normal(key3, (30, 5))
    # exact identities, float64 roundoff
    np.testing.assert_allclose(float(compare.kernel_alignment(kernel, kernel, q)), 1.0, rtol=1e-12)
    np.testing.assert_allclose(float(compare.kernel_alignment(kernel, 3.7 * kernel, q)), 1.0, rtol=1e-12)
    np.testing.assert_allclose(float(compare.kernel_alignment(kernel, kernel + 2.0, q)), 1.0, rtol=1e-12)  # centred
    assert float(compare.kernel_alignment(kernel, other_features @ other_features.T, q)) < 0.9
    np.testing.assert_allclose(float(compare.relative_kernel_error(1.3 * kernel, kernel, q)), 0.3, rtol=1e-12)
    assert float(compare.relative_kernel_error(kernel, kernel)) == 0.0


# ----------------------------------------------------------------------------- symmetries


@pytest.mark.parametrize(
    "activation, expected",
    [("erf", "odd"), ("tanh", "odd"), ("hardtanh", "odd"), ("linear", "odd"), ("square", "even"),
     ("relu", "none"), ("ramp", "none"), (lambda z: z**3 - z, "odd"), (jnp.cos, "even")],
)
def test_activation_symmetry(activation, expected):
    assert compare.activation_symmetry(activation) == expected


def test_canonicalize_identifies_mirrored_neurons():
    key1, key2 = jax.random.split(jax.random.PRNGKey(20))
    w, a = jax.random.normal(key1, (200, 3)), jax.random.normal(key2, (200, 2))
    law = NeuronLaw.from_samples(w, a)
    mirrored = NeuronLaw.from_samples(-w, -a)
    canonical, canonical_mirror = compare.canonicalize(law, "odd"), compare.canonicalize(mirrored, "odd")
    np.testing.assert_array_equal(np.asarray(canonical.w), np.asarray(canonical_mirror.w))
    np.testing.assert_array_equal(np.asarray(canonical.a), np.asarray(canonical_mirror.a))
    assert bool(jnp.all(canonical.a[:, 0] >= 0))
    assert float(compare.energy_distance(law, mirrored, space="aw")) > 0.1  # different before
    # w-only laws (theory): rule w_1 >= 0; even symmetry flips w only.
    w_law = compare.canonicalize(NeuronLaw.from_samples(w), "odd")
    np.testing.assert_array_equal(np.asarray(w_law.w), np.asarray(compare.canonicalize(NeuronLaw.from_samples(-w), "odd").w))
    even = compare.canonicalize(mirrored, "even")
    assert bool(jnp.all(even.w[:, 0] >= 0)) and bool(jnp.all(even.a == mirrored.a))
    assert compare.canonicalize(law, "none") is law


# ----------------------------------------------------------------------------- compare_laws, errors


@pytest.mark.slow  # default-suite budget (2026-12-01, the MCMC layer tests came in): the same four distances above their floors are checked by test_compare_cli.py::test_compare_writes_distances_floors_and_losses
def test_compare_laws_reports_distances_next_to_noise_floors():
    theory = _gaussian_law(jax.random.PRNGKey(21), 3000, [0.0, 0.0])
    shifted = _gaussian_law(jax.random.PRNGKey(22), 100, [1.0, 0.0])
    result = compare.compare_laws(theory, shifted, key=jax.random.PRNGKey(23), max_particles=100, repeats=4,
                                  functions={"mean_w1": lambda z: z[:, 0]})
    json.dumps(result)  # JSON-ready
    assert result["theory"]["compared_particles"] == 100 and result["empirical"]["num_particles"] == 100
    for name in ("sliced_wasserstein", "sinkhorn", "energy", "mmd"):
        entry = result[name]
        # a unit shift is several times the n = 100 floor for every metric: far outside the floor's spread
        assert entry["distance"] > entry["noise_floor"] + 5 * entry["noise_floor_std"], (name, entry)
    assert result["sinkhorn"]["converged"]
    # mean of w_1: theory 0 +- 0.02, empirical 1 +- 0.1 -> z-score ~ 10
    assert result["moments"]["mean_w1"]["z_score"] > 5


def test_bad_input_raises_config_error():
    law = _gaussian_law(jax.random.PRNGKey(24), 10, [0.0, 0.0])
    with pytest.raises(ConfigError, match="space='aw'"):
        compare.energy_distance(law, law, space="aw")
    with pytest.raises(ConfigError, match="same dimension"):
        compare.energy_distance(law, _gaussian_law(jax.random.PRNGKey(24), 10, [0.0, 0.0, 0.0]))
    with pytest.raises(ConfigError, match="symmetry"):
        compare.canonicalize(law, "mirror")
    with pytest.raises(ConfigError, match="repeats"):
        compare.noise_floor(law, compare.energy_distance, key=jax.random.PRNGKey(0), n=5, repeats=1)


def test_fit_power_law_recovers_an_exact_power_law():
    widths = np.array([10.0, 30.0, 100.0, 300.0])
    fit = compare.fit_power_law(widths, 3.0 * widths**-0.5, errors=0.01 * widths**-0.5)
    np.testing.assert_allclose([fit.exponent, fit.prefactor], [-0.5, 3.0], rtol=1e-10)  # exact data, float64 lstsq


@pytest.mark.slow  # default-suite budget: moved to make test-slow (2026-12-01, suite 12:19 on this machine)
def test_compare_laws_defaults_are_the_stated_ones():
    """Defaults (docstring, README): MMD bandwidth h = the theory's RMS radius (``spread``), Sinkhorn
    epsilon = 0.05 h^2, 256 projections, and the MMD reported is ``mmd`` at h.
    Power: the same checks against the radius of the theory scaled by 1.1 (a 10%-wrong length) fail."""
    theory = _gaussian_law(jax.random.PRNGKey(31), 100, [0.0, 0.0])
    empirical = _gaussian_law(jax.random.PRNGKey(32), 60, [0.3, 0.0])
    result = compare.compare_laws(theory, empirical, key=jax.random.PRNGKey(33), repeats=2)  # 2: keep it fast
    settings = result["settings"]
    assert result["theory"]["compared_particles"] == 100  # no capping: h is the radius of the theory law itself
    assert settings["num_projections"] == 256 and settings["noise_floor_repeats"] == 2

    def stated(length):
        return (np.isclose(settings["mmd_bandwidth"], length, rtol=1e-6)
                and np.isclose(settings["sinkhorn_epsilon"], 0.05 * length**2, rtol=1e-6)
                and np.isclose(result["mmd"]["distance"], float(compare.mmd(theory, empirical, bandwidth=length)), rtol=1e-5))

    h = compare.spread(theory)
    assert stated(h)
    assert not stated(1.1 * h)  # power: a 10% wrong length scale is told apart
