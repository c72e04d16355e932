"""Reading results files and writing markdown: the ``Results`` reader, number formats, tables."""

from __future__ import annotations

import json
import math
import re

from dataclasses import dataclass
from typing import Callable

from pathlib import Path


MARKER = re.compile(r"<!-- (?P<kind>table|value):(?P<name>[\w.-]+) -->(?P<body>.*?)<!-- /(?P=kind):(?P=name) -->", re.S)
"""A generated span: ``table:NAME`` (a table on its own lines, or a phrase) from ``GENERATORS``, ``value:NAME`` (one
number inside a sentence) from ``VALUES``."""


class Results:
    """The results files under one root, read once: ``results("clover/main")`` is ``results/clover/main.json``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._cache: dict[str, dict] = {}

    def __call__(self, run: str) -> dict:
        if run not in self._cache:
            self._cache[run] = json.loads((self.root / f"{run}.json").read_text())
        return self._cache[run]

    def files(self) -> list[Path]:
        return sorted(self.root.rglob("*.json"))


def num(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits (plain notation where it stays short)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if x == 0:
        return "0"
    text = f"{x:.{digits}g}"
    return text.replace("e-0", "e-").replace("e+0", "e")


def fixed(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}"


def pm(mean: float, err: float, decimals: int = 4) -> str:
    return f"{mean:.{decimals}f} ± {err:.{decimals}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def z_score(a: float, b: float, err: float) -> float:
    return abs(a - b) / err


def _by_sigma2(points) -> dict:
    return {round(p["sigma2"], 6): p for p in points}


def _z(value: float, se: float) -> str:
    z = abs(value) / se
    return f"{z:.0f} s.e." if z >= 10 else f"{z:.1f} s.e."


def lookup(data, key):
    """``data`` at a dotted key path; an integer part indexes a list (``"sweep.-1.exact.loss"``). A tuple of parts
    for a key that itself holds a dot (``("beta_200", "damped_0.5", "seconds")``)."""
    for part in (key.split(".") if isinstance(key, str) else key):
        if isinstance(data, list):
            data = data[int(part)]
        else:
            data = data[part]
    return data


@dataclass(frozen=True)
class Value:
    """``format(results(run)[key], fmt)``: one stored number, formatted."""

    run: str
    key: str | tuple
    fmt: str = ".3g"

    def __call__(self, r: Results) -> str:
        return format(lookup(r(self.run), self.key), self.fmt)


@dataclass(frozen=True)
class Derived:
    """A number computed from the results (``fn(r)``), formatted."""

    fn: Callable[[Results], float]
    fmt: str = ".3g"

    def __call__(self, r: Results) -> str:
        return format(self.fn(r), self.fmt)


def span(values, fmt: str) -> str:
    """``lo-hi`` of ``values`` (one number when they agree at ``fmt``)."""
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}-{hi}"
