"""The kernel noise floor (``compare.kernel_floor``) and the learned-part comparison (``compare.learned_part``).

Setting: P = 30 inputs in R^3, ReLU features ``phi(w.x)``, a "learned" neuron law ``w ~ N(0, diag(4, 1, 0.25))``
(the NNGP law is ``N(0, I)``). Networks: S = 8 seeds of N = 256 i.i.d. neurons, each seed's kernel
``K_s = (1/N) sum_i phi_i phi_i^T``; theory: M = 4000 i.i.d. particles of the same law. With ReLU the kernel is
homogeneous of degree 2 in w, so a law with a 10% larger weight variance has exactly the kernel ``1.1 K``.

Error budget (R = 24 independent repeats, fixed seed): the floor predicts ``E d^2`` (d the relative distance); the
mean of ``d^2 - floor^2`` over repeats is compared with its standard error: a matching law within 4 s.e., the 10%
law beyond 4 s.e. (measured here: about 0 s.e. and 5.7 s.e.).
"""

import numpy as np
import pytest

from mft_jax.analysis import compare
from mft_jax.errors import ConfigError

P, DIM, WIDTH, SEEDS, PARTICLES, REPEATS = 30, 3, 256, 8, 4000, 24
LEARNED = np.array([2.0, 1.0, 0.5])


def _setup(seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(P, DIM))
    features = lambda n, scale: np.maximum((rng.normal(size=(n, DIM)) * scale) @ x.T, 0.0)
    kernel = lambda f: f.T @ f / f.shape[0]
    return rng, features, kernel


def test_kernel_floor_is_the_expected_distance_of_a_matching_law(x64):
    _, features, kernel = _setup()
    matched, shifted, floors, half_sets, misaligned, alignment_floors = [], [], [], [], [], []
    for _ in range(REPEATS):
        seeds = np.stack([kernel(features(WIDTH, LEARNED)) for _ in range(SEEDS)])
        f = features(PARTICLES, LEARNED)
        theory = kernel(f)
        variance, perpendicular = compare.particle_kernel_variance(f, np.full(PARTICLES, 1.0 / PARTICLES))
        floor = compare.kernel_floor(seeds, theory, theory_variance=variance, theory_variance_perpendicular=perpendicular)
        mean = seeds.mean(axis=0)
        matched.append(float(compare.relative_kernel_error(mean, theory)) ** 2)
        shifted.append(float(compare.relative_kernel_error(mean, 1.1 * theory)) ** 2)  # the law with 10% more variance
        floors.append(floor.distance**2)
        half_sets.append(float(compare.relative_kernel_error(seeds[: SEEDS // 2].mean(0), seeds[SEEDS // 2:].mean(0))) ** 2
                         / (4 * floor.networks**2))
        misaligned.append(1.0 - float(compare.kernel_alignment(theory, mean)))
        alignment_floors.append(floor.alignment)
    se = lambda v: np.std(v, ddof=1) / np.sqrt(REPEATS)
    excess = np.array(matched) - np.array(floors)
    assert abs(excess.mean()) < 4 * se(excess)
    excess_shifted = np.array(shifted) - np.array(floors)
    assert excess_shifted.mean() > 4 * se(excess_shifted)  # wrong twin: 10% off is rejected
    # the half-set distance estimates 4 x the seed mean's variance (what the old floor reported, without the theory's noise)
    assert abs(np.mean(half_sets) - 1.0) < 4 * se(half_sets)
    gap = np.array(misaligned) - np.array(alignment_floors)
    assert abs(gap.mean()) < 4 * se(gap)


def test_kernel_floor_rejects_bad_shapes():
    with pytest.raises(ConfigError, match="seed kernels"):
        compare.kernel_floor(np.zeros((1, 3, 3)), np.eye(3))


def test_half_set_conversion():
    out = compare.half_set_floor_to_kernel_floor(0.04, seeds=4)
    assert out["networks"] == pytest.approx(0.02) and out["theory"] is None
    out = compare.half_set_floor_to_kernel_floor(0.04, seeds=4, width=512, effective_sample_size=512 * 4)
    assert out["theory"] == pytest.approx(0.02) and out["distance"] == pytest.approx(0.02 * np.sqrt(2))


def test_learned_part_separates_what_the_whole_kernel_alignment_cannot(x64):
    """The NNGP aligns with the networks' kernel at > 0.9 (the whole-kernel score says little), but explains none of
    the learned part (distance 1); the right law explains it (distance < 0.3, alignment > 0.9); a law that learned the
    wrong direction (variances permuted) fails as the NNGP does (distance > 0.7)."""
    _, features, kernel = _setup(seed=2)
    mild = np.array([1.3, 1.0, 0.8])  # weak learning: the NNGP still aligns at 0.94 (measured)
    network = np.mean([kernel(features(WIDTH, mild)) for _ in range(SEEDS)], axis=0)
    nngp = kernel(features(40000, np.ones(DIM)))
    right = kernel(features(PARTICLES, mild))
    wrong = kernel(features(PARTICLES, mild[[1, 0, 2]]))  # learned the second direction instead of the first
    assert float(compare.kernel_alignment(nngp, network)) > 0.9
    good = compare.learned_part(network, right, nngp)
    bad = compare.learned_part(network, wrong, nngp)
    assert good["nngp"] == {"distance": 1.0, "alignment": 0.0}
    assert good["theory"]["distance"] < 0.4 and good["theory"]["alignment"] > 0.95  # measured 0.24, 0.988
    assert bad["theory"]["distance"] > 0.7  # measured 1.10
    with pytest.raises(ConfigError, match="no learned part"):
        compare.learned_part(nngp, right, nngp)
