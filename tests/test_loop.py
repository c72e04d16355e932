"""The long-run loop: resume is exact, NaN stops with the step named and the good checkpoint kept."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax.errors import NonFiniteError
from mft_jax.train.loop import load_checkpoint, run_loop


def noisy_walk(state, t):
    """A random walk whose noise comes from fold_in(key, t): the pattern every trainer follows."""
    x, key = state
    x = 0.9 * x + jax.random.normal(jax.random.fold_in(key, t), x.shape)
    return (x, key), {"norm": jnp.linalg.norm(x)}


def initial():
    return (jnp.zeros(5), jax.random.key(0))


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    full, history = run_loop(noisy_walk, initial(), 50, chunk=7, progress=False)
    run_loop(noisy_walk, initial(), 21, chunk=7, out_dir=tmp_path, checkpoint_every=7, progress=False)
    resumed, resumed_history = run_loop(noisy_walk, initial(), 50, chunk=7, out_dir=tmp_path, resume=True, progress=False)
    np.testing.assert_array_equal(np.asarray(resumed[0]), np.asarray(full[0]))  # bit-for-bit, not approximately
    np.testing.assert_array_equal(resumed_history["norm"], history["norm"])
    state, step, _ = load_checkpoint(tmp_path, initial())
    assert step == 50 and jnp.issubdtype(state[1].dtype, jax.dtypes.prng_key)


def test_nan_stops_with_step_named_and_last_good_checkpoint_kept(tmp_path):
    def blows_up(state, t):
        x, key = state
        x = jnp.where(t >= 33, jnp.nan, x + 1.0)
        return (x, key), {"mean": jnp.mean(x)}

    with pytest.raises(NonFiniteError, match=r"NaN/inf at step 33; stopped.*last good checkpoint \(step 30\)"):
        run_loop(blows_up, initial(), 100, chunk=10, out_dir=tmp_path, checkpoint_every=10, progress=False)
    state, step, history = load_checkpoint(tmp_path, initial())
    assert step == 30 and np.isfinite(np.asarray(state[0])).all()
    np.testing.assert_allclose(np.asarray(state[0]), 30.0)
    assert history["step"] == [10, 20, 30]


def test_resume_mid_chunk_records_the_same_steps(tmp_path):
    """A run checkpointed at step 25 (chunk 10) resumes into the uninterrupted run's records: steps 10, 20, 30,
    40 with the same values (before the fix the resumed history read 10, 20, 25, 35, 40)."""
    full, history = run_loop(noisy_walk, initial(), 40, chunk=10, progress=False)
    run_loop(noisy_walk, initial(), 25, chunk=10, out_dir=tmp_path, checkpoint_every=10, progress=False)
    resumed, resumed_history = run_loop(noisy_walk, initial(), 40, chunk=10, out_dir=tmp_path, resume=True, progress=False)
    assert list(resumed_history["step"]) == list(history["step"]) == [10, 20, 30, 40]
    np.testing.assert_array_equal(resumed_history["norm"], history["norm"])
    np.testing.assert_array_equal(np.asarray(resumed[0]), np.asarray(full[0]))


def test_resume_refuses_a_changed_run_and_names_the_keys(tmp_path):
    from mft_jax.errors import ConfigError
    from mft_jax.train.loop import fingerprint

    run = fingerprint(model={"beta": 2.0, "sa2": 1.0}, step_size=0.01)
    run_loop(noisy_walk, initial(), 20, chunk=10, out_dir=tmp_path, progress=False, run=run)
    changed = fingerprint(model={"beta": 2.5, "sa2": 1.0}, step_size=0.02)
    with pytest.raises(ConfigError, match=r"different run: model\.beta \(2\.0 in the checkpoint, 2\.5 now\); step_size"):
        run_loop(noisy_walk, initial(), 40, chunk=10, out_dir=tmp_path, resume=True, progress=False, run=changed)
    # the same run may be extended: more steps than it had
    _, history = run_loop(noisy_walk, initial(), 40, chunk=10, out_dir=tmp_path, resume=True, progress=False, run=run)
    assert list(history["step"]) == [10, 20, 30, 40]


def test_training_resume_refuses_another_beta_and_step_size(tmp_path):
    """The trainers fingerprint model, data, optimizer, width, seeds and key: a resume at another beta or step
    size (a run mixing two posteriors) is refused; the same settings with more steps continue."""
    from mft_jax.errors import ConfigError
    from mft_jax.model import TwoLayer
    from mft_jax.tasks import make_data
    from mft_jax.train.joint import langevin_optimizer, train

    data = make_data("continuous_xor", quadrature=3)
    model = TwoLayer("erf", 1.0, 1.0, 2.0)
    options = dict(chunk=5, out_dir=tmp_path, checkpoint_every=5, progress=False)
    train(jax.random.key(0), model, 4, data, langevin_optimizer(model, 0.01), 10, **options)
    hotter = model.replace(beta=2.2)
    with pytest.raises(ConfigError, match=r"model\.beta \(2\.0 in the checkpoint, 2\.2 now\)"):
        train(jax.random.key(0), hotter, 4, data, langevin_optimizer(hotter, 0.01), 20, resume=True, **options)
    with pytest.raises(ConfigError, match=r"optimizer\.step_size \(0\.01 in the checkpoint, 0\.02 now\)"):
        train(jax.random.key(0), model, 4, data, langevin_optimizer(model, 0.02), 20, resume=True, **options)
    result = train(jax.random.key(0), model, 4, data, langevin_optimizer(model, 0.01), 20, resume=True, **options)
    assert list(result.history["step"]) == [5, 10, 15, 20]


def test_nan_stop_keeps_a_finite_resumable_checkpoint(tmp_path):
    """After the NaN stop the kept checkpoint is finite and resumes (to the same NaN step: the run is deterministic)."""
    def blows_up(state, t):
        x, key = state
        x = jnp.where(t >= 33, jnp.nan, x + jax.random.normal(jax.random.fold_in(key, t), x.shape))
        return (x, key), {"mean": jnp.mean(x)}

    with pytest.raises(NonFiniteError, match="step 33"):
        run_loop(blows_up, initial(), 100, chunk=10, out_dir=tmp_path, checkpoint_every=10, progress=False)
    state, step, _ = load_checkpoint(tmp_path, initial())
    assert step == 30 and all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(state[0]))
    with pytest.raises(NonFiniteError, match="NaN/inf at step 33"):
        run_loop(blows_up, initial(), 100, chunk=10, out_dir=tmp_path, resume=True, progress=False)


@pytest.mark.parametrize("name", ["sgd", pytest.param("adam", marks=pytest.mark.slow)])  # adam: make test-slow (suite budget)
def test_optax_state_resumes_bit_for_bit(tmp_path, name):
    """SGD and Adam (moments, count) states go through the checkpoint: the resumed run ends bit-for-bit where
    the uninterrupted one does; a changed learning rate or model is refused by the run's fingerprint."""
    from mft_jax.errors import ConfigError
    from mft_jax.model import TwoLayer
    from mft_jax.tasks import make_data
    from mft_jax.train.joint import optax_optimizer, train

    data = make_data("continuous_xor", quadrature=4)
    model = TwoLayer("ramp", beta=20.0)
    key = jax.random.key(3)
    args = dict(num_seeds=2, chunk=5, progress=False)
    optimizer = optax_optimizer(name, 0.05)
    full = train(key, model, 8, data, optimizer, 20, **args)
    train(key, model, 8, data, optimizer, 10, out_dir=tmp_path, **args)
    resumed = train(key, model, 8, data, optimizer, 20, out_dir=tmp_path, resume=True, **args)
    for leaf in ("a", "w"):
        np.testing.assert_array_equal(np.asarray(resumed.params[leaf]), np.asarray(full.params[leaf]))
    np.testing.assert_array_equal(resumed.history["loss"], full.history["loss"])
    with pytest.raises(ConfigError, match=r"optimizer\.learning_rate"):
        train(key, model, 8, data, optax_optimizer(name, 0.1), 30, out_dir=tmp_path, resume=True, **args)
    with pytest.raises(ConfigError, match=r"model\.beta"):
        train(key, model.replace(beta=22.0), 8, data, optimizer, 30, out_dir=tmp_path, resume=True, **args)


