"""The solver never calls "converged" a law its sampler cannot vouch for (issue 31).

A grid box far too small, or a law the grid does not resolve, that the automatic re-grid could not fix (or with
``adapt_grid=False``), and MCMC chains that ran fewer than 20 autocorrelation times after the automatic escalation
(``Sampler.escalated``: twice the steps per update, at most ``SAMPLER_ESCALATIONS`` times) give ``converged=False``
and the reason in words. Each verdict is shown against its twin: the default box converges, the loss of the cut law
fails the same tolerance, and the escalated chains end mixed where the un-escalated ones do not.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax.theory.fixed_point import Result
from mft_jax.data import make_dataset
from mft_jax.errors import NoFixedPointError
from mft_jax.model import TwoLayer
from mft_jax.tasks import make_data
from mft_jax.theory.samplers.grid import grid_sampler
from mft_jax.neurons import NeuronLaw
from mft_jax.theory.samplers.mcmc import MCMCInfo, MCMCState, mcmc_sampler
from mft_jax.theory.samplers.pooled import pooled_sampler
from mft_jax.theory.samplers.tempered import TemperedInfo, tempered_sampler
from mft_jax.theory.two_layer import SAMPLER_ESCALATIONS, _escalated, _Stage, solve

LOSS_RTOL = 0.01  # the 64-node default grid against a 128-node, 8 sd box: the ramp's kinks converge like h^2 (0.4% here)


def _clover():
    """The reviewer's case: y = x1 x2 on a 12 x 12 Gauss-Hermite rule (P = 144), ramp, sa2 = sw2 = 1, beta = 50."""
    return make_data("continuous_xor", quadrature=12), TwoLayer("ramp", 1.0, 1.0, 50.0)


def test_a_law_cut_by_the_grid_box_is_not_converged():
    data, model = _clover()
    key = jax.random.key(0)
    reference = solve(data, model, grid_sampler(128, 8.0), key=key)  # box 8 sd, spacing 0.13 sd: no warning
    assert reference.converged and not reference.diagnostics["warnings"], reference.message
    default = solve(data, model, grid_sampler(), key=key)  # the default box [-6, 6]^2 (64 nodes, re-gridded once)
    assert default.converged, default.message
    assert abs(default.loss - reference.loss) < LOSS_RTOL * reference.loss, (default.loss, reference.loss)
    cut = solve(data, model, grid_sampler(64, 0.05), key=key, adapt_grid=False)  # box 0.05 sd: the law is cut
    assert not cut.converged
    assert cut.message.startswith("no fixed point the sampler can vouch for") and "boundary of the grid" in cut.message
    # the twin that makes the verdict matter: the cut law's loss fails the tolerance the default box meets
    assert abs(cut.loss - reference.loss) > 10 * LOSS_RTOL * reference.loss, (cut.loss, reference.loss)
    with pytest.raises(NoFixedPointError, match="boundary of the grid"):
        solve(data, model, grid_sampler(64, 0.05), key=key, adapt_grid=False, throw=True)


def test_a_cut_law_the_re_grid_cannot_fix_is_not_converged():
    """Three re-grids, each 1.5 x wider, cannot reach a law 100 x wider than the box: not converged, and says so."""
    data, model = _clover()
    cut = solve(data, model, grid_sampler(64, 0.05), key=jax.random.key(0))
    assert sum(action.startswith("re-grid") for action in cut.actions) == 3
    assert not cut.converged and "after 3 automatic re-grid(s)" in cut.message and "boundary of the grid" in cut.message


def _short_chains_problem():
    """Tiny linear-teacher data (P = 9, d = 2), erf, beta = 5: MALA's autocorrelation time is ~4-7 steps, so 16 steps
    per update (plus 8 of warm-up) are fewer than 20 of them; 2^3 x 16 steps are ~30 of them."""
    data = make_data("linear_teacher", quadrature=3, teacher=(1.0, -0.5))
    return data, TwoLayer("erf", 1.0, 1.0, 5.0), mcmc_sampler(256, 16, num_warmup=8)


