"""``python -m experiments.clover``."""

import sys

from experiments.clover.run import main

if __name__ == "__main__":
    status = main()
    sys.exit(status if isinstance(status, int) else 0)
