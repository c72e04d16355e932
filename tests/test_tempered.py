"""Replica-exchange MALA (``mft_jax.theory.samplers.tempered``) on a law with two wells behind a barrier.

The law: one weight, square activation, one point (x = 1, q = 1, residual 1), per-weight sextic prior:

    log rho(w) = -w^2/2 + c w^4 - (gamma/6) w^6,   c = beta^2 sa2 / 2 = 0.0075,   gamma/6 = c^2/2,

at the coexistence of its wells (``g6 = c^2/2``: the zero well and the wells at ``|w| ~ 11.5`` hold equal mass,
up to their widths), with a barrier of ``2/(27 c) = 9.9`` nats at ``|w_b| = sqrt(1/(3c)) = 6.67``. The exact
mass beyond the barrier comes from quadrature. Plain MALA started from the prior never crosses (the power of
the test: its mass is ~0, half the exact value away); the ladder's level-0 chains must carry the exact mass.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax.data import Dataset
from mft_jax.errors import ConfigError
from mft_jax.theory.samplers.mcmc import mcmc_sampler
from mft_jax.theory.samplers.tempered import TemperedInfo, tempered_sampler
from mft_jax.model import TwoLayer
from mft_jax.priors import sextic

C = 0.0075
G6 = C * C / 2
BARRIER_W = math.sqrt(1 / (3 * C))


def _setting():
    model = TwoLayer("square", sa2=2 * C, sw2=1.0, beta=1.0, penalty=sextic(6 * G6))
    data = Dataset(jnp.ones((1, 1)), jnp.ones((1,)), jnp.ones((1, 1)))
    return model, data, jnp.ones((1, 1))


def _exact():
    w = np.linspace(-25, 25, 500001)
    log_rho = -w**2 / 2 + C * w**4 - G6 * w**6
    p = np.exp(log_rho - log_rho.max())
    p /= p.sum()
    return float(p[np.abs(w) > BARRIER_W].sum()), float(np.sum(p * w**2))


def _sample(sampler, updates):
    model, data, residual = _setting()
    # the model's log density is the one the quadrature integrates
    w = jnp.linspace(-12.0, 12.0, 7)[:, None]
    np.testing.assert_allclose(model.log_density(w, data, residual),
                               -w[:, 0]**2 / 2 + C * w[:, 0]**4 - G6 * w[:, 0]**6, rtol=1e-5, atol=1e-4)
    state = sampler.init(jax.random.key(0), model, data)
    for _ in range(updates):
        law, state = sampler.update(state, model, data, residual)
    return np.asarray(law.w[:, 0], float), state.info


K_SIGMA = 4.0  # two-sided: false-failure rate 6e-5 per check for a fresh seed


def test_tempered_chains_cross_a_barrier_plain_mala_does_not():
    """Error budget: 4096 independent ladders, so the mass beyond the barrier has the binomial standard error
    sqrt(p (1 - p) / 4096) = 0.0078 (1.6% of p ~ 0.5), and the second moment sd(w^2) / sqrt(4096); both pass within
    K_SIGMA = 4 of them. Wrong twins: the exact mass x 0.9 and x 1.1 (a 10% error, 6.4 s.e.) and the exact second
    moment x 0.9 and x 1.1 must fail the same criterion. Float reordering moves the fraction by at most a chain or two
    near the barrier (< 0.1 s.e.); another seed by ~1 s.e."""
    beyond, second_moment = _exact()
    assert 0.4 < beyond < 0.6  # the test's premise: two wells of comparable mass
    chains = 4096
    w, info = _sample(tempered_sampler(chains, 200, num_levels=10, min_inverse_temperature=0.05), 2)
    se = math.sqrt(beyond * (1 - beyond) / chains)
    se2 = np.std(w**2) / math.sqrt(chains)

    def z(mass, moment):
        return abs(np.mean(np.abs(w) > BARRIER_W) - mass) / se, abs(np.mean(w**2) - moment) / se2

    assert max(z(beyond, second_moment)) < K_SIGMA, z(beyond, second_moment)  # the exact law, at its noise floor
    for factor in (0.9, 1.1):  # wrong twins: a 10% error in either quantity fails the same criterion
        assert z(factor * beyond, second_moment)[0] > K_SIGMA, (factor, z(factor * beyond, second_moment))
        assert z(beyond, factor * second_moment)[1] > K_SIGMA, (factor, z(beyond, factor * second_moment))
    print("z (mass, second moment):", z(beyond, second_moment), "x 0.9:", z(0.9 * beyond, 0.9 * second_moment),
          "x 1.1:", z(1.1 * beyond, 1.1 * second_moment))
    assert float(info.swap_rate) > 0.05 and float(info.round_trips) > 0.5
    assert 0.3 < float(info.acceptance_rate) < 0.9
    # plain MALA chains stay in the zero well (512 of them: the pooled test below compiles the same settings)
    w_mala, _ = _sample(mcmc_sampler(512, 400), 2)
    assert np.mean(np.abs(w_mala) > BARRIER_W) < beyond - 10 * se


@pytest.mark.slow  # a second compilation of the ladder (~15 s); the words alone are checked below
def test_a_coarse_ladder_is_measured_and_reported_in_words():
    sampler = tempered_sampler(64, 20, num_levels=2, min_inverse_temperature=1e-6)
    w, info = _sample(sampler, 1)
    assert float(info.swap_rate) < 0.05
    assert any("raise num_levels" in text for text in sampler.warnings(info, None))


def test_warnings_name_a_coarse_ladder_and_short_chains():
    sampler = tempered_sampler(64, 20, num_levels=4)
    one = jnp.asarray(1.0)
    good = TemperedInfo(one * 0.5, one * 0.3, one * 2, one * 0.1, one * 1000, one * 1.0, one)
    assert sampler.warnings(good, None) == []
    coarse = good._replace(swap_rate=one * 0.01)
    assert ["raise num_levels" in text for text in sampler.warnings(coarse, None)] == [True]
    short = good._replace(mixed=one * 0.0, autocorrelation_time=one * 30)
    assert ["raise num_steps" in text for text in sampler.warnings(short, None)] == [True]


@pytest.mark.parametrize("options", [dict(num_levels=1), dict(min_inverse_temperature=0.0), dict(min_inverse_temperature=1.5),
                                     dict(num_chains=1), dict(num_steps=2)])
def test_bad_settings_raise_config_error(options):
    with pytest.raises(ConfigError, match=f"tempered {next(iter(options))}"):
        tempered_sampler(**options)


def test_pooled_law_is_the_union_of_the_last_laws():
    """``pooled_sampler(inner, k)``: the law of update t is the inner laws t-k+1..t, each normalised, equally weighted;
    slots not yet filled carry zero weight; the inner chain is the one the inner sampler alone would run."""
    from mft_jax.theory.samplers.pooled import pooled_sampler

    model, data, residual = _setting()
    inner = mcmc_sampler(512, 400)  # the settings of the test above: one compilation serves both
    pooled = pooled_sampler(inner, 3)
    key = jax.random.key(3)
    state, alone = pooled.init(key, model, data), inner.init(key, model, data)
    laws = []
    for t in range(5):
        law, state = pooled.update(state, model, data, residual)
        inner_law, alone = inner.update(alone, model, data, residual)
        laws.append(np.asarray(inner_law.w))
        weights = np.asarray(law.weights())
        filled = min(t + 1, 3)
        assert np.sum(weights > 0) == 512 * filled and np.allclose(weights[weights > 0], 1 / (512 * filled))
        pooled_w = np.asarray(law.w)[weights > 0]
        expected = np.concatenate(laws[-filled:])
        np.testing.assert_array_equal(np.sort(pooled_w, axis=0), np.sort(expected, axis=0))
    with pytest.raises(ConfigError, match="num_updates"):
        pooled_sampler(inner, 0)
    from mft_jax.theory.samplers.importance import importance_sampler

    with pytest.raises(ConfigError, match="stochastic"):
        pooled_sampler(importance_sampler(16), 2)


def test_solve_job_builds_tempered_and_pooled_samplers():
    from mft_jax.theory.samplers.pooled import PooledSampler
    from mft_jax.theory.samplers.tempered import TemperedSampler
    from mft_jax.cli.solve import SolverConfig, make_sampler

    sampler = make_sampler(SolverConfig(sampler="tempered", num_levels=6, min_inverse_temperature=0.2, pool=4))
    assert isinstance(sampler, PooledSampler) and sampler.num_updates == 4
    assert isinstance(sampler.inner, TemperedSampler) and sampler.inner.num_levels == 6
    assert isinstance(make_sampler(SolverConfig(sampler="tempered")), TemperedSampler)
    with pytest.raises(ConfigError, match="stochastic"):
        make_sampler(SolverConfig(sampler="grid", pool=4))
