"""The fused foreground gradient (Pallas kernel in interpret mode, the matmul path) against the reference step.

Error budget. The reference (``vmap(value_and_grad(V))``) and the fused paths compute the same sums
over P points in float32 in different orders, with z = w . x summed over d inputs in different orders
and phi' written out instead of differentiated. Each entry then differs by at most
``gamma_n |terms| ~ (P + d + 16) eps_32`` times the sum of the magnitudes of every product that enters
it (Higham's worst-case bound; the 16 covers a few ulps of phi, phi', and phi'' times the rounding of z).
For P, d <= 256 that is <= 3.1e-5 of the magnitude scale; the tests assert 1e-4 of it (``RTOL``), above
the worst case on any machine. A 10% change of the residual, or a phi' 10% off, moves entries by ~1e-2
of the scale and must fail the same comparison (the wrong twins).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax.activations import Activation, get_activation
from mft_jax.data import Dataset
from mft_jax.errors import ConfigError
from mft_jax.model import TwoLayer
from mft_jax.resources import DeviceMemory
from mft_jax.train import fused
from mft_jax.train.foreground import init_foreground, neuron_gradients, train_foreground

RTOL = 1e-4
ACTIVATIONS = ("ramp", "relu", "erf", "tanh", "gelu", "square")
TILES = dict(neuron_block=16, point_block=32, point_chunk=64)  # M = 37, P = 101: 3 neuron tiles, 2 chunks of 2 point tiles, all ragged


KINKED = ("ramp", "relu")


def problem(d: int, C: int, M: int = 37, P: int = 101, seed: int = 0, kinked: bool = False):
    """Neurons and a background with z = w . x of order one (x scaled by 1 / sqrt(d)).

    ``kinked``: the first seed from ``seed`` on whose every z lies farther from the kinks 0 and 1 of
    ramp / relu than 8 times the worst-case rounding of z (d eps sum_k |w_k x_k|): no phi' flips
    between two summation orders of z (a deterministic search: the draws are the same on any machine).
    """
    for attempt in range(seed, seed + 50):
        keys = jax.random.split(jax.random.key(attempt), 5)
        x = jax.random.normal(keys[0], (P, d)) / np.sqrt(d)
        q = jax.random.uniform(keys[1], (P,), minval=0.5, maxval=1.5)
        data = Dataset(x, q / jnp.sum(q), jax.random.normal(keys[2], (P, C)))
        a = jax.random.normal(keys[3], (M, C))
        w = jax.random.normal(keys[4], (M, d))
        w64, x64 = np.asarray(w, np.float64), np.asarray(x, np.float64)
        z, spread = w64 @ x64.T, np.abs(w64) @ np.abs(x64).T
        margin = 8 * d * np.finfo(np.float32).eps * spread
        if not kinked or (np.all(np.abs(z) > margin) and np.all(np.abs(z - 1.0) > margin)):
            return a, w, data, data.y
    raise AssertionError("no draw keeps z off the kinks")


def scales(activation: Activation, a, w, data, residual):
    """Sum over points of the magnitude of every product entering V, S and dV/dw (float64): the bound's scale."""
    a, w, x = (np.asarray(t, np.float64) for t in (a, w, data.x))
    u = np.asarray(data.q, np.float64)[:, None] * np.asarray(residual, np.float64)
    z = w @ x.T
    spread = np.abs(w) @ np.abs(x).T  # sum_k |w_k x_k|: the rounding of z is eps times this
    phi = np.abs(np.asarray(activation(jnp.asarray(z))))
    dphi = np.abs(np.asarray(activation.derivative(jnp.asarray(z))))
    scale_s = (phi + 1.0 + dphi * spread) @ np.abs(u)  # (M, C)
    scale_g = ((dphi + 1.0 + 2.0 * spread) * (np.abs(a) @ np.abs(u).T)) @ np.abs(x)  # (M, d); |phi''| <= 2 here
    return np.sum(np.abs(a) * scale_s, axis=1), scale_s, scale_g


