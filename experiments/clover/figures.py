"""The clover figures (``make figures`` redraws them from the results file)."""

from __future__ import annotations

import jax.numpy as jnp

from pathlib import Path
from mft_jax import io
from mft_jax.neurons import NeuronLaw
from experiments.clover.config import METRICS, METRIC_LABELS
from experiments.clover.measure import _law_from_density


def make_figures(results: dict, outdir: str | Path = "figures") -> list[str]:
    """Redraw the clover figures from the results JSON alone; returns the PNG paths."""
    from mft_jax.analysis import plots

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    name, clouds = results["name"], results["clouds"]
    paths = []
    cloud = lambda key: NeuronLaw.from_samples(jnp.asarray(clouds[key]))  # noqa: E731
    if results["theory"].get("density"):
        plt = io.pyplot()
        law = _law_from_density(results["theory"]["density"])
        figure, axes = plt.subplots(1, 2, figsize=(10.5, 4.4), constrained_layout=True)
        # log colour scale: rho is sharply peaked, and a linear scale hides the tails the neurons populate
        plots.neuron_density(law, ax=axes[0], log=True, title=r"theory: $\rho(w)$ at the fixed point (log scale)")
        plots.neuron_density(law, neurons=cloud("network"), ax=axes[1], log=True,
                             title="with the neurons of a Langevin network")
        path = outdir / f"{name}_density.png"
        io.save_figure(figure, path, dpi=150)
        paths.append(path)
    path = outdir / f"{name}_foreground.png"
    plots.foreground_vs_background(cloud("network"), cloud("foreground"), path=path,
                                   labels=(f"background: network neurons (N = {clouds['network_width']})", "foreground: independent neurons"),
                                   title="foreground (independent neurons) vs its background")
    paths.append(path)
    path = outdir / f"{name}_foreground_gp.png"
    plots.foreground_vs_background(cloud("gp_background"), cloud("gp_foreground"), path=path,
                                   labels=("background: GP (prior neurons)", "foreground: trained on the GP residual"),
                                   title="foreground on the wrong (GP) background")
    paths.append(path)
    if len(results["networks"]) >= 2:
        plt = io.pyplot()
        widths = [r["width"] for r in results["networks"]]
        figure, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.8), constrained_layout=True)
        for ax, metric in zip(axes, METRICS):
            summaries = [r["summary"][metric] for r in results["networks"]]
            plots.distance_vs_width(widths, [s["distance"] for s in summaries], [s["error"] for s in summaries],
                                    [s["noise_floor"] for s in summaries], fit=True, ax=ax,
                                    label="network vs theory", ylabel=f"{METRIC_LABELS[metric]} distance to rho(w)")
        path = outdir / f"{name}_distance.png"
        io.save_figure(figure, path, dpi=150)
        paths.append(path)
    return [str(p) for p in paths]
