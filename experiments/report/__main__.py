"""``python -m experiments.report``."""

import sys

from experiments.report.run import main

if __name__ == "__main__":
    status = main()
    sys.exit(status if isinstance(status, int) else 0)
