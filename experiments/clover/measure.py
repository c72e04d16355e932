"""What the clover experiment measures: distances between neuron clouds with their noise floors, moments, the
exponent fits against the width, and the stored clouds and densities."""

from __future__ import annotations

import functools
import math
import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.analysis import compare
from mft_jax.errors import ConfigError
from mft_jax.neurons import NeuronLaw
from experiments.clover.config import METRICS


class Distances:
    """Distances between neuron clouds in w-space, with noise floors cached per (law, metric, n)."""

    def __init__(self, theory: NeuronLaw, settings: dict, key: jax.Array):
        self.settings = settings
        self.scale = compare.spread(theory)
        projection_key, self.key = jax.random.split(key)
        self.metrics = {
            "sliced_wasserstein": functools.partial(compare.sliced_wasserstein, key=projection_key, num_projections=settings["num_projections"]),
            "sinkhorn": functools.partial(compare.sinkhorn_distance, epsilon=settings["sinkhorn_epsilon"] * self.scale**2),
            "energy": compare.energy_distance,
        }
        self._floors: dict = {}

    def _next_key(self) -> jax.Array:
        self.key, key = jax.random.split(self.key)
        return key

    def floor(self, law_name: str, law: NeuronLaw, n: int) -> dict:
        """``{metric: (mean, std)}``: distance between two independent size-n samples of ``law``."""
        if (law_name, n) not in self._floors:
            floors = {}
            for name, metric in self.metrics.items():
                result = compare.noise_floor(law, metric, key=self._next_key(), n=n, repeats=self.settings["repeats"])
                floors[name] = (float(result.mean), float(result.std))
            self._floors[law_name, n] = floors
        return self._floors[law_name, n]

    def to_law(self, law_name: str, law: NeuronLaw, cloud: NeuronLaw) -> dict:
        """``cloud`` (n equal-weight neurons) vs ``theory_draws`` independent size-n samples of ``law``, with the floor."""
        n = cloud.num_particles
        draws = [compare.resample(self._next_key(), law, n) for _ in range(self.settings["theory_draws"])]
        floors = self.floor(law_name, law, n)
        return {name: _entry([float(metric(draw, cloud)) for draw in draws], *floors[name]) for name, metric in self.metrics.items()}

    def between(self, cloud1: NeuronLaw, cloud2: NeuronLaw, floor_law_name: str, floor_law: NeuronLaw) -> dict:
        """Two clouds of equal size n; the floor is that of two size-n samples of ``floor_law``."""
        if cloud1.num_particles != cloud2.num_particles:
            raise ConfigError(f"clouds of equal size needed for a floor at one n, got {cloud1.num_particles} and {cloud2.num_particles}")
        floors = self.floor(floor_law_name, floor_law, cloud1.num_particles)
        return {name: _entry([float(metric(cloud1, cloud2))], *floors[name]) for name, metric in self.metrics.items()}


def subsample(key: jax.Array, law: NeuronLaw, n: int) -> NeuronLaw:
    """``n`` of the equally weighted particles of ``law``, drawn without replacement (a size-n sample of the same law)."""
    if n > law.num_particles:
        raise ConfigError(f"cannot take {n} of {law.num_particles} neurons")
    if n == law.num_particles:
        return law
    index = jax.random.choice(key, law.num_particles, shape=(n,), replace=False)
    return NeuronLaw.from_samples(law.w[index], None if law.a is None else law.a[index])


SUMMARY_MOMENTS = {
    "E|w|^2": lambda w: jnp.sum(w * w, axis=-1),
    "P(++)": lambda w: ((w[:, 0] > 0) & (w[:, 1] > 0)).astype(w.dtype),  # the mass of each leaf (quadrant of w);
    "P(+-)": lambda w: ((w[:, 0] > 0) & (w[:, 1] < 0)).astype(w.dtype),  # the clover's symmetries make them equal
    "P(-+)": lambda w: ((w[:, 0] < 0) & (w[:, 1] > 0)).astype(w.dtype),  # in theory (1/4 each up to the grid's
    "P(--)": lambda w: ((w[:, 0] < 0) & (w[:, 1] < 0)).astype(w.dtype),  # zero-coordinate nodes)
}


