"""`make demo`: the clover comparison end to end, reduced to a few minutes on a laptop CPU.

Solve the mean-field fixed point, train a Langevin network, train foreground neurons against
its background and against the GP background, compare the neuron clouds with their noise
floors, draw the figures. It is ``benchmarks/clover.py`` run on ``configs/clover_demo.toml``
(quadrature 16, one network of N = 512, M = 512 foreground neurons, fewer steps): the same
code as the benchmark, smaller numbers. Exits 1 naming the stage that failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import clover  # noqa: E402  (the benchmark module beside this file)

from mft_jax import io  # noqa: E402
from mft_jax.errors import ConfigError  # noqa: E402

CONFIG = clover.ROOT / "configs" / "clover_demo.toml"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIG), help="demo config (default configs/clover_demo.toml)")
    parser.add_argument("--results", default=str(clover.ROOT / "results"), help="directory for the JSON")
    parser.add_argument("--figures", default=str(clover.ROOT / "figures"), help="directory for the PNGs")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"mft-jax demo: the clover experiment on {Path(args.config).name} (stages: solve, train, foreground, compare, figure)", flush=True)
    try:
        config = clover.load_config(args.config)
        results = clover.run_benchmark(config)
        results["meta"] = io.run_metadata(config, config["benchmark"]["seed"])
        json_path = Path(args.results) / f"{results['name']}.json"
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
