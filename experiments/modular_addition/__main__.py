"""``python -m experiments.modular_addition``."""

import sys

from experiments.modular_addition.run import main

if __name__ == "__main__":
    status = main()
    sys.exit(status if isinstance(status, int) else 0)
