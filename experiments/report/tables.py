"""The generated tables and numbers of the clover, linear, speed, deep and grokking pages."""

from __future__ import annotations

import math

from experiments.report.format import Results, fixed, num, pm, table, z_score


CLOVER_METRICS = (("sliced_wasserstein", "sliced W2"), ("sinkhorn", "Sinkhorn"), ("energy", "energy"))


def clover_networks(r: Results) -> str:
    d = r("clover/main")
    header = ["N (seeds)", f"loss (theory {fixed(d['theory']['loss'], 5)})"] + [f"{label} (floor)" for _, label in CLOVER_METRICS]
    rows = []
    for net in d["networks"]:
        row = [f"{net['width']} ({net['num_seeds']})", pm(net["loss"], net["loss_error"], 5)]
        for key, _ in CLOVER_METRICS:
            s = net["summary"][key]
            row.append(f"{fixed(s['distance'], 3)} ({fixed(s['noise_floor'], 3)} ± {fixed(s['noise_floor_std'], 3)})")
        rows.append(row)
    return table(header, rows)


def clover_foreground(r: Results) -> str:
    d = r("clover/main")
    fg, gp = d["foreground"], d["gp_foreground"]
    width = fg["background_width"]
    cases = [(f"vs its background network's neurons (N = {width}, time-averaged residual)", fg["to_background"]),
             ("vs theory", fg["to_theory"]),
             ("GP background: vs the GP's own neurons (the prior)", gp["to_background"]),
             ("GP background: vs theory", gp["to_theory"])]
    rows = [[name] + [f"{num(c[k]['distance'])} ({num(c[k]['noise_floor'])})" for k in ("sliced_wasserstein", "energy")] for name, c in cases]
    return table([f"foreground, M = {fg['num_neurons']} neurons", "sliced W2 (floor)", "energy (floor)"], rows)


def clover_foreground_ratio(r: Results) -> str:
    to_bg = r("clover/main")["foreground"]["to_background"]
    ratios = [to_bg[k]["ratio_to_floor"] for k in ("sliced_wasserstein", "energy")]
    return f"{min(ratios):.1f}-{max(ratios):.1f}x"


def _start_refusal(entry) -> str:
    return "refused -> continuation" if entry.get("gp_start_refused") else "ok"


def linear_sweep(r: Results) -> str:
    d = r("linear/main")
    rows = []
    for p in d["sweep"]:
        exact = p["exact"]["loss"]
        rel = [abs(p[s]["loss"] - exact) / exact for s in ("grid", "importance")]
        rows.append([num(p["beta"]), fixed(p["exact"]["g"], 3), num(exact, 5), num(rel[0], 2), num(rel[1], 2),
                     f"{_start_refusal(p['grid'])} / {'refused' if p.get('feature_start_refused') else 'ok'}"])
    return table(["beta", "g*", "exact loss", "grid rel. error", "importance rel. error", "start from GP / from r = y"], rows)


def clover_beta_sweep(r: Results) -> str:
    rows = []
    for p in r("clover_beta_sweep/main")["rows"]:
        (n0, n1), ((lo, hi), _) = p["nodes_per_axis"], p["spans"]
        grid = f"{n0}^2 on +-{num(hi, 2)}" if n0 == n1 else f"{n0} x {n1} on +-{num(hi, 2)}"
        rows.append([num(p["beta"]), p["iterations"], fixed(p["seconds"], 1), round(p["ess_nodes"]), grid,
                     fixed(p["loss"], 6), fixed(p["free_energy"], 4), len(p["actions"]) or "none"])
    return table(["beta", "iterations", "seconds", "effective nodes", "final grid", "loss", "free energy", "automatic steps"], rows)


