"""Figures: one function per kind, each returning a matplotlib ``Figure`` (saved when given ``path``).

Figures are built on ``matplotlib.figure.Figure`` directly (Agg rendering, no pyplot): the global
backend of a notebook or script is left alone. Pass ``ax=`` to draw into an existing axes (the
function then returns ``ax.figure``). Default size ``FIGSIZE`` inches at ``DPI``; no tight bbox,
so a saved PNG is exactly ``figsize * dpi`` pixels.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import jax.numpy as jnp
import numpy as np
from matplotlib import colors, ticker
from matplotlib.figure import Figure

from mft_jax.analysis.compare import fit_power_law
from mft_jax.errors import ConfigError
from mft_jax.neurons import NeuronLaw

FIGSIZE = (5.0, 4.0)
DPI = 150
BACKGROUND_COLOR = "tab:blue"
FOREGROUND_COLOR = "tab:orange"


def _axes(ax, figsize=FIGSIZE):
    if ax is not None:
        return ax.figure, ax
    figure = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    return figure, figure.add_subplot()


def _finish(figure: Figure, path: str | os.PathLike | None) -> Figure:
    if path is not None:
        figure.savefig(path, dpi=DPI)
    return figure


def _plane(law: NeuronLaw, dims: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The two coordinates ``dims`` of the particles (M, 2) and their normalised weights (M,)."""
    w = np.asarray(law.w)
    if w.ndim != 2 or max(dims) >= w.shape[1]:
        raise ConfigError(f"dims {dims} must index the neuron dimension d = {w.shape[-1]}")
    weights = np.asarray(law.weights(), np.float64)
    return w[:, list(dims)], weights / weights.sum()  # renormalised in float64


def _display_points(law: NeuronLaw, dims, max_points: int, seed: int) -> np.ndarray:
    """Up to ``max_points`` points that show the law: the particles if equally weighted, else draws ∝ weight."""
    plane, weights = _plane(law, dims)
    equal = np.allclose(weights, weights[0])
    if equal and plane.shape[0] <= max_points:
        return plane
    rng = np.random.default_rng(seed)
    index = rng.choice(plane.shape[0], size=max_points, replace=not equal, p=weights)
    return plane[index]


def _regular_grid(plane: np.ndarray):
    """Axis values (nx,), (ny,) and the index map if the points form a full tensor grid, else None."""
    xs, x_index = np.unique(plane[:, 0], return_inverse=True)
    ys, y_index = np.unique(plane[:, 1], return_inverse=True)
    if xs.size * ys.size != plane.shape[0] or xs.size < 2 or ys.size < 2:
        return None
    return xs, ys, x_index, y_index


def _edges(centres: np.ndarray) -> np.ndarray:
    middle = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate([[2 * centres[0] - middle[0]], middle, [2 * centres[-1] - middle[-1]]])


def neuron_density(
    law: NeuronLaw, *, neurons: NeuronLaw | np.ndarray | None = None, dims: tuple[int, int] = (0, 1), bins: int = 80,
    log: bool = False, ax=None, path=None, title: str | None = None, max_neurons: int = 3000,
) -> Figure:
    """The predicted density of ``rho(w)`` in the plane ``(w_dims[0], w_dims[1])``, network neurons on top.

    A law on a full tensor grid in d = 2 (a grid quadrature) is drawn as an image of
    ``weight / cell area``; any other law as a weighted 2-D histogram (the marginal in the plane).
    ``neurons`` (a ``NeuronLaw`` or an (N, d) array, e.g. a trained network's ``w``) are scattered
    on top. ``log=True`` uses a logarithmic colour scale (peaked laws).
    """
    figure, ax = _axes(ax)
    plane, weights = _plane(law, dims)
    grid = _regular_grid(plane) if law.w.shape[1] == 2 else None
    if grid is not None:
        xs, ys, x_index, y_index = grid
        x_edges, y_edges = _edges(xs), _edges(ys)
        density = np.zeros((ys.size, xs.size))
        density[y_index, x_index] = weights
        density /= np.outer(np.diff(y_edges), np.diff(x_edges))
    else:
        density, x_edges, y_edges = np.histogram2d(plane[:, 0], plane[:, 1], bins=bins, weights=weights, density=True)
        density = density.T
    positive = density[density > 0]
    norm = colors.LogNorm(vmin=max(positive.min(), positive.max() * 1e-6), vmax=positive.max()) if log and positive.size else None
    mesh = ax.pcolormesh(x_edges, y_edges, np.where(density > 0, density, np.nan) if log else density, cmap="viridis", norm=norm, shading="flat")
    figure.colorbar(mesh, ax=ax, label=rf"$\rho(w_{{{dims[0] + 1}}}, w_{{{dims[1] + 1}}})$")
    if neurons is not None:
        neuron_law = neurons if isinstance(neurons, NeuronLaw) else NeuronLaw.from_samples(jnp.asarray(neurons))
        points = _display_points(neuron_law, dims, max_neurons, seed=0)
        ax.scatter(points[:, 0], points[:, 1], s=4, c="white", edgecolors="black", linewidths=0.3, label=f"network neurons (N = {neuron_law.num_particles})")
        ax.legend(loc="upper right", fontsize="small")
    ax.set_xlim(x_edges[0], x_edges[-1])  # the density's extent; neurons outside it are cut
    ax.set_ylim(y_edges[0], y_edges[-1])
    ax.set_xlabel(rf"$w_{{{dims[0] + 1}}}$")
    ax.set_ylabel(rf"$w_{{{dims[1] + 1}}}$")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return _finish(figure, path)