def summary_moments(law: NeuronLaw, *, quadrature: bool = False) -> dict:
    """``E|w|^2`` and the four leaf masses with standard errors (0 for the grid law: quadrature), JSON-ready."""
    values = compare.moments(law, SUMMARY_MOMENTS, quadrature=quadrature)
    return {name: {"mean": float(m.mean), "stderr": float(m.stderr)} for name, m in values.items()}


def _entry(values: list[float], floor: float, floor_std: float) -> dict:
    distance = float(np.mean(values))
    return {"distance": distance, "values": values, "noise_floor": floor, "noise_floor_std": floor_std,
            "excess": math.sqrt(max(distance**2 - floor**2, 0.0)), "ratio_to_floor": distance / floor}


def width_summary(per_seed: list[dict]) -> dict:
    """Per metric over a width's seeds: mean distance, its error, floor; the error is the seeds' standard
    error when there are >= 2 seeds, else the floor's spread (the sampling spread of one such distance)."""
    summary = {}
    for name in METRICS:
        values = np.array([entry[name]["distance"] for entry in per_seed])
        floor, floor_std = per_seed[0][name]["noise_floor"], per_seed[0][name]["noise_floor_std"]
        error = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size >= 2 else floor_std
        summary[name] = {"distance": float(values.mean()), "error": error, "noise_floor": floor, "noise_floor_std": floor_std,
                         "excess": math.sqrt(max(float(values.mean()) ** 2 - floor**2, 0.0))}
    return summary


def exponent_fits(widths: list[int], summaries: list[dict]) -> dict:
    """``distance ~ A N^k`` and ``floor ~ A N^k`` per metric (``compare.fit_power_law``, errors as weights)."""
    fits = {}
    if len(widths) < 2:
        return fits
    for name in METRICS:
        distance = [s[name]["distance"] for s in summaries]
        errors = [max(s[name]["error"], 1e-12) for s in summaries]
        floor = [s[name]["noise_floor"] for s in summaries]
        floor_errors = [max(s[name]["noise_floor_std"], 1e-12) for s in summaries]
        fit, floor_fit = compare.fit_power_law(widths, distance, errors), compare.fit_power_law(widths, floor, floor_errors)
        fits[name] = {"exponent": fit.exponent, "exponent_stderr": fit.exponent_stderr, "prefactor": fit.prefactor,
                      "floor_exponent": floor_fit.exponent, "floor_exponent_stderr": floor_fit.exponent_stderr,
                      "floor_prefactor": floor_fit.prefactor}
    return fits


def _cloud(law: NeuronLaw, digits: int = 4) -> list:
    return np.round(np.asarray(law.w, np.float64), digits).tolist()


def _theory_density(law: NeuronLaw, grid_size: int) -> dict:
    """The grid law as an image: axis (G,) and weights (G, G) indexed [i, j] = w = (axis[i], axis[j])."""
    w = np.asarray(law.w, np.float64)
    weights = np.asarray(law.weights(), np.float64)
    if w.shape[1] != 2 or w.shape[0] != grid_size**2:
        return {}
    axis = np.unique(w[:, 0])
    image = weights.reshape(grid_size, grid_size)
    return {"axis": np.round(axis, 6).tolist(), "weights": [[float(f"{v:.4g}") for v in row] for row in image]}


def _law_from_density(density: dict) -> NeuronLaw:
    axis = np.asarray(density["axis"])
    weights = np.asarray(density["weights"]).reshape(-1)
    w = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    return NeuronLaw(jnp.asarray(w), jnp.log(jnp.maximum(jnp.asarray(weights), 1e-300)))
