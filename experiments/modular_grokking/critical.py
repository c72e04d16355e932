"""``python -m experiments.modular_grokking critical``: the theory's grokking fraction f_c(P) from the annealed per-mode
theory (``mft_jax.theory.reduced.partial_table``), its quenched check on actual training sets, and the per-mode kinetics
at the networks' transition; written to ``results/modular_grokking/annealed.json`` (``summary --annealed`` reads it)."""

from __future__ import annotations

import argparse
import math
import time

import jax
import numpy as np

from experiments._common import CONFIGS, RESULTS, results_file
from mft_jax.analysis.stats import mean_se
from mft_jax.cli.config import load_toml, section
from mft_jax.io import run_metadata, write_json
from mft_jax.neurons import NeuronLaw
from mft_jax.tasks import make_data, make_split
from mft_jax.theory.background import Background
from mft_jax.theory.reduced.modular import library_couplings, pair_mode, prior_gp_predict, sample_neurons, saddle
from mft_jax.theory.reduced.partial_table import critical_fraction, partial_table_discrepancy
from experiments.modular_grokking.config import GrokkingSection, NAME
from experiments.modular_grokking.networks import model_at, test_metrics, transition

SECTIONS = {"grokking", "theory", "width_trend", "full_table_networks", "theory_start", "width_check", "steps_check"}


def quenched_point(modulus: int, fraction: float, split: int, g: GrokkingSection, beta_full: float, draws: int, points: int) -> dict:
    """The exact map at the annealed fixed point on one actual training set: ``draws`` exact neurons of the per-mode law at
    the annealed coupling ``g = f^2 u a^2`` (``sample_neurons``), their kernel on the training pairs, ``G(r) = (I + beta sa2
    K Q)^-1 y`` at ``r = a y``: the mismatch ``|G(r) - r|_q / |r|_q``, ``a_eff = <G, y>_q / <y, y>_q``, and the held-out
    loss of kernel regression ``beta sa2 K(x, X) Q G`` (the quenched prediction) beside the annealed one (``a^2``) and the GP's."""
    n_train = int(round(fraction * modulus**2))
    data, test = make_split("modular_addition", modulus=modulus, n_train=n_train, seed=g.seed + split)
    model = model_at(modulus, n_train, beta_full, g)
    u, kappa = library_couplings(modulus, g.kappa / beta_full, beta_full)
    fixed = partial_table_discrepancy(fraction, u, kappa, g.gamma, modulus, points=points)
    rng = np.random.default_rng([g.seed, modulus, n_train, split, 29])
    w = sample_neurons(rng, fixed.g, g.gamma, modulus, draws, points=300)
    background = Background(model, NeuronLaw.from_samples(jax.numpy.asarray(w)), data)
    r = fixed.a * np.asarray(data.y, float)
    imposed = np.asarray(background.imposed_residual(), float)
    q = np.asarray(data.q, float)[:, None]
    norm = lambda v: math.sqrt(float(np.sum(q * v * v)))  # noqa: E731
    prediction = np.asarray(background.predict(test.x, jax.numpy.asarray(imposed)), float)
    # the two annealed replacements, measured with the same neurons: the tilt c |S_r|^2 on this set over f^2 times the full
    # table's (at r = a y), and the kernel's gain on the target beta sa2 <y, K Q y>_q / <y, y>_q over 4 f kappa <Phi Psi>
    full_data = make_data("modular_addition", modulus=modulus)
    full_model = model_at(modulus, modulus**2, beta_full, g)
    wj = jax.numpy.asarray(w)
    tilt = float(np.mean(np.asarray(model.log_tilt(wj, data, jax.numpy.asarray(r)))))
    tilt_full = float(np.mean(np.asarray(full_model.log_tilt(wj, full_data, fixed.a * full_data.y))))
    y = np.asarray(data.y, float)
    kqy = np.asarray(background.matvec(jax.numpy.asarray(q * y, data.y.dtype)), float)  # K Q y over the draws (equal weights)
    gain = model.gain * float(np.sum(q * y * kqy)) / float(np.sum(q * y * y))
    return {"fraction": fraction, "n_train": n_train, "split": split, "a": fixed.a, "g": fixed.g, "phase": fixed.phase,
            "learned": fixed.learned, "map_mismatch": norm(imposed - r) / norm(r),
            "a_eff": float(np.sum(q * imposed * np.asarray(data.y))) / float(np.sum(q * np.asarray(data.y) ** 2)),
            "annealed_test_loss_relative": fixed.a**2, "quenched": test_metrics(prediction, test),
            "gp": test_metrics(prior_gp_predict(data, model, test.x, g.gamma), test),
            "tilt_ratio": tilt / (fraction**2 * tilt_full), "kernel_gain_ratio": gain / (4 * fraction * kappa * fixed.phi_psi)}


