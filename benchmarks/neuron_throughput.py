"""Throughput of the vmapped foreground trainer vs a per-neuron NumPy loop and PyTorch torch.func.vmap.

The same algorithm in all three: M independent neurons (ramp, the clover config's activation, or
``--activation tanh``) on the clover task (continuous XOR,
P fixed data points, residual r = y: the untrained background), full-batch Langevin at T = 1/beta,

    a <- a + h (S(w) - T a / sa2) + sqrt(2 h T) xi,        S(w) = sum_mu q_mu r_mu phi(w . x_mu)
    w <- w + h (sum_mu q_mu (r_mu . a) phi'(w . x_mu) x_mu - T w / sw2) + sqrt(2 h T) xi'

Reported: neuron-sample updates per second (neurons x steps / s) and the ratios; the FLOP rate
of one update (4 M P (d + C) matmul FLOPs + 4 M P elementwise, phi counted as one) as a fraction
of the machine's measured float32 matmul peak in the same run. JAX times the marginal cost of
trainer's jitted step (``init_foreground``, scanned as ``run_loop`` does) after compiling it;
the NumPy loop times a few neurons and scales (it is linear in neurons and steps).

    .venv/bin/python -m benchmarks.neuron_throughput [--neurons 4096 --points 4096]

Device mode (``--device``; automatic when a GPU or TPU is the default backend; ``--device --quick``
is a CPU smoke run of it) reports in one run on whatever backend is present
(``results/neuron_throughput/device[_quick].json``):

- the matmul peaks measured at ``Precision.HIGHEST`` (exact float32) and ``DEFAULT`` (TF32 on GPUs);
- foreground d = 2 (ramp clover, M = 65536, P = 4096): the library step (``init_foreground``,
  ``step="reference"`` and ``step="fused"``), the direct ``jnp`` step (explicit gradient, unblocked
  (M, P) arrays), PyTorch eager and ``torch.compile`` on the same device (skipped with a line when
  torch is absent), their ratios and the fraction of the compute limit (``flops_per_step``: 16 flop per
  (neuron, point) at d = 2, C = 1, against the HIGHEST peak); on a GPU/TPU a sweep of the kernel's tiles;
- foreground d = 150 (erf, P = 3000): the fused (matmul) step at both precisions, as a fraction of the
  matmul peak at the same precision;
- the joint Langevin trainer at the teacher-student paper's size (N = 700, P = 3000, d = 150, erf,
  64 seeds vmapped): marginal time per step of ``mft_jax.train.joint.train`` at both precisions
  (``jax.default_matmul_precision``) as a fraction of the matching peak, and how its matmuls are laid
  out (the seed axis folded into one matmul or a batched one).

On a CPU the fused kernel runs in Pallas interpret mode: its CPU rate there is no speed figure.

    .venv/bin/python -m benchmarks.neuron_throughput --device [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import jax

from mft_jax.io import run_metadata
from mft_jax.resources import matmul_peak  # noqa: F401  (deep_speed and the device mode take it from here too)
import jax.numpy as jnp
import numpy as np

from mft_jax.model import TwoLayer

# phi and phi' for the per-neuron NumPy loop; torch gets phi and differentiates it itself.
NUMPY_ACTIVATIONS = {
    "ramp": (lambda z: np.clip(z, 0.0, 1.0), lambda z: ((z > 0) & (z < 1)).astype(z.dtype)),
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
}
from mft_jax.tasks import continuous_xor
from mft_jax.train.foreground import init_foreground, neuron_gradients

ROOT = Path(__file__).resolve().parent.parent


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def flops_per_step(neurons: int, points: int, dim: int, outputs: int) -> float:
    """Matmuls ``W X^T``, ``phi (q r)``, ``a (q r)^T`` and ``(...) X``: 4 M P (d + C); elementwise phi, phi', products: 4 M P."""
    return 4.0 * neurons * points * (dim + outputs) + 4.0 * neurons * points


def jax_rate(model, data, residual, neurons, h, steps, repeats=3) -> float:
    """Neuron updates per second of the foreground trainer's step (``init_foreground``) in a jitted ``lax.scan``.

    This is the chunk ``run_loop`` runs inside ``train_foreground``; compiled once, then timed.
    """
    step, state = init_foreground(jax.random.key(1), model, data, residual, num_neurons=neurons, step_size=h)
    run = jax.jit(lambda state: jax.lax.scan(step, state, jnp.arange(steps))[0])
    jax.block_until_ready(run(state))  # compile
    best = min(_timed(lambda: jax.block_until_ready(run(state))) for _ in range(repeats))
    return neurons * steps / best