def test_mcmc_solve_escalates_until_the_chains_are_mixed():
    data, model, sampler = _short_chains_problem()
    key = jax.random.key(0)
    plain = solve(data, model, sampler, key=key, auto=False)  # the twin: no escalation, chains not mixed
    assert float(plain.diagnostics["mixed"]) == 0.0
    assert not plain.converged and "may not be mixed" in plain.message, plain.message
    solution = solve(data, model, sampler, key=key)
    escalations = [action for action in solution.actions if action.startswith("escalate")]
    assert 1 <= len(escalations) <= SAMPLER_ESCALATIONS, solution.actions
    assert "num_steps 16 -> 32" in escalations[0]
    assert solution.sampler.num_steps == 16 * 2 ** len(escalations)
    assert float(solution.diagnostics["mixed"]) == 1.0 and solution.converged, solution.message


def test_escalation_is_bounded():
    """After SAMPLER_ESCALATIONS escalations the solver stops escalating (the law is then reported not converged)."""
    sampler = mcmc_sampler(64, 4)
    one = jnp.asarray(1.0)
    short = MCMCInfo(one * 0.57, one * 0.1, one * 10.0, one * 25.6, one * 0.0)
    stage = _Stage(np.zeros((9, 1)), NeuronLaw.from_samples(jnp.zeros((64, 2))), MCMCState(None, None, None, short),
                   Result.NOISE_FLOOR, 0.01, "noise floor")
    actions = []
    for count in range(SAMPLER_ESCALATIONS):
        sampler = _escalated(sampler, stage, 5.0, actions)
        assert sampler.num_steps == 4 * 2 ** (count + 1) and len(actions) == count + 1
    assert _escalated(sampler, stage, 5.0, actions) is None and len(actions) == SAMPLER_ESCALATIONS
    assert _escalated(mcmc_sampler(64, 4), stage._replace(result=Result.STALLED), 5.0, []) is None  # a stalled stage is not escalated
    mixed = stage._replace(state=MCMCState(None, None, None, short._replace(mixed=one)))
    assert _escalated(mcmc_sampler(64, 4), mixed, 5.0, []) is None


def test_escalated_doubles_the_steps_of_unmixed_chains_only():
    one = jnp.asarray(1.0)
    mixed = MCMCInfo(one * 0.57, one * 0.1, one * 1e4, one * 2.0, one)
    short = mixed._replace(mixed=one * 0.0)
    sampler = mcmc_sampler(64, 10)
    assert sampler.escalated(mixed) is None
    assert sampler.escalated(short).num_steps == 20 and sampler.escalated(short).num_chains == 64
    tempered = tempered_sampler(64, 10, num_levels=4)
    info = TemperedInfo(one * 0.5, one * 0.3, one * 2, one * 0.1, one * 1e4, one * 2.0, one)
    assert tempered.escalated(info) is None
    assert tempered.escalated(info._replace(mixed=one * 0.0)).num_steps == 20
    assert tempered.escalated(info._replace(swap_rate=one * 0.0)) is None  # more steps do not fix a coarse ladder
    pooled = pooled_sampler(sampler, 4)
    assert pooled.escalated(mixed) is None
    assert pooled.escalated(short) == pooled_sampler(sampler.escalated(short), 4)
    assert grid_sampler().escalated(None) is None  # the grid is re-gridded by the solver instead


def _iris():
    """scikit-learn's iris, versicolor (-1) against virginica (+1), the 4 features standardised: P = 100."""
    datasets = pytest.importorskip("sklearn.datasets")
    x, label = datasets.load_iris(return_X_y=True)
    keep = label > 0
    x = x[keep]
    x = (x - x.mean(0)) / x.std(0)
    return make_dataset(x.astype(np.float32), np.where(label[keep] == 2, 1.0, -1.0).astype(np.float32))


@pytest.mark.slow  # 28 CPU s (results/test_times/slow.tsv): 4096 chains x (150 then 250 steps) x ~20 iterations each
def test_iris_mcmc_defaults_escalate_until_mixed():
    """Issue 31's case: with mcmc_sampler() defaults the chains run 150 steps, fewer than 20 autocorrelation times
    (~9 steps each); the solve doubles num_steps and ends mixed and converged."""
    solution = solve(_iris(), TwoLayer("erf", 1.0, 1.0, 10.0), mcmc_sampler(), key=jax.random.key(0))
    escalations = [action for action in solution.actions if action.startswith("escalate")]
    assert escalations and "num_steps 100 -> 200" in escalations[0], solution.actions
    assert float(solution.diagnostics["mixed"]) == 1.0 and solution.converged, solution.message
