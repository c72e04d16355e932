"""The foreground gradient without (M, P) arrays: ``S(w)`` and ``dV/dw`` of M neurons in one pass over the points.

For neurons ``(a_i, w_i)`` against the background's weighted residual ``u_mu = q_mu r_mu`` (P, C)
(docs/theory.md section 4, ``V(a, w) = -sum_mu q_mu r_mu . a phi(w . x_mu)``):

    z_i,mu  = w_i . x_mu
    S_i     = sum_mu u_mu phi(z_i,mu)                    dV/da_i = -S_i,   V_i = -a_i . S_i
    dV/dw_i = -sum_mu (u_mu . a_i) phi'(z_i,mu) x_mu

Three computations of the same numbers (the Langevin update around them is the shared
``mft_jax.train.langevin`` transform, so the noise is the same whichever runs):

- ``"kernel"`` (narrow inputs, ``d <= NARROW_MAX``): a Pallas kernel. The grid walks tiles of
  ``neuron_block`` neurons; each program loops over tiles of ``point_block`` points, evaluates
  ``z``, ``phi(z)``, ``phi'(z)`` on chip and accumulates ``S`` and ``dV/dw`` in registers, so no
  (M, P) array reaches memory. GPU (Triton) and TPU (Mosaic) backends; ``interpret=True`` on the
  CPU (tests). ``phi'`` is the activation's written-out ``derivative`` (``mft_jax.activations``).
- ``"matmul"`` (wide inputs, ``d > NARROW_MAX``): two matmuls plus elementwise work,
  ``Z = W X^T``, ``S = phi(Z) U``, ``dV/dw = -(phi'(Z) * (A U^T)) X``, over neuron blocks sized to
  the device's memory, every matmul at an explicit ``precision`` (default ``HIGHEST``: exact float32).
- ``"reference"``: ``vmap(value_and_grad(V))`` over neuron blocks (``foreground.neuron_gradients``);
  any activation (a user callable without ``derivative`` runs here).

``choose_step`` picks one from the requested ``step`` (``"auto" | "fused" | "reference"``), the
backend and the activation; ``plan_blocks`` sizes its blocks from the backend and the free memory
(a pure function, so its decisions are testable on any machine). Both are recorded in words.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from mft_jax.activations import Activation
from mft_jax.errors import ConfigError

STEPS = ("auto", "fused", "reference")
BACKENDS = ("cpu", "gpu", "tpu")
NARROW_MAX = 32  # inputs up to this width run the Pallas kernel (z by d unrolled multiply-adds); wider: the matmul path

# (neurons, points) per kernel tile. Starting points, NOT tuned on a device yet: the GPU and TPU
# figures are pending (benchmarks/neuron_throughput.py --device sweeps tiles and prints the rates).
KERNEL_TILES = {"gpu": (64, 128), "tpu": (256, 512), "cpu": (8, 128)}
TPU_CHUNK_BYTES = 4 * 2**20  # on-chip (VMEM) budget of one chunk of X^T and U^T; longer data is split into chunks
CPU_NEURON_BLOCK = 256  # neurons per block on a CPU: (block, P) intermediates stay in cache (measured, benchmarks/neuron_throughput.py)
MIN_NEURON_BLOCK = 8
INTERMEDIATES = 4  # (block, P) arrays alive at once in the matmul / reference step: Z, phi(Z), phi'(Z), their product
STATE_COPIES = 8  # (M, d + C) arrays of a step: neurons, gradients, updates, noise, new neurons, with slack
MEMORY_FRACTION = 0.5  # of the free memory a block policy fills on an accelerator (XLA's own buffers need the rest)


class Blocks(NamedTuple):
    """How a foreground step is blocked; ``memory_bytes`` is the estimate the memory guard checks.

    ``neuron_block``: neurons per kernel tile (``kernel``) or per ``lax.map`` block (``matmul``,
    ``reference``). ``point_block``: points per kernel tile (else all). ``point_chunk``: points per
    kernel call (X^T of a chunk sits on chip on a TPU; chunks are summed), else all.
    """

    path: str
    neuron_block: int
    point_block: int
    point_chunk: int
    memory_bytes: float


class StepChoice(NamedTuple):
    """The requested ``step``, the ``path`` that runs, its ``blocks`` and the ``description`` a run records."""

    step: str
    path: str
    blocks: Blocks
    description: str


def _pow2(n: int) -> int:
    """The smallest power of two >= n (>= 1)."""
    return 1 << max(0, int(n) - 1).bit_length()


def _round_up(n: int, multiple: int) -> int:
    return -(-int(n) // multiple) * multiple


def plan_blocks(backend: str, free_bytes: float, num_neurons: int, num_points: int, input_dim: int, output_dim: int,
                path: str, itemsize: int = 4) -> Blocks:
    """The blocks of one device's step: a pure function of (backend, free bytes, M, P, d, C) and the path.

    - kernel: tiles from ``KERNEL_TILES[backend]`` (the neuron tile no larger than M needs); on a TPU
      the points go in chunks whose X^T and U^T fit ``TPU_CHUNK_BYTES`` of on-chip memory, elsewhere
      one chunk. Memory: the state, the data and their padded copies; no (M, P) array.
    - matmul / reference: ``CPU_NEURON_BLOCK`` neurons on a CPU (cache-sized); on an accelerator the
      largest power of two whose ``INTERMEDIATES`` (block, P) arrays, with the state and the data, fill
      at most ``MEMORY_FRACTION`` of ``free_bytes`` (at least ``MIN_NEURON_BLOCK``).

    ``memory_bytes`` may exceed ``free_bytes`` when even the smallest blocks do not fit: the guard
    (``init_foreground``) then refuses the run, naming the setting to lower.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if path not in ("kernel", "matmul", "reference"):
        raise ConfigError(f"path must be kernel, matmul or reference, got {path!r}")
    M, P, d, C = (int(n) for n in (num_neurons, num_points, input_dim, output_dim))
    state = STATE_COPIES * M * (d + C) * itemsize
    data = P * (d + C + 1) * itemsize
    if path == "kernel":
        tile_m, tile_p = KERNEL_TILES[backend]
        tile_m = min(tile_m, max(_pow2(M), 8 if backend == "tpu" else 1))
        if backend == "tpu":
            rows = _round_up(_pow2(d), 8) + _round_up(_pow2(C), 8)  # sublanes of X^T and U^T
            chunk = max(tile_p, (TPU_CHUNK_BYTES // (rows * itemsize)) // tile_p * tile_p)
        else:
            chunk = _round_up(P, tile_p)
        chunk = min(chunk, _round_up(P, tile_p))
        padded = 2 * (_round_up(M, tile_m) * (_pow2(d) + _pow2(C)) + _round_up(P, chunk) * (_pow2(d) + _pow2(C))) * itemsize
        return Blocks("kernel", tile_m, tile_p, chunk, float(state + data + padded))
    per_neuron = INTERMEDIATES * P * itemsize
    if backend == "cpu":
        block = CPU_NEURON_BLOCK
    else:
        room = MEMORY_FRACTION * free_bytes - state - data
        block = MIN_NEURON_BLOCK
        while block < _pow2(M) and 2 * block * per_neuron <= room:
            block *= 2
    block = min(block, M)
    return Blocks(path, block, P, P, float(state + data + block * per_neuron))


def choose_step(step: str, backend: str, activation: Activation, input_dim: int) -> tuple[str, str]:
    """``(path, reason)`` for the requested ``step``: ``"auto"`` is fused on GPU/TPU where the activation has a derivative.

    ``"fused"`` runs the kernel (``d <= NARROW_MAX``) or the matmul path (wider) on any backend,
    the kernel in interpret mode on a CPU (slow: for tests); an activation without ``derivative``
    falls back to the reference step, saying so.
    """
    if step not in STEPS:
        raise ConfigError(f"step must be one of {', '.join(map(repr, STEPS))}, got {step!r}")
    if step == "reference":
        return "reference", "requested"
    if step == "auto" and backend == "cpu":
        return "reference", "auto on a CPU (the fused kernel only runs in interpret mode there)"
    if activation.derivative is None:
        return "reference", f"activation {activation.name!r} has no written-out derivative, so the fused step does not apply"
    if input_dim > NARROW_MAX:
        return "matmul", f"{step}: input dimension {input_dim} > {NARROW_MAX} uses the matrix units"
    return "kernel", f"{step} on {backend}" + (" (interpret mode)" if backend == "cpu" else "")


def describe(path: str, blocks: Blocks, reason: str, precision=None) -> str:
    """One line of words for a run's record: which step ran, how it is blocked, and why."""
    if path == "kernel":
        what = (f"fused Pallas kernel (tiles of {blocks.neuron_block} neurons x {blocks.point_block} points, "
                f"{blocks.point_chunk} points per call)")
    elif path == "matmul":
        what = f"fused matmul step (Z = W X^T, two matmuls, blocks of {blocks.neuron_block} neurons, precision {_precision_name(precision)})"
    else:
        what = f"reference step (vmap of jax.value_and_grad over blocks of {blocks.neuron_block} neurons)"
    return f"{what}; {reason}"


def _precision_name(precision) -> str:
    return getattr(precision, "name", str(precision))


def weighted_residual(data, residual: jax.Array) -> jax.Array:
    """``u_mu = q_mu r_mu``: (P, C)."""
    return data.q[:, None] * residual


def _register_triton_erf() -> None:
    """Give Pallas's Triton lowering a rule for ``lax.erf_p`` (jax 0.10.2 has none): the device library's ``erf``.

    Uses Pallas's internal dispatch table; if that internal API changes this does nothing, the erf
    kernel then fails to lower on a GPU and ``step="auto"`` falls back to the reference step, saying so.
    """
    try:
        from jax._src.pallas.triton import lowering as triton
    except Exception:  # noqa: BLE001 - no Triton lowering in this jaxlib
        return
    try:
        if jax.lax.erf_p in triton.triton_lowering_rules:
            return
        extern = triton._Extern
        triton.triton_lowering_rules[jax.lax.erf_p] = triton._make_dispatch_table(
            "erf",
            cuda=[extern([jnp.float32], "__nv_erff", jnp.float32), extern([jnp.float64], "__nv_erf", jnp.float64)],
            rocm=[extern([jnp.float32], "__ocml_erf_f32", jnp.float32), extern([jnp.float64], "__ocml_erf_f64", jnp.float64)],
        )
    except Exception:  # noqa: BLE001 - internal API moved: leave it
        return


def _compiler_params(backend: str | None):
    """Triton on a GPU (jax's default there is Mosaic GPU, a different programming model); Mosaic on a TPU."""
    if backend == "gpu":
        from jax.experimental.pallas import triton as pltriton

        return pltriton.CompilerParams(num_warps=4)
    if backend == "tpu":
        from jax.experimental.pallas import tpu as pltpu

        return pltpu.CompilerParams(dimension_semantics=("parallel",))
    return None


def kernel_gradients(activation: Activation, neuron_block: int, point_block: int, point_chunk: int | None = None,
                     interpret: bool = False, backend: str | None = None):
    """``(a, w, data, r) -> (V, (dV/da, dV/dw))`` per neuron by the Pallas kernel (``d`` up to ``NARROW_MAX``).

    Padding: neurons to a multiple of ``neuron_block`` (zero ``a``, ``w``; discarded), points to a
    multiple of the chunk with zero weight ``q`` (``u = 0``: no contribution), ``d`` and ``C`` to
    powers of two with zero columns (Triton's blocks are powers of two; zero inputs add nothing).
    ``backend`` (gpu | tpu) picks the Pallas compiler: Triton on a GPU, Mosaic on a TPU.
    """
    if activation.derivative is None:
        raise ConfigError(f"the fused kernel needs phi' written out; activation {activation.name!r} has no derivative")
    phi, dphi = activation.fn, activation.derivative
    tile_m, tile_p = int(neuron_block), int(point_block)
    if not interpret:
        _register_triton_erf()

    def gradients(a, w, data, residual):
        u = weighted_residual(data, residual).astype(w.dtype)
        x = data.x.astype(w.dtype)
        (M, d), C, P = w.shape, a.shape[1], x.shape[0]
        dp, cp = _pow2(d), _pow2(C)
        chunk = min(_round_up(point_chunk or P, tile_p), _round_up(P, tile_p))
        Mp, Pp = _round_up(M, tile_m), _round_up(P, chunk)
        w_pad = jnp.pad(w, ((0, Mp - M), (0, dp - d)))
        a_pad = jnp.pad(a, ((0, Mp - M), (0, cp - C)))
        xt = jnp.pad(x, ((0, Pp - P), (0, dp - d))).T  # (dp, Pp)
        ut = jnp.pad(u, ((0, Pp - P), (0, cp - C))).T  # (cp, Pp)
        call = pl.pallas_call(
            _kernel(phi, dphi, dp, cp, tile_m, tile_p, chunk // tile_p),
            grid=(Mp // tile_m,),
            in_specs=[
                pl.BlockSpec((tile_m, dp), lambda i: (i, 0)),
                pl.BlockSpec((tile_m, cp), lambda i: (i, 0)),
                pl.BlockSpec((dp, chunk), lambda i: (0, 0)),
                pl.BlockSpec((cp, chunk), lambda i: (0, 0)),
            ],
            out_specs=[pl.BlockSpec((tile_m, cp), lambda i: (i, 0)), pl.BlockSpec((tile_m, dp), lambda i: (i, 0))],
            out_shape=[jax.ShapeDtypeStruct((Mp, cp), w.dtype), jax.ShapeDtypeStruct((Mp, dp), w.dtype)],
            interpret=interpret,
            compiler_params=None if interpret else _compiler_params(backend),
            name="foreground_gradient",
        )
        overlap, pull = None, None
        for start in range(0, Pp, chunk):  # S and dV/dw are sums over points: chunks add
            s, g = call(w_pad, a_pad, xt[:, start:start + chunk], ut[:, start:start + chunk])
            overlap, pull = (s, g) if overlap is None else (overlap + s, pull + g)
        overlap = overlap[:M, :C]
        return -jnp.sum(a * overlap, axis=-1), (-overlap, -pull[:M, :d])

    return gradients


def _kernel(phi, dphi, dp: int, cp: int, tile_m: int, tile_p: int, tiles: int):
    """One program: ``tile_m`` neurons against ``tiles`` tiles of ``tile_p`` points, sums kept on chip.

    Only 2-D loads of columns (tile_m, 1) and rows (1, tile_p), broadcasts, elementwise work and
    row sums: the shapes both Triton and Mosaic lower.
    """

    def kernel(w_ref, a_ref, xt_ref, ut_ref, s_ref, g_ref):
        w_cols = [w_ref[:, pl.ds(k, 1)] for k in range(dp)]  # (tile_m, 1) each
        a_cols = [a_ref[:, pl.ds(c, 1)] for c in range(cp)]

        def body(j, sums):
            s_acc, g_acc = sums
            start = pl.multiple_of(j * tile_p, tile_p)
            x_rows = [xt_ref[pl.ds(k, 1), pl.ds(start, tile_p)] for k in range(dp)]  # (1, tile_p) each
            u_rows = [ut_ref[pl.ds(c, 1), pl.ds(start, tile_p)] for c in range(cp)]
            z = w_cols[0] * x_rows[0]
            for k in range(1, dp):
                z = z + w_cols[k] * x_rows[k]  # (tile_m, tile_p): w_i . x_mu
            features = phi(z)
            coupling = a_cols[0] * u_rows[0]
            for c in range(1, cp):
                coupling = coupling + a_cols[c] * u_rows[c]  # u_mu . a_i
            pull = dphi(z) * coupling
            s_acc = tuple(s + jnp.sum(features * u, axis=1, keepdims=True) for s, u in zip(s_acc, u_rows))
            g_acc = tuple(g + jnp.sum(pull * x, axis=1, keepdims=True) for g, x in zip(g_acc, x_rows))
            return s_acc, g_acc

        zero = jnp.zeros((tile_m, 1), s_ref.dtype)
        s_acc, g_acc = jax.lax.fori_loop(0, tiles, body, ((zero,) * cp, (zero,) * dp))
        for c in range(cp):
            s_ref[:, pl.ds(c, 1)] = s_acc[c]
        for k in range(dp):
            g_ref[:, pl.ds(k, 1)] = g_acc[k]

    return kernel


def matmul_gradients(activation: Activation, neuron_block: int, precision=jax.lax.Precision.HIGHEST):
    """``(a, w, data, r) -> (V, (dV/da, dV/dw))`` as two matmuls and elementwise work per block of neurons.

    Per block (B neurons): ``Z = W X^T`` (B, P), ``S = phi(Z) U`` (B, C), ``E = phi'(Z) * (A U^T)``,
    ``dV/dw = -E X`` (B, d); every matmul at ``precision`` (``jax.lax.Precision``; HIGHEST: exact float32).
    """
    if activation.derivative is None:
        raise ConfigError(f"the matmul step needs phi' written out; activation {activation.name!r} has no derivative")
    phi, dphi = activation.fn, activation.derivative

    def block(a, w, x, u):
        z = jnp.dot(w, x.T, precision=precision)
        overlap = jnp.dot(phi(z), u, precision=precision)
        pull = dphi(z) * jnp.dot(a, u.T, precision=precision)
        return -jnp.sum(a * overlap, axis=-1), (-overlap, -jnp.dot(pull, x, precision=precision))

    def gradients(a, w, data, residual):
        u = weighted_residual(data, residual).astype(w.dtype)
        x = data.x.astype(w.dtype)
        M, size = w.shape[0], int(min(neuron_block, w.shape[0]))
        full = M // size * size
        blocked = jax.lax.map(lambda n: block(n[0], n[1], x, u), (a[:full].reshape(-1, size, a.shape[1]), w[:full].reshape(-1, size, w.shape[1])))
        value, (grad_a, grad_w) = jax.tree.map(lambda t: t.reshape((full,) + t.shape[2:]), blocked)
        if full < M:  # the ragged last block
            rest_value, (rest_a, rest_w) = block(a[full:], w[full:], x, u)
            value, grad_a, grad_w = (jnp.concatenate(pair) for pair in ((value, rest_value), (grad_a, rest_a), (grad_w, rest_w)))
        return value, (grad_a, grad_w)

    return gradients
