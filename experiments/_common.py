"""The command line every physics benchmark shares: ``--quick``, ``--config``, ``--results``, ``--figures``."""

from __future__ import annotations

import argparse
from pathlib import Path

from mft_jax.io import devices

ROOT = Path(__file__).resolve().parent.parent


def parse(name: str, description: str, argv=None) -> argparse.Namespace:
    """Arguments of ``benchmarks/NAME.py``; ``args.config`` resolved to ``configs/NAME[_quick].toml`` by default."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=f"reduced run (configs/{name}_quick.toml)")
    parser.add_argument("--config", default=None, help=f"TOML config (default configs/{name}.toml)")
    parser.add_argument("--results", default=str(ROOT / "results"), help=f"directory for {name}.json")
    parser.add_argument("--figures", default=str(ROOT / "figures"), help="directory for the PNGs")
    args = parser.parse_args(argv)
    args.config = args.config or str(ROOT / "configs" / f"{name}{'_quick' if args.quick else ''}.toml")
    print(f"{name}: devices: {', '.join(devices())}", flush=True)
    return args