def test_checkpoint_stores_large_metric_histories_in_binary(tmp_path):
    """A per-chunk observable of 64 x 64 float32 values (a kernel per record) is stored as binary arrays: the
    checkpoint is within 10% of the raw bytes (JSON text took 20x: 3.3 MB), and a resume gives the history back exactly."""
    def with_kernel(state, t):
        x, key = state
        x = 0.9 * x + jax.random.normal(jax.random.fold_in(key, t), x.shape)
        return (x, key), {"kernel": jnp.outer(x, x)[:64, :64], "norm": jnp.linalg.norm(x)}

    def start():
        return (jnp.zeros(64), jax.random.key(0))

    _, full = run_loop(with_kernel, start(), 200, chunk=10, progress=False)
    run_loop(with_kernel, start(), 100, chunk=10, out_dir=tmp_path, checkpoint_every=50, progress=False)
    raw = 10 * 64 * 64 * 4  # 10 records of the kernel so far
    assert (tmp_path / "checkpoint.npz").stat().st_size < 1.1 * raw + 20_000
    _, resumed = run_loop(with_kernel, start(), 200, chunk=10, out_dir=tmp_path, resume=True, progress=False)
    np.testing.assert_array_equal(resumed["kernel"], full["kernel"])
    assert resumed["kernel"].shape == (20, 64, 64) and resumed["kernel"].dtype == np.float32
