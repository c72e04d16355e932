"""Train independent single neurons against a fixed background (docs/theory.md section 4).

    mft-jax foreground CONFIG --background DIR|gp --out DIR [--resume]

The background is ``DIR/background.npz`` (the output of ``mft-jax train`` or ``mft-jax solve``)
or ``gp``: the Gaussian-process residual ``(I + beta sa2 K Q)^(-1) y`` of the NNGP kernel on the
data of the config's ``[task]``. Sections: ``[model]`` (optional with a DIR background: the
model recorded in its background.npz is used, and a ``[model]`` that differs from it is refused,
since a foreground must feel its background's own model), ``[foreground]`` (num_neurons, steps,
step_size, temperature (default 1/beta; 0: gradient descent), batch_size (default: full batch),
seed, checkpoint_every, chunk) and, for ``gp`` only, ``[task]``. Writes ``neurons.npz`` and
``foreground.json`` (the background's source and loss, the neurons' mean potential and the loss
of the network made of them on the background data).

Deep networks (``[model] depth >= 3``, docs/theory.md 6.8): ``--background solve`` solves the deep fixed
point of ``[task]``, ``[model]`` and ``[solver]`` (as ``mft-jax solve`` does) and trains ``num_neurons``
neurons of hidden layer ``[foreground] layer`` (1..H) against it, each averaging ``phi(h) phi(h)^T`` over
the steps from ``burn_in`` on (``mft_jax.train.deep_foreground``). Writes ``foreground_kernels.npz``
(``kernel`` and ``kernel_sem``: the neurons' feature kernel and its standard error, ``theory``: the
solver's ``Phi_l``, the data), ``neurons.npz`` for layer 1 (the weights ``w``), and ``foreground.json``
(the theory's convergence and loss, the relative Frobenius distance of the two kernels and the largest
and mean |z| over the kernel's entries). Exit 1 if the fixed point is not reached.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.cli.config import data_from, load_toml, model_from, section
from mft_jax.model import Deep
from mft_jax.errors import ConfigError
from mft_jax.theory.gp import gp_residual
from mft_jax.io import load_background, load_background_model, run_metadata, save_neurons, save_npz, write_json
from mft_jax.cli.solve import SolverConfig, solve_deep_config, staging
from mft_jax.model import TwoLayer
from mft_jax.precision import check_config
from mft_jax.train.deep_foreground import train_deep_foreground
from mft_jax.train.foreground import network_loss, train_foreground

SECTIONS = ("model", "foreground", "task", "solver")


@dataclasses.dataclass(frozen=True)
class ForegroundConfig:
    """``[foreground]``: the single-neuron trainer's settings."""

    num_neurons: int
    steps: int
    step_size: float
    temperature: float | None = None
    batch_size: int | None = None
    seed: int = 0
    checkpoint_every: int = 1000
    chunk: int = 100
    layer: int = 1  # deep nets: the hidden layer (1..H) the neurons belong to
    burn_in: int | None = None  # deep nets: average phi phi^T over the steps from here on (None: the last step)
    step: str = "auto"  # two-layer: "auto" | "fused" | "reference" (mft_jax.train.fused); the one that ran is in foreground.json
    precision: str = "highest"  # matmul precision of the neurons' training (mft_jax.precision): "highest" or "fast"

    def __post_init__(self):
        """Ranges and the precision, checked before any work (a deep foreground would otherwise find them after its solve)."""
        check_config(self.precision, "foreground")
        for name, low in (("num_neurons", 1), ("steps", 0), ("checkpoint_every", 1), ("chunk", 1), ("layer", 1),
                          ("batch_size", 1), ("burn_in", 0)):
            value = getattr(self, name)
            if value is not None and value < low:
                raise ConfigError(f"[foreground] {name} must be an integer >= {low}, got {value!r}")
        if not self.step_size > 0:
            raise ConfigError(f"[foreground] step_size must be a number > 0, got {self.step_size!r}")
        if self.temperature is not None and not self.temperature >= 0:
            raise ConfigError(f"[foreground] temperature must be a number >= 0 (0: gradient descent), got {self.temperature!r}")
        if self.burn_in is not None and self.burn_in >= self.steps:
            raise ConfigError(f"[foreground] burn_in ({self.burn_in}) must be below steps ({self.steps}): no step would be averaged")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--background", required=True, metavar="DIR|gp|solve",
                        help="directory holding background.npz, `gp` for the NNGP background of [task], or `solve` (deep nets): "
                             "the fixed point of [task], [model] and [solver]")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def background_from(source: str, raw: dict, model):
    """``(data, residual)`` of the background: a ``background.npz`` directory or ``gp`` with ``[task]``."""
    if source == "gp":
        if "task" not in raw:
            raise ConfigError("--background gp needs a [task] section: the data the Gaussian-process background lives on")
        data = data_from(raw)
        return data, gp_residual(data, model)
    if "task" in raw:
        raise ConfigError(f"[task] is only for --background gp; with --background {source!r} the data comes from its background.npz")
    return load_background(source)


