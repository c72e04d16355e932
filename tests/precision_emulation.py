"""Reduced-precision matmuls on CPU: what TF32 (NVIDIA GPUs) and bf16 passes (TPUs) do to a float32 product.

An accelerator's default float32 matmul rounds its operands' mantissas: TF32 keeps 10 explicit bits, bf16 7
(float32 has 23). ``emulate(mantissa_bits)`` makes the CPU do the same to every ``lax.dot_general`` whose precision
is not ``HIGHEST`` on both operands: it replaces the CPU lowering of ``dot_general_p`` by one that rounds each
float32 operand to ``mantissa_bits`` (round to nearest, ties to even, by integer operations on the bit pattern),
then multiplies at ``HIGHEST`` with float32 accumulation (as the tensor cores accumulate). A product that asks for
``HIGHEST`` (what ``mft_jax.precision`` sets by default) is lowered unchanged. The original rule is restored on exit,
and the jit caches are cleared on entry and exit (a compiled program caches its lowering).

Bits: TF32 = 10, bf16 = 7. (A bf16 "pass" on TPU at DEFAULT is one bf16 product; HIGH is 3 passes and HIGHEST 6.)
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
from jax._src.interpreters import mlir
from jax._src.lax import lax as lax_internal

TF32_BITS = 10
BF16_BITS = 7
FLOAT32_MANTISSA = 23
_EXACT_ALGORITHMS = {"F32_F32_F32", "F64_F64_F64"}


def round_mantissa(x: jax.Array, bits: int) -> jax.Array:
    """float32 ``x`` rounded to ``bits`` explicit mantissa bits, ties to even (finite values; inf/NaN untouched)."""
    drop = FLOAT32_MANTISSA - bits
    i = jax.lax.bitcast_convert_type(x, jnp.uint32)
    lsb = (i >> drop) & jnp.uint32(1)
    rounded = (i + jnp.uint32((1 << (drop - 1)) - 1) + lsb) & jnp.uint32(~((1 << drop) - 1) & 0xFFFFFFFF)
    finite = jnp.isfinite(x)
    return jnp.where(finite, jax.lax.bitcast_convert_type(rounded, jnp.float32), x)


def is_exact(precision) -> bool:
    """Whether a ``dot_general`` precision parameter asks for float32-exact products."""
    if precision is None:
        return False
    if isinstance(precision, tuple):
        return all(p == jax.lax.Precision.HIGHEST for p in precision)
    name = getattr(precision, "name", str(precision))
    return name in _EXACT_ALGORITHMS


@contextlib.contextmanager
def emulate(mantissa_bits: int):
    """Inside: on CPU, every float32 ``dot_general`` below ``HIGHEST`` rounds its operands to ``mantissa_bits``."""
    prim = lax_internal.dot_general_p
    table = mlir._platform_specific_lowerings["cpu"]
    original = table[prim]
    counts = {"rounded": 0, "exact": 0}

    def rule(ctx, lhs, rhs, *, precision, **params):
        if is_exact(precision):
            counts["exact"] += 1
            return original.rule(ctx, lhs, rhs, precision=precision, **params)
        counts["rounded"] += 1

        def rounded_product(a, b):
            a = round_mantissa(a, mantissa_bits) if a.dtype == jnp.float32 else a
            b = round_mantissa(b, mantissa_bits) if b.dtype == jnp.float32 else b
            exact = (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST)
            return lax_internal.dot_general_p.bind(a, b, precision=exact, **params)

        return mlir.lower_fun(rounded_product, multiple_results=False)(ctx, lhs, rhs)

    jax.clear_caches()
    mlir.register_lowering(prim, rule, platform="cpu")
    try:
        yield counts
    finally:
        table[prim] = original
        jax.clear_caches()
