"""Minibatch gradient noise in the mean-field training run (``solve_dynamics(batch_size=b)``, ``simulate``).

Every neuron of a network sees the same minibatch B_k at step k, so the theory for a given batch sequence is a random
trajectory. Checked here: its fixed point is the M-particle system on the same batches; ``b = P`` is the full-batch
run bit for bit; the batch sequence is the joint trainer's for the same key (a width-M network trained by SGD from
the theory's particles is the theory's particle system); and the size of the noise: the spread over batch sequences
of the loss of a linear network against the exact law over all sequences (enumerated in numpy), with an error budget
and wrong twins.
"""

import itertools

import jax
import numpy as np
import pytest

from mft_jax.data import make_dataset
from mft_jax.errors import ConfigError
from mft_jax.model import TwoLayer
from mft_jax.tasks import make_data
from mft_jax.theory.dynamics import batch_sequence, initial_particles, linear_moments, simulate, solve_dynamics
from mft_jax.train.joint import batch_key, optax_optimizer, residual, train


@pytest.fixture(scope="module")
def clover():
    return make_data("continuous_xor", quadrature=4)  # P = 16


GELU = TwoLayer("gelu", sa2=4.0, sw2=1.0, beta=1.0)
OPTIONS = dict(key=jax.random.key(0), steps=120, step_size=0.05, num_neurons=256)


def test_minibatch_fixed_point_is_the_particle_system(clover):
    """With batches of 4 of the 16 points the fixed point equals the M-particle system stepped on the same batches
    (to the engine's tolerance); another batch sequence, or the full batch, is far outside it."""
    solution = solve_dynamics(clover, GELU, **OPTIONS, batch_size=4, windows=2, tol=1e-6)
    direct = simulate(clover, GELU, **OPTIONS, batch_size=4)
    assert solution.converged, solution.message
    assert solution.settings["batch_size"] == 4 and solution.batches.shape == (120, 4)
    assert np.array_equal(solution.batches, batch_sequence(batch_key(OPTIONS["key"], 0), 16, 4, 120))
    assert np.abs(solution.residual - direct).max() < 1e-4
    other = simulate(clover, GELU, **OPTIONS, batch_size=4, batch_key=jax.random.key(7))
    full = simulate(clover, GELU, **OPTIONS)
    assert np.abs(other - direct).max() > 100 * 1e-4 and np.abs(full - direct).max() > 100 * 1e-4


def test_whole_data_batch_is_the_full_batch_run(clover):
    """``batch_size = P`` takes every point with weights renormalised by exactly 1: bit-identical to full batch."""
    options = {**OPTIONS, "steps": 40}
    full = solve_dynamics(clover, GELU, **options, tol=1e-6)
    whole = solve_dynamics(clover, GELU, **options, tol=1e-6, batch_size=16)
    assert full.batches is None and np.array_equal(whole.batches, np.tile(np.arange(16), (40, 1)))
    assert np.array_equal(whole.residual, full.residual) and np.array_equal(whole.loss, full.loss)
    assert np.array_equal(simulate(clover, GELU, **options, batch_size=16), simulate(clover, GELU, **options))
    assert not np.array_equal(simulate(clover, GELU, **options, batch_size=15), simulate(clover, GELU, **options))  # twin


def test_network_minibatches_are_the_theorys(clover):
    """A width-256 mean-field network trained by SGD (step h, T = 0) on minibatches of 4 from the theory's initial
    particles is the theory's particle system on the same batches: ``train(key, ..., batch_size=4)``'s seed 0 and
    ``simulate(key=key, batch_size=4)`` agree to float32 rounding; with seed 1's batch sequence they do not."""
    key, steps, h = OPTIONS["key"], 60, 0.05
    start = initial_particles(jax.random.split(key)[0], GELU, 256, 2, 1)
    run = train(key, GELU, 256, clover, optax_optimizer("sgd", h), steps, batch_size=4, progress=False, chunk=steps,
                init_params={"a": start.a[None], "w": start.w[None]})
    network = np.asarray(residual({"a": run.params["a"][0], "w": run.params["w"][0]}, GELU, clover))
    theory = simulate(clover, GELU, key=key, steps=steps, step_size=h, temperature=0.0, num_neurons=256, batch_size=4)
    assert np.abs(network - theory[-1]).max() < 1e-4
    seed1 = simulate(clover, GELU, key=key, steps=steps, step_size=h, temperature=0.0, num_neurons=256, batch_size=4,
                     batch_key=batch_key(key, 1))
    assert np.abs(network - seed1[-1]).max() > 100 * 1e-4