def worst(result, expected, scale) -> float:
    """The largest |result - expected| / (RTOL scale) over V, dV/da, dV/dw: <= 1 passes."""
    return max(float(np.max(np.abs(np.asarray(r, np.float64) - np.asarray(e, np.float64)) / (RTOL * s)))
               for r, e, s in zip(jax.tree.leaves(result), jax.tree.leaves(expected), scale))


def reference(activation, a, w, data, residual):
    return jax.jit(neuron_gradients(TwoLayer(activation)))(a, w, data, residual)


def kernel(activation, a, w, data, residual):
    return jax.jit(fused.kernel_gradients(activation, interpret=True, **TILES))(a, w, data, residual)


def matmul(activation, a, w, data, residual):
    return jax.jit(fused.matmul_gradients(activation, neuron_block=16))(a, w, data, residual)


def check(path, activation, d, C):
    activation = get_activation(activation)
    a, w, data, residual = problem(d, C, kinked=activation.name in KINKED)
    expected = reference(activation, a, w, data, residual)
    scale = scales(activation, a, w, data, residual)
    value, (grad_a, grad_w) = path(activation, a, w, data, residual)
    assert grad_w.shape == w.shape and grad_a.shape == a.shape and value.shape == (w.shape[0],)
    # leaves of (V, (dV/da, dV/dw)); dV/da = -S has the scale of S
    assert worst((value, (grad_a, grad_w)), expected, (scale[0], scale[1], scale[2])) <= 1.0
    return a, w, data, residual, expected, scale


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_kernel_matches_reference(activation):
    check(kernel, activation, d=2, C=3)


@pytest.mark.parametrize("d, C", [(1, 1), (7, 3)])
def test_kernel_shapes(d, C):
    check(kernel, "erf", d, C)


@pytest.mark.parametrize("activation, d, C", [("tanh", 256, 1), ("square", 256, 3), ("relu", 7, 3)])
def test_matmul_matches_reference(activation, d, C):
    check(matmul, activation, d, C)


def test_wrong_twins_fail():
    """A residual 10% off, or phi' 10% off, fails the comparison the fused paths pass."""
    activation = get_activation("tanh")
    a, w, data, residual, expected, scale = check(kernel, activation, d=2, C=3)
    off = kernel(activation, a, w, data, 1.1 * residual)
    assert worst(off, expected, scale) > 10.0
    wrong = Activation("tanh", activation.fn, 0, lambda z: 1.1 * activation.derivative(z))
    off = kernel(wrong, a, w, data, residual)
    assert worst(off[1][1], expected[1][1], scale[2:]) > 10.0
    off = matmul(wrong, a, w, data, residual)
    assert worst(off[1][1], expected[1][1], scale[2:]) > 10.0


def test_fused_step_equals_reference_step():
    """One Langevin step of init_foreground, fused vs reference: same noise, same neurons within the budget."""
    _, _, data, residual = problem(2, 1, P=64)
    model, h = TwoLayer("erf", beta=4.0), 0.05
    runs = {}
    for step in ("fused", "reference"):
        step_fn, state = init_foreground(jax.random.key(2), model, data, residual, num_neurons=24, step_size=h, step=step)
        runs[step] = (step_fn.choice, jax.jit(step_fn)(state, 0))
    assert runs["fused"][0].path == "kernel" and "fused Pallas kernel" in runs["fused"][0].description
    assert runs["reference"][0].path == "reference"
    (fused_state, fused_metrics), (ref_state, ref_metrics) = runs["fused"][1], runs["reference"][1]
    # theta' = theta - h (grad V + T theta / s2) + noise with the same noise: the difference is h times the
    # gradients' difference (budget RTOL x scale) plus the rounding of the two additions (2 eps |theta'| each)
    scale_v, scale_s, scale_g = scales(model.activation, state.neurons["a"], state.neurons["w"], data, residual)
    for name, scale in (("a", scale_s), ("w", scale_g)):
        new_fused, new_ref = np.asarray(fused_state.neurons[name]), np.asarray(ref_state.neurons[name])
        budget = h * RTOL * scale + 4 * np.finfo(np.float32).eps * np.abs(new_ref)
        assert np.all(np.abs(new_fused - new_ref) <= budget), name
    assert abs(float(fused_metrics["potential"]) - float(ref_metrics["potential"])) <= RTOL * np.mean(scale_v)


