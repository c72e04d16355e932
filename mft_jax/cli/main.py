"""``mft-jax``: solve / train / foreground over TOML configs, and compare their outputs.

Exit codes: 0 success; 1 a run that finished without its answer (no fixed point within the
budget, NaN stopped a run); 2 bad input (config, data, arguments, --out in use); 3 a non-normalizable
single-neuron law (a physical answer, reported in words); 4 an internal error (a bug); 130 / 143
interrupted by SIGINT (Ctrl-C) / SIGTERM, the last checkpoint kept and the resume command printed.
Errors are one line; ``--debug`` (or ``MFT_JAX_DEBUG=1``) prints the traceback too.
Outputs are written as a set behind a lock (``mft_jax.cli.outputs``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import signal
import sys
import traceback
from pathlib import Path

import numpy as np

from mft_jax.cli.outputs import CHECKPOINT, OutputSet
from mft_jax.io import devices
from mft_jax.errors import ConfigError, NonFiniteError, NonNormalizableError, NoFixedPointError

JOBS = {
    "solve": "solve the mean-field fixed point K = B(F(K)) for a config",
    "train": "train finite-width networks (Langevin / optax) for a config",
    "foreground": "train independent single neurons against a fixed background",
    "compare": "distances between two neuron laws, next to their noise floors",
}
CONFIG_JOBS = ("solve", "train", "foreground")  # jobs driven by a TOML config and --out
CHECKPOINT_JOBS = ("train", "foreground")  # jobs that checkpoint and --resume
EXIT_INTERNAL = 4  # an unexpected exception: a bug in mft_jax (never a bad input: those exit 2)
EXIT_SIGINT, EXIT_SIGTERM = 130, 143  # 128 + the signal number, as a shell reports a killed process


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mft-jax", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="print the full traceback of an error (also: MFT_JAX_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in JOBS.items():
        job = importlib.import_module(f"mft_jax.cli.{name}")
        sub = commands.add_parser(name, help=help_text, description=job.__doc__)
        if name in CONFIG_JOBS:
            sub.add_argument("config", help="TOML config file")
            sub.add_argument("--out", required=True, help="output directory")
        job.add_arguments(sub)
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="print the full traceback of an error (also: MFT_JAX_DEBUG=1)")
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is (like Ctrl-C's KeyboardInterrupt), so checkpoints are kept the same way."""


def _on_sigterm(signum, frame):
    raise Terminated()


def debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("MFT_JAX_DEBUG", "").strip() not in ("", "0")


def _checkpoint_step(path: Path) -> int | None:
    try:
        with np.load(path) as archive:
            return int(archive["step"])
    except Exception:  # a report of an interrupt must not fail itself
        return None


def interrupted_message(command: str, argv: list[str], output: OutputSet | None, signame: str) -> str:
    """One line: what an interrupt kept and the exact command that continues the run."""
    words = f"mft-jax {command}: interrupted ({signame})"
    if output is None:
        return f"{words}; nothing was written"
    words += f"; the previous output in {str(output.out)!r} is unchanged"
    checkpoint = output.checkpoints / CHECKPOINT
    if command in CHECKPOINT_JOBS and checkpoint.exists():
        step = _checkpoint_step(checkpoint)
        again = [a for a in argv if a != "--debug"]
        again = again if "--resume" in again else [*again, "--resume"]
        return (f"{words}; the last checkpoint{'' if step is None else f' (step {step})'} is {str(checkpoint)!r}. "
                f"Resume with: mft-jax {shlex.join(again)}")
    return f"{words}; rerun with: mft-jax {shlex.join([a for a in argv if a != '--debug'])}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = debug_requested(argv) or getattr(args, "debug", False)
    try:
        previous_handler = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: SIGTERM keeps its default action
        previous_handler = None
    output = None
    command = args.command

    def report(line: str, code: int) -> int:
        if debug:
            traceback.print_exc()
        print(line, file=sys.stderr)
        return code

    try:
        job = importlib.import_module(f"mft_jax.cli.{command}")
        output = OutputSet(args.out, command).open(resume=getattr(args, "resume", False))
        args.staging, args.checkpoints = str(output.staging), str(output.checkpoints)
        print(f"mft-jax {command}: devices: {', '.join(devices())}")
        code = int(job.run(args) or 0)
        if any(output.staging.iterdir()):  # a job that wrote nothing (e.g. refused its background) keeps the old output
            output.publish()
        return code
    except KeyboardInterrupt as interrupt:
        terminated = isinstance(interrupt, Terminated)
        return report(interrupted_message(command, argv, output, "SIGTERM" if terminated else "SIGINT"),
                      EXIT_SIGTERM if terminated else EXIT_SIGINT)
    except OSError as error:  # a filesystem failure the jobs did not foresee: said in words, never a traceback
        where = f" {error.filename!r}" if error.filename else ""
        return report(f"mft-jax {command}: error: cannot read or write{where}: {error.strerror or error}", 2)
    except ConfigError as error:
        return report(f"mft-jax {command}: error: {error}", 2)
    except MemoryError:
        return report(f"mft-jax {command}: error: out of memory; lower the sizes of the config (points, particles, "
                      "width, seeds)", 2)
    except NonNormalizableError as error:
        return report(f"mft-jax {command}: no single-neuron law: {error}", 3)
    except (NoFixedPointError, NonFiniteError) as error:
        return report(f"mft-jax {command}: {error}", 1)
    except Exception as error:  # a bug: one line (the traceback with --debug / MFT_JAX_DEBUG=1)
        if "RESOURCE_EXHAUSTED" in str(error):
            return report(f"mft-jax {command}: error: the device ran out of memory; lower the sizes of the config", 2)
        first = (str(error).strip().splitlines() or [""])[0][:300]
        return report(f"mft-jax {command}: internal error: {type(error).__name__}: {first} (a bug: please report it "
                      "with the output of --debug)", EXIT_INTERNAL)
    finally:
        if output is not None:
            output.close()
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)


if __name__ == "__main__":
    sys.exit(main())