# ------------------------------------------------------------------------------- the size of the minibatch noise
P, D, B, K, H = 4, 2, 2, 2, 0.3


def _linear_problem():
    """Four points in the plane; seed 4 gives a law of the loss over sequences with small kurtosis (1.75), so 4096
    sequences measure its standard deviation to 0.7% (seeds 0-11 give kurtoses 1.75-14)."""
    rng = np.random.default_rng(4)
    return rng.normal(size=(P, D)), rng.normal(size=P)


def _loss_after(x, y, sequence, renormalise=True):
    """The linear network (phi(z) = z, sa2 = sw2 = 1, T = 0) after ``len(sequence)`` steps, written independently of
    the library: ``(a, w)`` second moments ``S`` move by ``S <- E S E^T`` with ``E = I + h [[0, R], [R^T, 0]]``,
    ``R = sum_{mu in B} q_B(mu) r_mu x_mu^T``, ``q_B = q / sum_B q`` (or ``q`` itself, the unrenormalised twin)."""
    q = np.full(len(y), 1.0 / len(y))
    moments = np.eye(1 + x.shape[1])
    for batch in sequence:
        batch = list(batch)
        r = y - x @ moments[0, 1:]
        weights = q[batch] / (q[batch].sum() if renormalise else 1.0)
        coupling = (weights * r[batch]) @ x[batch]
        step = np.eye(1 + x.shape[1])
        step[0, 1:] += H * coupling
        step[1:, 0] += H * coupling
        moments = step @ moments @ step.T
    r = y - x @ moments[0, 1:]
    return 0.5 * np.sum(q * r**2)


def _law_over_sequences(x, y, batch_size=B, renormalise=True):
    """The loss after K steps for each of the C(P, b)^K equally likely batch sequences."""
    subsets = list(itertools.combinations(range(P), batch_size))
    return np.array([_loss_after(x, y, s, renormalise) for s in itertools.product(subsets, repeat=K)])


def test_minibatch_noise_has_the_size_of_the_exact_law(x64):
    """Linear activation, T = 0, quadrature particles (exact second moments, so the run on a given sequence is the
    M -> infinity theory): 4096 keys give 4096 batch sequences of the library; the mean and the standard deviation
    over them of the loss after K = 2 steps (batches of 2 of 4 points) against the exact law over all 36 sequences.
    Budget: 4 standard errors of each estimator, from the exact law's moments (se(mean) = sigma / sqrt(n),
    se(sd) = sqrt((mu4 - sigma^4) / n) / (2 sigma); the O(1/n) bias of the sd is 1e-4 of it). Wrong twins, each
    outside the budget: the sd 10% larger; batches of 1 or 3 points; weights restricted but not renormalised."""
    x, y = _linear_problem()
    data = make_dataset(x, y)
    model = TwoLayer("linear", sa2=1.0, sw2=1.0, beta=1.0)
    n = 4096
    losses = np.empty(n)
    for i in range(n):
        r = simulate(data, model, key=jax.random.key(i), steps=K, step_size=H, temperature=0.0, init="quadrature",
                     num_neurons=8, batch_size=B)
        losses[i] = 0.5 * np.mean(r[-1] ** 2)
    law = _law_over_sequences(x, y)
    mean, sd = law.mean(), law.std()
    mu4 = np.mean((law - mean) ** 4)
    budget_mean = 4 * sd / np.sqrt(n)
    budget_sd = 4 * np.sqrt((mu4 - sd**4) / n) / (2 * sd)
    assert budget_sd < 0.04 * sd  # the test can tell a 10% error in the noise's size
    assert abs(losses.mean() - mean) < budget_mean, (losses.mean(), mean, budget_mean)
    assert abs(losses.std() - sd) < budget_sd, (losses.std(), sd, budget_sd)
    assert abs(losses.std() - 1.1 * sd) > budget_sd  # twin: the noise 10% larger
    for twin in (_law_over_sequences(x, y, batch_size=1), _law_over_sequences(x, y, batch_size=3),
                 _law_over_sequences(x, y, renormalise=False)):
        assert abs(losses.std() - twin.std()) > budget_sd or abs(losses.mean() - twin.mean()) > budget_mean
    # the library's closed form on one sequence is the same recursion, exactly
    solution = solve_dynamics(data, model, key=jax.random.key(0), steps=K, step_size=H, temperature=0.0,
                              init="quadrature", num_neurons=8, batch_size=B, tol=1e-12)
    exact = linear_moments(data, model, steps=K, step_size=H, temperature=0.0, batches=solution.batches)
    assert np.abs(solution.loss - exact.loss).max() < 1e-12
    assert exact.loss[-1] == pytest.approx(_loss_after(x, y, solution.batches), rel=1e-12)
    assert abs(exact.loss[-1] - _loss_after(x, y, solution.batches, renormalise=False)) > 1e-3  # twin


