"""The teacher-student figures (``make figures`` redraws them from the results file)."""

from __future__ import annotations

import numpy as np

from pathlib import Path
from mft_jax.io import pyplot, save_figure
from experiments.teacher_student.config import NAME, PAPER, Q_BINS


def make_figures(results, outdir) -> list:
    plt = pyplot()

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    centers = 0.5 * (Q_BINS[1:] + Q_BINS[:-1])
    width = Q_BINS[1] - Q_BINS[0]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, entry) in enumerate(results["scales"].items()):
        color = colors[k % len(colors)]
        s2s = [p["sigma2"] for p in entry["paper_equations"]["finite_d"]]
        pick = (int(np.argmax(s2s)), int(np.argmin(s2s)))  # (a) before (largest sigma^2), (b) after
        for ax, i in zip(axes[:2], pick):
            for point in [p for p in entry.get("population", {}).get("points", []) if abs(p["sigma2"] - s2s[i]) < 1e-9]:
                p = np.asarray(point[point["stable"]]["p_q"])
                ax.plot(centers, -np.log(np.maximum(p / width, 1e-300)), color=color, label=f"exact population, s = {name}")
            p = np.asarray(entry["paper_equations"]["finite_d"][i]["p_q"])
            ax.plot(centers, -np.log(np.maximum(p / width, 1e-300)), "--", color=color, label=f"paper eqs, d = {entry['setting']['d']}")
            for key, marker, label in (("networks", "x", "networks"), ("networks_gibbs", "^", "networks, Gibbs readouts")):
                match = [p for p in entry.get(key, {}).get("points", []) if abs(p["sigma2"] - s2s[i]) < 1e-9]
                if match:
                    counts = np.asarray(match[0]["prior"]["q_counts"], float)
                    dens = counts / max(counts.sum(), 1) / width
                    ok = dens > 0
                    ax.plot(centers[ok], -np.log(dens[ok]), marker, color=color, mfc="none", label=f"{label}, s = {name}")
            ax.set_title(f"{'(a) before' if i == pick[0] else '(b) after'}: sigma^2 = {s2s[i]:.2f}")
        lim = entry["paper_equations"]["limit"]["curve"]
        if k == 0:
            axes[2].plot([c["sigma2"] for c in lim], [c["f3"] for c in lim], "k-", label="paper eqs, d -> inf")
        axes[2].plot(s2s, [p["f3"] for p in entry["paper_equations"]["finite_d"]], "--", color=color, label=f"paper eqs, s = {name}")
        if "population" in entry:
            pts = entry["population"]["points"]
            axes[2].plot([p["sigma2"] for p in pts], [p["gp"]["f3"] for p in pts], "-", color=color, label=f"exact population (GP start), s = {name}")
            axes[2].plot([p["sigma2"] for p in pts], [p["feature"]["f3"] for p in pts], ":", color=color)
        for key, markers, label in (("networks", ("o", "s"), "networks"), ("networks_gibbs", ("^", "^"), "networks, Gibbs readouts")):
            pts = entry.get(key, {}).get("points", [])
            if not pts:
                continue
            for start, marker in zip(("prior", "teacher"), markers):
                axes[2].errorbar([p["sigma2"] for p in pts], [p[start]["f3"] for p in pts], yerr=[p[start]["f3_se"] for p in pts],
                                 fmt=marker, color=color, mfc="none" if start == "teacher" else color,
                                 label=f"{label} ({start} start), s = {name}")
    for ax in axes[:2]:
        ax.set_xlabel("q = w.w*")
        ax.set_ylabel("-log p(q)")
        ax.set_ylim(-3, 40)
        ax.legend(fontsize=6)
    limit = results.get("transition", {}).get("exact_population_d_to_inf")
    if limit:
        axes[2].plot([r["sigma2"] for r in limit["points"]], [r["f3_inf"] for r in limit["points"]], "k:", marker=".",
                     label=f"exact population, d -> inf (fit over d = {', '.join(map(str, limit['dims']))})")
    axes[2].axvline(PAPER["sigma2_c"], color="grey", lw=0.5)
    axes[2].set_xlabel("sigma^2")
    axes[2].set_ylabel("cubic component f3 = E[f H3]/6 (teacher: eps = -0.3)")
    axes[2].set_title("(c) cubic component" + (" (quick)" if results["run"] == "quick" else " (full)" if results["run"] == "full" else " (partial run)"))
    axes[2].legend(fontsize=6)
    return [str(save_figure(fig, Path(outdir) / f"{NAME}.png"))] + finite_n_figure(results, outdir)


