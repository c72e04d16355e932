"""Output directories written as a set, behind a lock (docs/guide/robustness.md).

A job never writes into ``--out`` itself. ``OutputSet.open`` (before any work) checks ``--out`` (not a
file, a writable parent, not a foreign non-empty directory) and takes the lock ``OUT.lock`` (created
with ``O_EXCL``, holding the pid; a lock whose process is dead is taken over, with a message). The job
writes its files into a fresh staging directory beside it, ``.NAME.tmp-PID-RANDOM``, and its checkpoints
into ``.NAME.partial/`` (where ``--resume`` looks first). ``publish`` moves the last checkpoint into the
staging directory and swaps it in: rename ``OUT`` aside to ``.NAME.old-PID-RANDOM``, rename the staging
directory to ``OUT``, delete the old one and ``.NAME.partial``. A failed or interrupted run removes its
staging directory and leaves ``OUT`` as it was, and ``.NAME.partial`` holding its last good checkpoint.

A crash between the two renames leaves no ``OUT`` but ``.NAME.old-*`` (the previous output): the next
run on that ``--out`` renames it back (and says so) before it starts; stray ``.NAME.tmp-*`` directories of
dead runs are removed then too.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
from pathlib import Path

from mft_jax.errors import ConfigError

MARKER = ".mft-jax-output"  # written into every published output: the directory may be replaced by a later run
CHECKPOINT = "checkpoint.npz"
KNOWN_OUTPUTS = frozenset({  # what the jobs write (an output directory of an older version holds no marker)
    MARKER, CHECKPOINT, "solution.json", "neurons.npz", "background.npz", "kernels.npz", "network.npz", "train.json",
    "foreground.json", "foreground_kernels.npz", "comparison.json",
})


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except (OverflowError, ValueError):
        return False
    return True


def checkpoint_dir(out: str | os.PathLike) -> Path:
    """Where a run on ``out`` keeps its checkpoints until it completes: ``.NAME.partial`` beside ``out``."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def resume_checkpoint(out: str | os.PathLike) -> Path | None:
    """The checkpoint ``--resume`` continues: an interrupted run's (``.NAME.partial``) or the completed output's."""
    for path in (checkpoint_dir(out) / CHECKPOINT, Path(out) / CHECKPOINT):
        if path.is_file():
            return path
    return None


