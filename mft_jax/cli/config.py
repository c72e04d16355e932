"""TOML configs, validated: unknown sections or keys, wrong types and impossible values are
refused with a ``ConfigError`` naming the key and what is allowed.

A job declares its sections as dataclasses; ``section(Schema, raw, "name")`` checks ``raw``
against the dataclass fields (and their annotated types) and fills the defaults.
"""

from __future__ import annotations

import codecs
import dataclasses
import math
import tomllib
import typing
from pathlib import Path

from mft_jax.model import Deep
from mft_jax.errors import ConfigError
from mft_jax.model import TwoLayer


MAX_CONFIG_BYTES = 1_000_000  # a config is a few hundred bytes; a bigger file is not one
INT64 = 2**63


def read_text(path: Path, what: str = "config file", max_bytes: int | None = MAX_CONFIG_BYTES) -> str:
    """The UTF-8 text of ``path`` (a UTF-8 byte-order mark is dropped); other encodings are refused in words."""
    if not path.exists():
        raise ConfigError(f"{what} {str(path)!r} does not exist")
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} is not a file")
    try:
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise ConfigError(f"{what} {str(path)!r} has {path.stat().st_size} bytes, more than a config's limit of "
                              f"{max_bytes}; is it the right file?")
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {error.strerror or error}") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)) or b"\x00" in data:
        raise ConfigError(f"{what} {str(path)!r} is UTF-16/UTF-32 or binary (it holds NUL bytes); text must be UTF-8: "
                          "save it as UTF-8")
    try:
        return data.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{what} {str(path)!r} is not UTF-8 (byte 0x{data[error.start]:02x} at offset {error.start}, e.g. "
                          "Latin-1 text); it must be UTF-8: save it as UTF-8") from None


def check_values(value, where: str) -> None:
    """Every value of a parsed TOML tree: integers within 64 bits, finite floats, no dates (``ConfigError`` naming the key)."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_values(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_values(item, f"{where}[{i}]")
    elif isinstance(value, bool) or isinstance(value, str):
        return
    elif isinstance(value, int):
        if not -INT64 <= value < INT64:
            raise ConfigError(f"{where} = {value} is an integer beyond 64 bits; allowed: |value| < 2^63 (and the key's own range)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{where} = {value}: NaN and inf are not allowed; give a finite number")
    else:  # TOML dates and times
        raise ConfigError(f"{where} = {value!r} is a {type(value).__name__}; config values are numbers, strings, booleans, "
                          "lists and tables")


def load_toml(path: str | Path, allowed_sections: typing.Iterable[str]) -> dict:
    """The config file as a dict of sections; unknown sections, non-UTF-8 files, integers beyond 64 bits,
    NaN/inf and dates raise ``ConfigError``."""
    path = Path(path)
    try:
        raw = tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{str(path)!r} is not valid TOML: {error}") from None
    except RecursionError:
        raise ConfigError(f"{str(path)!r} nests too deeply to be a config") from None
    try:
        check_values(raw, "")
    except RecursionError:
        raise ConfigError(f"{str(path)!r} nests too deeply to be a config") from None
    allowed = sorted(allowed_sections)
    for name, value in raw.items():
        if name not in allowed:
            raise ConfigError(f"unknown config section [{name}]; allowed: {', '.join(f'[{a}]' for a in allowed)}")
        if not isinstance(value, dict):
            raise ConfigError(f"config entry {name!r} must be a [section], got a {type(value).__name__}")
    return raw


def _matches(value, annotation) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_matches(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if annotation is typing.Any:
        return True
    return isinstance(value, annotation)


def section(schema: type, raw: dict | None, name: str):
    """Instantiate dataclass ``schema`` from the TOML section ``[name]`` with type checks."""
    raw = dict(raw or {})
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in [{name}]; allowed: {', '.join(fields)}")
    for key, value in raw.items():
        if not _matches(value, hints[key]):
            raise ConfigError(f"[{name}] {key} = {value!r} has the wrong type; expected {hints[key]}")
    missing = [k for k, f in fields.items() if k not in raw and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"[{name}] is missing required key(s) {missing}")
    return schema(**raw)


MAX_DEPTH = 100  # [model] depth limit of the CLI (experiments/deep_depth_cost.py, results/deep_depth_cost/main.json)
DEPTH_COST = ("whose compilation and every iteration grow with the depth (about 0.3 CPU s per layer to the first iteration, "
              "experiments/deep_depth_cost.py: depth 300 takes minutes before its first line of progress)")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """``[model]``: the prior of docs/theory.md section 2 (depth 2) or section 6 (depth >= 3)."""

    activation: str = "erf"
    sa2: float = 1.0
    sw2: float = 1.0
    beta: float = 1.0
    scaling: str = "mean_field"
    penalty: dict | None = None  # a non-Gaussian weight prior, e.g. {name = "sextic", gamma = 0.01} (mft_jax.priors)
    depth: int = 2  # weight layers: 2 is the two-layer net (TwoLayer); >= 3 a deep net (mft_jax.model.Deep)
    sW2: float = 1.0  # depth >= 3: prior variance of the hidden-to-hidden weights

    def __post_init__(self):
        if not self.sW2 > 0:  # checked at any depth: a value the two-layer net ignores is still a bad value
            raise ConfigError(f"[model] sW2 must be a finite number > 0, got {self.sW2!r}")

    def build(self) -> TwoLayer | Deep:
        if self.depth == 2:
            return TwoLayer(self.activation, self.sa2, self.sw2, self.beta, self.scaling, self.penalty)
        if self.depth < 2:
            raise ConfigError(f"[model] depth = {self.depth}: the number of weight layers must be >= 2 (2 is the two-layer net)")
        if self.depth > MAX_DEPTH:
            raise ConfigError(f"[model] depth = {self.depth} exceeds the limit of {MAX_DEPTH}: the deep solver compiles one block "
                              f"per layer into one program, {DEPTH_COST}; use mft_jax.theory.deep.solve_deep from Python to go deeper")
        if self.penalty is not None or self.scaling != "mean_field":
            raise ConfigError(f"[model] depth = {self.depth}: deep nets take Gaussian priors in mean-field scaling only "
                              f"(remove `penalty` and `scaling`)")
        return Deep(self.activation, self.depth, self.sa2, self.sW2, self.sw2, self.beta)


def model_from(raw: dict, *, deep: bool = False) -> TwoLayer | Deep:
    """The prior of a config's ``[model]`` section: ``TwoLayer``, or with ``deep`` also ``Deep`` (depth >= 3)."""
    model = section(ModelConfig, raw.get("model"), "model").build()
    if isinstance(model, Deep) and not deep:
        raise ConfigError(f"[model] depth = {model.depth}: this job handles two-layer networks only (depth = 2); "
                          f"deep networks are solved by `mft-jax solve` (mft_jax.theory.deep)")
    return model


