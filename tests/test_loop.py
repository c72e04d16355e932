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