def block_sweep(model, data, residual, neurons, blocks, repeats=3) -> dict:
    """Gradient evaluations per second of ``neuron_gradients`` (the step's hot part) for each neuron-block size."""
    a = jax.random.normal(jax.random.key(2), (neurons, data.output_dim))
    w = jax.random.normal(jax.random.key(3), (neurons, data.input_dim))
    rates = {}
    for block in blocks:
        gradients = jax.jit(neuron_gradients(model, None, block))
        jax.block_until_ready(gradients(a, w, data, residual))  # compile
        best = min(_timed(lambda: jax.block_until_ready(gradients(a, w, data, residual))) for _ in range(repeats))
        rates[str(block)] = neurons / best
    return rates


def numpy_loop_rate(model, data, residual, neurons, steps, h, temperature, repeats=3) -> float:
    """A per-neuron Python loop in NumPy: ``neurons`` neurons x ``steps`` steps, one neuron at a time (best of ``repeats``)."""
    return max(_numpy_loop_rate(model, data, residual, neurons, steps, h, temperature) for _ in range(repeats))


def _numpy_loop_rate(model, data, residual, neurons, steps, h, temperature) -> float:
    x, qr = np.asarray(data.x), np.asarray(data.q)[:, None] * np.asarray(residual)
    phi, phi_prime = NUMPY_ACTIVATIONS[model.activation.name]
    rng = np.random.default_rng(0)
    noise = np.sqrt(2 * h * temperature)
    start = time.perf_counter()
    for _ in range(neurons):
        a = np.sqrt(model.sa2) * rng.standard_normal(qr.shape[1]).astype(np.float32)
        w = np.sqrt(model.sw2) * rng.standard_normal(x.shape[1]).astype(np.float32)
        for _ in range(steps):
            preactivation = x @ w
            overlap = phi(preactivation) @ qr
            grad_w = -x.T @ ((qr @ a) * phi_prime(preactivation))
            a = a + h * (overlap - temperature * a / model.sa2) + noise * rng.standard_normal(a.shape).astype(np.float32)
            w = w - h * (grad_w + temperature * w / model.sw2) + noise * rng.standard_normal(w.shape).astype(np.float32)
    return neurons * steps / (time.perf_counter() - start)


