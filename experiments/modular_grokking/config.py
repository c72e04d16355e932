"""The grokking experiment's config sections (``[grokking]``, ``[theory]``, ``[width_trend]``, ...)."""

from __future__ import annotations

import dataclasses

from pathlib import Path
from mft_jax.errors import ConfigError


ROOT = Path(__file__).resolve().parents[2]


NAME = "modular_grokking"


@dataclasses.dataclass(frozen=True)
class GrokkingSection:
    """``[grokking]``: moduli, fractions, the prior and the Langevin networks (library units, mean-field)."""

    moduli: list = dataclasses.field(default_factory=lambda: [11, 23])
    betas: list = dataclasses.field(default_factory=lambda: [3000.0, 3000.0])  # full-table beta, one per modulus
    fractions: list = dataclasses.field(default_factory=lambda: [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98])
    kappa: float = 10.0  # full-table beta sa2
    gamma: float = 10.0
    width: int = 256
    num_seeds: int = 3  # splits, one network each
    steps: int = 3000
    burn_in: int = 1500
    record_every: int = 250
    step_size: float = 0.1
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class TheorySection:
    """``[theory]``: the exact infinite-width theory on the training set (``mft_jax.theory.two_layer.solve`` in 2P dimensions),
    sampled by replica-exchange MALA (``tempered_sampler``) pooled over the last ``pool`` updates (``pooled_sampler``),
    damped iteration from ``r = a_full y`` (the full table's exact ``a``); ``keys`` independent solves per point, at each
    P of ``moduli`` (each one of ``[grokking]``'s: its networks' splits and full-table coupling)."""

    moduli: list = dataclasses.field(default_factory=lambda: [11])
    fractions: list = dataclasses.field(default_factory=lambda: [0.5, 0.7, 0.9])
    splits: int = 1
    keys: int = 2
    chains: int = 512
    steps: int = 100
    warmup: int = 50
    levels: int = 8
    min_inverse_temperature: float = 0.1
    pool: int = 16
    damping: float = 0.03
    max_iter: int = 120  # a fixed run length: the relative-change rule does not apply to this steep map (docstring)
    tol: float = 1e-3
    full_table_check: bool = True
    pool_check_chains: list = dataclasses.field(default_factory=lambda: [256, 1024])  # single laws; the last also pooled


@dataclasses.dataclass(frozen=True)
class WidthTrendSection:
    """``[width_trend]``: the networks of ``[grokking]`` at ``modulus`` (same splits and keys) at several widths: do they
    move towards the infinite-width theory of ``[theory]`` as N grows?"""

    modulus: int = 11
    widths: list = dataclasses.field(default_factory=lambda: [1024, 2048])
    fractions: list = dataclasses.field(default_factory=lambda: [0.5, 0.9])


@dataclasses.dataclass(frozen=True)
class FullTableSection:
    """``[full_table_networks]``: networks on the full table at ``[grokking]``'s coupling (its beta, kappa, gamma), where
    the exact per-mode theory is known, by ``modular_addition.network_point``. Run ``i`` has width ``widths[i]``,
    ``steps[i]`` Langevin steps of size ``step_sizes[i]`` (burn-in half) and starts from ``starts[i]``: ``"prior"``, or
    ``"theory"`` (first-layer weights drawn from the theory's own single-neuron law, readouts from the prior). From the
    prior a neuron's mode must cross the per-mode barrier to learn; from the theory's law it starts learned. Where the
    starts meet, and how that moves with the step size and the width, separates run length, discretisation and width."""

    modulus: int = 11
    widths: list = dataclasses.field(default_factory=lambda: [256])
    steps: list = dataclasses.field(default_factory=lambda: [3000])
    step_sizes: list = dataclasses.field(default_factory=lambda: [0.1])
    starts: list = dataclasses.field(default_factory=lambda: ["prior"])
    num_seeds: int = 2

    def __post_init__(self):
        lengths = {len(self.widths), len(self.steps), len(self.step_sizes), len(self.starts)}
        if len(lengths) != 1 or 0 in lengths:
            raise ConfigError("[full_table_networks] widths, steps, step_sizes and starts are one entry per run and must have "
                              f"the same, nonzero length; got {len(self.widths)}, {len(self.steps)}, {len(self.step_sizes)}, {len(self.starts)}")
        bad = [s_ for s_ in self.starts if s_ not in ("prior", "theory")]
        if bad:
            raise ConfigError(f"[full_table_networks] starts must be 'prior' or 'theory'; got {bad}")


@dataclasses.dataclass(frozen=True)
class TheoryStartSection:
    """``[theory_start]``: networks on the ``[theory]`` training sets (split 0) started in the full-table theory's
    single-neuron law (its modes learned: the basin the prior start does not reach in these runs, ``[full_table_networks]``),
    at a step size that holds that basin, against the exact theory on the same sets."""

    modulus: int = 11
    fractions: list = dataclasses.field(default_factory=lambda: [0.5, 0.9])
    steps: list = dataclasses.field(default_factory=lambda: [30000, 30000])  # one entry per fraction entry
    width: int = 1024
    step_size: float = 0.01

    def __post_init__(self):
        if len(self.fractions) != len(self.steps):
            raise ConfigError(f"[theory_start] fractions and steps are one entry per run; got {len(self.fractions)} and {len(self.steps)}")


@dataclasses.dataclass(frozen=True)
class CheckSection:
    """``[width_check]``, ``[steps_check]``: the networks of ``[grokking]`` (same splits and keys) at another width and/or
    another number of steps (burn-in scaled alike; 0: as in ``[grokking]``), at one P and a few fractions."""

    modulus: int = 23
    width: int = 0
    steps: int = 0
    fractions: list = dataclasses.field(default_factory=lambda: [0.7, 0.8, 0.9])
