"""The ``mft-jax`` command line: ``main`` parses, the jobs ``solve``, ``train``, ``foreground`` and ``compare`` run
over TOML configs (``config``: the one place strings become library objects)."""

from mft_jax.cli.main import main

__all__ = ["main"]
