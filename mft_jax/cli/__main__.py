"""``python -m mft_jax.cli``: the ``mft-jax`` command line."""

import sys

from mft_jax.cli.main import main

sys.exit(main())
