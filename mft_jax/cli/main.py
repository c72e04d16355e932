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
import contextlib
import importlib
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import jax
import numpy as np

from mft_jax.cli.outputs import CHECKPOINT, OutputSet, checkpoint_dir
from mft_jax.distributed import initialize_from_environment, is_writer
from mft_jax.io import devices
from mft_jax.precision import uses_precision
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


GRACE_SECONDS = 10.0  # after SIGINT/SIGTERM, how long a long native computation may hold the program before it is stopped


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is (like Ctrl-C's KeyboardInterrupt), so checkpoints are kept the same way."""


class _Interrupts:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` / ``Terminated`` in the main thread, where the job keeps its
    checkpoint and ``main`` prints the resume line. Python runs signal handlers only between bytecodes, so a signal
    that lands inside a long native computation (an XLA compilation, a big solve step) would wait for it: a watcher
    thread, woken by ``signal.set_wakeup_fd``, gives the main thread ``GRACE_SECONDS`` to take the signal, and
    otherwise prints the same line itself and exits (130 / 143) without waiting (the checkpoint on disk is the last
    one written; the lock and staging directory left behind are cleaned by the next run on that ``--out``)."""

    def __init__(self, message):
        self.message, self.taken, self.closed, self.deferring, self.pending = message, False, False, False, None
        self.previous = {}
        try:
            for signum, handler in ((signal.SIGINT, self._on_sigint), (signal.SIGTERM, self._on_sigterm)):
                self.previous[signum] = signal.signal(signum, handler)
            self.read, self.write = os.pipe()
            os.set_blocking(self.write, False)
            self.previous_fd = signal.set_wakeup_fd(self.write, warn_on_full_buffer=False)
        except ValueError:  # not the main thread: default signal handling
            self._restore()
            for fd in (getattr(self, "read", None), getattr(self, "write", None)):
                if fd is not None:
                    os.close(fd)
            self.read = None
            return
        threading.Thread(target=self._watch, args=(self.read,), daemon=True, name="mft-jax-interrupts").start()

    def _on_sigint(self, signum, frame):
        self.taken = True
        if self.deferring:
            self.pending = self.pending or KeyboardInterrupt
            return
        raise KeyboardInterrupt()

    def _on_sigterm(self, signum, frame):
        self.taken = True
        if self.deferring:
            self.pending = Terminated
            return
        raise Terminated()

    @contextlib.contextmanager
    def deferred(self):
        """A section a signal must not cut (swapping the output directories): the interrupt is raised after it."""
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.pending is not None:
            raise self.pending()

    def _watch(self, read: int):
        try:
            data = os.read(read, 1)
        except OSError:
            data = b""
        finally:
            os.close(read)
        if not data or self.closed:
            return
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline:
            if self.taken or self.closed:
                return
            time.sleep(0.05)
        signum = data[0]
        name = "SIGTERM" if signum == signal.SIGTERM else "SIGINT"
        print(self.message(name) + " (stopped inside a long computation without waiting for it)", file=sys.stderr, flush=True)
        os._exit(EXIT_SIGTERM if signum == signal.SIGTERM else EXIT_SIGINT)

    def _restore(self):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def close(self):
        self.closed = True
        if self.read is None:
            return
        signal.set_wakeup_fd(self.previous_fd)
        self._restore()
        os.close(self.write)  # wakes the watcher with end-of-file
        self.read = None


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
    words += (f"; the previous output in {str(output.out)!r} is unchanged" if output.out.exists()
              else f"; nothing was written to {str(output.out)!r}")
    checkpoint = output.checkpoints / CHECKPOINT
    if command in CHECKPOINT_JOBS and checkpoint.exists():
        step = _checkpoint_step(checkpoint)
        again = [a for a in argv if a != "--debug"]
        again = again if "--resume" in again else [*again, "--resume"]
        return (f"{words}; the last checkpoint{'' if step is None else f' (step {step})'} is {str(checkpoint)!r}. "
                f"Resume with: mft-jax {shlex.join(again)}")
    return f"{words}; rerun with: mft-jax {shlex.join([a for a in argv if a != '--debug'])}"


def refuse_inputs_inside_out(args) -> None:
    """An input read from inside ``--out`` would be deleted when the new output replaces it: refused before the work."""
    out = Path(args.out).resolve()
    for option in ("config", "background", "theory", "empirical"):
        value = getattr(args, option, None)
        if value is None or (option == "background" and value in ("gp", "solve")):
            continue
        path = Path(value).resolve()
        if path == out or out in path.parents:
            raise ConfigError(f"{'--' + option if option == 'background' else option.upper()} {value!r} lies inside --out "
                              f"{args.out!r}, which this run replaces as a whole; write to another --out")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:  # first: before any import that touches a JAX backend (building the parser imports the jobs)
        initialize_from_environment()  # a multi-process job (JAX_COORDINATOR_ADDRESS, SLURM, TPU pod); else nothing
    except ConfigError as error:
        print(f"mft-jax: error: {error}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = debug_requested(argv) or getattr(args, "debug", False)
    output = None
    command = args.command
    interrupts = _Interrupts(lambda name: interrupted_message(command, argv, output, name))

    def report(line: str, code: int) -> int:
        if debug:
            traceback.print_exc()
        print(line, file=sys.stderr)
        return code

    try:
        job = importlib.import_module(f"mft_jax.cli.{command}")
        refuse_inputs_inside_out(args)
        if is_writer():  # process 0 of a multi-process job writes (and locks) the output set; the others write nothing
            output = OutputSet(args.out, command).open(resume=getattr(args, "resume", False))
            args.staging, args.checkpoints = str(output.staging), str(output.checkpoints)
        else:
            args.staging = tempfile.mkdtemp(prefix=f".mft-jax-{command}-process{jax.process_index()}-")
            args.checkpoints = str(checkpoint_dir(args.out))
        print(f"mft-jax {command}: devices: {', '.join(devices())}")
        code = int(uses_precision(job.run)(args) or 0)  # the whole job at the library's precision (a trainer's own inside)
        if output is not None and any(output.staging.iterdir()):  # a job that wrote nothing keeps the old output
            with interrupts.deferred():
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
        interrupts.close()


if __name__ == "__main__":
    sys.exit(main())