def solver_speed(r: Results) -> str:
    d = r("solver_speed/main")["beta_50"]
    names = {"anderson": f"Anderson m = {d['anderson']['anderson']}, damping {d['anderson']['damping']} (the default)",
             "damped_0.1": "plain damped iteration, damping 0.1", "newton": "Newton ascent on the free energy"}
    rows = [[label, d[k]["iterations"], fixed(d[k]["seconds"], 2), fixed(d[k]["loss"], 6)] for k, label in names.items()]
    rows.append(["ratio damped / Anderson", f"**{d['iteration_ratio']:.1f}x more**", f"**{d['time_ratio']:.1f}x slower**", ""])
    rows.append(["ratio Anderson / Newton", "", f"**{d['anderson_over_newton_time']:.2f}x slower**", ""])
    return table(["clover, beta = 50 (`auto=False`)", "iterations", "seconds", "loss"], rows)


def neuron_throughput(r: Results) -> str:
    d = r("neuron_throughput/main")
    rate = d["neuron_updates_per_second"]
    rows = [["mft_jax (`vmap` of `value_and_grad(V)`, jitted `lax.scan`)", f"{rate['jax_vmap']:.3g}", ""],
            ["per-neuron loop in NumPy (vectorised over the points)", f"{rate['numpy_loop']:.3g}", f"**{d['ratio_jax_over_numpy_loop']:.0f}x faster**"]]
    if rate.get("torch_func_vmap"):
        rows.append(["PyTorch `torch.func.vmap(grad(V))` (CPU)", f"{rate['torch_func_vmap']:.3g}", f"**{d['ratio_jax_over_torch']:.0f}x faster**"])
    return table(["implementation", "updates / s", "JAX is"], rows)


def neuron_throughput_ratio(r: Results) -> str:
    return f"{r('neuron_throughput/main')['ratio_jax_over_numpy_loop']:.0f}x"


def deep_digits_layers(r: Results) -> str:
    d = r("deep_digits/main")
    rows = []
    for layer in ("layer1", "layer2"):
        m = d["mean_sq_entries"][layer]
        rows.append([layer.replace("layer", "layer "), f"**{d['alignment'][layer]:.6f}**", f"{d.get('alignment_half_sets', d.get('alignment_noise_floor'))[layer]:.6f}",
                     f"{m['theory']:.5f} / {m['networks']:.5f} ± {m['networks_sem']:.5f} / {m['nngp']:.5f}"])
    return table([f"N = {d['width']}", "alignment theory vs networks", "noise floor (seed halves)", "mean Phi^2 entries: theory / networks (± s.e.) / NNGP"], rows)


def deep_digits_widths(r: Results) -> str:
    d = r("deep_digits/main")
    rows = []
    for w in d["widths"]:
        row = [w["width"]]
        half_sets = "distance_half_sets" if "distance_half_sets" in w else "distance_noise_floor"  # runs before kernel_floor
        for key in ("distance", half_sets, "distance_nngp"):
            if key in w:
                row.append(" / ".join(num(w[key][layer], 2) for layer in ("layer1", "layer2")))
            else:
                row.append("-")
        row.append(pm(w["loss"]["networks"], w["loss"]["sem"], 5))
        rows.append(row)
    theory = d["theory"]["loss"]
    return table(["width", "theory distance, layer 1 / 2", "seed-halves floor", "NNGP distance", f"network loss (theory {theory:.5f})"], rows)


def _composition_rows(d: dict, depths) -> list[list[str]]:
    rows = []
    for depth in depths:
        losses = d["losses"]
        gp, mft, net = losses[f"gp_depth{depth}"], losses[f"mft_depth{depth}"], losses[f"networks_depth{depth}"]
        rows.append([f"GP (NNGP), depth {depth}", fixed(gp["train"], 4), fixed(gp["test"], 4)])
        rows.append([f"mean-field theory, depth {depth} ({d['theory'][f'depth{depth}']['iterations']} iterations)", fixed(mft["train"], 4), fixed(mft["test"], 4)])
        rows.append([f"networks, depth {depth} (± s.e. over {len(net['per_seed']['train'])} seeds)", pm(net["train"], net["train_sem"]), pm(net["test"], net["test_sem"])])
    return rows


def deep_composition_losses(r: Results) -> str:
    return table(["", "train loss", "test loss"], _composition_rows(r("deep_composition/main"), (2, 3)))


def _composition_z(d: dict, depth: int) -> list[float]:
    mft, net = d["losses"][f"mft_depth{depth}"], d["losses"][f"networks_depth{depth}"]
    return [z_score(net[s], mft[s], net[f"{s}_sem"]) for s in ("train", "test")]