def data_from(raw: dict):
    """The ``Dataset`` of a config's ``[task]`` section (``mft_jax.tasks.make_data``)."""
    from mft_jax.tasks import make_data

    task = dict(raw.get("task") or {})
    if "name" not in task:
        raise ConfigError("[task] needs a `name`")
    return make_data(task.pop("name"), **task)


# ------------------------------------------------------------------------------ strings -> solver objects
TWO_LAYER_METHODS = ("anderson", "damped", "ascent")  # [solver] method of a two-layer net (mft_jax.theory.two_layer.solve)
DEEP_METHODS = ("newton", "anderson", "damped")  # [solver] method of a deep net (mft_jax.theory.deep.solve_deep)


def solver_from(method: str | None, *, damping: float, anderson: int = 5, newton: bool = False, deep: bool = False):
    """The solver object a ``[solver]`` section names: the one place where strings become objects.

    Two-layer (``method`` default: ``anderson``, or ``ascent`` with ``newton = true``): ``anderson`` is
    ``Anderson(anderson, damping)`` (``anderson = 0``: ``Damped(damping)``), ``damped`` is ``Damped(damping)``,
    ``ascent`` is ``Ascent(damping)``. Deep (default ``newton``): ``NewtonKrylov(damping)``, ``Anderson(5, damping,
    halvings=12)``, ``Damped(damping, halvings=12, descent=True)``.
    """
    from mft_jax.theory.ascent import Ascent
    from mft_jax.theory.fixed_point import Anderson, Damped, NewtonKrylov

    if not (isinstance(damping, (int, float)) and 0 < damping <= 1):
        raise ConfigError(f"[solver] damping = {damping!r} must be in (0, 1]")
    if deep:
        method = "newton" if method is None else method
        if method not in DEEP_METHODS:
            raise ConfigError(f"[solver] method = {method!r} is unknown; allowed: {', '.join(DEEP_METHODS)}")
        return {"newton": lambda: NewtonKrylov(damping), "anderson": lambda: Anderson(5, damping, halvings=12),
                "damped": lambda: Damped(damping, halvings=12, descent=True)}[method]()
    if method is None:
        method = "ascent" if newton else ("anderson" if anderson else "damped")
    if method not in TWO_LAYER_METHODS:
        raise ConfigError(f"[solver] method = {method!r} is unknown for a two-layer net; allowed: {', '.join(TWO_LAYER_METHODS)} "
                          f"(the deep solver's are {', '.join(DEEP_METHODS)}, [model] depth >= 3)")
    if isinstance(anderson, bool) or not isinstance(anderson, int) or anderson < 0:
        raise ConfigError(f"[solver] anderson = {anderson!r} must be an integer >= 0 (0: damped)")
    if method == "anderson" and anderson:
        return Anderson(anderson, damping, 6)
    return Ascent(damping) if method == "ascent" else Damped(damping, 6)


def schedule_from(continuation: int, beta_start: float | None):
    """The ``Continuation`` of ``[solver] continuation = n`` (stages; 0 or 1: the direct solve) and ``beta_start``."""
    from mft_jax.theory.fixed_point import Continuation

    if isinstance(continuation, bool) or not isinstance(continuation, int) or continuation < 0:
        raise ConfigError(f"[solver] continuation = {continuation!r} must be an integer >= 0 (stages; 0 or 1: the direct solve)")
    return Continuation(stages=max(continuation, 1), beta_start=beta_start)
