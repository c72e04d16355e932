"""``mft-jax``: solve / train / foreground / compare over TOML configs.

Exit codes: 0 success; 1 a run that finished without its answer (no fixed point within the
budget, NaN stopped a run); 2 bad input (config, data, arguments); 3 a non-normalizable
single-neuron law (a physical answer, reported in words).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mft_jax.errors import ConfigError, NonFiniteError, NonNormalizableError, NoFixedPointError

JOBS = {
    "solve": "solve the mean-field fixed point K = B(F(K)) for a config",
    "train": "train finite-width networks (Langevin / optax) for a config",
    "foreground": "train independent single neurons against a fixed background",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mft-jax", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in JOBS.items():
        try:
            job = importlib.import_module(f"mft_jax.jobs.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"mft_jax.jobs.{name}":
                raise
            continue  # this job is not part of the checkout (yet): not offered
        sub = commands.add_parser(name, help=help_text, description=job.__doc__)
        sub.add_argument("config", help="TOML config file")
        sub.add_argument("--out", required=True, help="output directory")
        job.add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    job = importlib.import_module(f"mft_jax.jobs.{args.command}")
    try:
        return int(job.run(args) or 0)
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