def test_checkpoint_records_the_batches(clover, tmp_path):
    """The batch size and the batch key are in the checkpoint's fingerprint: the same run resumes bit-identically,
    another batch size or batch key is refused in words."""
    options = dict(key=jax.random.key(0), steps=40, step_size=0.05, num_neurons=64, windows=2, tol=1e-6, batch_size=4,
                   checkpoint=tmp_path / "run.npz")
    first = solve_dynamics(clover, GELU, **options)
    again = solve_dynamics(clover, GELU, **options)
    assert np.array_equal(first.residual, again.residual) and np.array_equal(first.batches, again.batches)
    with pytest.raises(ConfigError, match="batch_size"):
        solve_dynamics(clover, GELU, **{**options, "batch_size": 8})
    with pytest.raises(ConfigError, match="batch_key"):
        solve_dynamics(clover, GELU, **options, batch_key=jax.random.key(3))


@pytest.mark.parametrize("bad, match", [
    (dict(batch_size=0), r"batch_size must be None \(full batch\) or an integer in \[1, P = 16\]"),
    (dict(batch_size=17), r"integer in \[1, P = 16\], got 17"), (dict(batch_size=2.0), "batch_size"),
    (dict(batch_size=True), "batch_size"), (dict(batch_key=jax.random.key(1)), "batch_key .* needs batch_size"),
])
def test_bad_batch_input_is_named(clover, bad, match):
    options = dict(key=jax.random.key(0), steps=4, step_size=0.05, num_neurons=8)
    with pytest.raises(ConfigError, match=match):
        solve_dynamics(clover, GELU, **options, **bad)
    with pytest.raises(ConfigError, match=match):
        simulate(clover, GELU, **options, **bad)


def test_trainer_refuses_a_bad_batch_size(clover):
    with pytest.raises(ConfigError, match=r"integer in \[1, P = 16\], got 40"):
        train(jax.random.key(0), GELU, 8, clover, optax_optimizer("sgd", 0.1), 2, batch_size=40, progress=False)
    with pytest.raises(ConfigError, match="linear_moments|batches must be"):
        linear_moments(clover, TwoLayer("linear"), steps=3, step_size=0.1, batches=np.zeros((2, 4), int))


@pytest.mark.slow
def test_minibatch_experiment_quick_run(tmp_path):
    """``python -m experiments.dynamics --minibatch --quick`` (about 30 s): runs end to end, writes its JSON (with the
    command) and figure; the theory converged for every sequence."""
    from experiments import dynamics

    out = dynamics.main(["--minibatch", "--quick", "--results", str(tmp_path), "--figures", str(tmp_path)])
    assert (tmp_path / "minibatch_quick.json").exists() and (tmp_path / "dynamics_minibatch_quick.png").exists()
    assert out["meta"]["command"].startswith("python -m experiments.dynamics --minibatch --quick")
    assert out["theory"]["converged"] and len(out["networks"]) == 2
    assert np.asarray(out["theory"]["loss"]).shape == (9, 4)
