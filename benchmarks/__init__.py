"""Speed measurements only, each timing ours against an alternative in one run: ``python -m benchmarks.NAME``."""
