"""Tasks: a law of inputs and a target function, turned into ``Dataset``s three ways.

A distribution task becomes a *population* (Gauss-Hermite quadrature, Gaussian inputs in low
d), a fixed Monte-Carlo sample of ``samples`` points, or a finite training set of ``n_train``
points; all three are ``Dataset``s (docs/theory.md section 2). Trainers draw fresh minibatches
from ``Task.sample``.

Add your own task in a few lines::

    register_task("sign", lambda d=3: Task("sign", d, 1, lambda x: jnp.sign(x[:, :1])))
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.data import MAX_QUADRATURE_POINTS, Dataset, gauss_hermite_normal, make_dataset
from mft_jax.errors import ConfigError
from mft_jax.resources import require


@dataclasses.dataclass(frozen=True)
class Task:
    """Inputs ``x ~ N(0, I_d)`` (or a finite ``table`` of inputs) and a target ``y = target(x)`` in R^C."""

    name: str
    input_dim: int
    output_dim: int
    target: Callable[[jax.Array], jax.Array]
    table: np.ndarray | None = None  # finite input set (e.g. modular addition); None: Gaussian inputs

    def sample(self, key: jax.Array, n: int) -> Dataset:
        """``n`` i.i.d. points with weights ``1/n`` (the Monte-Carlo sample / a fresh minibatch)."""
        if self.table is None:
            x = jax.random.normal(key, (n, self.input_dim))
        else:
            x = jnp.asarray(self.table)[jax.random.randint(key, (n,), 0, len(self.table))]
        return Dataset(x, jnp.full((n,), 1.0 / n, x.dtype), self.target(x))

    def population(self, quadrature: int | None = None) -> Dataset:
        """The whole input law: the finite table, or a Gauss-Hermite rule with ``quadrature`` nodes per dim."""
        if self.table is not None:
            x, q = self.table, None
        else:
            if quadrature is None:
                raise ConfigError(f"task {self.name!r} has Gaussian inputs: give `quadrature` (nodes per dimension)")
            x, q = gauss_hermite_normal(quadrature, self.input_dim)
        return make_dataset(x, np.asarray(self.target(jnp.asarray(x))), q, name=self.name)

    def training_set(self, key: jax.Array, n_train: int) -> Dataset:
        """``n_train`` distinct points (without replacement for a finite table), weights ``1/n_train``."""
        if n_train < 1:
            raise ConfigError(f"n_train must be >= 1, got {n_train}")
        if self.table is None:
            return self.sample(key, n_train)
        if n_train > len(self.table):
            raise ConfigError(f"n_train = {n_train} exceeds the {len(self.table)} inputs of task {self.name!r}")
        x = jnp.asarray(self.table)[jax.random.permutation(key, len(self.table))[:n_train]]
        return Dataset(x, jnp.full((n_train,), 1.0 / n_train, x.dtype), self.target(x))


def hermite3(z):
    """Probabilists' Hermite polynomial ``H3(z) = z^3 - 3 z``."""
    return z**3 - 3.0 * z


def continuous_xor() -> Task:
    """``x ~ N(0, I_2)``, ``y = x1 x2``: the seed's clover-leaf task."""
    return Task("continuous_xor", 2, 1, lambda x: x[:, :1] * x[:, 1:2])


def xor_product() -> Task:
    """``x ~ N(0, I_4)``, ``y = (x1 x2)(x3 x4)``: a product of two continuous XORs, a compositional target."""
    return Task("xor_product", 4, 1, lambda x: (x[:, :1] * x[:, 1:2]) * (x[:, 2:3] * x[:, 3:4]))


def linear_teacher(teacher=(1.0,)) -> Task:
    """``x ~ N(0, I_d)``, ``y = v . x`` with ``v = teacher`` (d = len(teacher))."""
    v = np.asarray(teacher, dtype=float).reshape(-1)
    if v.size == 0 or not np.isfinite(v).all():
        raise ConfigError(f"linear_teacher: teacher must be a non-empty list of finite numbers, got {teacher!r}")
    return Task("linear_teacher", v.size, 1, lambda x: x @ jnp.asarray(v, x.dtype)[:, None])


def teacher_student(d: int = 8, eps: float = -0.3, teacher=None) -> Task:
    """Rubin, Seroussi & Ringel's erf setting: ``y = H1(w*.x) + eps H3(w*.x)``, ``|w*| = 1``, ``x ~ N(0, I_d)``.

    ``teacher`` is the direction ``w*`` (normalised here); default the first basis vector.
    """
    if d < 1:
        raise ConfigError(f"teacher_student: d must be >= 1, got {d}")
    require(8.0 * d * 64, f"teacher_student with d = {d}", "[task] d")
    w_star = np.eye(1, d)[0] if teacher is None else np.asarray(teacher, dtype=float).reshape(-1)
    if w_star.shape != (d,) or not np.isfinite(w_star).all() or not np.linalg.norm(w_star) > 0:
        raise ConfigError(f"teacher_student: teacher must be a nonzero finite vector of length d = {d}, got {teacher!r}")
    w_star = w_star / np.linalg.norm(w_star)

    def target(x):
        z = x @ jnp.asarray(w_star, x.dtype)
        return (z + eps * hermite3(z))[:, None]

    return Task("teacher_student", d, 1, target)


