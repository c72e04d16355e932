"""``mft-jax compare THEORY EMPIRICAL --out DIR``: two neuron laws side by side, with noise floors.

``THEORY`` and ``EMPIRICAL`` are output directories of ``solve``, ``train`` or ``foreground`` (or
``neurons.npz`` files). Writes ``DIR/comparison.json``: ``mft_jax.analysis.compare.compare_laws`` (sliced
Wasserstein, Sinkhorn, energy, MMD, each with the noise floor of an exact sample of the same size),
the losses both runs recorded, and ``meta``; prints the table.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import jax

from mft_jax import io
from mft_jax.analysis.compare import SYMMETRIES, compare_laws
from mft_jax.cli.config import read_text
from mft_jax.errors import ConfigError, NonFiniteError

LOSS_KEYS = {"solution.json": "loss", "train.json": "final_loss_mean", "foreground.json": "network_loss"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("theory", help="reference law: a solve/train/foreground output directory or neurons.npz")
    parser.add_argument("empirical", help="the law to compare with it (same kinds)")
    parser.add_argument("--out", required=True, help="output directory (comparison.json)")
    parser.add_argument("--symmetry", default="none", help=f"identify symmetric neurons first: {', '.join(SYMMETRIES)}")
    parser.add_argument("--space", default="w", choices=("w", "aw"), help="compare w, or (a, w) when both laws carry readouts")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed of projections and noise floors")
    parser.add_argument("--repeats", type=int, default=10, help="samples behind each noise floor")


MAX_REPEATS = 1000  # each repeat is a full set of distances between two fresh samples: more would not finish


def recorded_loss(source: str) -> float | None:
    """The loss a solve/train/foreground run wrote next to its neurons, if any (read and checked before any work:
    a file that is not JSON, not an object, or holds a loss that is not a number is refused in words)."""
    directory = Path(source) if Path(source).is_dir() else Path(source).parent
    for name, key in LOSS_KEYS.items():
        path = directory / name
        if path.exists():
            try:
                record = json.loads(read_text(path, what="result file", max_bytes=None))
            except ValueError as error:
                raise ConfigError(f"{str(path)!r} is not JSON ({error}); expected the {name} a run wrote") from None
            except RecursionError:
                raise ConfigError(f"{str(path)!r} nests too deeply to be the {name} a run wrote") from None
            if not isinstance(record, dict):
                raise ConfigError(f"{str(path)!r} holds a JSON {type(record).__name__}; a {name} is an object with {key!r}")
            value = record.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"{str(path)!r}: {key} = {value!r}; expected a number (or null)")
            return value
    return None


def run(args) -> int:
    if args.symmetry not in SYMMETRIES:
        raise ConfigError(f"--symmetry {args.symmetry!r} is unknown; allowed: {', '.join(SYMMETRIES)}")
    if not 2 <= args.repeats <= MAX_REPEATS:
        raise ConfigError(f"--repeats must be >= 2 (a noise floor needs a spread) and <= {MAX_REPEATS} (each repeat "
                          f"recomputes every distance), got {args.repeats}")
    if not 0 <= args.seed < 2**63:
        raise ConfigError(f"--seed must be an integer in [0, 2^63), got {args.seed}")
    theory, empirical = io.load_neurons(args.theory), io.load_neurons(args.empirical)
    if theory.w.shape[1] != empirical.w.shape[1]:
        raise ConfigError(f"the laws live in different dimensions: d = {theory.w.shape[1]} vs d = {empirical.w.shape[1]}")
    if args.space == "aw":
        for label, law in (("THEORY", theory), ("EMPIRICAL", empirical)):
            if law.a is None:
                raise ConfigError(f"--space aw needs readouts a on both laws; {label} ({args.theory if label == 'THEORY' else args.empirical!r}) has none")
        if theory.a.shape[1] != empirical.a.shape[1]:
            raise ConfigError(f"--space aw: the readouts have different sizes: C = {theory.a.shape[1]} vs C = {empirical.a.shape[1]}")
    loss = {"theory": recorded_loss(args.theory), "empirical": recorded_loss(args.empirical)}  # checked before the work
    report = compare_laws(theory, empirical, key=jax.random.key(args.seed), space=args.space,
                          symmetry=args.symmetry, repeats=args.repeats)
    report["loss"] = loss
    bad = [name for name in ("sliced_wasserstein", "sinkhorn", "energy", "mmd")
           if not all(math.isfinite(float(v)) for v in report[name].values() if isinstance(v, (int, float)))]
    if bad:  # finite inputs should never give this: a failure of the metric, not a distance
        raise NonFiniteError(f"compare: {', '.join(bad)} came out NaN/inf from finite inputs; nothing written")
    settings = {k: getattr(args, k) for k in ("theory", "empirical", "symmetry", "space", "seed", "repeats")}
    io.write_json(Path(getattr(args, "staging", None) or args.out) / "comparison.json", {**report, "meta": io.run_metadata(settings, args.seed)})
    print(f"{'metric':<20}{'distance':>12}{'noise floor':>14}{'floor std':>12}")
    for name in ("sliced_wasserstein", "sinkhorn", "energy", "mmd"):
        row = report[name]
        print(f"{name:<20}{row['distance']:>12.4g}{row['noise_floor']:>14.4g}{row['noise_floor_std']:>12.3g}")
    print(f"{'loss':<20}{'theory':>12} {report['loss']['theory']}  empirical {report['loss']['empirical']}")
    return 0
