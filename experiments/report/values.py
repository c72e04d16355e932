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


def _span(values, fmt: str) -> str:
    """``lo-hi`` of ``values`` (one number when they agree at ``fmt``)."""
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}-{hi}"


VALUES: dict[str, Callable[[Results], str]] = {
    # linear
    "linear_g_infinity": Value("linear/main", "g_infinity", ".3f"),
    "linear_networks_num_seeds": Value("linear/main", "config.benchmark.num_seeds", "d"),
    # neuron_throughput
    "nt_load_average": Value("neuron_throughput/main", "machine.load_average_before.0", ".1f"),
    "nt_flop_rate": Derived(lambda r: r("neuron_throughput/main")["jax_flop_rate"] / 1e9, ".1f"),
    "nt_fraction_of_peak": Value("neuron_throughput/main", "fraction_of_peak", ".0%"),
    "nt_peak": Derived(lambda r: r("neuron_throughput/main")["matmul_peak_flops"] / 1e9, ".0f"),
    # deep_speed
    "ds_flops_per_mp2": lambda r: _span([p["flops"] / (p["num_samples"] * p["P"] ** 2) for p in r("deep_speed/main")["points"]], ".0f"),
    "ds_jax": Value("deep_speed/main", "machine.jax", "s"),
    "ds_load_average": lambda r: _span([p[k][0] for p in r("deep_speed/main")["points"] for k in ("load_average_end",)], ".1f"),
    "ds_compile": lambda r: _span([p["compile_seconds"] for p in r("deep_speed/main")["points"] if p["compile_seconds"] > 0], ".1f"),
    "ds_peaks": lambda r: _span([f / 1e9 for p in r("deep_speed/main")["points"] for f in p["matmul_peaks"]], ".0f"),
    "ds_newton_iterations": Value("deep_speed/main", "points.0.solve.iterations", "d"),
    "ds_newton_seconds": Value("deep_speed/main", "points.0.newton_seconds", ".1f"),
    "ds_newton_over_map": Value("deep_speed/main", "points.0.newton_over_map", ".0f"),
    "ds_ess_fixed_point": lambda r: " / ".join(f"{v:.0f}" for v in r("deep_speed/main")["points"][0]["ess_fixed_point"]["8192"]),
    "ds_min_ess_fraction": Derived(lambda r: min(v / int(m) for p in r("deep_speed/main")["points"] for m, vs in p["ess_nngp"].items() for v in vs), ".1%"),
    "ds_newton_minutes_4096": Derived(lambda r: r("deep_speed/main")["points"][0]["newton_over_map"] * r("deep_speed/main")["points"][-1]["map_seconds"] / 60, ".0f"),
    "nt_blocks": lambda r: ", ".join(f"{b}: {v:.2g}" for b, v in r("neuron_throughput/main")["gradient_evaluations_per_second_by_block"].items()),
}