def deep_composition_z(r: Results) -> str:
    d = r("deep_composition/main")
    z2, z3 = _composition_z(d, 2), _composition_z(d, 3)
    return (f"{min(z2):.1f}-{max(z2):.1f} s.e. at depth 2 and {min(z3):.1f}-{max(z3):.1f} s.e. at depth 3")


def deep_composition_step(r: Results) -> str:
    """Depth-3 erf networks at h = 0.01 (40000 steps) against h = 0.02 (20000 steps): the same time span."""
    a = r("deep_composition/erf40_depth3_h001")["losses"]["networks_depth3"]
    b = r("deep_composition/erf40_depth3_long")["losses"]["networks_depth3"]
    z = [abs(a[s] - b[s]) / math.hypot(a[f"{s}_sem"], b[f"{s}_sem"]) for s in ("train", "test")]
    return (f"train {pm(a['train'], a['train_sem'])}, test {pm(a['test'], a['test_sem'])} against "
            f"{pm(b['train'], b['train_sem'])} / {pm(b['test'], b['test_sem'])} at h = 0.02: {z[0]:.1f} and {z[1]:.1f} s.e. apart")


def deep_speed(r: Results) -> str:
    d = r("deep_speed/main")
    sizes = [str(m) for m in d["samples"]]
    rows = []
    for p in d["points"]:
        ess = []
        for m in sizes:
            values = p["ess_nngp"].get(m)
            ess.append(" / ".join(f"{v:.0f}" for v in values) if values else "-")
        rows.append([p["P"], num(p["map_seconds"]), (f"{p['flops'] / 1e9:.0f}" if p['flops'] >= 1e12 else num(p['flops'] / 1e9)), f"{p['fraction_of_peak']:.0%}", *ess,
                     f"{p['memory_estimate_bytes'] / 2**30:.2g} GiB"])
    return table(["P", "seconds per map evaluation", "GFLOP", "fraction of matmul peak", *[f"ESS M = {m}" for m in sizes],
                  "memory estimate of a solve"], rows)


def deep_speed_exponent(r: Results) -> str:
    return f"P^{r('deep_speed/main')['exponent']:.2f}"


def modular_grokking_fractions(r: Results) -> str:
    d = r("modular_grokking/main")
    moduli = sorted(d["networks"], key=int)
    fractions = d["networks"][moduli[0]]["fractions"]
    header = ["fraction"]
    for m in moduli:
        header += [f"P = {m} networks", "acc.", f"P = {m} GP"]
    rows = []
    for k, f in enumerate(fractions):
        row = [f"{f:.2f}"]
        for m in moduli:
            net, gp = d["networks"][m], d["gp"][m]
            acc, acc_se = net["test_accuracy"][k], net["test_accuracy_se"][k]
            row += [pm(net["test_loss_relative"][k], net["test_loss_relative_se"][k], 3),
                    f"{acc:.3f}" if acc_se == 0 else pm(acc, acc_se, 3), f"{gp['test_loss_relative'][k]:.3f}"]
        rows.append(row)
    return table(header, rows)


def deep_composition_erf40(r: Results) -> str:
    """erf at beta = 40 (MCMC layer laws): GP, theory and the long network runs, with the per-layer kernels."""
    rows = []
    for depth, run in ((2, "erf40_depth2_long"), (3, "erf40_depth3_long")):
        d = r(f"deep_composition/{run}")
        losses = d["losses"]
        gp, mft, net = losses[f"gp_depth{depth}"], losses[f"mft_depth{depth}"], losses[f"networks_depth{depth}"]
        layers = d["layers"][f"depth{depth}"]
        kernels = "; ".join(f"layer {k[-1]}: {v['alignment']['theory']:.5f} / {v['distance']['theory']:.3f} "
                            f"({v['alignment']['noise_floor']:.5f} / {v['distance']['noise_floor']:.3f})" for k, v in layers.items())
        nngp = "; ".join(f"{v['distance']['nngp']:.2f}" for v in layers.values())
        rows.append([f"depth {depth}: GP / theory", f"{gp['train']:.4f} / {mft['train']:.4f}", f"{gp['test']:.4f} / {mft['test']:.4f}", "", ""])
        rows.append([f"depth {depth}: networks, N = {d['width']}", pm(net["train"], net["train_sem"]), pm(net["test"], net["test_sem"]), kernels, nngp])
    return table(["erf, beta = 40", "train loss", "test loss", "kernel vs theory: alignment / distance (noise floor)", "NNGP distance"], rows)


