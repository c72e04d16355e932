"""The modular-addition experiment's config sections and the paper's numbers."""

from __future__ import annotations

import dataclasses

from pathlib import Path
from mft_jax.errors import ConfigError


ROOT = Path(__file__).resolve().parents[2]


NAME = "modular_addition"


PAPER = {"gmfl1_sigma2": 0.227, "gmfl2_sigma2": 0.175, "a_at_gmfl2": -0.7}


@dataclasses.dataclass(frozen=True)
class PaperSection:
    """``[paper]``: Fig. 3's parameters and the sigma^2 grid."""

    modulus: int = 401
    width: int = 1000
    sa2_numerator: float = 0.002
    gamma: float = 1e-4
    sigma2_min: float = 0.05
    sigma2_max: float = 0.3
    sigma2_points: int = 26
    points: int = 400  # nodes per axis of the per-mode integral


@dataclasses.dataclass(frozen=True)
class ExactSection:
    """``[exact]``: moduli at which the exact per-mode theory is compared with the saddle (Fig. 3's other numbers)."""

    moduli: list = dataclasses.field(default_factory=lambda: [23, 41, 401])
    points: int = 400


@dataclasses.dataclass(frozen=True)
class NetworkSection:
    """``[networks]``: Langevin networks with the Fourier sextic prior, library units (mean-field scaling)."""

    moduli: list = dataclasses.field(default_factory=lambda: [23])
    betas: list = dataclasses.field(default_factory=lambda: [30.0, 100.0])
    kappa: float = 10.0  # beta sa2 (sa2 = kappa / beta)
    gamma: float = 10.0
    width: int = 1024
    num_seeds: int = 2
    steps: int = 5000
    burn_in: int = 2500
    record_every: int = 250
    step_size: float = 0.1
    theory_points: int = 300
    seed: int = 0
    timing_moduli: list = dataclasses.field(default_factory=lambda: [23, 41, 101])


@dataclasses.dataclass(frozen=True)
class WidthSweepSection:
    """``[width_sweep]``: the gap in ``a`` between networks and theory at one (P, beta) (other settings from
    ``[networks]``): ``a(N)`` across ``widths`` fitted as ``a_inf + c/N``; a run ``long_factor`` times longer and a
    run started in the theory's single-neuron law (``start = "theory"``), both at ``long_width`` (equilibration); the
    discretisation: each of ``step_sizes`` at each of ``step_widths`` over the same time span (steps, burn-in and
    record interval scaled by ``[networks] step_size / h``), against the sweep's point at that width."""

    modulus: int = 23
    beta: float = 100.0
    widths: list = dataclasses.field(default_factory=lambda: [256, 512, 1024, 2048])
    num_seeds: int = 4
    long_width: int = 1024
    long_factor: int = 4
    step_sizes: list = dataclasses.field(default_factory=list)  # step-size check: each at every step_widths width
    step_widths: list = dataclasses.field(default_factory=lambda: [256])

    def __post_init__(self):
        bad = [h for h in self.step_sizes if not (isinstance(h, (int, float)) and h > 0)]
        if bad or any(not (isinstance(n, int) and n > 0) for n in self.step_widths):
            raise ConfigError(f"[width_sweep] step_sizes must be positive numbers and step_widths positive integers; got "
                              f"step_sizes = {self.step_sizes}, step_widths = {self.step_widths}")
