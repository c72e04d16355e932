"""Empirical side: finite-width networks and single-neuron (foreground) trainers."""
