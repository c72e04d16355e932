"""Device mode of benchmarks/neuron_throughput.py: where the foreground and joint trainers stand on this backend.

Run through ``neuron_throughput.py --device [--quick]`` (automatic on a GPU/TPU); the module
docstring there says what is measured. Every rate is the marginal cost of compiled steps (compile
excluded, best of ``REPEATS``); every ratio and fraction printed is computed from rates of this run.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.neuron_throughput import ROOT, _timed, flops_per_step, matmul_peak
from mft_jax.data import Dataset
from mft_jax.io import run_metadata
from mft_jax.model import TwoLayer
from mft_jax.tasks import continuous_xor
from mft_jax.train import fused
from mft_jax.train.foreground import init_foreground
from mft_jax.train.joint import energy, langevin_optimizer, train

REPEATS = 3
PRECISIONS = {"highest": jax.lax.Precision.HIGHEST, "default": jax.lax.Precision.DEFAULT}
FULL = dict(neurons=65536, points=4096, steps=20, wide_neurons=16384, wide_points=3000, wide_dim=150,
            joint_width=700, joint_points=3000, joint_dim=150, joint_seeds=64, joint_steps=100, peak_size=8192,
            tiles=[(32, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 512)])
QUICK = dict(neurons=256, points=256, steps=3, wide_neurons=64, wide_points=128, wide_dim=150,
             joint_width=32, joint_points=64, joint_dim=150, joint_seeds=2, joint_steps=5, peak_size=512, tiles=[])


def best_rate(run, count: int) -> float:
    """``count / seconds`` of ``run()`` after one warm-up call (the compile), best of ``REPEATS``."""
    jax.block_until_ready(run())
    return count / min(_timed(lambda: jax.block_until_ready(run())) for _ in range(REPEATS))


def library_rate(model, data, residual, neurons, steps, step, precision=None):
    """Neuron updates / s of ``init_foreground(step=...)`` scanned over ``steps`` steps, and the words of its choice.

    A step that fails to build or compile on this backend gives ``(None, the error in words)``: the run goes on.
    """
    try:
        return _library_rate(model, data, residual, neurons, steps, step, precision)
    except Exception as error:  # noqa: BLE001 - a device compile failure is a result to report
        words = f"FAILED: {type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
        print(f"library step {step!r}: {words}")
        return None, words


def _library_rate(model, data, residual, neurons, steps, step, precision=None):
    step_fn, state = init_foreground(jax.random.key(1), model, data, residual, num_neurons=neurons, step_size=0.01,
                                     step=step, precision=precision)
    run = jax.jit(lambda state: jax.lax.scan(step_fn, state, jnp.arange(steps))[0])
    return best_rate(lambda: run(state), neurons * steps), step_fn.choice.description


def direct_rate(model, data, residual, neurons, steps, precision=None):
    """The Langevin step written directly in ``jnp`` (explicit gradient, whole (M, P) arrays), one jitted scan."""
    phi, dphi = model.activation.fn, model.activation.derivative
    x, u = data.x, data.q[:, None] * residual
    h, T = 0.01, model.temperature

    def step(carry, t):
        a, w, key = carry
        z = jnp.dot(w, x.T, precision=precision)
        overlap = jnp.dot(phi(z), u, precision=precision)
        grad_w = -jnp.dot(dphi(z) * jnp.dot(a, u.T, precision=precision), x, precision=precision)
        key_a, key_w = jax.random.split(jax.random.fold_in(key, t))
        a = a + h * (overlap - T * a / model.sa2) + math.sqrt(2 * h * T) * jax.random.normal(key_a, a.shape)
        w = w - h * (grad_w + T * w / model.sw2) + math.sqrt(2 * h * T) * jax.random.normal(key_w, w.shape)
        return (a, w, key), None

    a = jax.random.normal(jax.random.key(2), (neurons, data.output_dim))
    w = jax.random.normal(jax.random.key(3), (neurons, data.input_dim))
    run = jax.jit(lambda a, w: jax.lax.scan(step, (a, w, jax.random.key(4)), jnp.arange(steps))[0][:2])
    return best_rate(lambda: run(a, w), neurons * steps)


def torch_rates(model, data, residual, neurons, steps) -> dict:
    """The same explicit step hand-written in PyTorch on this device: eager and ``torch.compile``; None where unavailable."""
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: skipping the PyTorch eager / torch.compile comparison (pip install torch)")
        return {"torch_eager": None, "torch_compile": None, "torch_note": "not installed"}
    device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    if jax.default_backend() not in ("cpu", "gpu") or (jax.default_backend() == "gpu" and device == "cpu"):
        note = f"torch has no {jax.default_backend()} device here"
        print(f"PyTorch: {note}; skipped")
        return {"torch_eager": None, "torch_compile": None, "torch_note": note}
    name = model.activation.name
    phi = {"ramp": lambda z: torch.clamp(z, 0.0, 1.0), "erf": torch.erf, "tanh": torch.tanh}[name]
    dphi = {"ramp": lambda z: ((z > 0) & (z < 1)).to(z.dtype), "erf": lambda z: 2.0 / math.sqrt(math.pi) * torch.exp(-z * z),
            "tanh": lambda z: 1.0 - torch.tanh(z) ** 2}[name]
    x = torch.as_tensor(np.asarray(data.x), device=device)
    u = torch.as_tensor(np.asarray(data.q)[:, None] * np.asarray(residual), device=device)
    h, T = 0.01, model.temperature
    noise = math.sqrt(2 * h * T)

    def step(a, w):
        z = w @ x.T
        overlap = phi(z) @ u
        grad_w = -(dphi(z) * (a @ u.T)) @ x
        a = a + h * (overlap - T * a / model.sa2) + noise * torch.randn_like(a)
        w = w - h * (grad_w + T * w / model.sw2) + noise * torch.randn_like(w)
        return a, w

    def rate(one_step):
        a = torch.randn(neurons, u.shape[1], device=device)
        w = torch.randn(neurons, x.shape[1], device=device)

        def run():
            nonlocal a, w
            for _ in range(steps):
                a, w = one_step(a, w)
            if device == "cuda":
                torch.cuda.synchronize()

        run()  # warm-up (and compile; twice: torch.compile may recompile once with dynamic shapes)
        run()
        return neurons * steps / min(_timed(run) for _ in range(REPEATS))

    rates = {"torch_device": device}
    with torch.no_grad():
        rates["torch_eager"] = rate(step)
        try:
            rates["torch_compile"] = rate(torch.compile(step))
        except Exception as error:  # noqa: BLE001 - report, do not fail the benchmark
            rates["torch_compile"] = None
            rates["torch_note"] = f"torch.compile failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
            print(f"PyTorch: {rates['torch_note']}")
    return rates


def tile_sweep(activation, data, residual, neurons, tiles) -> dict:
    """Gradient evaluations / s of the Pallas kernel alone for each (neuron, point) tile; failures recorded in words."""
    a = jax.random.normal(jax.random.key(2), (neurons, data.output_dim))
    w = jax.random.normal(jax.random.key(3), (neurons, data.input_dim))
    rates = {}
    for tile_m, tile_p in tiles:
        gradients = jax.jit(fused.kernel_gradients(activation, tile_m, tile_p, backend=jax.default_backend()))
        try:
            rates[f"{tile_m}x{tile_p}"] = best_rate(lambda: gradients(a, w, data, residual), neurons)
        except Exception as error:  # noqa: BLE001
            rates[f"{tile_m}x{tile_p}"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    return rates


def joint_rate(width, points, dim, seeds, steps, precision: str) -> tuple[float | None, str]:
    """Marginal seconds per step of ``train`` (joint Langevin, erf): (time of 5 chunks - time of 1 chunk) / (4 chunks of ``steps``).

    Both runs compile the same chunk once, so the difference is the cost of ``4 steps`` steps; None
    when the machine's noise exceeded it (a loaded CPU).
    """
    keys = jax.random.split(jax.random.key(5), 3)
    x = jax.random.normal(keys[0], (points, dim))  # x ~ N(0, I_d); sw2 = 1/d keeps w.x of order one
    teacher = jax.random.normal(keys[1], (dim,))
    data = Dataset(x, jnp.full((points,), 1.0 / points), jax.scipy.special.erf(x @ teacher / math.sqrt(dim))[:, None])
    model = TwoLayer("erf", sa2=1.0, sw2=1.0 / dim, beta=10.0)
    optimizer = langevin_optimizer(model, 1e-3)

    def timed(chunks):
        with jax.default_matmul_precision(precision):
            start = time.perf_counter()
            result = train(jax.random.key(6), model, width, data, optimizer, chunks * steps, num_seeds=seeds, chunk=steps, progress=False)
            jax.block_until_ready(result.params)
            return time.perf_counter() - start

    best = min(timed(5) - timed(1) for _ in range(2))
    params = jax.vmap(lambda k: model.init_params(k, width, dim))(jax.random.split(keys[2], seeds))
    dots = matmul_batch_dims(jax.make_jaxpr(jax.vmap(jax.grad(energy), in_axes=(0, None, None)))(params, model, data).jaxpr)
    layout = "matmuls of the seeds-vmapped gradient: " + "; ".join(dots)
    return (best / (4 * steps) if best > 0 else None), layout


def matmul_batch_dims(jaxpr) -> list:
    """Every ``dot_general`` in ``jaxpr`` and its sub-jaxprs: operand shapes and whether a (seed) batch dimension stays."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            shapes = " x ".join(str(tuple(v.aval.shape)) for v in eqn.invars)
            batch = eqn.params["dimension_numbers"][1][0]
            found.append(f"{shapes} " + ("batched over seeds" if batch else "one matmul (seeds folded into its rows)"))
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    found.extend(matmul_batch_dims(inner))
    return found


