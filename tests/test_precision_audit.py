"""Every contraction the library traces carries ``Precision.HIGHEST`` by default (mft_jax.precision).

An accelerator's default float32 matmul is TF32 (NVIDIA) or bf16 passes (TPU): a ``dot_general`` left at the default
precision stalls the fixed point above tol on a GPU (docs/guide/precision.md). These tests trace each public program
with ``jax.make_jaxpr`` outside any precision context (as a user calls it) and walk the jaxpr, through every
sub-program (pjit, scan, while, cond, shard_map, custom derivatives), asserting each ``dot_general`` asks for
``HIGHEST`` on both operands. The twin shows the audit catches a plain ``a @ b``. A regression that drops the
setting fails here on CPU, without a GPU.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mft_jax import TwoLayer, make_data
from mft_jax.analysis import compare
from mft_jax.precision import matmul_precision
from mft_jax.theory import gp
from mft_jax.theory.deep import Deep, _Flat, _forward_jit, _gap_jit, nngp_state, solve_deep
from mft_jax.theory.samplers.grid import grid_sampler
from mft_jax.theory.samplers.importance import importance_sampler
from mft_jax.theory.samplers.layers import gaussian_layers, importance_layers, mcmc_layers
from mft_jax.theory.samplers.mcmc import mcmc_sampler
from mft_jax.theory.samplers.pooled import pooled_sampler
from mft_jax.theory.samplers.tempered import tempered_sampler
from mft_jax.theory.two_layer import fixed_point_map, gp_background
from mft_jax.train import joint
from mft_jax.train.deep_foreground import init_deep_foreground
from mft_jax.train.foreground import init_foreground
from mft_jax.train.gibbs import sample_readouts
from mft_jax.train.loop import chunk_program

HIGHEST = jax.lax.Precision.HIGHEST


def _subprograms(value):
    """The jaxprs inside an equation parameter (a Jaxpr, a ClosedJaxpr, or tuples / lists of them)."""
    if hasattr(value, "eqns"):
        yield value
    elif hasattr(value, "jaxpr") and hasattr(value, "consts"):
        yield value.jaxpr
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _subprograms(item)


def dot_precisions(jaxpr) -> list:
    """The ``precision`` of every ``dot_general`` in ``jaxpr`` and, recursively, in its sub-programs."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            found.append(eqn.params["precision"])
        for value in eqn.params.values():
            for sub in _subprograms(value):
                found += dot_precisions(sub)
    return found


def assert_highest(function, *args):
    """Trace ``function(*args)`` and require >= 1 ``dot_general``, all of them at ``HIGHEST`` on both operands."""
    assert jax.config.jax_default_matmul_precision is None  # the audit runs outside any precision context
    precisions = dot_precisions(jax.make_jaxpr(function)(*args))
    assert precisions, "no dot_general traced: the audit would be vacuous"
    loose = [p for p in precisions if p != (HIGHEST, HIGHEST)]
    assert not loose, f"{len(loose)} of {len(precisions)} dot_general(s) not at HIGHEST: {sorted(set(map(str, loose)))}"
    return len(precisions)


def test_the_audit_catches_a_plain_matmul():
    a = jnp.ones((3, 4))
    with pytest.raises(AssertionError, match="not at HIGHEST"):
        assert_highest(lambda x: x @ x.T, a)
    with pytest.raises(AssertionError, match="not at HIGHEST"):  # also one hidden in a scan inside a jit
        assert_highest(jax.jit(lambda x: jax.lax.scan(lambda c, row: (c + row @ x.T, None), jnp.zeros(3), x)[0]), a)
    assert assert_highest(lambda x: jnp.dot(x, x.T, precision="highest"), a) == 1


@pytest.fixture(scope="module")
def clover():
    return make_data("continuous_xor", quadrature=4), TwoLayer("ramp", 1.0, 1.0, 20.0)


SAMPLERS = {
    "grid": lambda: grid_sampler(12, 6.0),
    "importance": lambda: importance_sampler(256),
    "mcmc": lambda: mcmc_sampler(num_chains=16, num_steps=4, num_warmup=4),
    "tempered": lambda: tempered_sampler(num_chains=16, num_steps=4, num_levels=3, num_warmup=4),
    "pooled": lambda: pooled_sampler(mcmc_sampler(num_chains=16, num_steps=4, num_warmup=4), num_updates=2),
}


@pytest.mark.parametrize("name", SAMPLERS)
def test_the_two_layer_fixed_point_map_is_exact(clover, name):
    data, model = clover
    sampler = SAMPLERS[name]()
    state = sampler.init(jax.random.key(0), model, data)
    assert_highest(lambda st, r: fixed_point_map(sampler, model, st, data, r), state, data.y)
    assert_highest(lambda st, r: sampler.update(st, model, data, r), state, data.y)  # the sampler called directly


