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
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp

from mft_jax.config import data_from, load_toml, model_from, section
from mft_jax.errors import ConfigError
from mft_jax.gp import gp_residual
from mft_jax.io import load_background, load_background_model, run_metadata, save_neurons, write_json
from mft_jax.model import TwoLayer
from mft_jax.train.foreground import network_loss, train_foreground

SECTIONS = ("model", "foreground", "task")


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--background", required=True, metavar="DIR|gp", help="directory holding background.npz, or `gp` for the NNGP background of [task]")
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
    model = model_for(args.background, raw)
    settings = section(ForegroundConfig, raw.get("foreground"), "foreground")
    data, residual = background_from(args.background, raw, model)
    residual = jnp.asarray(residual, data.y.dtype)
    law = train_foreground(
        jax.random.key(settings.seed), model, data, residual,
        num_neurons=settings.num_neurons, steps=settings.steps, step_size=settings.step_size,
        temperature=settings.temperature, batch_size=settings.batch_size, chunk=settings.chunk,
        out_dir=args.out, checkpoint_every=settings.checkpoint_every, resume=args.resume,
        progress=getattr(args, "progress", True),
    )
    out = Path(args.out)
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
        "meta": run_metadata(raw, settings.seed),
    }
    write_json(out / "foreground.json", results)
    print(
        f"foreground: {law.num_particles} neurons -> {out / 'neurons.npz'}; mean potential {results['mean_potential']:.4g}, "
        f"network loss {results['network_loss']:.4g} (background loss {results['background']['loss']:.4g})"
    )
    return 0
