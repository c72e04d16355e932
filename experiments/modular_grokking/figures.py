"""The grokking figure (``make figures`` redraws it from the results file)."""

from __future__ import annotations

import numpy as np

from pathlib import Path
from mft_jax.io import pyplot, save_figure
from experiments.modular_grokking.config import NAME


def _colour(results: dict, modulus) -> str:
    """The colour of modulus P in the figure: that of its networks' curve, black if it has none."""
    moduli = list(results["networks"])
    return f"C{moduli.index(str(modulus))}" if str(modulus) in moduli else "k"


def make_figures(results: dict, outdir="figures") -> list:
    """Relative test loss and test accuracy vs training fraction: networks, GP, the training-set theory and the networks
    started in its basin; one colour per P."""
    plt = pyplot()

    outdir = Path(outdir)
    fig, axes = plt.subplots(1, 2, figsize=(11, 6), layout="constrained")
    for i, (modulus, nets) in enumerate(results["networks"].items()):
        gp = results["gp"][modulus]
        for ax, metric in zip(axes, ("test_loss_relative", "test_accuracy")):
            ax.errorbar(nets["fractions"], nets[metric], nets[metric + "_se"], fmt="o-", color=f"C{i}", label=f"networks P = {modulus}")
            ax.errorbar(gp["fractions"], gp[metric], gp[metric + "_se"], fmt="s:", color=f"C{i}", mfc="none", label=f"GP P = {modulus}")
    markers = {"width_check": "D", "steps_check": "v"}
    for name, marker in markers.items():
        check = results.get(name)
        if not check:
            continue
        colour = _colour(results, check["P"])
        for ax, metric in zip(axes, ("test_loss_relative", "test_accuracy")):
            ax.errorbar(check["fractions"], check[metric], check[metric + "_se"], fmt=marker, color=colour, mfc="none", ms=8,
                        label=f"networks P = {check['P']}, N = {check['width']}, {check['steps']} steps")
    for modulus, theory in results.get("theory", {}).items():
        colour = _colour(results, modulus)
        for ax, metric in zip(axes, ("test_loss_relative", "test_accuracy")):
            ax.errorbar(theory["fractions"], theory[metric], np.nan_to_num(theory[metric + "_se"]), fmt="*--", color=colour, ms=10,
                        label=f"exact theory on the training set, P = {modulus}")
    if results.get("theory"):
        axes[0].set_yscale("log")  # the theory's held-out loss is 2-8x that of f = 0
    start = results.get("theory_start")
    if start:  # the networks started in the theory's basin: one marker per run length
        colour = _colour(results, start["P"])
        for steps in sorted({r["steps"] for r in start["rows"]}):
            rows = [r for r in start["rows"] if r["steps"] == steps]
            for ax, metric in zip(axes, ("test_loss_relative", "test_accuracy")):
                ax.plot([r["fraction"] for r in rows], [r[metric] for r in rows], "^" if steps == min(r["steps"] for r in start["rows"]) else "P",
                        color=colour, ms=9, mfc="none", label=f"networks from the theory's law, P = {start['P']}, N = {start['width']}, "
                        f"{steps} x {start['step_size']:g} steps")
    axes[0].axhline(0.5, color="gray", lw=0.8, ls="--")
    axes[0].axhline(1.0, color="gray", lw=0.8, ls=":")
    axes[0].set(xlabel="training fraction of the P^2 pairs", ylabel="test loss / test loss of f = 0", title="held-out pairs: loss")
    axes[1].set(xlabel="training fraction of the P^2 pairs", ylabel="test accuracy", title="held-out pairs: accuracy")
    handles, labels = axes[0].get_legend_handles_labels()  # one legend below both panels: the curves need the room
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=7)
    return [save_figure(fig, outdir / f"{NAME}.png", dpi=120)]