def quenched_check(modulus: int, fractions, splits: int, g: GrokkingSection, beta_full: float, draws: int, points: int,
                   level: float) -> dict:
    """``quenched_point`` on ``splits`` training sets per fraction; per split, the fraction where the quenched held-out
    relative loss falls below ``level`` (the annealed prediction ``a(f_c)^2`` at ``f_c``) and below 1 (f = 0's)."""
    rows = []
    for fraction in fractions:
        clock = time.perf_counter()
        points_f = [quenched_point(modulus, fraction, s, g, beta_full, draws, points) for s in range(splits)]
        loss = [p["quenched"]["test_loss_relative"] for p in points_f]
        row = {"fraction": fraction, "a": points_f[0]["a"], "g": points_f[0]["g"], "phase": points_f[0]["phase"],
               "learned": points_f[0]["learned"], "annealed_test_loss_relative": points_f[0]["annealed_test_loss_relative"],
               "quenched_test_loss_relative": mean_se(loss)[0], "quenched_test_loss_relative_se": mean_se(loss)[1],
               "quenched_test_accuracy": float(np.mean([p["quenched"]["test_accuracy"] for p in points_f])),
               "gp_test_loss_relative": float(np.mean([p["gp"]["test_loss_relative"] for p in points_f])),
               "map_mismatch": mean_se([p["map_mismatch"] for p in points_f])[0],
               "map_mismatch_se": mean_se([p["map_mismatch"] for p in points_f])[1],
               "a_eff": mean_se([p["a_eff"] for p in points_f])[0], "a_eff_se": mean_se([p["a_eff"] for p in points_f])[1],
               "tilt_ratio": float(np.mean([p["tilt_ratio"] for p in points_f])),
               "kernel_gain_ratio": float(np.mean([p["kernel_gain_ratio"] for p in points_f])),
               "per_split": points_f, "seconds": time.perf_counter() - clock}
        rows.append(row)
        print(f"quenched P = {modulus}, f = {fraction:.3f}: annealed a = {row['a']:.4f} ({row['phase']}, learned {row['learned']:.3f}), "
              f"held-out loss annealed {row['annealed_test_loss_relative']:.3f}, quenched {row['quenched_test_loss_relative']:.3f} +- "
              f"{row['quenched_test_loss_relative_se']:.2g} (acc {row['quenched_test_accuracy']:.2f}), GP {row['gp_test_loss_relative']:.3f}; "
              f"|G(r) - r|/|r| = {row['map_mismatch']:.3f}, a_eff = {row['a_eff']:.4f}, tilt / annealed {row['tilt_ratio']:.2f}, "
              f"kernel gain / annealed {row['kernel_gain_ratio']:.2f} [{row['seconds']:.0f} s]", flush=True)
    crossings = {}
    for name, lvl in (("level", level), ("below_1", 1.0)):
        per_split = [transition(fractions, [r["per_split"][s]["quenched"]["test_loss_relative"] for r in rows], lvl) for s in range(splits)]
        mean, se = mean_se(per_split)
        crossings[name] = {"level": lvl, "per_split": per_split, "mean": mean, "se": se, "found": int(np.sum(np.isfinite(per_split)))}
    return {"P": modulus, "fractions": list(fractions), "splits": splits, "draws": draws, "rows": rows, "crossings": crossings}


def kinetics(modulus: int, fraction: float, g: GrokkingSection, beta_full: float, steps: int, step_size: float) -> dict:
    """The per-mode barrier the networks (started in the prior, memorising: ``a = a_GP(f)`` annealed) face at ``fraction``,
    in the single-neuron law's units (``exp(-2P A)``, unit temperature), and their run length in the same units.

    Langevin at ``T = 1/beta(n)`` with step ``h`` is unit-temperature Langevin on ``exp(-U/T - |w|^2/2 - Gamma)`` with time
    step ``h T``: ``steps`` steps last ``t = steps h / beta(n)``; the zero well relaxes at rate 1 (``|w|^2/2``). Barrier on the
    diagonal: ``2P A(x_-, x_-)``, ``A(x) = x - g x^2 + gamma x^3/3`` (Arrhenius time ``~ exp(2P A(x_-))``). Linear growth of
    a pair mode out of the zero well in isometric coordinates ``z = sqrt(2P) w_k``: ``dz/dt = -(1 - 2 g Psi) z``, at the
    prior's ``<Psi> = 1/P`` the rate ``2 g/P - 1``."""
    u, kappa = library_couplings(modulus, g.kappa / beta_full, beta_full)
    a_gp = 1.0 / (1.0 + 4 * fraction * kappa / modulus**2)
    coupling = fraction**2 * u * a_gp**2
    point = saddle(coupling, g.gamma)
    barrier = (2 * modulus * (point.barrier - coupling * point.barrier**2 + g.gamma * point.barrier**3 / 3)
               if not math.isnan(point.barrier) else None)
    prior_psi = pair_mode(0.0, g.gamma, modulus, 600).phi
    beta_n = beta_full * fraction
    return {"fraction": fraction, "a_memorising": a_gp, "g_memorising": coupling, "barrier_2P_A": barrier,
            "arrhenius_factor": math.exp(barrier) if barrier is not None else None, "learned_well": point.learned,
            "prior_mean_phi": prior_psi, "linear_growth_rate": 2 * coupling * prior_psi - 1,
            "run_length_natural_units": steps * step_size / beta_n, "steps": steps, "step_size": step_size, "beta": beta_n}