def model_for(source: str, raw: dict) -> TwoLayer:
    """The ``[model]``, checked against the model a DIR background recorded (or that model if ``[model]`` is absent)."""
    recorded = None if source == "gp" else load_background_model(source)
    if "model" not in raw:
        if recorded is None:
            raise ConfigError(f"[model] is required: the background {source!r} records no model")
        return TwoLayer(**recorded)
    model = model_from(raw)
    if recorded is not None:
        mine = model.settings()
        differences = [f"{k} = {mine[k]!r} (background: {v!r})" for k, v in recorded.items() if mine[k] != v]
        if differences:
            raise ConfigError(
                f"[model] differs from the model of the background {source!r}: {', '.join(differences)}; "
                "a foreground must feel its background's own model (drop [model] to use the background's)"
            )
    return model


def run(args: argparse.Namespace) -> int:
    raw = load_toml(args.config, SECTIONS)
    if args.background == "solve":
        return run_deep(args, raw)
    if "solver" in raw:
        raise ConfigError(f"[solver] is only for --background solve (deep nets); with --background {args.background!r} remove it")
    model = model_for(args.background, raw)
    settings = section(ForegroundConfig, raw.get("foreground"), "foreground")
    if settings.layer != 1 or settings.burn_in is not None:
        raise ConfigError("[foreground] layer and burn_in are for deep nets ([model] depth >= 3, --background solve); remove them")
    data, residual = background_from(args.background, raw, model)
    residual = jnp.asarray(residual, data.y.dtype)
    record: dict = {}
    law = train_foreground(
        jax.random.key(settings.seed), model, data, residual,
        num_neurons=settings.num_neurons, steps=settings.steps, step_size=settings.step_size,
        temperature=settings.temperature, batch_size=settings.batch_size, chunk=settings.chunk,
        out_dir=getattr(args, "checkpoints", None) or args.out, checkpoint_every=settings.checkpoint_every,
        resume=args.resume, progress=getattr(args, "progress", True), precision=settings.precision,
        step=settings.step, record=record,
    )
    out = staging(args)
    save_neurons(out / "neurons.npz", law)
    background_loss = 0.5 * jnp.sum(data.q * jnp.sum(residual * residual, axis=-1))  # L = 1/2 sum q |y - f|^2, r = y - f
    results = {
        "background": {
            "source": "gp" if args.background == "gp" else str(Path(args.background).resolve()),
            "num_points": data.num_points,
            "loss": float(background_loss),
        },
        "model": model.settings(),
        "num_neurons": law.num_particles,
        "temperature": model.temperature if settings.temperature is None else settings.temperature,
        "mean_potential": float(jnp.mean(model.potential(law.a, law.w, data, residual))),
        "network_loss": float(network_loss(model, law, data)),
        "step": record["step"],
        "meta": run_metadata(raw, settings.seed, precision=settings.precision),
    }
    write_json(out / "foreground.json", results)
    print(
        f"foreground: {law.num_particles} neurons -> {Path(args.out) / 'neurons.npz'}; mean potential {results['mean_potential']:.4g}, "
        f"network loss {results['network_loss']:.4g} (background loss {results['background']['loss']:.4g})"
    )
    return 0