def device_mode(args) -> None:
    backend = jax.default_backend()
    sizes = QUICK if args.quick else FULL
    if backend == "cpu" and not args.quick:
        print("device mode on a CPU: the full sizes take long here; use --quick for a smoke run")
    out = Path(args.out or ROOT / "results" / "neuron_throughput" / ("device_quick.json" if args.quick else "device.json"))
    load_before = os.getloadavg()

    peaks = {name: matmul_peak(sizes["peak_size"], precision=p) for name, p in PRECISIONS.items()}
    print(f"backend {backend} ({jax.devices()[0].device_kind}); matmul peak: "
          + ", ".join(f"{name} {peak / 1e12:.3g} TFLOP/s" for name, peak in peaks.items()))

    # foreground, d = 2: the clover
    M, P, steps = sizes["neurons"], sizes["points"], sizes["steps"]
    model = TwoLayer("ramp", sa2=1.0, sw2=1.0, beta=10.0)
    data = continuous_xor().sample(jax.random.key(0), P)
    residual = data.y
    narrow = {}
    narrow["library_reference"], reference_words = library_rate(model, data, residual, M, steps, "reference")
    narrow["library_fused"], fused_words = library_rate(model, data, residual, M, steps, "fused")
    narrow["direct_jnp"] = direct_rate(model, data, residual, M, steps)
    torch_result = torch_rates(model, data, residual, M, steps)
    narrow.update({k: v for k, v in torch_result.items() if k in ("torch_eager", "torch_compile")})
    per_update = flops_per_step(1, P, data.input_dim, data.output_dim)
    compute_limit = peaks["highest"] / per_update  # neuron updates / s at the exact-float32 peak
    tiles = tile_sweep(model.activation, data, residual, M, sizes["tiles"]) if backend != "cpu" else "not on a CPU (interpret mode)"
    ratios = {f"library_fused / {name}": narrow["library_fused"] / rate for name, rate in narrow.items()
              if rate and narrow["library_fused"] and name != "library_fused"}

    # foreground, d = 150: the matmul path at both precisions
    Mw, Pw, dw = sizes["wide_neurons"], sizes["wide_points"], sizes["wide_dim"]
    wide_model = TwoLayer("erf", sa2=1.0, sw2=1.0 / dw, beta=10.0)
    x = jax.random.normal(jax.random.key(7), (Pw, dw))
    wide_data = Dataset(x, jnp.full((Pw,), 1.0 / Pw), jax.scipy.special.erf(x[:, :1]))
    wide = {}
    for name, precision in PRECISIONS.items():
        rate, words = library_rate(wide_model, wide_data, wide_data.y, Mw, steps, "fused", precision)
        flop_rate = None if rate is None else rate * flops_per_step(1, Pw, dw, 1)
        wide[name] = {"neuron_updates_per_second": rate, "flop_rate": flop_rate,
                      "fraction_of_peak": None if rate is None else flop_rate / peaks[name], "step": words}

    # the joint trainer at the paper's size
    N, Pj, dj, S, js = (sizes[k] for k in ("joint_width", "joint_points", "joint_dim", "joint_seeds", "joint_steps"))
    joint = {}
    for name in PRECISIONS:
        seconds, layout = joint_rate(N, Pj, dj, S, js, name)
        flop_rate = None if seconds is None else flops_per_step(S * N, Pj, dj, 1) / seconds
        joint[name] = {"seconds_per_step": seconds, "flop_rate": flop_rate, "fraction_of_peak": None if seconds is None else flop_rate / peaks[name]}
    joint["layout"] = layout

    results = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "backend": backend, "device_kind": jax.devices()[0].device_kind, "quick": bool(args.quick), "sizes": sizes,
        "matmul_peak_flops": peaks,
        "foreground_d2": {
            "setup": f"ramp clover, M = {M}, P = {P}, d = 2, C = 1, full-batch Langevin, float32, {steps} scanned steps",
            "neuron_updates_per_second": narrow, "ratios": ratios,
            "flops_per_update": per_update, "compute_limit_updates_per_second": compute_limit,
            "fraction_of_compute_limit": {k: v / compute_limit for k, v in narrow.items() if v},
            "library_reference_step": reference_words, "library_fused_step": fused_words,
            "torch": torch_result, "kernel_tiles_gradient_evaluations_per_second": tiles,
            "note": "on a CPU the fused kernel runs in Pallas interpret mode: no speed figure" if backend == "cpu" else "",
        },
        "foreground_d150": {"setup": f"erf, M = {Mw}, P = {Pw}, d = {dw}, C = 1, fused (matmul) step", **wide},
        "joint": {"setup": f"joint Langevin, erf, N = {N}, P = {Pj}, d = {dj}, {S} seeds vmapped, marginal per-step time", **joint},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "devices": [str(d) for d in jax.devices()],
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "versions": {"jax": jax.__version__, "numpy": np.__version__},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    results["meta"] = run_metadata(vars(args))  # the exact command, versions, commit, devices
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")

    print(f"foreground d = 2 (M = {M}, P = {P}): neuron updates / s and fraction of the compute limit ({compute_limit:.3g} /s):")
    for name, rate in narrow.items():
        print(f"  {name:18s} {'not measured (see the JSON)' if rate is None else f'{rate:.3g}  ({100 * rate / compute_limit:.3g}%)'}")
    for name, ratio in ratios.items():
        print(f"  {name}: {ratio:.3g}x")
    print(f"  reference: {reference_words}\n  fused:     {fused_words}")
    if isinstance(tiles, dict):
        print("  kernel tiles (gradient evaluations / s): " + ", ".join(f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}" for k, v in tiles.items()))
    print(f"foreground d = {dw} (M = {Mw}, P = {Pw}), fused matmul step:")
    for name, entry in wide.items():
        if entry["neuron_updates_per_second"] is None:
            print(f"  {name:8s} {entry['step']}")
            continue
        print(f"  {name:8s} {entry['neuron_updates_per_second']:.3g} updates/s = {entry['flop_rate'] / 1e12:.3g} TFLOP/s = "
              f"{100 * entry['fraction_of_peak']:.3g}% of the {name} matmul peak")
    print(f"joint Langevin (N = {N}, P = {Pj}, d = {dj}, {S} seeds): {layout}")
    for name in PRECISIONS:
        entry = joint[name]
        if entry["seconds_per_step"] is None:
            print(f"  {name:8s} not measured: the machine's timing noise exceeded 4 chunks of steps (a loaded CPU)")
            continue
        print(f"  {name:8s} {1e3 * entry['seconds_per_step']:.3g} ms/step = {entry['flop_rate'] / 1e12:.3g} TFLOP/s = "
              f"{100 * entry['fraction_of_peak']:.3g}% of the {name} matmul peak")
    print(f"-> {out}")
