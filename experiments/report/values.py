"""Inline generated numbers: ``<!-- value:NAME -->0.52<!-- /value:NAME -->`` inside a sentence of the docs.

Each NAME is one entry of ``VALUES``: a results run, a key path into its JSON and a format (``Value``), or a
function of the results (``Derived``) for a number computed from several keys (a ratio, a relative error)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from experiments.report.format import Results


def lookup(data, key: str):
    """``data`` at a dotted key path; an integer part indexes a list (``"sweep.-1.exact.loss"``)."""
    for part in key.split("."):
        if isinstance(data, list):
            data = data[int(part)]
        else:
            data = data[part]
    return data


@dataclass(frozen=True)
class Value:
    """``format(results(run)[key], fmt)``: one stored number, formatted."""

    run: str
    key: str
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


VALUES: dict[str, Callable[[Results], str]] = {
    # linear
    "linear_g_infinity": Value("linear/main", "g_infinity", ".3f"),
    "linear_networks_num_seeds": Value("linear/main", "config.benchmark.num_seeds", "d"),
}