def run_deep(args: argparse.Namespace, raw: dict) -> int:
    """``--background solve``: the deep fixed point, then foreground neurons of one hidden layer against it."""
    model = model_from(raw, deep=True)
    if not isinstance(model, Deep):
        raise ConfigError("--background solve is for deep nets ([model] depth >= 3); a two-layer foreground takes the "
                          "output DIR of `mft-jax solve` / `mft-jax train`, or gp")
    settings = section(ForegroundConfig, raw.get("foreground"), "foreground")
    if not 1 <= settings.layer <= model.hidden_layers:
        raise ConfigError(f"[foreground] layer = {settings.layer}: a depth-{model.depth} net has hidden layers 1..{model.hidden_layers}")
    if settings.batch_size is not None:
        raise ConfigError("[foreground] batch_size is for two-layer foregrounds; deep neurons see the whole background")
    if settings.step != "auto":
        raise ConfigError("[foreground] step is for two-layer foregrounds (auto | fused | reference); remove it for deep nets")
    config = section(SolverConfig, raw.get("solver"), "solver")
    data = data_from(raw)
    solution = solve_deep_config(config, model, data, progress=getattr(args, "progress", True), job="foreground")
    if not solution.converged:
        print(f"mft-jax foreground: the background is not a fixed point ({solution.message}); no neurons trained", file=sys.stderr)
        return 1
    neurons = train_deep_foreground(
        jax.random.key(settings.seed), solution, settings.layer, num_neurons=settings.num_neurons, steps=settings.steps,
        step_size=settings.step_size, temperature=settings.temperature, burn_in=settings.burn_in, chunk=settings.chunk,
        out_dir=getattr(args, "checkpoints", None) or args.out, checkpoint_every=settings.checkpoint_every,
        resume=args.resume, progress=getattr(args, "progress", True), precision=settings.precision,
    )
    out = staging(args)
    theory = np.asarray(solution.kernels[settings.layer - 1], np.float64)
    kernel, sem = np.asarray(neurons.kernel, np.float64), np.asarray(neurons.kernel_standard_error, np.float64)
    z = np.abs(kernel - theory) / np.where(sem > 0, sem, np.inf)
    save_npz(out / "foreground_kernels.npz", kernel=kernel, kernel_sem=sem, theory=theory, x=data.x, q=data.q, y=data.y)
    if settings.layer == 1:
        save_neurons(out / "neurons.npz", neurons.weight_law())
    results = {
        "layer": settings.layer,
        "theory": {"converged": solution.converged, "loss": float(solution.loss), "message": solution.message},
        "model": model.settings(),
        "num_neurons": settings.num_neurons,
        "temperature": float(model.temperature) if settings.temperature is None else settings.temperature,
        "burn_in": settings.burn_in,
        "kernel_relative_distance": float(np.linalg.norm(kernel - theory) / np.linalg.norm(theory)),
        "kernel_max_abs_z": float(z.max()),
        "kernel_mean_abs_z": float(z.mean()),
        "meta": run_metadata(raw, settings.seed, precision=settings.precision),
    }
    write_json(out / "foreground.json", results)
    print(f"foreground: {settings.num_neurons} neurons of layer {settings.layer} -> {args.out}; kernel vs theory: relative "
          f"distance {results['kernel_relative_distance']:.3g}, max |z| {results['kernel_max_abs_z']:.2f} "
          f"(mean {results['kernel_mean_abs_z']:.2f})")
    return 0