def foreground_vs_background(
    background_law: NeuronLaw, foreground_law: NeuronLaw, *, dims: tuple[int, int] = (0, 1), max_points: int = 3000,
    labels: tuple[str, str] = ("background neurons", "foreground neurons"), ax=None, path=None, title: str | None = None,
) -> Figure:
    """The two neuron clouds overlaid in the plane ``dims``: background (blue) and foreground (orange).

    Weighted laws are shown by ``max_points`` draws proportional to weight (fixed seed), so
    the point density is the law's density.
    """
    figure, ax = _axes(ax)
    for law, color, label, seed in ((background_law, BACKGROUND_COLOR, labels[0], 1), (foreground_law, FOREGROUND_COLOR, labels[1], 2)):
        points = _display_points(law, dims, max_points, seed)
        ax.scatter(points[:, 0], points[:, 1], s=4, alpha=0.5, color=color, edgecolors="none", label=label)
    ax.set_xlabel(rf"$w_{{{dims[0] + 1}}}$")
    ax.set_ylabel(rf"$w_{{{dims[1] + 1}}}$")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize="small", markerscale=3)
    if title:
        ax.set_title(title)
    return _finish(figure, path)


def distance_vs_width(
    widths: Sequence[float], distances: Sequence[float], errors: Sequence[float] | None = None,
    noise_floor: float | Sequence[float] | None = None, *, fit: bool = True, label: str = "theory vs network",
    ylabel: str = "distance", xlabel: str = "width $N$", ax=None, path=None,
) -> Figure:
    """Distance between theory and network against width, log-log, with its noise floor.

    ``fit=True`` draws the power law ``A N^k`` fitted by ``fit_power_law`` and shows
    ``k +- stderr`` in the legend. ``noise_floor`` (scalar or one per width) is drawn dashed.
    """
    widths, distances = np.asarray(widths, np.float64), np.asarray(distances, np.float64)
    figure, ax = _axes(ax)
    ax.errorbar(widths, distances, yerr=None if errors is None else np.asarray(errors), fmt="o", capsize=3, label=label)
    if noise_floor is not None:
        floor = np.broadcast_to(np.asarray(noise_floor, np.float64), widths.shape)
        ax.plot(widths, floor, "--", color="gray", label="noise floor")
    if fit:
        power = fit_power_law(widths, distances, errors)
        grid = np.geomspace(widths.min(), widths.max(), 50)
        ax.plot(grid, power.prefactor * grid**power.exponent, "-", color="tab:red",
                label=rf"fit $\propto N^{{{power.exponent:.2f} \pm {power.exponent_stderr:.2f}}}$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(widths, [f"{width:g}" for width in widths])  # the widths measured, no crowded minor labels
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small")
    return _finish(figure, path)


def phase_diagram(
    x: Sequence[float], y: Sequence[float], values: np.ndarray, *, xlabel: str, ylabel: str, value_label: str,
    levels: Sequence[float] | None = None, log_x: bool = False, log_y: bool = False, ax=None, path=None, title: str | None = None,
) -> Figure:
    """An order parameter ``values[i, j]`` at ``(x[j], y[i])`` as a colour map, with contour lines at ``levels``."""
    x, y, values = np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(values, np.float64)
    if values.shape != (y.size, x.size):
        raise ConfigError(f"values must have shape (len(y), len(x)) = {(y.size, x.size)}, got {values.shape}")
    figure, ax = _axes(ax)
    mesh = ax.pcolormesh(x, y, values, cmap="magma", shading="nearest")
    figure.colorbar(mesh, ax=ax, label=value_label)
    if levels is not None:
        contours = ax.contour(x, y, values, levels=list(levels), colors="cyan", linewidths=1.0)
        ax.clabel(contours, fontsize="x-small")
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return _finish(figure, path)


def order_parameter_curve(
    control: Sequence[float], values: Sequence[float], errors: Sequence[float] | None = None, *, xlabel: str, ylabel: str,
    label: str | None = None, critical: float | None = None, critical_label: str = "critical point", ax=None, path=None,
) -> Figure:
    """An order parameter against a control parameter (e.g. ``<q>`` with ``q = w . w*`` against the coupling).

    Call again with ``ax=`` to overlay branches (theory, networks); ``critical`` draws a dashed
    vertical line at the transition.
    """
    figure, ax = _axes(ax)
    ax.errorbar(np.asarray(control), np.asarray(values), yerr=None if errors is None else np.asarray(errors),
                fmt="o-", markersize=3, capsize=2, label=label)
    if critical is not None:
        ax.axvline(critical, linestyle="--", color="gray", label=critical_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if label is not None or critical is not None:
        ax.legend(fontsize="small")
    return _finish(figure, path)


def histograms(
    samples_by_label: Mapping[str, np.ndarray | tuple[np.ndarray, np.ndarray]], *, xlabel: str,
    theory: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None, bins: int | np.ndarray = 60, ax=None, path=None,
) -> Figure:
    """1-D marginals: normalised (optionally weighted) histograms, with theory densities as curves.

    ``samples_by_label``: label -> values, or label -> ``(values, weights)``; all share one set
    of bins. ``theory``: label -> ``(x, density)``.
    """
    figure, ax = _axes(ax)
    unpacked = {label: item if isinstance(item, tuple) else (item, None) for label, item in samples_by_label.items()}
    if isinstance(bins, int):
        pooled = np.concatenate([np.ravel(values) for values, _ in unpacked.values()])
        bins = np.linspace(pooled.min(), pooled.max(), bins + 1)
    for label, (values, weights) in unpacked.items():
        ax.hist(np.ravel(values), bins=bins, weights=None if weights is None else np.ravel(weights), density=True,
                histtype="stepfilled", alpha=0.4, label=label)
    for label, (x, density) in (theory or {}).items():
        ax.plot(np.asarray(x), np.asarray(density), "-", linewidth=1.5, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(fontsize="small")
    return _finish(figure, path)
