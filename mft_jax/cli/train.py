"""Train finite-width two-layer networks (many seeds, vmapped) by Langevin, SGD or Adam.

Config sections: [task] (the Dataset: full-batch training set / quadrature, and where the
background is measured), [model] (the prior, docs/theory.md section 2), [train]:

    width, steps                  network width N, number of steps
    optimizer = "langevin"        Langevin at T = 1/beta (the tempered posterior); needs step_size
              | "sgd" | "adam"    T = 0; needs learning_rate; weight_decay = number | "prior" (T/sa2, T/sw2)
    num_seeds = 1, seed = 0       independent networks in one vmapped run; PRNG seed
    batch_size                    absent: full batch on the [task] Dataset; set: fresh minibatches
                                  from the task law every step (infinite data)
    eval = "task"                 where the final loss and the background are measured: the [task]
                                  Dataset, or (batch_size runs) an integer n: a fresh sample of n
                                  points, and then [task] needs no quadrature / samples / n_train
    chunk = 100, checkpoint_every = 1000
    readout_gibbs_every = K       langevin, full batch: an exact draw of the readouts from their Gaussian
                                  conditional law before every K-th step (the same posterior; the readouts'
                                  slow relaxation is gone: mft_jax.train.gibbs). Absent: plain Langevin

Writes to --out: network.npz (a (S, N, C), w (S, N, d)); neurons.npz (all S N neurons, equal
weights, with a); background.npz (the eval Dataset and the residual r = y - f of the network of
seed 0: a background is one network); train.json (loss curve per seed, final loss per seed on the
eval Dataset, config, meta); checkpoint.npz (for --resume). Exit 1 on NaN (the last good checkpoint
is kept), 2 on a bad config.

``[model] depth >= 3``: deep networks (``mft_jax.model.Deep``, docs/theory.md section 6), Langevin
only. network.npz also holds the hidden weights ``W`` (S, H - 1, N, N); instead of neurons.npz and
background.npz it writes kernels.npz in the layout of ``mft-jax solve``'s: ``x``, ``q``, ``y`` of the eval
Dataset, ``phi_l`` (the feature kernel of hidden layer l, averaged over the seeds; compare with the
theory's), ``phi_l_sem`` (its standard error over seeds, from 2 seeds on) and ``residual`` (seed 0).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from mft_jax.cli.config import data_from, load_toml, model_from, section
from mft_jax.cli.solve import staging
from mft_jax.model import Deep
from mft_jax.errors import ConfigError
from mft_jax.io import run_metadata, save_background, save_neurons, save_npz, write_json
from mft_jax.tasks import get_task
from mft_jax.precision import check_config
from mft_jax.resources import require
from mft_jax.train.joint import OPTIMIZERS, langevin_optimizer, optax_optimizer, prior_weight_decay, train
from mft_jax.train.joint import loss, network_law, residual

DATASET_KEYS = ("name", "quadrature", "samples", "n_train", "seed", "path")
EVAL_STREAM = 2**31 - 1  # fold_in index of the eval sample; seeds use 0 .. num_seeds - 1


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """``[train]``: see the module docstring."""

    width: int
    steps: int
    optimizer: str = "langevin"
    step_size: float | None = None
    learning_rate: float | None = None
    weight_decay: float | str | None = None
    num_seeds: int = 1
    batch_size: int | None = None
    seed: int = 0
    eval: str | int = "task"
    chunk: int = 100
    checkpoint_every: int = 1000
    readout_gibbs_every: int | None = None
    precision: str = "highest"  # matmul precision of the training run (mft_jax.precision): "highest" or "fast"

    def __post_init__(self):
        check_config(self.precision, "train")
        for name in ("width", "num_seeds", "chunk", "checkpoint_every", "batch_size", "readout_gibbs_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"[train] {name} must be >= 1, got {value!r}")
        if self.steps < 0:
            raise ConfigError(f"[train] steps must be >= 0, got {self.steps!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"[train] optimizer = {self.optimizer!r} is unknown; allowed: {', '.join(OPTIMIZERS)}")
        langevin = self.optimizer == "langevin"
        needed, forbidden = (("step_size", ("learning_rate", "weight_decay")) if langevin else ("learning_rate", ("step_size",)))
        if getattr(self, needed) is None or not getattr(self, needed) > 0:
            raise ConfigError(f"[train] optimizer = {self.optimizer!r} needs {needed} > 0, got {getattr(self, needed)!r}")
        for name in forbidden:
            if getattr(self, name) is not None:
                why = "the prior fixes the decay T/s2 and beta the noise" if langevin else "step_size is Langevin's; use learning_rate"
                raise ConfigError(f"[train] {name} is not used by optimizer = {self.optimizer!r} ({why}); remove it")
        if isinstance(self.weight_decay, str) and self.weight_decay != "prior":
            raise ConfigError(f"[train] weight_decay must be a number >= 0 or \"prior\", got {self.weight_decay!r}")
        if isinstance(self.weight_decay, (int, float)) and self.weight_decay < 0:
            raise ConfigError(f"[train] weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.eval != "task" and not (isinstance(self.eval, int) and self.eval >= 1):
            raise ConfigError(f"[train] eval must be \"task\" (the [task] Dataset) or a positive number of fresh samples, got {self.eval!r}")
        if self.readout_gibbs_every is not None and (self.optimizer != "langevin" or self.batch_size is not None):
            raise ConfigError("[train] readout_gibbs_every samples the posterior: it needs optimizer = \"langevin\" and full "
                              f"batch (no batch_size); got optimizer = {self.optimizer!r}, batch_size = {self.batch_size!r}")
        if self.eval != "task" and self.batch_size is None:
            raise ConfigError("[train] eval = n (fresh samples) is for infinite-data runs (batch_size set); full-batch runs measure on the [task] Dataset")


def add_arguments(parser) -> None:
    parser.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.npz (bit-for-bit the uninterrupted run)")


def task_from(raw: dict):
    """The ``Task`` (law of the data) behind the ``[task]`` section, for fresh minibatches."""
    options = {k: v for k, v in (raw.get("task") or {}).items() if k not in DATASET_KEYS}
    name = (raw.get("task") or {}).get("name")
    if name == "npz":
        raise ConfigError("[train] batch_size needs a task law to sample from; task 'npz' is a fixed dataset: remove batch_size")
    return get_task(name, **options)


def run(args) -> int:
    raw = load_toml(args.config, ("task", "model", "train"))
    model = model_from(raw, deep=True)
    config = section(TrainConfig, raw.get("train"), "train")
    deep = model.hidden_layers > 1
    if deep and config.optimizer != "langevin":
        raise ConfigError(f"[train] optimizer = {config.optimizer!r}: deep networks ([model] depth = {model.depth}) train by "
                          "Langevin only (the posterior the deep theory describes); use optimizer = \"langevin\"")
    if config.optimizer == "langevin":
        optimizer = langevin_optimizer(model, config.step_size)
    else:
        decay = prior_weight_decay(model) if config.weight_decay == "prior" else (config.weight_decay or 0.0)
        optimizer = optax_optimizer(config.optimizer, config.learning_rate, decay)
    key = jax.random.key(config.seed)
    if config.batch_size is None:
        source = eval_data = data_from(raw)
    else:
        source = task_from(raw)
        eval_data = data_from(raw) if config.eval == "task" else source.sample(jax.random.fold_in(key, EVAL_STREAM), config.eval)

    if deep:  # found before the training, not after it
        require_deep_kernels(config.num_seeds, config.width, model, eval_data)
    out = staging(args)
    out.mkdir(parents=True, exist_ok=True)
    result = train(
        key, model, config.width, source, optimizer, config.steps, num_seeds=config.num_seeds,
        batch_size=config.batch_size, chunk=config.chunk, out_dir=getattr(args, "checkpoints", None) or out, checkpoint_every=config.checkpoint_every,
        resume=args.resume, readout_gibbs_every=config.readout_gibbs_every, precision=config.precision,
    )
    params = result.params
    final_loss = np.asarray(jax.vmap(loss, in_axes=(0, None, None))(params, model, eval_data))
    save_npz(out / "network.npz", **params)  # a, w (and W for a deep net)
    if deep:
        save_deep_kernels(out / "kernels.npz", params, model, eval_data)
    else:
        seed0 = jax.tree.map(lambda leaf: leaf[0], params)
        save_neurons(out / "neurons.npz", network_law(params))
        save_background(out / "background.npz", eval_data, residual(seed0, model, eval_data), model)
    write_json(out / "train.json", {
        "loss_curve": {"step": result.history["step"], "loss_per_seed": result.history["loss"]},
        "final_loss_per_seed": final_loss,
        "final_loss_mean": float(final_loss.mean()),
        "eval": "the [task] dataset" if config.eval == "task" else f"{config.eval} fresh samples",
        "meta": run_metadata(raw, config.seed, precision=config.precision),
    })
    print(f"trained {config.num_seeds} network(s) of width {config.width} for {config.steps} steps; "
          f"final loss (mean over seeds) {final_loss.mean():.6g}; wrote {args.out}")
    return 0


def require_deep_kernels(seeds: int, width: int, model: Deep, data) -> None:
    """Refuse (before training) feature kernels that would not fit in memory at the end of a deep run."""
    layers, P = model.hidden_layers, data.num_points
    require(8.0 * (seeds + 2) * layers * P * P + 8.0 * seeds * layers * P * width,
            f"the feature kernels of {seeds} network(s), {layers} layers on {P} points",
            "[train] num_seeds or the eval data size")


def save_deep_kernels(path, params: dict, model: Deep, data) -> None:
    """kernels.npz of a deep run: each hidden layer's feature kernel on ``data``, mean and standard error over seeds."""
    seeds, layers, P, width = params["a"].shape[0], model.hidden_layers, data.num_points, params["a"].shape[1]
    require_deep_kernels(seeds, width, model, data)
    kernels = np.asarray(jax.vmap(model.feature_kernels, in_axes=(0, None))(params, data.x), np.float64)
    mean = kernels.mean(0)
    arrays = {f"phi_{l}": mean[l - 1] for l in range(1, layers + 1)}
    if seeds >= 2:
        sem = kernels.std(0, ddof=1) / np.sqrt(seeds)
        arrays.update({f"phi_{l}_sem": sem[l - 1] for l in range(1, layers + 1)})
    seed0 = jax.tree.map(lambda leaf: leaf[0], params)
    residual0 = residual(seed0, model, data)
    save_npz(path, x=data.x, q=data.q, y=data.y, residual=residual0, **arrays)
