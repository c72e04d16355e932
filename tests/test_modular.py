"""The modular-addition reduction (mft_jax.theory.reduced.modular): Fourier loss, per-mode integral, saddles, self-consistency."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from mft_jax.errors import ConfigError
from mft_jax.model import TwoLayer
from mft_jax.theory.reduced.modular import (
    coexistence_coupling, exact_coexistence, feature_gram, fourier_loss, learned_fraction, mode_powers, network_discrepancy,
    pair_mode, paper_couplings, prior_correlations, prior_gp_predict, prior_kernel, saddle, sample_neurons, solve_discrepancy,
    target_overlap, top_mode_share,
)
from mft_jax.priors import fourier_sextic
from mft_jax.tasks import make_data, make_split
from mft_jax.train.joint import loss


def test_fourier_loss_equals_the_direct_loss(x64):
    modulus = 7
    data = make_data("modular_addition", modulus=modulus)
    for scaling in ("mean_field", "standard"):
        model = TwoLayer("square", sa2=2.0, sw2=0.8, beta=1.0, scaling=scaling)
        params = model.init_params(jax.random.key(0), 12, 2 * modulus, modulus)
        np.testing.assert_allclose(fourier_loss(params, model), loss(params, model, data), rtol=1e-12)
    grads = [jax.jit(jax.grad(f), static_argnums=1)(params, model, data) for f in (fourier_loss, loss)]
    for leaf in ("a", "w"):
        np.testing.assert_allclose(grads[0][leaf], grads[1][leaf], rtol=1e-10, atol=1e-13)
    w = params["w"]
    features = (w @ data.x.T) ** 2  # (M, P^2)
    np.testing.assert_allclose(target_overlap(w), features @ data.y, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(feature_gram(w), features @ features.T, rtol=1e-12)


def test_network_observables(x64):
    """``network_discrepancy`` is ``1 - sum f.y / sum |y|^2`` of the direct forward pass; a pure Fourier mode in both
    halves has top-mode share 1, modes 1 and 3 in one half and 2 in the other 1/3 (k and P-k are one pair mode)."""
    modulus = 7
    data = make_data("modular_addition", modulus=modulus)
    for scaling in ("mean_field", "standard"):
        model = TwoLayer("square", sa2=2.0, sw2=0.8, beta=1.0, scaling=scaling)
        params = model.init_params(jax.random.key(3), 12, 2 * modulus, modulus)
        f = model.apply(params, data.x)
        np.testing.assert_allclose(network_discrepancy(params, model), 1 - jnp.sum(f * data.y) / jnp.sum(data.y**2), rtol=1e-12)
    n = np.arange(modulus)
    pure = np.cos(2 * np.pi * 2 * n / modulus + 0.3)
    two = np.cos(2 * np.pi * 1 * n / modulus) + np.cos(2 * np.pi * 3 * n / modulus)
    w = jnp.asarray(np.stack([np.concatenate([pure, pure]), np.concatenate([two, pure])]))
    np.testing.assert_allclose(top_mode_share(mode_powers(w)), [1.0, 1 / 3], rtol=1e-12)
    # Phi_k Psi_k = 1/16 in the shared mode of the first neuron only
    np.testing.assert_allclose([learned_fraction(w, 0.24), learned_fraction(w, 0.26)], [1 / 6, 0.0])


def test_overlap_in_fourier_modes(x64):
    """|S(w)|^2 = 4 P^3 sum_{k != 0} Phi_k Psi_k = 8 P^3 sum over pair modes."""
    modulus = 9
    w = jax.random.normal(jax.random.key(1), (5, 2 * modulus))
    powers = mode_powers(w)
    np.testing.assert_allclose(jnp.sum(target_overlap(w) ** 2, -1), 8 * modulus**3 * jnp.sum(powers[:, 0] * powers[:, 1], -1), rtol=1e-11)


def _brute(g, gamma, modulus):
    density = lambda y, x: math.exp(-2 * modulus * ((x + y) / 2 - g * x * y + gamma * (x**3 + y**3) / 6))
    opts = dict(epsabs=0, epsrel=1e-10)
    z = integrate.dblquad(density, 0, 60, 0, 60, **opts)[0]
    m = integrate.dblquad(lambda y, x: x * y * density(y, x), 0, 60, 0, 60, **opts)[0]
    return math.log(z), m / z


@pytest.mark.parametrize("g", [0.0, 0.6, 0.9])
def test_pair_mode_against_brute_force_quadrature(x64, g):
    """P = 5, gamma = 0.3 (sqrt(gamma) = 0.55: g = 0.6, 0.9 have a nonzero saddle, 0.9 above g_c = 0.63).

    The product trapezoid rule is second order: at the default 900 nodes per axis log Z is off by
    1e-4 (g = 0) to 3e-6, <Phi Psi> by < 3e-5 relative (errors measured against scipy dblquad at
    rtol 1e-10); tolerances 3e-4 and 1e-4. Power: gamma 10% off moves <Phi Psi> by > 20 tolerances (~85 at g = 0).
    """
    modulus, gamma = 5, 0.3
    mode = pair_mode(g, gamma, modulus)
    log_z, phi_psi = _brute(g, gamma, modulus)
    np.testing.assert_allclose(mode.log_partition, log_z, atol=3e-4)
    np.testing.assert_allclose(mode.phi_psi, phi_psi, rtol=1e-4)
    wrong = pair_mode(g, 1.1 * gamma, modulus)
    assert abs(wrong.phi_psi - phi_psi) > 20 * 1e-4 * phi_psi
    if g == 0.0:
        np.testing.assert_allclose(_brute(0.0, 0.0, modulus)[1], 1 / modulus**2, rtol=1e-8)  # the Gaussian prior


def test_saddle_is_the_large_P_limit(x64):
    gamma = 1e-4
    g_c = coexistence_coupling(gamma)
    stationary = saddle(g_c, gamma)
    np.testing.assert_allclose([stationary.learned, stationary.action], [math.sqrt(3 / gamma), 0.0], atol=1e-9)
    # just above g_c the learned well holds the mass and <Phi Psi> -> x_+^2; below, the zero well (1/P^2)
    for modulus in (101, 401):
        above, below = pair_mode(1.02 * g_c, gamma, modulus), pair_mode(0.98 * g_c, gamma, modulus)
        assert above.learned > 0.999 and below.learned < 1e-6
        np.testing.assert_allclose(above.phi_psi, saddle(1.02 * g_c, gamma).learned ** 2, rtol=2 / modulus)
        np.testing.assert_allclose(below.phi_psi, 1 / modulus**2, rtol=0.1)
    # the exact coexistence coupling converges to the saddle's sqrt(4 gamma / 3) as P grows
    gaps = [abs(exact_coexistence(gamma, modulus, points=300) / g_c - 1) for modulus in (51, 201)]
    assert gaps[1] < gaps[0] / 2 and gaps[1] < 1e-3


def test_saddle_branches_cross_at_coexistence(x64):
    """The P -> infinity per-mode theory has a first-order transition: for sqrt(gamma) < g < g_c two branches
    (the zero saddle, action 0, stable; the learned saddle x_+, action > 0, metastable), beyond g_c the learned one
    is stable (action < 0); they cross at g_c = sqrt(4 gamma / 3), the spinodal sqrt(gamma) lies 13% below.
    Power: the same sign-change check at a wrong coupling (the spinodal, or g_c 10% off) finds no crossing; and
    the exact per-mode law at P = 401 puts its mass on the stable branch on each side."""
    gamma = 1e-4
    g_c, spinodal = coexistence_coupling(gamma), math.sqrt(gamma)
    assert math.isnan(saddle(0.99 * spinodal, gamma).learned)  # one branch only below the spinodal
    for g in (1.01 * spinodal, 0.98 * g_c, 1.02 * g_c, 1.5 * g_c):
        branch = saddle(g, gamma)
        assert 0 < branch.barrier < branch.learned  # two minima (0 and x_+) separated by the barrier x_-
        assert (branch.action > 0) == (g < g_c)  # the lower action is the stable branch

    def crosses(g, width=1e-3):
        return saddle(g * (1 - width), gamma).action * saddle(g * (1 + width), gamma).action < 0

    assert crosses(g_c)
    assert not any(crosses(g) for g in (1.001 * spinodal, 0.9 * g_c, 1.1 * g_c))
    low, high = spinodal * 1.0001, 2 * g_c  # the crossing by bisection on the action: g_c to 1e-9
    for _ in range(60):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if saddle(mid, gamma).action > 0 else (low, mid)
    assert abs(0.5 * (low + high) / g_c - 1) < 1e-9
    modulus = 401
    assert pair_mode(0.98 * g_c, gamma, modulus).learned < 1e-6 < 0.999 < pair_mode(1.02 * g_c, gamma, modulus).learned


def test_discrepancy_self_consistency(x64):
    modulus, width, gamma = 401, 1000, 1e-4
    for sigma2 in (0.3, 0.2):
        u, kappa = paper_couplings(modulus, width, 0.002 / width, sigma2)
        exact = solve_discrepancy(u, kappa, gamma, modulus, points=500)
        mode = pair_mode(exact.g, gamma, modulus, points=500)
        np.testing.assert_allclose(exact.a * (1 + 4 * kappa * mode.phi_psi), 1.0, rtol=1e-6)
        approx = solve_discrepancy(u, kappa, gamma, modulus, method="saddle")
        assert exact.phase == approx.phase
        np.testing.assert_allclose(exact.a, approx.a, rtol=1e-3)  # P = 401 is deep in the saddle regime
    # GMFL-I: a = sqrt(g_c / u), linear in sigma^2; a 10% larger gamma moves it by ~2.4%
    wrong = solve_discrepancy(u, kappa, 1.1 * gamma, modulus, method="saddle")
    assert abs(wrong.a - approx.a) > 10 * 1e-3 * approx.a
    # the GP limit: u -> 0 gives a = 1 / (1 + 4 kappa / P^2)
    gp = solve_discrepancy(1e-9, 3.0, gamma, 11, points=400)
    np.testing.assert_allclose(gp.a, 1 / (1 + 12 / 121), rtol=1e-6)
    assert gp.phase == "GFL"


def test_penalty_and_overlap_give_the_per_mode_action(x64):
    """-|w|^2/2 - Gamma + c|S|^2 (r = a y, library units) equals -2P sum_pairs A(Phi_k, Psi_k) minus the k = 0 terms."""
    modulus, gamma, a = 7, 0.05, 0.8
    model = TwoLayer("square", sa2=3.0, sw2=1.0, beta=2.0)
    w = jax.random.normal(jax.random.key(2), (4, 2 * modulus))
    data = make_data("modular_addition", modulus=modulus)
    log_density = model.replace(penalty=fourier_sextic(gamma)).log_density(w, data, a * data.y)
    u = 4 * model.coupling / modulus**2
    powers = mode_powers(w)
    phi, psi = powers[:, 0], powers[:, 1]
    action = jnp.sum((phi + psi) / 2 - u * a * a * phi * psi + gamma / 6 * (phi**3 + psi**3), -1)
    w0, v0 = jnp.mean(w[:, :modulus], -1) ** 2, jnp.mean(w[:, modulus:], -1) ** 2
    zero_mode = modulus * ((w0 + v0) / 2 + gamma / 6 * (w0**3 + v0**3))
    np.testing.assert_allclose(log_density, -2 * modulus * action - zero_mode, rtol=1e-11)


def test_prior_kernel_gaussian_limit_and_gp(x64):
    """gamma = 0: the sextic-prior kernel is the Gaussian closed form ``q11 q22 + 2 q12^2`` (to quadrature accuracy of
    the moments, ~1e-13); ``prior_gp_predict`` is ``mft_jax.theory.gp.gp_predict`` then. Power: gamma = 10 at P = 5 moves
    entries by > 1e-2 (10^11 tolerances)."""
    from mft_jax.theory.gp import gp_predict, nngp_kernel

    data = make_data("modular_addition", modulus=5)
    gaussian = np.asarray(nngp_kernel("square", 1.0, data.x, data.x))
    np.testing.assert_allclose(prior_kernel(data.x, data.x, 0.0), gaussian, rtol=1e-11, atol=1e-11)
    assert np.max(np.abs(prior_kernel(data.x, data.x, 10.0) - gaussian)) > 1e-2
    train, test = make_split("modular_addition", modulus=5, n_train=15, seed=1)
    model = TwoLayer("square", sa2=0.5, sw2=1.0, beta=3.0)
    np.testing.assert_allclose(prior_gp_predict(train, model, test.x, 0.0), gp_predict(train, model, test.x), rtol=1e-9, atol=1e-12)


def test_prior_kernel_against_weighted_prior_draws(x64):
    """P = 5, gamma = 30: ``prior_kernel`` against self-normalised importance sampling of the prior (Gaussian draws,
    weights ``exp(-Gamma(w))`` from ``fourier_sextic``: no Fourier algebra shared with the closed form), 2^18 draws.
    Each of the distinct entries K(0, x') must lie within 5 standard errors (delta method; per-entry false-alarm
    rate 6e-7, 25 entries). Power: the Gaussian kernel lies > 10 s.e. away from the estimate in some entry."""
    modulus, gamma, draws = 5, 30.0, 2**18
    data = make_data("modular_addition", modulus=modulus)
    w = np.asarray(jax.random.normal(jax.random.key(7), (draws, 2 * modulus)))
    log_weight = -np.asarray(fourier_sextic(gamma)(jnp.asarray(w)))
    weight = np.exp(log_weight - log_weight.max())
    weight /= weight.sum()
    x = np.asarray(data.x)
    features = (w @ x.T) ** 2  # (draws, P^2)
    values = features[:, :1] * features  # phi(w.x_0) phi(w.x') for every x'
    estimate = weight @ values
    se = np.sqrt(np.sum(weight[:, None] ** 2 * (values - estimate) ** 2, axis=0))
    exact = prior_kernel(x[:1], x, gamma)[0]
    assert np.all(np.abs(exact - estimate) < 5 * se), np.max(np.abs(exact - estimate) / se)
    from mft_jax.theory.gp import nngp_kernel

    gaussian = np.asarray(nngp_kernel("square", 1.0, data.x[:1], data.x))[0]
    assert np.max(np.abs(gaussian - estimate) / se) > 10


def test_sample_neurons_follow_the_per_mode_law(x64):
    """P = 7, gamma = 10, g = 1.1 g_c: the mode powers of ``sample_neurons`` reproduce ``pair_mode``'s <Phi Psi>, <Phi>
    and learned mass, and at g = 0 the prior's correlation ``C(d)`` (``prior_correlations``), within 5 s.e. of 20000
    neurons x 3 pair modes (correlated draws inside a neuron only through nothing: modes are independent).
    Power: the law at 0.9 g_c (learned mass 0.33 vs 0.85 here) is > 10 s.e. away."""
    modulus, gamma = 7, 10.0
    g = 1.1 * coexistence_coupling(gamma)
    rng = np.random.default_rng(0)
    w = sample_neurons(rng, g, gamma, modulus, 20000, points=300)
    powers = np.asarray(mode_powers(jnp.asarray(w)))  # (M, 2, K)
    product = (powers[:, 0] * powers[:, 1]).ravel()
    mode = pair_mode(g, gamma, modulus, points=300)
    for sample, exact in ((product, mode.phi_psi), (powers[:, 0].ravel(), mode.phi)):
        se = sample.std() / math.sqrt(sample.size)
        assert abs(sample.mean() - exact) < 5 * se
    beyond = (product > saddle(g, gamma).barrier ** 2).mean()
    assert abs(beyond - mode.learned) < 5 * math.sqrt(mode.learned * (1 - mode.learned) / product.size)
    other = pair_mode(0.9 * coexistence_coupling(gamma), gamma, modulus, points=300)
    assert abs(product.mean() - other.phi_psi) > 10 * product.std() / math.sqrt(product.size)
    prior = sample_neurons(rng, 0.0, gamma, modulus, 40000, points=300)[:, :modulus]
    correlation, _ = prior_correlations(gamma, modulus)
    for d in range(3):
        sample = prior[:, 0] * prior[:, d]
        assert abs(sample.mean() - correlation[d]) < 5 * sample.std() / math.sqrt(sample.size)


def test_make_split_is_the_training_set_and_its_complement():
    """The training set equals make_data's subset; with the held-out set it partitions the table; nested in n_train."""
    modulus = 7
    table = {tuple(row) for row in np.asarray(make_data("modular_addition", modulus=modulus).x).tolist()}
    small, _ = make_split("modular_addition", modulus=modulus, n_train=10, seed=4)
    train, test = make_split("modular_addition", modulus=modulus, n_train=30, seed=4)
    np.testing.assert_array_equal(train.x, make_data("modular_addition", modulus=modulus, n_train=30, seed=4).x)
    rows = lambda d: [tuple(r) for r in np.asarray(d.x).tolist()]  # noqa: E731
    assert set(rows(train)) | set(rows(test)) == table and not set(rows(train)) & set(rows(test))
    assert len(rows(test)) == modulus**2 - 30 and set(rows(small)) <= set(rows(train))
    np.testing.assert_allclose(test.q, 1 / (modulus**2 - 30))
    n, m = np.argmax(np.asarray(test.x)[:, :modulus], 1), np.argmax(np.asarray(test.x)[:, modulus:], 1)
    np.testing.assert_array_equal(np.argmax(np.asarray(test.y), 1), (n + m) % modulus)
    with pytest.raises(Exception, match="held-out"):
        make_split("modular_addition", modulus=modulus, n_train=modulus**2)


