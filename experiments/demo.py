"""`make demo`: the clover comparison end to end, reduced to a few minutes on a laptop CPU.

Solve the mean-field fixed point, train a Langevin network, train foreground neurons against
its background and against the GP background, compare the neuron clouds with their noise
floors, draw the figures. It is ``experiments/clover.py`` run on ``experiments/configs/clover_demo.toml``
(quadrature 16, one network of N = 512, M = 512 foreground neurons, fewer steps): the same
code as the benchmark, smaller numbers. Exits 1 naming the stage that failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


from experiments import clover
from experiments._common import CONFIGS, ROOT, results_file, run_name

from mft_jax import io
from mft_jax.errors import ConfigError

CONFIG = CONFIGS / "clover_demo.toml"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIG), help="demo config (default experiments/configs/clover_demo.toml)")
    parser.add_argument("--results", default=str(ROOT / "results"), help="results directory (writes clover/demo.json in it)")
    parser.add_argument("--figures", default=str(ROOT / "figures"), help="directory for the PNGs")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"mft-jax demo: the clover experiment on {Path(args.config).name} (stages: solve, train, foreground, compare, figure)", flush=True)
    try:
        config = clover.load_config(args.config)
        results = clover.run_benchmark(config)
        results["meta"] = io.run_metadata(config, config["benchmark"]["seed"])
        json_path = results_file(args.results, "clover", run_name("clover", results["name"]))
        io.write_json(json_path, results)
        with clover.stage("figure", results["timings"]):
            paths = clover.make_figures(results, args.figures)
    except ConfigError as error:
        print(f"mft-jax demo: bad config: {error}", file=sys.stderr)
        return 2
    except clover.StageError as error:
        print(f"mft-jax demo: {error}", file=sys.stderr)
        return 1
    print(clover.table(results))
    print(f"results: {json_path}")
    print("figures: " + ", ".join(paths))
    print(f"mft-jax demo: done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