def test_custom_activation_falls_back_and_says_so():
    a, w, data, residual = problem(2, 1, P=32)
    record = {}
    train_foreground(jax.random.key(0), TwoLayer(lambda z: jnp.sin(z)), data, residual, num_neurons=8, steps=1,
                     step_size=0.01, progress=False, step="fused", record=record)
    assert record["step_path"] == "reference"
    assert "reference step" in record["step"] and "no written-out derivative" in record["step"]
    record = {}
    train_foreground(jax.random.key(0), TwoLayer("erf"), data, residual, num_neurons=8, steps=1, step_size=0.01,
                     progress=False, record=record)
    assert record["step_path"] == "reference" and "auto on a CPU" in record["step"]
    with pytest.raises(ConfigError, match="step must be one of"):
        init_foreground(jax.random.key(0), TwoLayer("erf"), data, residual, num_neurons=8, step_size=0.01, step="fast")


# ---------------------------------------------------------------------- the block policy (pure; injected devices)
GiB = 2**30


def test_choose_step():
    erf, custom = get_activation("erf"), get_activation(lambda z: z)
    assert fused.choose_step("auto", "cpu", erf, 2)[0] == "reference"
    assert fused.choose_step("auto", "gpu", erf, 2)[0] == "kernel"
    assert fused.choose_step("auto", "tpu", erf, 150)[0] == "matmul"
    assert fused.choose_step("fused", "cpu", erf, 2) == ("kernel", "fused on cpu (interpret mode)")
    assert fused.choose_step("auto", "gpu", custom, 2)[0] == "reference"
    assert fused.choose_step("reference", "gpu", erf, 2)[0] == "reference"


def test_block_policy_by_device():
    # CPU: the cache-sized block measured on a 2-core machine, whatever the memory
    assert fused.plan_blocks("cpu", 20 * GiB, 4096, 4096, 2, 1, "reference").neuron_block == fused.CPU_NEURON_BLOCK
    assert fused.plan_blocks("cpu", 20 * GiB, 37, 101, 2, 1, "matmul").neuron_block == 37
    # a GPU with room: all 65536 neurons in one block (4 x 65536 x 4096 floats = 4 GiB of intermediates)
    big = fused.plan_blocks("gpu", 130 * GiB, 65536, 4096, 2, 1, "reference")
    assert big.neuron_block == 65536 and big.memory_bytes <= fused.MEMORY_FRACTION * 130 * GiB
    # a GPU with 1 GiB free: the largest power of two that fits, and twice it does not
    small = fused.plan_blocks("gpu", GiB, 65536, 4096, 2, 1, "matmul")
    assert small.memory_bytes <= fused.MEMORY_FRACTION * GiB
    assert small.memory_bytes + small.neuron_block * fused.INTERMEDIATES * 4096 * 4 > fused.MEMORY_FRACTION * GiB  # doubling overflows
    assert 8 <= small.neuron_block < big.neuron_block
    # kernel tiles: GPU keeps all points in one call; a TPU chunks them to its on-chip budget
    gpu = fused.plan_blocks("gpu", 130 * GiB, 65536, 100_000, 2, 1, "kernel")
    assert (gpu.neuron_block, gpu.point_block) == fused.KERNEL_TILES["gpu"] and gpu.point_chunk >= 100_000
    tpu = fused.plan_blocks("tpu", 16 * GiB, 65536, 1_000_000, 2, 1, "kernel")
    assert tpu.point_chunk < 1_000_000 and tpu.point_chunk % tpu.point_block == 0
    assert tpu.point_chunk * 16 * 4 <= fused.TPU_CHUNK_BYTES  # 8 sublanes of X^T + 8 of U^T, float32
    # the kernel holds no (M, P) array: its estimate does not grow with M x P
    assert gpu.memory_bytes < 0.01 * 65536 * 100_000 * 4
    with pytest.raises(ConfigError, match="backend must be one of"):
        fused.plan_blocks("ipu", GiB, 8, 8, 2, 1, "kernel")


