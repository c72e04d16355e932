"""``python -m experiments.report``: rewrite (or ``--check``) every generated span of the docs."""

from __future__ import annotations

import argparse
import json
import re
import sys

from pathlib import Path
from experiments.report.format import MARKER, Results
from experiments.report.prose import checked, typed_numbers
from experiments.report.index import GENERATORS
from experiments.report.values import VALUES


ROOT = Path(__file__).resolve().parents[2]


DOCUMENTS = ("README.md", "docs/index.md", "docs/results/*.md")


def render(text: str, results: Results) -> tuple[str, list[str]]:
    """``text`` with every marked span regenerated, and the problems found (unknown names)."""
    problems = []

    def replace(match):
        kind, name, body = match.group("kind"), match.group("name"), match.group("body")
        registry = GENERATORS if kind == "table" else VALUES
        if name not in registry:
            problems.append(f"no generator for {kind} {name!r}")
            return match.group(0)
        try:
            generated = registry[name](results)
        except (KeyError, IndexError, FileNotFoundError) as error:
            problems.append(f"{kind} {name!r}: not in the results files ({type(error).__name__}: {error})")
            return match.group(0)
        block = body.startswith("\n")
        inner = f"\n{generated}\n" if block else generated
        return f"<!-- {kind}:{name} -->{inner}<!-- /{kind}:{name} -->"

    return MARKER.sub(replace, text), problems


def documents(root: Path) -> list[Path]:
    paths = []
    for pattern in DOCUMENTS:
        paths += sorted(root.glob(pattern))
    return paths


def missing_commands(results: Results) -> list[str]:
    """Results files whose ``meta`` records no command (``command`` or ``commands``)."""
    bad = []
    for path in results.files():
        meta = json.loads(path.read_text()).get("meta") or {}
        if not (meta.get("command") or meta.get("commands")):
            bad.append(str(path))
    return bad


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.report", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(ROOT), help="repository root (README.md, docs/results/, results/)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 on a stale table or a results file without a command")
    args = parser.parse_args(argv)
    root = Path(args.root)
    results = Results(root / "results")
    problems = [f"{path}: no command in meta" for path in missing_commands(results)]
    for path in documents(root):
        text = path.read_text()
        new, found = render(text, results)
        problems += [f"{path}: {p}" for p in found]
        if new != text:
            if args.check:
                problems.append(f"{path}: generated tables are stale (run `python -m experiments.report`)")
            else:
                path.write_text(new)
                print(f"wrote {path.relative_to(root)}")
    for path in checked(root):
        problems += [f"{path.relative_to(root)}: number typed by hand, not generated: {t}" for t in typed_numbers(path.read_text())]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0
