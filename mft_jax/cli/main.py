"""``mft-jax``: solve / train / foreground over TOML configs, and compare their outputs.

Exit codes: 0 success; 1 a run that finished without its answer (no fixed point within the
budget, NaN stopped a run); 2 bad input (config, data, arguments); 3 a non-normalizable
single-neuron law (a physical answer, reported in words).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from pathlib import Path

from mft_jax.distributed import initialize_from_environment
from mft_jax.io import devices
from mft_jax.errors import ConfigError, NonFiniteError, NonNormalizableError, NoFixedPointError

JOBS = {
    "solve": "solve the mean-field fixed point K = B(F(K)) for a config",
    "train": "train finite-width networks (Langevin / optax) for a config",
    "foreground": "train independent single neurons against a fixed background",
    "compare": "distances between two neuron laws, next to their noise floors",
}
CONFIG_JOBS = ("solve", "train", "foreground")  # jobs driven by a TOML config and --out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mft-jax", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in JOBS.items():
        job = importlib.import_module(f"mft_jax.cli.{name}")
        sub = commands.add_parser(name, help=help_text, description=job.__doc__)
        if name in CONFIG_JOBS:
            sub.add_argument("config", help="TOML config file")
            sub.add_argument("--out", required=True, help="output directory")
        job.add_arguments(sub)
    return parser


def check_output_directory(out: str) -> None:
    """Make ``out`` and prove it writable before any work starts (a long run must not fail at its end)."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as error:
        raise ConfigError(f"--out {out!r} is not a writable directory: {error.strerror or error}") from None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    job = importlib.import_module(f"mft_jax.cli.{args.command}")
    try:
        initialize_from_environment()  # a multi-process job (JAX_COORDINATOR_ADDRESS, SLURM, TPU pod); else nothing
        if args.command in CONFIG_JOBS:
            check_output_directory(args.out)
        print(f"mft-jax {args.command}: devices: {', '.join(devices())}")
        return int(job.run(args) or 0)
    except OSError as error:  # a filesystem failure the jobs did not foresee: said in words, never a traceback
        where = f" {error.filename!r}" if error.filename else ""
        print(f"mft-jax {args.command}: error: cannot read or write{where}: {error.strerror or error}", file=sys.stderr)
        return 2
    except ConfigError as error:
        print(f"mft-jax {args.command}: error: {error}", file=sys.stderr)
        return 2
    except NonNormalizableError as error:
        print(f"mft-jax {args.command}: no single-neuron law: {error}", file=sys.stderr)
        return 3
    except (NoFixedPointError, NonFiniteError) as error:
        print(f"mft-jax {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
