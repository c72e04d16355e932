"""Matmul precision: a library setting with a safe default, the same answers on CPU, GPU and TPU.

An accelerator's default float32 matmul is not float32: NVIDIA GPUs round the operands to TF32 (10 mantissa bits
of float32's 23), TPUs to bf16 passes (7 bits). Each kernel product then carries a relative error ~1e-3, above the
fixed point's tolerance (1e-5), and the solver stalls: the clover solve at beta = 200 converges in 46 iterations on
CPU and not at all in 1000 on an H200 at JAX's default (docs/guide/precision.md). So mft_jax computes at
float32-exact matmul precision by default, on every backend:

- ``"highest"`` (default): every ``dot_general`` the library traces carries ``Precision.HIGHEST`` (float32-exact:
  6 bf16 passes on TPU, full FP32 on GPU; no change on CPU).
- ``"fast"``: the backend's default (``Precision.DEFAULT``: TF32 / one bf16 pass), 5-8x the matmul throughput on
  an H200, at ~1e-3 relative error per product. For training a user opts in (``precision="fast"``, or
  ``precision = "fast"`` in a config's ``[train]`` / ``[foreground]`` section); for theory knowingly::

      with mft_jax.precision.matmul_precision("fast"):
          sol = solve(...)      # may stall above tol on a GPU / TPU: that is the point of the default

The setting lives in a ``contextvars.ContextVar`` (thread- and task-local). The public entry points
(``solve``, ``Solution`` / ``Background`` methods, ``solve_deep``, the GP baseline, the samplers, ``compare``'s
distances, the trainers) are wrapped by ``uses_precision``: each call runs inside
``jax.default_matmul_precision(<setting>)``, a *scoped* JAX context. ``jax.lax.dot_general`` resolves
``precision=None`` from that context at trace time, so the traced program carries the precision and the jit caches
key on it. The library never changes the user's global JAX configuration (``jax.config.jax_default_matmul_precision``).

Beyond float32: ``with jax.enable_x64(True):`` around ``make_data`` and ``solve`` runs the whole solve in float64
(``make_dataset`` builds its arrays in JAX's default float type), for fixed points below ~1e-7.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import Callable, Iterator, TypeVar

import jax

from mft_jax.errors import ConfigError

HIGHEST = "highest"
FAST = "fast"
PRECISIONS = (HIGHEST, FAST)
DEFAULT = HIGHEST
_JAX_NAME = {HIGHEST: "highest", FAST: "default"}  # the jax.default_matmul_precision value of each setting

_SETTING: contextvars.ContextVar[str] = contextvars.ContextVar("mft_jax_matmul_precision", default=DEFAULT)

F = TypeVar("F", bound=Callable)


def check_config(name, section: str) -> str:
    """A config's ``precision`` key: ``name`` if allowed, else ``ConfigError`` naming ``[section] precision``."""
    if name not in PRECISIONS:
        raise ConfigError(f"[{section}] precision must be \"highest\" (float32-exact matmuls, the default) or \"fast\" "
                          f"(the backend's default: TF32 on NVIDIA GPUs, bf16 passes on TPU; faster, ~1e-3 relative error "
                          f"per product), got {name!r}")
    return name


def check(name) -> str:
    """``name`` if it is a precision setting, else ``ConfigError`` naming the allowed ones."""
    if name not in PRECISIONS:
        raise ConfigError(f"precision must be 'highest' (float32-exact matmuls, the default) or 'fast' (the "
                          f"backend's default: TF32 on NVIDIA GPUs, bf16 passes on TPU), got {name!r}")
    return name


def current() -> str:
    """The setting in force here: ``"highest"`` unless a ``matmul_precision`` block says otherwise."""
    return _SETTING.get()


@contextlib.contextmanager
def matmul_precision(name: str) -> Iterator[str]:
    """Inside the block, mft_jax's entry points compute at ``name`` (``"highest"`` or ``"fast"``); restored after."""
    token = _SETTING.set(check(name))
    try:
        with jax.default_matmul_precision(_JAX_NAME[name]):
            yield name
    finally:
        _SETTING.reset(token)


def uses_precision(function: F) -> F:
    """Run ``function`` under ``jax.default_matmul_precision`` of the current setting (a scoped context)."""

    @functools.wraps(function)
    def scoped(*args, **kwargs):
        with jax.default_matmul_precision(_JAX_NAME[_SETTING.get()]):
            return function(*args, **kwargs)

    scoped.__mft_precision__ = True
    for name in ("lower", "trace", "eval_shape"):  # a jitted function's tools, at the same precision
        if callable(tool := getattr(function, name, None)):
            setattr(scoped, name, _scoped_tool(tool))
    for name in ("_cache_size", "clear_cache"):
        if callable(tool := getattr(function, name, None)):
            setattr(scoped, name, tool)
    return scoped  # type: ignore[return-value]


def lax_precision(name: str | None = None) -> jax.lax.Precision:
    """The ``jax.lax.Precision`` of setting ``name`` (None: the current one), for code that passes ``precision=``
    to its contractions explicitly (the fused foreground step): ``HIGHEST`` for "highest", ``DEFAULT`` for "fast"."""
    name = current() if name is None else check(name)
    return jax.lax.Precision.HIGHEST if name == HIGHEST else jax.lax.Precision.DEFAULT


def _scoped_tool(tool: Callable) -> Callable:
    @functools.wraps(tool)
    def scoped(*args, **kwargs):
        with jax.default_matmul_precision(_JAX_NAME[_SETTING.get()]):
            return tool(*args, **kwargs)

    return scoped


def at_precision(name: str | None, function: Callable, *args, **kwargs):
    """``function(*args, **kwargs)`` at precision ``name`` (None: the current setting): the trainers' ``precision=``."""
    if name is None:
        return uses_precision(function)(*args, **kwargs)
    with matmul_precision(name):
        return function(*args, **kwargs)


def wrap_methods(cls: type, names: tuple[str, ...]) -> None:
    """Wrap the methods ``names`` that ``cls`` defines itself with ``uses_precision`` (for ``__init_subclass__``)."""
    for name in names:
        method = cls.__dict__.get(name)
        if callable(method) and not getattr(method, "__mft_precision__", False):
            setattr(cls, name, uses_precision(method))


def precision_option(trainer: F) -> F:
    """A trainer's ``precision=`` keyword: ``None`` (default) runs at the current setting (``"highest"`` unless a
    ``matmul_precision`` block says otherwise); ``"highest"`` / ``"fast"`` run the whole job at that setting."""

    @functools.wraps(trainer)
    def run(*args, **kwargs):
        name = kwargs.get("precision")
        if name is None:
            return uses_precision(trainer)(*args, **kwargs)
        with matmul_precision(name):
            return trainer(*args, **kwargs)

    run.__mft_precision__ = True
    return run  # type: ignore[return-value]
