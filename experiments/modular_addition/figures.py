"""The modular-addition figures (``make figures`` redraws them from the results file)."""

from __future__ import annotations

import numpy as np

from pathlib import Path
from mft_jax.io import pyplot, save_figure
from experiments.modular_addition.config import NAME, PAPER


def make_figures(results: dict, outdir="figures") -> list:
    """Phase diagram (a vs sigma^2, Fig. 3), networks vs theory, Fourier spectra of trained neurons, a(N) of the width sweep."""
    plt = pyplot()

    outdir = Path(outdir)
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    ax = axes[0]
    p3, corr = results["paper_fig3"], results["corrected"]
    for key, style, label in (("curve_saddle_literal", "C0-", "saddle, literal (0.002/N everywhere)"),
                              ("curve_saddle_mixed", "C1--", "saddle, mixed reading (0.002 in GP eigenvalue)")):
        curve = p3[key]
        ax.plot([p["sigma2"] for p in curve], [p["a"] for p in curve], style, label=label)
    exact = corr["curve_exact"]
    ax.plot([p["sigma2"] for p in exact], [p["a"] for p in exact], "k:", lw=2, label="exact per-mode integral (P = 401)")
    ax.axvline(PAPER["gmfl1_sigma2"], color="gray", lw=0.8, ls="--", label="paper: GMFL-I 0.227, GMFL-II 0.175")
    ax.axvline(PAPER["gmfl2_sigma2"], color="gray", lw=0.8, ls="--")
    ax.plot([PAPER["gmfl2_sigma2"]], [-PAPER["a_at_gmfl2"]], "rx", ms=9, label="paper: |a| = 0.7 at 0.175")
    ax.set(xlabel=r"$\sigma^2$", ylabel=r"discrepancy coefficient $|a|$ ($r = a\,y$)", title="Fig. 3: P = 401, N = 1000, $\\gamma$ = 1e-4")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.semilogy([p["sigma2"] for p in exact], [max(p["learned"], 1e-12) for p in exact], "k-o", ms=3)
    ax.set(xlabel=r"$\sigma^2$", ylabel="fraction of pair modes at the nonzero saddle", title="mixed phase: how many modes learn (exact)")
    paths.append(save_figure(fig, outdir / f"{NAME}.png", dpi=120))

    nets = results["networks"]
    if any(nets.values()):
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
        for i, (modulus, points) in enumerate(nets.items()):
            betas = [p["beta"] for p in points]
            axes[0].errorbar(betas, [p["a"] for p in points], [p["a_se"] for p in points], fmt="o", color=f"C{i}", label=f"networks P = {modulus}")
            axes[0].plot(betas, [p["theory"]["a"] for p in points], "-", color=f"C{i}", label=f"exact theory P = {modulus}")
            axes[0].plot(betas, [p["theory"]["a_gp"] for p in points], ":", color=f"C{i}", label=f"GP P = {modulus}")
            axes[1].errorbar(betas, [p["learned"] for p in points], [p["learned_se"] for p in points], fmt="o", color=f"C{i}", label=f"networks P = {modulus}")
            axes[1].plot(betas, [p["theory"]["learned"] for p in points], "-", color=f"C{i}", label=f"exact theory P = {modulus}")
            last = points[-1]
            edges = np.linspace(0, 1, 21)
            centres = 0.5 * (edges[1:] + edges[:-1])
            for hist, style, label in ((last["top_mode_share_hist"], "o-", "networks"), (last["theory"]["top_mode_share_hist"], "-", "theory")):
                hist = np.asarray(hist, float)
                axes[2].plot(centres, hist / hist.sum(), style, color=f"C{i}", label=f"{label} P = {modulus}, beta = {last['beta']:g}")
        axes[0].set(xlabel=r"$\beta$ (sa2 = $\kappa/\beta$)", ylabel="a", title="discrepancy coefficient")
        axes[1].set(xlabel=r"$\beta$", ylabel="fraction beyond the barrier", title="(neuron, mode) pairs at the nonzero saddle")
        axes[2].set(xlabel="share of the top pair mode in a neuron's power", ylabel="fraction of neurons", title="one frequency or all?")
        for ax in axes:
            ax.legend(fontsize=7)
        paths.append(save_figure(fig, outdir / f"{NAME}_networks.png", dpi=120))
    sweep = results.get("width_sweep")
    if sweep:
        fig, ax = plt.subplots(figsize=(6, 4.3))
        inverse = np.array([1.0 / p["width"] for p in sweep["points"]])
        ax.errorbar(inverse, [p["a"] for p in sweep["points"]], [p["a_se"] for p in sweep["points"]], fmt="ko", label="networks (from the prior)")
        for name, marker in (("long", "v"), ("theory_start", "s")):
            point = sweep[name]
            ax.errorbar([1.0 / point["width"]], [point["a"]], [point["a_se"]], fmt=marker, mfc="none", ms=9,
                        label=f"{name.replace('_', ' ')} ({point['steps']} steps)")
        labelled = set()
        for row in sweep.get("step_check", []):
            first = row["step_size"] not in labelled
            labelled.add(row["step_size"])
            ax.errorbar([1.0 / row["width"]], [row["a"]], [row["a_se"]], fmt="D", mfc="none", ms=7, color="C3",
                        label=f"step {row['step_size']:g} (same time span)" if first else None)
        grid = np.linspace(0, inverse.max() * 1.05, 100)
        for (name, fit), style in zip(sweep["fits"].items(), ("C0-", "C1--", "C2:")):
            if fit:
                curve = fit["a_inf"] + sum(c * grid ** (j + 1) for j, c in enumerate(fit["c"]))
                ax.plot(grid, curve, style, label=f"{name}: a_inf = {fit['a_inf']:.4f} +- {fit['a_inf_se']:.1g}")
        ax.axhline(sweep["theory"]["a"], color="r", lw=1, label=f"exact theory {sweep['theory']['a']:.4f}")
        ax.set(xlabel="1/N", ylabel="a", title=f"P = {sweep['P']}, beta = {sweep['beta']:g}: a(N)")
        ax.legend(fontsize=7)
        paths.append(save_figure(fig, outdir / f"{NAME}_width.png", dpi=120))
    return paths