def modular_addition(modulus: int = 11) -> Task:
    """Two-hot inputs ``e_n (+) e_m`` in R^(2P), targets ``delta_{p,(n+m) mod P} - 1/P`` in R^P."""
    if modulus < 2:
        raise ConfigError(f"modular_addition: modulus must be >= 2, got {modulus}")
    require(8.0 * modulus**2 * 2 * modulus * 2, f"modular_addition with modulus = {modulus} ({modulus}^2 inputs in "
            f"d = {2 * modulus})", "[task] modulus")
    n, m = np.divmod(np.arange(modulus * modulus), modulus)
    table = np.concatenate([np.eye(modulus)[n], np.eye(modulus)[m]], axis=1)

    def target(x):
        total = jnp.argmax(x[:, :modulus], axis=1) + jnp.argmax(x[:, modulus:], axis=1)
        return jax.nn.one_hot(total % modulus, modulus, dtype=x.dtype) - 1.0 / modulus

    return Task("modular_addition", 2 * modulus, modulus, target, table)


def digits(classes=(0, 1)) -> Task:
    """scikit-learn's bundled 8x8 digits (no download) of two ``classes``: targets +1 (first) and -1 (second).

    Inputs: the 64 pixels, centred by the mean image of the two classes and scaled to ``|x| = 1``
    (so ``sw2 = 1`` gives preactivations of variance 1). A finite table (360 images for 0 vs 1):
    ``n_train`` draws a training set without replacement.
    """
    from sklearn.datasets import load_digits

    if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in classes):
        raise ConfigError(f"digits: classes must be two different digits 0-9 (integers), got {classes!r}")
    classes = tuple(int(c) for c in classes)
    if len(classes) != 2 or classes[0] == classes[1] or not all(0 <= c <= 9 for c in classes):
        raise ConfigError(f"digits: classes must be two different digits 0-9, got {classes!r}")
    images, labels = load_digits(return_X_y=True)
    keep = np.isin(labels, classes)
    x = images[keep] - images[keep].mean(axis=0)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = np.where(labels[keep] == classes[0], 1.0, -1.0)

    def target(points):  # the label of the table row each point is
        nearest = jnp.argmin(jnp.sum((points[:, None, :] - jnp.asarray(x, points.dtype)[None]) ** 2, axis=-1), axis=1)
        return jnp.asarray(y, points.dtype)[nearest][:, None]

    return Task("digits", x.shape[1], 1, target, x)


_TASKS: dict[str, Callable[..., Task]] = {}


def register_task(name: str, factory: Callable[..., Task], *, replace: bool = False) -> None:
    """Make ``factory(**options) -> Task`` available to configs as ``[task] name = ...``.

    A built-in name (``continuous_xor``, ..., ``npz``) is refused unless ``replace=True``: a config naming it
    would silently get another task.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a task name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise ConfigError(f"task {name!r}: the factory must be callable (options -> Task), got {type(factory).__name__}")
    if (name in BUILTIN_TASKS or name == "npz") and not replace:
        raise ConfigError(f"task {name!r} is built in; registering another under its name needs replace=True "
                          "(or choose another name)")
    if name == "npz":
        raise ConfigError("task 'npz' reads a dataset file; it cannot be replaced")
    _TASKS[name] = factory


BUILTIN_TASKS = frozenset(f.__name__ for f in (continuous_xor, xor_product, linear_teacher, teacher_student, modular_addition, digits))
for _factory in (continuous_xor, xor_product, linear_teacher, teacher_student, modular_addition, digits):
    _TASKS[_factory.__name__] = _factory


def available_tasks() -> list[str]:
    return sorted([*_TASKS, "npz"])


def get_task(name: str, **options) -> Task:
    """The registered task ``name`` built with ``options``; unknown names or options raise ``ConfigError``."""
    if name not in _TASKS:
        raise ConfigError(f"unknown task {name!r}; allowed: {', '.join(available_tasks())}")
    factory = _TASKS[name]
    allowed = list(inspect.signature(factory).parameters)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"task {name!r} has no option(s) {unknown}; allowed: quadrature | samples | n_train, seed"
            + "".join(f", {a}" for a in allowed)
        )
    defaults = {k: p.default for k, p in inspect.signature(factory).parameters.items()}
    for key, value in options.items():
        _check_option(name, key, value, defaults.get(key, inspect.Parameter.empty))
    try:
        return factory(**options)
    except ConfigError:
        raise
    except (TypeError, ValueError, OverflowError, IndexError) as error:  # a value the factory cannot take
        raise ConfigError(f"task {name!r} cannot be built with {options!r}: {error}") from None


def _check_option(task: str, key: str, value, default) -> None:
    """A task option has the kind of its default: an integer for an integer, a number for a float, a list for a
    list/tuple (of numbers); refused in words otherwise (a string or a bool where a number goes)."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, kind = number and float(value).is_integer() and isinstance(value, (int, np.integer)), "an integer"
    elif isinstance(default, float):
        ok, kind = number and np.isfinite(value), "a finite number"
    elif isinstance(default, (tuple, list)) or (default is None and isinstance(value, (list, tuple))):
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) and np.isfinite(v) for v in value)
        kind = "a list of finite numbers"
    else:
        return  # no default or a default of another kind: the factory checks it
    if not ok:
        raise ConfigError(f"task {task!r} option {key} = {value!r}: expected {kind} (like its default {default!r})")