def linear_networks(r: Results) -> str:
    """Langevin networks against the exact theory: loss and the variance of ``w . v/|v|`` (``v`` the teacher)."""
    d = r("linear/main")
    v = d["teacher"]
    norm2 = sum(x * x for x in v)
    rows = []
    for p in d["networks"]:
        c = p["exact_covariance"]
        exact_along = sum(v[i] * c[i][j] * v[j] for i in range(len(v)) for j in range(len(v))) / norm2
        rows.append([num(p["beta"]), p["width"], pm(p["loss"], p["loss_se"], 5), fixed(p["exact_loss"], 5),
                     pm(p["var_along"], p["var_along_se"], 3), fixed(exact_along, 3)])
    return table(["beta", "N", "network loss (± s.e.)", "exact loss", "variance along the teacher (± s.e.)", "exact"], rows)


def deep_solver_methods(r: Results) -> str:
    """Newton-Krylov against Anderson (with hand-over) on the deep fixed point, per beta, timed in one run."""
    d = r("deep_solver_methods/main")
    rows = []
    for row in d["rows"]:
        for method in ("newton", "anderson"):
            m = row[method]
            handed = " (stalled, handed over to Newton)" if method == "anderson" and "Newton" in m["message"] else ""
            rows.append([num(row["beta"]), method + handed, m["iterations"], fixed(m["seconds"], 2), fixed(m["loss"], 6), fixed(m["free_energy"], 5),
                         f"{num(row['seconds_ratio_newton_over_anderson'])}x" if method == "anderson" else ""])
    return table([f"beta (P = {d['points']}, {d['num_samples']} draws)", "method", "iterations", "seconds", "loss", "free energy",
                  "Newton time / Anderson time"], rows)


def deep_mcmc_erf(r: Results) -> str:
    """erf layer laws by importance sampling and by resample-move MCMC (one row per key), per beta."""
    d = r("deep_mcmc/main")
    rows = []
    for row in d["erf"]:
        for method in [k for k in row if k == "importance" or k.startswith("mcmc key")]:
            m = row[method]
            rows.append([num(row["beta"]), method, "yes" if m["converged"] else "no", m["iterations"], m["refreshes"], fixed(m["seconds"], 1),
                         f"{min(m['ess']):.0f}", fixed(m["train_loss"], 5), fixed(m["test_loss"], 5), fixed(m["free_energy"], 3)])
        rows.append([num(row["beta"]), "NNGP", "", "", "", "", "", "", fixed(row["nngp"]["test_loss"], 5), ""])
    return table([f"erf, beta (P = {d['points']}, M = {d['num_samples']})", "layer laws", "converged", "iterations", "refreshes", "seconds",
                  "smallest ESS", "train loss", "test loss", "free energy"], rows)


def deep_mcmc_erf_keys(r: Results) -> str:
    """The MCMC losses as mean (sd over keys), per beta."""
    parts = []
    for row in r("deep_mcmc/main")["erf"]:
        t, e, f = row["mcmc_train_loss"], row["mcmc_test_loss"], row["mcmc_free_energy"]
        parts.append(f"beta = {num(row['beta'])}: train {fixed(t['mean'], 5)} (sd {fixed(t['sd_over_keys'], 5)}), test {fixed(e['mean'], 5)} "
                     f"(sd {fixed(e['sd_over_keys'], 5)}), free energy {fixed(f['mean'], 3)} (sd {fixed(f['sd_over_keys'], 3)}) over {t['keys']} keys")
    return "; ".join(parts)


