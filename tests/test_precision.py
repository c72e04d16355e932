"""The matmul precision setting (mft_jax.precision): the default solves survive an accelerator's reduced-precision
matmuls, checked on CPU by emulating them (tests/precision_emulation.py).

On an H200 at JAX's default matmul precision (TF32) the README's clover solve at beta = 200 never converged (issue 26);
the CPU emulation of TF32 reproduces it (the wrong twins below). With the library's default ("highest") the same
solves under emulated TF32 and bf16 converge to the exact-precision loss. Error budget: the emulated solve computes
every product at HIGHEST, i.e. exactly the CPU's float32 product, so its loss equals the exact run's up to float
reordering (measured: bit-identical); 0.5% is the issue's acceptance bound. The twins miss by far more than that
margin: unconverged, or (bf16) a loss 88% off.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax import ConfigError, TwoLayer, make_data
from mft_jax.precision import current, matmul_precision
from mft_jax.theory.samplers.grid import grid_sampler
from mft_jax.theory.two_layer import solve
from precision_emulation import BF16_BITS, TF32_BITS, emulate, round_mantissa

LOSS_RTOL = 0.005  # the bound: the emulated default solve's loss within 0.5% of the exact one
# The smallest clover that still shows the failure (measured: docs/guide/precision.md): quadrature 6,
# a 48^2 grid. Exact: converged in 71 iterations at beta = 200; emulated TF32 at "fast": 1060 iterations, unconverged.
QUADRATURE, GRID = 6, 48


def clover(beta):
    return make_data("continuous_xor", quadrature=QUADRATURE), TwoLayer("ramp", sa2=1.0, sw2=1.0, beta=beta)


def default_solve(beta, **options):
    data, model = clover(beta)
    return solve(data, model, grid_sampler(GRID, 6.0), key=jax.random.key(0), **options)


@pytest.fixture(scope="module")
def exact200():
    solution = default_solve(200.0)
    assert solution.converged, solution.message
    return solution


def test_round_mantissa_is_round_to_nearest_even():
    one = 1.0
    x = jnp.array([one + 2**-11, one + 3 * 2**-11, one + 2**-12, one + 2**-11 + 2**-20, -3.0, jnp.inf], jnp.float32)
    expected = [one, one + 2**-9, one, one + 2**-10, -3.0, np.inf]  # ties to even, below half down, above half up
    np.testing.assert_array_equal(np.asarray(round_mantissa(x, TF32_BITS)), np.asarray(expected, np.float32))
    np.testing.assert_array_equal(np.asarray(round_mantissa(jnp.float32(1 + 2**-8), BF16_BITS)), np.float32(1.0))


def test_emulation_rounds_only_below_highest_and_restores_the_rule():
    a = jax.random.normal(jax.random.key(0), (64, 64))
    b = jax.random.normal(jax.random.key(1), (64, 64))
    reference = np.asarray(a, np.float64) @ np.asarray(b, np.float64)
    with emulate(TF32_BITS) as counts:
        default = np.asarray(jnp.dot(a, b))
        highest = np.asarray(jnp.dot(a, b, precision="highest"))
    after = np.asarray(jnp.dot(a, b))
    scale = np.abs(reference).max()
    assert np.abs(highest - reference).max() < 1e-5 * scale  # float32 products: ~1e-7 relative
    assert np.abs(default - reference).max() > 1e-4 * scale  # TF32 operands: ~1e-3 relative (measured 1e-3 here)
    assert np.abs(after - reference).max() < 1e-5 * scale  # the original lowering is back
    assert counts["rounded"] >= 1 and counts["exact"] >= 1


def test_the_setting_is_scoped_and_never_touches_the_users_jax_config(exact200):
    assert current() == "highest" and jax.config.jax_default_matmul_precision is None
    with matmul_precision("fast"):
        assert current() == "fast"
        with matmul_precision("highest"):
            assert current() == "highest"
        assert current() == "fast"
    assert current() == "highest" and jax.config.jax_default_matmul_precision is None  # also after exact200's solve
    with pytest.raises(ConfigError, match="precision must be 'highest'.*or 'fast'.*got 'tf32'"):
        with matmul_precision("tf32"):
            pass


@pytest.mark.parametrize("bits", [TF32_BITS, BF16_BITS], ids=["tf32", "bf16"])
def test_the_default_solve_at_beta_200_survives_reduced_precision_matmuls(exact200, bits):
    with emulate(bits) as counts:
        emulated = default_solve(200.0)
        # wrong twin, the same emulated solve at the backend's precision: one map evaluation from the exact fixed
        # point already misses tol by > 10x (the product error ~2^-bits sets a floor on |G(r) - r|), so no run
        # can converge; the full run (test_..._fails_at_the_fast_setting below, slow) confirms it.
        with matmul_precision("fast"):
            fast_step = solve(*clover(200.0), exact200.sampler, key=jax.random.key(0), init=exact200.residual, auto=False, max_iter=1)
        exact_step = solve(*clover(200.0), exact200.sampler, key=jax.random.key(0), init=exact200.residual, auto=False, max_iter=1)
    assert counts["rounded"] > 0 and counts["exact"] > 0  # the emulation was live for the fast step only
    assert emulated.converged, emulated.message
    np.testing.assert_allclose(emulated.loss, exact200.loss, rtol=LOSS_RTOL)
    assert exact_step.history["change"][0] < 1e-5  # the exact map: r* is a fixed point to tol
    assert fast_step.history["change"][0] > 1e-4  # the fast map: 10 x tol away from it


@pytest.mark.slow
@pytest.mark.parametrize("bits", [TF32_BITS, BF16_BITS], ids=["tf32", "bf16"])
def test_the_default_solve_at_beta_200_fails_at_the_fast_setting(exact200, bits):
    """The full wrong twin: the default solve under emulated TF32 / bf16 at ``precision = "fast"`` ends unconverged
    (measured: 1060 / 541 iterations, ~80 s / 30 s on 2 cores), what the H200 did at JAX's default."""
    with emulate(bits), matmul_precision("fast"):
        fast = default_solve(200.0)
    assert not fast.converged or abs(fast.loss / exact200.loss - 1) > LOSS_RTOL