def load_npz(path: str) -> Dataset:
    """A user dataset from an ``.npz`` with keys ``x`` (P, d), ``y`` (P,) or (P, C), optional ``q``."""
    from mft_jax.io import read_npz

    archive = read_npz(path, "task npz")
    keys = set(archive)
    if not {"x", "y"} <= keys or keys - {"x", "y", "q"}:
        raise ConfigError(f"task npz: {str(path)!r} must hold arrays x, y and optionally q; it holds {sorted(keys)}")
    return make_dataset(archive["x"], archive["y"], archive.get("q"), name=str(path))


def make_data(name: str, *, quadrature=None, samples=None, n_train=None, seed: int = 0, path=None, **options) -> Dataset:
    """The ``Dataset`` a ``[task]`` config section describes.

    Exactly one of ``quadrature`` (population by Gauss-Hermite), ``samples`` (fixed Monte-Carlo
    sample) or ``n_train`` (training set) for Gaussian-input tasks; finite-table tasks use the
    whole table unless ``n_train`` picks a subset; ``npz`` reads ``path``.
    """
    if not isinstance(name, str):
        raise ConfigError(f"task name must be a string, got {name!r}")
    if name == "npz":
        if path is None or options or quadrature is not None or samples is not None or n_train is not None:
            raise ConfigError("task npz takes only `path` (an .npz with x, y and optional q)")
        if not isinstance(path, (str, os.PathLike)):
            raise ConfigError(f"task npz: path must be a file name, got {path!r}")
        return load_npz(path)
    if path is not None:
        raise ConfigError(f"`path` is only for task 'npz', not {name!r}")
    task = get_task(name, **options)
    sizes = {k: v for k, v in (("quadrature", quadrature), ("samples", samples), ("n_train", n_train)) if v is not None}
    for key, value in sizes.items():
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"task {key} must be a positive integer, got {value!r}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not -2**63 <= seed < 2**63:
        raise ConfigError(f"task seed must be an integer within 64 bits, got {seed!r}")
    if task.table is not None:
        if set(sizes) - {"n_train"}:
            raise ConfigError(f"task {name!r} has a finite input table: use n_train (a subset) or nothing (all of it)")
        return task.training_set(jax.random.key(seed), n_train) if sizes else task.population()
    if len(sizes) != 1:
        raise ConfigError(f"task {name!r}: give exactly one of quadrature, samples, n_train (got {sorted(sizes) or 'none'})")
    (size_key, size), = sizes.items()
    points = float(size) ** task.input_dim if size_key == "quadrature" else float(size)
    if size_key == "quadrature" and points > MAX_QUADRATURE_POINTS:
        raise ConfigError(
            f"task {name!r}: quadrature {size} in d = {task.input_dim} needs {size}^{task.input_dim} = {points:.3g} "
            f"points (limit {MAX_QUADRATURE_POINTS}); use `samples` (Monte Carlo) for this dimension"
        )
    require(points * (task.input_dim + task.output_dim + 1) * 8 * 4, f"task {name!r} with {size_key} = {size} "
            f"({points:.3g} points in d = {task.input_dim})", f"[task] {size_key}")
    if "quadrature" in sizes:
        return task.population(quadrature)
    key = jax.random.key(seed)
    dataset = task.sample(key, sizes.get("samples") or sizes["n_train"])
    return make_dataset(dataset.x, dataset.y, dataset.q, name=name)


def make_split(name: str, *, n_train: int, seed: int = 0, **options) -> tuple[Dataset, Dataset]:
    """A finite-table task's training set ``make_data(name, n_train=n_train, seed=seed, **options)`` and its complement.

    The held-out set holds the ``len(table) - n_train`` table inputs the training set leaves out (weights
    ``1/n_test``), in the order of the same permutation; training sets of one ``seed`` are nested in ``n_train``.
    """
    task = get_task(name, **options)
    if task.table is None:
        raise ConfigError(f"make_split needs a task with a finite input table; {name!r} has Gaussian inputs")
    train = make_data(name, n_train=n_train, seed=seed, **options)
    size = len(task.table)
    if n_train >= size:
        raise ConfigError(f"make_split: n_train = {n_train} leaves no held-out input of the {size} in task {name!r}")
    x = jnp.asarray(task.table)[jax.random.permutation(jax.random.key(seed), size)[n_train:]]
    return train, Dataset(x, jnp.full((size - n_train,), 1.0 / (size - n_train), x.dtype), task.target(x))