def critical_main(argv) -> dict:
    """``python -m experiments.modular_grokking critical --moduli 11 23 41 97 --quenched 11 23 --splits 4 --draws 20000``:
    the annealed f_c (exact and saddle), spinodal and GMFL-II per P at the ``[grokking]`` couplings, the quenched check
    (``quenched_check``) at the P of ``--quenched``, and the per-mode kinetics at the networks' transition
    (``results/modular_grokking/main.json``); written to ``results/modular_grokking/RUN.json`` (default ``annealed``)."""
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{NAME} critical", description=critical_main.__doc__.splitlines()[0])
    parser.add_argument("--moduli", type=int, nargs="+", default=[11, 23, 41, 97])
    parser.add_argument("--quenched", type=int, nargs="*", default=[11, 23], help="moduli of the quenched check")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 0.9])
    parser.add_argument("--splits", type=int, default=4)
    parser.add_argument("--draws", type=int, default=20000)
    parser.add_argument("--points", type=int, default=600, help="grid points of the per-mode integral")
    parser.add_argument("--tol", type=float, default=1e-4, help="bisection tolerance in the fraction")
    parser.add_argument("--run", default="annealed")
    parser.add_argument("--config", default=str(CONFIGS / f"{NAME}.toml"))
    parser.add_argument("--results", default=str(RESULTS))
    args = parser.parse_args(argv)
    raw = load_toml(args.config, SECTIONS)
    g = section(GrokkingSection, raw.get("grokking"), "grokking")
    beta_full = float(g.betas[0])
    stored_path = results_file(args.results, NAME, "main")
    stored = __import__("json").loads(stored_path.read_text()) if stored_path.is_file() else {}
    out = {"setting": {"beta_full": beta_full, "kappa": g.kappa, "gamma": g.gamma, "sa2": g.kappa / beta_full,
                       "note": "[grokking] couplings (full-table beta and kappa) at every P; per-example noise beta(n) = beta_full f"},
           "annealed": {}, "quenched": {}, "kinetics": {}}
    with jax.enable_x64(True):
        for modulus in args.moduli:
            u, kappa = library_couplings(modulus, g.kappa / beta_full, beta_full)
            clock = time.perf_counter()
            exact = critical_fraction(u, kappa, g.gamma, modulus, method="exact", tol=args.tol, points=args.points)
            closed = critical_fraction(u, kappa, g.gamma, modulus, method="saddle")
            at_fc = partial_table_discrepancy(exact.gmfl1, u, kappa, g.gamma, modulus, points=args.points) if exact.gmfl1 else None
            out["annealed"][str(modulus)] = {
                "u": u, "kappa": kappa, "exact": exact._asdict(), "saddle": closed._asdict(),
                "exact_minus_saddle": (exact.gmfl1 - closed.gmfl1) if exact.gmfl1 and closed.gmfl1 else None,
                "a_at_fc": at_fc.a if at_fc else None, "held_out_level": at_fc.a**2 if at_fc else None,
                "seconds": time.perf_counter() - clock}
            print(f"annealed P = {modulus}: f_c = {exact.gmfl1} (saddle {closed.gmfl1}), spinodal {exact.spinodal} (saddle "
                  f"{closed.spinodal}), GMFL-II {exact.gmfl2} (saddle {closed.gmfl2}) [{time.perf_counter() - clock:.0f} s]", flush=True)
        for modulus in args.quenched:
            level = out["annealed"][str(modulus)]["held_out_level"]
            out["quenched"][str(modulus)] = quenched_check(modulus, args.fractions, args.splits, g, beta_full, args.draws, args.points, level)
            nets = stored.get("networks", {}).get(str(modulus), {}).get("transition_loss_below_1", {})
            if nets.get("mean") is not None:
                out["kinetics"][str(modulus)] = kinetics(modulus, float(nets["mean"]), g, beta_full, g.steps, g.step_size)
                fc = out["annealed"][str(modulus)]["exact"]["gmfl1"]
                out["kinetics"][str(modulus)]["at_fc"] = kinetics(modulus, fc, g, beta_full, g.steps, g.step_size)
                print(f"kinetics P = {modulus}: {out['kinetics'][str(modulus)]}", flush=True)
    out["meta"] = run_metadata(None, g.seed, argv=["critical", *argv])
    path = results_file(args.results, NAME, args.run)
    write_json(path, out)
    print(f"wrote {path}", flush=True)
    return out