@pytest.mark.slow
@pytest.mark.parametrize("bits", [TF32_BITS, BF16_BITS], ids=["tf32", "bf16"])
def test_the_default_solve_at_beta_1000_survives_reduced_precision_matmuls(bits):
    exact = default_solve(1000.0)
    assert exact.converged, exact.message
    with emulate(bits):
        emulated = default_solve(1000.0)
        with matmul_precision("fast"):
            fast = default_solve(1000.0)
    assert emulated.converged, emulated.message
    np.testing.assert_allclose(emulated.loss, exact.loss, rtol=LOSS_RTOL)
    assert not fast.converged or abs(fast.loss / exact.loss - 1) > LOSS_RTOL  # wrong twin


def test_float64_solves_converge_below_float32s_floor(x64):
    """The optional float64 path: ``jax.enable_x64`` around ``make_data`` and ``solve`` (the ``x64`` fixture)."""
    data, model = make_data("continuous_xor", quadrature=6), TwoLayer("ramp", sa2=1.0, sw2=1.0, beta=20.0)
    assert data.x.dtype == jnp.float64
    solution = solve(data, model, grid_sampler(GRID, 6.0), key=jax.random.key(0), tol=1e-9)
    assert solution.converged and solution.history["change"][-1] <= 1e-9, solution.message
    assert solution.residual.dtype == jnp.float64


def test_trainers_and_configs_take_highest_or_fast_and_record_it(tmp_path):
    from mft_jax.cli.config import section
    from mft_jax.cli.foreground import ForegroundConfig
    from mft_jax.cli.train import TrainConfig
    from mft_jax.train.joint import langevin_optimizer, train

    with pytest.raises(ConfigError, match=r'\[train\] precision must be "highest" .* or "fast" .*got \'tf32\''):
        section(TrainConfig, {"width": 4, "steps": 1, "step_size": 0.1, "precision": "tf32"}, "train")
    assert section(TrainConfig, {"width": 4, "steps": 1, "step_size": 0.1, "precision": "fast"}, "train").precision == "fast"
    assert section(TrainConfig, {"width": 4, "steps": 1, "step_size": 0.1}, "train").precision == "highest"
    with pytest.raises(ConfigError, match=r"\[foreground\] precision must be"):
        section(ForegroundConfig, {"num_neurons": 4, "steps": 1, "step_size": 0.1, "precision": "bf16"}, "foreground")

    data, model = make_data("continuous_xor", quadrature=3), TwoLayer("ramp", 1.0, 1.0, 2.0)
    options = dict(progress=False, chunk=2, checkpoint_every=2)
    with pytest.raises(ConfigError, match="precision must be 'highest'"):
        train(jax.random.key(0), model, 4, data, langevin_optimizer(model, 0.01), 2, precision="tf32", **options)
    for setting in ("fast", None):
        out = tmp_path / str(setting)
        train(jax.random.key(0), model, 4, data, langevin_optimizer(model, 0.01), 2, precision=setting, out_dir=out, **options)
        import json
        recorded = json.loads(str(np.load(out / "checkpoint.npz")["fingerprint"]))["precision"]
        assert recorded == (setting or "highest")  # None: the library setting, "highest" by default
    assert current() == "highest"