def test_kernels_predictions_and_the_gp_baseline_are_exact(clover):
    data, model = clover
    background = gp_background(data, model, grid_sampler(12, 6.0), key=jax.random.key(0))
    x_new = data.x[:3] + 0.1
    assert_highest(lambda x: background.kernel(x), data.x)
    assert_highest(lambda v: background.matvec(v), data.y)
    assert_highest(lambda: background.residual())
    assert_highest(lambda x: background.predict(x), x_new)
    assert_highest(lambda x: gp.nngp_kernel(model.activation, model.sw2, x, x), data.x)
    assert_highest(lambda x: gp.gauss_hermite_kernel("tanh", model.sw2, x, x), data.x)
    assert_highest(lambda: gp.gp_residual(data, model))
    assert_highest(lambda x: gp.gp_predict(data, model, x), x_new)


def test_compare_distances_are_exact(clover):
    data, model = clover
    law1 = gp_background(data, model, grid_sampler(8, 6.0), key=jax.random.key(0)).law
    law2 = gp_background(data, model, grid_sampler(9, 6.0), key=jax.random.key(0)).law
    key = jax.random.key(1)
    assert_highest(lambda: compare.sliced_wasserstein(law1, law2, key=key, num_projections=8))
    assert_highest(lambda: compare.energy_distance(law1, law2))
    assert_highest(lambda: compare.mmd(law1, law2, bandwidth=1.0))
    assert_highest(lambda: compare.sinkhorn_distance(law1, law2, epsilon=0.1, max_iterations=5))
    kernel = jnp.eye(data.num_points) + 0.1
    assert_highest(lambda k: compare.kernel_alignment(k, k, data.q), kernel)


@pytest.fixture(scope="module")
def deep_solution():
    data = make_data("continuous_xor", quadrature=3)
    return solve_deep(data, Deep("linear", depth=3, sw2=1.0, beta=2.0), gaussian_layers(), tol=1e-6)


@pytest.mark.parametrize("layers", [importance_layers(512), mcmc_layers(64, 2), gaussian_layers()], ids=["importance", "mcmc", "gaussian"])
def test_the_deep_fixed_point_map_is_exact(layers):
    data = make_data("continuous_xor", quadrature=3)
    model = Deep("linear" if layers.exact else "tanh", depth=3, sa2=1.0, sW2=1.0, sw2=1.0, beta=5.0)
    particles = layers.init(jax.random.key(0), model, data)
    state = nngp_state(model, data)
    fwd = _forward_jit(model, layers, particles, data, state)
    flat = _Flat(tuple(state.residual.shape), tuple(h.shape for h in state.phihat),
                 tuple(float(jnp.trace(s.phi)) / data.num_points for s in fwd.stats[:-1]))
    assert_highest(lambda v: _gap_jit(flat, model, layers, particles, data, v), flat.pack(state, data))


def test_deep_solution_methods_are_exact(deep_solution):
    assert_highest(lambda x: deep_solution.predict(x), deep_solution.data.x[:2] + 0.1)


def test_one_step_of_each_trainer_is_exact(clover, deep_solution, monkeypatch):
    data, model = clover
    step, state = init_foreground(jax.random.key(0), model, data, data.y, num_neurons=4, step_size=1e-3)
    assert_highest(step, state, 0)

    deep_step, deep_state, _ = init_deep_foreground(jax.random.key(0), deep_solution, 1, num_neurons=4, step_size=1e-3, burn_in=0)
    assert_highest(deep_step, deep_state, 0)

    captured = {}

    def capture(step, state, num_steps, **options):  # the joint trainer's step and state, as run_loop gets them
        captured.update(step=step, state=state)
        return state, {"step": np.zeros(0)}

    monkeypatch.setattr(joint, "run_loop", capture)
    for optimizer in (joint.langevin_optimizer(model, 1e-3), joint.optax_optimizer("adam", 1e-3)):
        joint.train(jax.random.key(0), model, 8, data, optimizer, 1, num_seeds=2, progress=False,
                    readout_gibbs_every=1 if optimizer.settings["name"] == "langevin" else None)
        assert_highest(chunk_program(captured["step"]), captured["state"], jnp.arange(1))
    params = model.init_params(jax.random.key(0), 8, data.input_dim, data.output_dim)
    assert_highest(lambda p: sample_readouts(jax.random.key(1), model, p, data), params)


def test_the_fast_setting_reaches_the_trace_and_the_user_config_is_untouched(clover):
    data, model = clover
    background = gp_background(data, model, grid_sampler(12, 6.0), key=jax.random.key(0))
    with matmul_precision("fast"):
        precisions = dot_precisions(jax.make_jaxpr(lambda x: background.kernel(x))(data.x))
    assert precisions and all(p == (jax.lax.Precision.DEFAULT,) * 2 for p in precisions)
    assert jax.config.jax_default_matmul_precision is None  # restored
    assert_highest(lambda x: background.kernel(x), data.x)  # and back to exact (the jit cache keys on it)