def deep_mcmc_gelu(r: Results) -> str:
    """gelu by continuation in beta: the normalizability margin of each layer law (0 is the edge)."""
    rows = [[num(g["beta"]), "yes" if g["converged"] else "no", g["iterations"], " / ".join(num(m, 3) for m in g["normalizability_margin"]),
             fixed(g["train_loss"], 5)] for g in r("deep_mcmc/main")["gelu_continuation"]]
    return table(["gelu, beta", "converged", "iterations", "normalizability margin, layer 1 / 2", "train loss"], rows)


LOBE_BINS = (4, 13, 22, 31)
"""The 10-degree angle bins at the centres of the four diagonal lobes (45, 135, 225, 315 degrees)."""


def clover_grid_check(r: Results) -> str:
    """The default solve at beta = 500 and 1000 from three starting grids (nodes per axis on +-span)."""
    rows = []
    for p in r("clover/grid_check")["rows"]:
        n, span = p["start"]
        lobes = [p["angle_mass_10deg"][k] for k in LOBE_BINS]
        lo, hi = f"{min(lobes):.2f}", f"{max(lobes):.2f}"
        rows.append([f"{p['beta']:g}", f"{n}^2 on +-{span:g}", p["iterations"], fixed(p["seconds"], 1), fixed(p["loss"], 6), fixed(p["free_energy"], 3),
                     round(p["ess_nodes"]), f"{p['radius_mean']:.3f} ± {p['radius_sd']:.3f}", lo if lo == hi else f"{lo}-{hi}"])
    return table(["beta", "start", "iterations", "seconds", "loss", "free energy", "effective nodes", "radius (mean ± sd)",
                  "mass in a lobe's central 10-degree bin"], rows)


def clover_grid_spread(r: Results, beta: float, key: str) -> float:
    """(max - min) / mean of ``key`` over the starts at ``beta``."""
    values = [p[key] for p in r("clover/grid_check")["rows"] if p["beta"] == beta]
    return (max(values) - min(values)) / (sum(values) / len(values))


def _dc_layers(d: dict):
    for depth_key, layers in d["layers"].items():
        for layer_key, layer in layers.items():
            yield depth_key.replace("depth", "depth "), layer_key.replace("layer", "layer "), layer


def deep_composition_kernels(r: Results, runs=("main",)) -> str:
    """Per hidden layer: the networks' kernel against the theory's (centred alignment / relative distance), the noise
    floor (two halves of the seeds) and the NNGP; the law of one neuron's target overlap ``(1/P) sum phi(h_mu) y_mu``
    (mean / sd, theory vs networks ± s.e.); layer 1's weight moments ``E w_i^2`` and ``E w1 w2 w3 w4``."""
    rows = []
    for depth, layer, v in (x for run in runs for x in _dc_layers(r(f"deep_composition/{run}"))):
        a, dist, o = v["alignment"], v["distance"], v["overlap"]
        moments = ""
        if "weights" in v:
            t, n, e = v["weights"]["theory"], v["weights"]["networks"], v["weights"]["networks_sem"]
            moments = (f"{t['w_sq']:.3f} / {n['w_sq']:.3f} ± {e['w_sq']:.3f}; {t['w1w2w3w4']:.3f} / {n['w1w2w3w4']:.3f} ± {e['w1w2w3w4']:.3f} "
                       f"({abs(n['w1w2w3w4'] - t['w1w2w3w4']) / e['w1w2w3w4']:.1f} s.e.)")
        rows.append([f"{depth}, {layer}", f"{a['theory']:.4f} / {dist['theory']:.3f}", f"{a['noise_floor']:.4f} / {dist['noise_floor']:.3f}",
                     f"{a['nngp']:.4f} / {dist['nngp']:.3f}", f"{o['theory_mean']:.4f} / {o['theory_sd']:.4f}",
                     f"{o['networks_mean']:.4f} ± {o['networks_mean_sem']:.4f} / {o['networks_sd']:.4f} ± {o['networks_sd_sem']:.4f}", moments])
    return table(["", "networks vs theory: alignment / distance", "noise floor", "NNGP vs networks", "overlap mean / sd, theory",
                  "overlap mean / sd, networks", "E w_i^2; E w1 w2 w3 w4: theory / networks (final parameters)"], rows)