def test_fig3_onsets_in_the_per_mode_eigenvalue_convention():
    """Paper's Fig. 3 (P = 401, N = 1000, sigma_a^2 = 0.002/N literal, gamma = 1e-4): GMFL-II at sigma^2 = 0.175 and
    ``a`` about -0.7 there. The per-mode convention (target eigenvalue ``<Phi Psi>``) puts GMFL-II within 0.005 of 0.175
    and gives |a| = 0.7458 there (0.7 is quoted to one digit: |a| - 0.7 < 0.05); the kernel convention (Gram eigenvalue
    ``4 P^2 <Phi Psi>``) has no GMFL-II (wrong twin), and a 10% larger sigma_a^2 moves GMFL-II by more than 0.005.
    GMFL-I (0.2360) is the same in both conventions (to 8e-6) and sits 0.009 above the paper's 0.227 (not within 0.005)."""
    from mft_jax.theory.reduced.modular import saddle_phase_boundaries

    sa2 = 0.002 / 1000
    per_mode = saddle_phase_boundaries(401, 1000, sa2, sa2, 1e-4, "per_mode")
    kernel = saddle_phase_boundaries(401, 1000, sa2, sa2, 1e-4, "kernel")
    assert abs(per_mode.gmfl2_sigma2 - 0.175) < 0.005 and abs(per_mode.gmfl2_sigma2 - 0.1760) < 1e-4
    assert abs(per_mode.a_at_gmfl2 - 0.7458) < 1e-4 and abs(per_mode.a_at_gmfl2 - 0.7) < 0.05
    assert abs(per_mode.gmfl1_sigma2 - 0.2360) < 1e-4 and abs(kernel.gmfl1_sigma2 - per_mode.gmfl1_sigma2) < 1e-5
    assert kernel.gmfl2_sigma2 is None
    assert kernel.eigenvalue_learned / per_mode.eigenvalue_learned == pytest.approx(4 * 401**2)
    off = saddle_phase_boundaries(401, 1000, 1.1 * sa2, 1.1 * sa2, 1e-4, "per_mode")
    assert abs(off.gmfl2_sigma2 - 0.175) > 0.005
    with pytest.raises(ConfigError, match="convention"):
        saddle_phase_boundaries(401, 1000, sa2, sa2, 1e-4, "mixed")