class OutputSet:
    """The staging directory, checkpoint directory and lock of one job writing ``out``."""

    def __init__(self, out: str | os.PathLike, job: str):
        self.job = job
        self.out = Path(out)
        if not self.out.name or self.out.name in (".", ".."):
            self.out = Path(os.path.abspath(out))
        self.lock = self.out.parent / f"{self.out.name}.lock"
        self.checkpoints = checkpoint_dir(self.out)
        self.staging: Path | None = None
        self._locked = False
        self._copied = None  # the stamp of the completed output's checkpoint copied for --resume

    # -- before the work ---------------------------------------------------------------------------------
    def open(self, *, resume: bool = False) -> "OutputSet":
        """Check ``out``, take the lock, recover from a crashed swap, make the staging directory."""
        out = self.out
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {str(out)!r} is a file; --out must be a directory (new, empty, or an earlier output)")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"--out {str(out)!r}: cannot create its parent directory: {error.strerror or error}") from None
        if not os.access(out.parent, os.W_OK | os.X_OK):
            raise ConfigError(f"--out {str(out)!r}: its parent directory {str(out.parent)!r} is not writable")
        self._acquire_lock()
        try:
            self._recover()
            if out.is_dir():
                foreign = sorted(p.name for p in out.iterdir() if p.name not in KNOWN_OUTPUTS and not p.name.endswith((".tmp", ".tmp.npz"))
                                 and not p.name.startswith(".write-test-"))
                if foreign and not (out / MARKER).exists():
                    raise ConfigError(
                        f"--out {str(out)!r} is a directory holding other files ({', '.join(foreign[:3])}"
                        f"{', ...' if len(foreign) > 3 else ''}), not an mft-jax output; a run replaces its --out "
                        "as a whole: choose a new or empty directory"
                    )
            if not resume and (self.checkpoints / CHECKPOINT).exists():
                print(f"mft-jax {self.job}: discarding the checkpoint of an interrupted run in {str(self.checkpoints)!r} "
                      "(a run without --resume starts over)", file=sys.stderr)
                shutil.rmtree(self.checkpoints, ignore_errors=True)
            staging = out.parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
            try:
                staging.mkdir()
                self.checkpoints.mkdir(exist_ok=True)
            except OSError as error:
                raise ConfigError(f"--out {str(out)!r}: cannot write beside it in {str(out.parent)!r}: {error.strerror or error}") from None
            self.staging = staging
            if resume and not (self.checkpoints / CHECKPOINT).exists():
                completed = out / CHECKPOINT
                if not completed.is_file():
                    raise ConfigError(f"--resume: no checkpoint of an earlier run on --out {str(out)!r} (looked in "
                                      f"{str(self.checkpoints / CHECKPOINT)!r} and {str(completed)!r})")
                shutil.copy2(completed, self.checkpoints / CHECKPOINT)
                self._copied = self._stamp(self.checkpoints / CHECKPOINT)
        except BaseException:
            self.close()
            raise
        return self

    def _acquire_lock(self) -> None:
        for _ in range(3):
            try:
                descriptor = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._lock_holder()
                if holder is not None and _pid_alive(holder):
                    raise ConfigError(
                        f"--out {str(self.out)!r} is in use by process {holder} (lock {str(self.lock)!r}); wait for it to "
                        "finish or choose another --out"
                    ) from None
                # stale: its process is dead (or the lock is unreadable); take it over by renaming it aside first,
                # so that of two runs taking over at once only one succeeds
                aside = self.lock.with_name(f"{self.lock.name}.stale-{os.getpid()}-{secrets.token_hex(4)}")
                try:
                    os.rename(self.lock, aside)
                except FileNotFoundError:
                    continue
                os.unlink(aside)
                print(f"mft-jax {self.job}: taking over the stale lock {str(self.lock)!r} "
                      f"({'of process ' + str(holder) + ', which is no longer running' if holder else 'unreadable'})",
                      file=sys.stderr)
                continue
            except OSError as error:
                raise ConfigError(f"--out {str(self.out)!r}: cannot create the lock {str(self.lock)!r}: {error.strerror or error}") from None
            with os.fdopen(descriptor, "w") as handle:
                handle.write(f"{os.getpid()}\n")
            self._locked = True
            return
        raise ConfigError(f"--out {str(self.out)!r}: could not take the lock {str(self.lock)!r} (another run keeps taking it)")

    @staticmethod
    def _stamp(path: Path):
        try:
            status = path.stat()
        except OSError:
            return None
        return status.st_mtime_ns, status.st_size, status.st_ino

    def _lock_holder(self) -> int | None:
        try:
            text = self.lock.read_text(encoding="ascii", errors="replace").strip()
            return int(text) if text.isdigit() and len(text) < 12 else None
        except OSError:
            return None

    def _recover(self) -> None:
        """Undo what a crashed run left beside ``out`` (we hold the lock: no live run owns these)."""
        parent, name = self.out.parent, self.out.name
        old = sorted(parent.glob(f".{name}.old-*"), key=lambda p: p.stat().st_mtime)
        if old and not self.out.exists():
            os.rename(old.pop(), self.out)
            print(f"mft-jax {self.job}: restored the previous output {str(self.out)!r} (a run had crashed while replacing it)",
                  file=sys.stderr)
        for stray in [*old, *parent.glob(f".{name}.tmp-*")]:
            shutil.rmtree(stray, ignore_errors=True)

    # -- after the work ----------------------------------------------------------------------------------
    def publish(self) -> None:
        """Swap the complete staging directory in for ``out`` (the last checkpoint with it). ``main`` defers
        SIGINT/SIGTERM over this (``_Interrupts.deferred``); a crash in it is repaired by the next run (``_recover``)."""
        assert self.staging is not None
        checkpoint = self.checkpoints / CHECKPOINT
        if checkpoint.exists():
            os.replace(checkpoint, self.staging / CHECKPOINT)
        (self.staging / MARKER).write_text(f"{self.job}\n")
        old = None
        if self.out.exists():
            old = self.out.parent / f".{self.out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(self.out, old)
        os.rename(self.staging, self.out)
        self.staging = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(self.checkpoints, ignore_errors=True)

    def close(self) -> None:
        """Remove the staging directory (if not published) and an empty checkpoint directory; release the lock."""
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
            if self._copied is not None and self._stamp(self.checkpoints / CHECKPOINT) == self._copied:
                (self.checkpoints / CHECKPOINT).unlink()  # a resume refused before its first step: the copy goes
        with contextlib.suppress(OSError):
            self.checkpoints.rmdir()  # only if empty: a kept checkpoint stays for --resume
        if self._locked:
            with contextlib.suppress(OSError):
                if self._lock_holder() == os.getpid():
                    self.lock.unlink()
            self._locked = False