def torch_rate(model, data, residual, neurons, steps, h, temperature, repeats=3) -> float | None:
    """The same step with ``torch.func.vmap(torch.func.grad(V))`` over the neuron axis (eager, CPU)."""
    try:
        import torch
        from torch.func import grad, vmap
    except ImportError:
        return None
    x = torch.as_tensor(np.asarray(data.x))
    qr = torch.as_tensor(np.asarray(data.q)[:, None] * np.asarray(residual))

    def potential(a, w):  # w @ x.T: 2x faster under vmap here than x @ w (measured), so torch gets the faster form
        preactivation = w @ x.T
        features = torch.clamp(preactivation, 0.0, 1.0) if model.activation.name == "ramp" else torch.tanh(preactivation)
        return -(features @ qr) @ a

    per_neuron = vmap(grad(potential, argnums=(0, 1)))
    generator = torch.Generator().manual_seed(0)
    a = float(np.sqrt(model.sa2)) * torch.randn(neurons, qr.shape[1], generator=generator)
    w = float(np.sqrt(model.sw2)) * torch.randn(neurons, x.shape[1], generator=generator)
    noise = float(np.sqrt(2 * h * temperature))

    def run(a, w):
        for _ in range(steps):
            grad_a, grad_w = per_neuron(a, w)
            a = a - h * (grad_a + temperature * a / model.sa2) + noise * torch.randn(a.shape, generator=generator)
            w = w - h * (grad_w + temperature * w / model.sw2) + noise * torch.randn(w.shape, generator=generator)
        return a, w

    run(a, w)  # warm-up
    best = min(_timed(lambda: run(a, w)) for _ in range(repeats))
    return neurons * steps / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", action="store_true",
                        help="device mode (automatic on a GPU/TPU): library reference and fused steps, direct jnp, torch, peaks, joint trainer")
    parser.add_argument("--neurons", type=int, default=4096)
    parser.add_argument("--points", type=int, default=4096)
    parser.add_argument("--activation", default="ramp", choices=sorted(NUMPY_ACTIVATIONS))
    parser.add_argument("--blocks", type=int, nargs="*", default=[16, 64, 256, 1024, 4096],
                        help="neuron-block sizes of the gradient to sweep (4096 = unblocked at M = 4096)")
    parser.add_argument("--loop-neurons", type=int, default=8, help="neurons the NumPy loop times (then scaled)")
    parser.add_argument("--out", default=None, help="default results/neuron_throughput/main.json (quick.json with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 256 neurons, 256 points, blocks 16 and 256")
    args = parser.parse_args()
    if args.device or jax.default_backend() != "cpu":
        from benchmarks.neuron_throughput_device import device_mode

        return device_mode(args)
    if args.quick:
        args.neurons, args.points, args.blocks, args.loop_neurons = 256, 256, [16, 256], 2
    args.out = args.out or str(ROOT / "results" / "neuron_throughput" / ("quick.json" if args.quick else "main.json"))

    load_before = os.getloadavg()
    model = TwoLayer(args.activation, sa2=1.0, sw2=1.0, beta=10.0)
    h, temperature = 0.01, model.temperature
    data = continuous_xor().sample(jax.random.key(0), args.points)
    residual = data.y  # untrained background: r = y - 0
    flops = flops_per_step(args.neurons, args.points, data.input_dim, data.output_dim)

    peak = matmul_peak()
    rates = {"jax_vmap": jax_rate(model, data, residual, args.neurons, h, steps=50)}
    rates["numpy_loop"] = numpy_loop_rate(model, data, residual, args.loop_neurons, 50, h, temperature)
    rates["torch_func_vmap"] = torch_rate(model, data, residual, args.neurons, 20, h, temperature)
    blocks = block_sweep(model, data, residual, args.neurons, args.blocks)
    load_after = os.getloadavg()

    jax_flop_rate = rates["jax_vmap"] / args.neurons * flops
    results = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "setup": {
            "task": "continuous_xor (clover)", "activation": args.activation, "neurons": args.neurons, "points_per_step": args.points,
            "step_size": h, "temperature": temperature, "algorithm": "full-batch Langevin, float32",
            "numpy_loop": f"{args.loop_neurons} neurons x 50 steps timed (best of 3), rate scales linearly in neurons",
            "timing": "best of 3 for every method; JAX excludes compilation",
        },
        "neuron_updates_per_second": rates,
        "ratio_jax_over_numpy_loop": rates["jax_vmap"] / rates["numpy_loop"],
        "ratio_jax_over_torch": None if rates["torch_func_vmap"] is None else rates["jax_vmap"] / rates["torch_func_vmap"],
        "gradient_evaluations_per_second_by_block": blocks,
        "flops_per_step": flops,
        "matmul_peak_flops": peak,
        "jax_flop_rate": jax_flop_rate,
        "fraction_of_peak": jax_flop_rate / peak,
        "machine": {
            "cpu_count": os.cpu_count(), "platform": platform.platform(), "devices": [str(d) for d in jax.devices()],
            "load_average_before": load_before, "load_average_after": load_after,
            "note": "load average above the core count means other processes shared the CPU while this ran",
        },
        "versions": {"jax": jax.__version__, "numpy": np.__version__},
    }
    try:
        import torch

        results["versions"]["torch"] = torch.__version__
        results["machine"]["torch_threads"] = torch.get_num_threads()
    except ImportError:
        print("PyTorch is not installed: skipping the torch.func.vmap comparison (pip install torch to run it)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results["meta"] = run_metadata(vars(args))  # the exact command, versions, commit, devices
    out.write_text(json.dumps(results, indent=2) + "\n")

    print(f"neuron-sample updates per second (M = {args.neurons}, P = {args.points}, {args.activation} clover, Langevin):")
    for name, rate in rates.items():
        print(f"  {name:16s} {'skipped' if rate is None else f'{rate:.3g}'}")
    print(f"  jax / numpy loop: {results['ratio_jax_over_numpy_loop']:.3g}x")
    if results["ratio_jax_over_torch"] is not None:
        print(f"  jax / torch.func.vmap: {results['ratio_jax_over_torch']:.3g}x")
    print(f"  FLOP rate {jax_flop_rate / 1e9:.3g} GFLOP/s = {100 * results['fraction_of_peak']:.3g}% of the measured matmul peak {peak / 1e9:.3g} GFLOP/s")
    print("  gradient evaluations per second by neuron block: " + ", ".join(f"{b}: {r:.3g}" for b, r in blocks.items()))
    print(f"  load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} cores -> {out}")


if __name__ == "__main__":
    main()