def test_memory_guard_uses_the_policy_numbers(monkeypatch):
    """The guard in init_foreground refuses exactly what the policy's estimate does not fit."""
    from mft_jax.train import foreground

    a, w, data, residual = problem(2, 1, P=64)
    estimate = fused.plan_blocks("cpu", GiB, 64, 64, 2, 1, "reference").memory_bytes
    monkeypatch.setattr(foreground, "device_memory", lambda: DeviceMemory("cpu", int(estimate) - 1, "a test device"))
    with pytest.raises(ConfigError, match="a test device.*num_neurons or batch_size"):
        init_foreground(jax.random.key(0), TwoLayer("erf"), data, residual, num_neurons=64, step_size=0.01)
    monkeypatch.setattr(foreground, "device_memory", lambda: DeviceMemory("cpu", int(estimate) + 1, "a test device"))
    step_fn, _ = init_foreground(jax.random.key(0), TwoLayer("erf"), data, residual, num_neurons=64, step_size=0.01)
    assert step_fn.choice.blocks.memory_bytes == estimate


@pytest.mark.parametrize("platform, backend, d, C", [("cuda", "gpu", 2, 1), ("cuda", "gpu", 7, 3), ("tpu", "tpu", 2, 1)])
def test_kernel_lowers_for_accelerators(platform, backend, d, C):
    """Cross-platform lowering on the CPU: the kernel passes Pallas's Triton (GPU) and Mosaic (TPU) lowering.

    This checks every primitive and block shape the device compilers are handed (erf included, whose Triton
    rule mft_jax registers); the device compile itself and the speed still need the device.
    """
    a, w, data, residual = problem(d, C, M=512, P=1000)  # P ragged: padded to the tiles
    tiles = fused.plan_blocks(backend, 2**34, 512, 1000, d, C, "kernel")
    for name in ("erf", "gelu"):
        gradients = fused.kernel_gradients(get_activation(name), tiles.neuron_block, tiles.point_block, tiles.point_chunk, backend=backend)
        text = jax.jit(gradients).trace(a, w, data, residual).lower(lowering_platforms=(platform,)).as_text()
        assert "foreground_gradient" in text


@pytest.mark.parametrize("precision", [None, jax.lax.Precision.DEFAULT])
def test_matmul_path_honours_precision(precision):
    """Every matmul of the wide-input step carries the requested precision (default HIGHEST: exact float32)."""
    a, w, data, residual = problem(40, 1, M=8, P=16)
    gradients = fused.matmul_gradients(get_activation("erf"), 4, *(() if precision is None else (precision,)))
    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                found.append(eqn.params["precision"])
            for value in eqn.params.values():
                for sub in value if isinstance(value, (tuple, list)) else (value,):
                    if hasattr(getattr(sub, "jaxpr", sub), "eqns"):
                        walk(getattr(sub, "jaxpr", sub))

    walk(jax.make_jaxpr(gradients)(a, w, data, residual).jaxpr)
    expected = jax.lax.Precision.HIGHEST if precision is None else precision
    assert len(found) >= 4 and all(p == (expected, expected) for p in found), found
    # the step records it in words: init_foreground on d = 40 takes the matmul path
    setting = None if precision is None else "fast"  # the library's setting whose lax precision is DEFAULT
    step_fn, _ = init_foreground(jax.random.key(0), TwoLayer("erf"), data, residual, num_neurons=8, step_size=0.01,
                                 step="fused", precision=setting)
    assert step_fn.choice.path == "matmul" and f"precision {expected.name}" in step_fn.choice.description


def test_auto_falls_back_when_the_kernel_does_not_compile(monkeypatch):
    """step="auto" on a (pretend) GPU: the GPU kernel cannot compile for this CPU, so the reference step runs and says why."""
    from mft_jax.train import foreground

    a, w, data, residual = problem(2, 1, P=32)
    monkeypatch.setattr(foreground, "device_memory", lambda: DeviceMemory("gpu", 16 * GiB, "a pretend GPU"))
    step_fn, state = init_foreground(jax.random.key(0), TwoLayer("erf"), data, residual, num_neurons=8, step_size=0.01)
    assert step_fn.choice.path == "reference"
    assert "auto on gpu" in step_fn.choice.description and "did not compile" in step_fn.choice.description
    new_state, metrics = jax.jit(step_fn)(state, 0)
    assert np.isfinite(float(metrics["potential"]))
