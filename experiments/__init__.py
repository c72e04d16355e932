"""Physics experiments: scripts run as ``python -m experiments.<name>``."""
