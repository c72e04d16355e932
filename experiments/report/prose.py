"""The rule "numbers in the docs come from results/": no decimal number typed in the prose of a checked page.

A decimal number (``0.52``, ``.5``, ``1.7e5``) in a checked page must sit inside a generated span (``table:`` or
``value:``), inside code (a fenced block or inline backticks: commands, identifiers, file names), inside an HTML
comment or a link target, or be a setting of a run that ``SETTINGS`` names (``beta = 0.5``, ``h = 0.01``): the
config of the run, not a result. Anything else is a hand-typed number and fails ``--check`` and the docs test."""

from __future__ import annotations

import re

from pathlib import Path

from experiments.report.format import MARKER


PENDING: tuple[str, ...] = ()
"""Pages whose prose still quotes numbers carried over from the research log: every other document that
``run.DOCUMENTS`` names (README, the site's home, every results page, a new one included) is checked."""


def checked(root: Path) -> list[Path]:
    """The documents under ``root`` whose prose is checked: every generated document but the ``PENDING`` ones."""
    from experiments.report.run import documents

    return [path for path in documents(root) if path.relative_to(root).as_posix() not in PENDING]


_NUM = r"\d*\.?\d+(?:e[-+]?\d+)?"
SETTINGS = (
    # a setting of the run: a name the configs use, then = (or <= / >=) and one or more numbers (a list, a range)
    rf"\b(?:beta|h|sigma\^2|sa2|sw2|damping|fraction|scale|u|step size|tol)\s*(?:=|<=|>=)\s*{_NUM}"
    rf"(?:(?:\s*,\s*|\s+and\s+|\s*\.\.\.\s*|\s+to\s+){_NUM})*",
    # a version of a dependency
    r"\b(?:Python|jax)\s*\(?(?:>=\s*)?\d+(?:\.\d+)+",
    # the expected runtime of a command (an estimate for the reader, not a measured result)
    rf"~{_NUM}\s*(?:min|h|s)\b",
    # a target ratio set by an issue (the result it is compared with is generated)
    rf">=\s*{_NUM}x\b",
)
"""Settings patterns (short on purpose): a match is the config of a run, not a result."""

_DECIMAL = re.compile(r"(?<![\w.])\d*\.\d+(?:e[-+]?\d+)?")
_EXEMPT = re.compile(r"```.*?```|`[^`]*`|<!--.*?-->|\]\([^)]*\)", re.S)


def typed_numbers(text: str) -> list[str]:
    """The decimal numbers typed by hand in ``text``'s prose, each with its line (empty when the page is clean)."""
    text = MARKER.sub(" ", text)
    text = _EXEMPT.sub(" ", text)
    for pattern in SETTINGS:
        text = re.sub(pattern, " ", text)
    found = []
    for line in text.splitlines():
        found += [f"{m.group(0)!r} in: {line.strip()[:120]}" for m in _DECIMAL.finditer(line)]
    return found