def finite_n_figure(results, outdir) -> list:
    """``teacher_student_finite_n.png``: f1 and f3 vs sigma^2 (population theory, theory on each training set,
    networks per draw) and the width sweep against 1/N' (fit and the theory on the same set)."""
    plt = pyplot()
    entries = [(name, e) for name, e in results["scales"].items() if "training_set_theory" in e or "width_sweep" in e]
    if not entries:
        return []
    fig, grid = plt.subplots(len(entries), 4, figsize=(19, 4.3 * len(entries)), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axes, (name, entry) in zip(grid, entries):
        for ax, comp in zip(axes[:2], ("f1", "f3")):
            if "population" in entry:
                pts = entry["population"]["points"]
                ax.plot([p["sigma2"] for p in pts], [p[comp] for p in pts], "k-", label="population theory")
            if "training_set_theory" in entry:
                pts = entry["training_set_theory"]["points"]
                s2 = [p["sigma2"] for p in pts]
                for j in range(len(pts[0]["draws"])):
                    c = colors[j % len(colors)]
                    ax.errorbar(s2, [p["draws"][j][comp] for p in pts], yerr=[np.nan_to_num(p["draws"][j][comp + "_se"]) for p in pts],
                                fmt="--", color=c, label=f"theory on training set {j} (N = inf)")
                    if all(comp + "_kernel_regression" in p["draws"][j] for p in pts):
                        ax.plot(s2, [p["draws"][j][comp + "_kernel_regression"] for p in pts], ":", color=c,
                                label=f"theory on training set {j}, kernel regression with its laws' kernels")
                    if "networks" in pts[0]["draws"][j]:
                        ax.errorbar(s2, [p["draws"][j]["networks"][comp] for p in pts],
                                    yerr=[p["draws"][j]["networks"][comp + "_se"] for p in pts], fmt="o", color=c,
                                    label=f"networks on training set {j} (N = {entry['setting']['N']})")
                for j in range(len(pts[0]["draws"])):  # Gibbs-readout networks on set j, prior start
                    rows = [(p["sigma2"], d) for p in entry.get("networks_gibbs", {}).get("points", [])
                            for d in p["prior"].get("per_draw", []) if d["draw"] == j]
                    if rows:
                        ax.errorbar([s for s, _ in rows], [d[comp] for _, d in rows], yerr=[np.nan_to_num(d[comp + "_se"]) for _, d in rows],
                                    fmt="^", color=colors[j % len(colors)], mfc="none",
                                    label=f"networks on set {j}, Gibbs readouts (N = {entry['setting']['N']})")
                if "networks_source" in pts[0]:
                    ax.errorbar(s2, [p["networks_" + comp] for p in pts], yerr=[p["networks_" + comp + "_se"] for p in pts],
                                fmt="ks", mfc="none", label=f"networks on both sets, pooled (N = {entry['setting']['N']})")
            ax.set_xlabel("sigma^2")
            ax.set_ylabel(f"{comp} (teacher: {1 if comp == 'f1' else entry['setting']['eps']})")
            ax.set_title(f"({'a' if comp == 'f1' else 'b'}) scale {name}, {comp}: theory on the sets vs networks")
            ax.legend(fontsize=6)
        if "width_sweep" in entry:
            for ax, comp in zip(axes[2:], ("f1", "f3")):
                for k, point in enumerate(entry["width_sweep"]["points"]):
                    c = colors[k % len(colors)]
                    rows = point["networks"]
                    x = [1 / r["width"] for r in rows]
                    ax.errorbar(x, [r[comp] for r in rows], yerr=[r[comp + "_se"] for r in rows], fmt="o", color=c,
                                label=f"networks, sigma^2 = {point['sigma2']:.2f}")
                    fit = point["fit_" + comp]
                    if fit:
                        xs = np.linspace(0, max(x) * 1.05, 20)
                        ax.plot(xs, fit["f_inf"] + fit["slope"] * xs, "-", color=c, lw=0.8)
                    th = point["theory"]
                    ax.errorbar([0], [th[comp]], yerr=[np.nan_to_num(th[comp + "_se"])], fmt="*", ms=12, color=c,
                                label=f"theory on the set (N = inf), sigma^2 = {point['sigma2']:.2f}")
                ax.set_xlabel("1 / N'  (same sa2, sw2, beta)")
                ax.set_ylabel(comp)
                ax.set_title(f"({'c' if comp == 'f1' else 'd'}) scale {name}, {comp} vs width, draw {entry['width_sweep']['draw']}")
                ax.legend(fontsize=6)
        else:
            for ax in axes[2:]:
                ax.axis("off")
    return [str(save_figure(fig, Path(outdir) / f"{NAME}_finite_n.png"))]
