"""Rerun the command a results file records: ``python -m experiments.rerun results/EXPERIMENT/RUN.json``.

Reads ``meta.argv`` (or ``meta.command``; ``meta.commands`` for a file built from several runs, run in order)
and runs it from the repository root with this Python. ``--dry-run`` prints the commands only. A command
reconstructed from the README (``meta.command_source``) is said before it runs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from mft_jax.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def commands(path: str | Path) -> list[list[str]]:
    """The commands (argv lists, ``python`` replaced by this interpreter) that made the results file ``path``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no results file at {str(path)!r}")
    meta = json.loads(path.read_text()).get("meta") or {}
    if meta.get("commands"):
        found = [shlex.split(c) for c in meta["commands"]]
    elif meta.get("argv"):
        found = [list(meta["argv"])]
    elif meta.get("command"):
        found = [shlex.split(meta["command"])]
    else:
        raise ConfigError(f"{str(path)!r} records no command (meta.argv, meta.command or meta.commands)")
    return [[sys.executable, *argv[1:]] if argv and argv[0] == "python" else argv for argv in found]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.rerun", description=__doc__.splitlines()[0])
    parser.add_argument("results", help="a results file, results/EXPERIMENT/RUN.json")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    try:
        todo = commands(args.results)
    except ConfigError as error:
        print(f"rerun: {error}", file=sys.stderr)
        return 2
    source = (json.loads(Path(args.results).read_text()).get("meta") or {}).get("command_source")
    if source:
        print(f"rerun: the command of {args.results} was {source}", flush=True)
    for command in todo:
        print("$ " + shlex.join(command), flush=True)
        if not args.dry_run:
            status = subprocess.run(command, cwd=ROOT).returncode
            if status:
                return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
