"""``python -m experiments.modular_grokking branches ...``: both branches of the theory across the fraction, the kernel
check, the two-start networks (one results file per run in ``results/modular_grokking/``) and their figure."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np

from experiments._common import CONFIGS, RESULTS, results_file
from mft_jax.analysis.stats import mean_se
from mft_jax.cli.config import load_toml, section
from mft_jax.io import pyplot, run_metadata, save_figure, write_json
from mft_jax.theory.reduced.modular import library_couplings, solve_discrepancy
from experiments.modular_grokking.branches import branch_point, critical_fraction, kernel_check, two_starts
from experiments.modular_grokking.config import GrokkingSection, NAME, ROOT

SECTIONS = {"grokking", "theory", "width_trend", "full_table_networks", "theory_start", "width_check", "steps_check"}


def branches_main(argv) -> dict:
    """``python -m experiments.modular_grokking branches --moduli 11 --fractions 0.3 0.5 0.7 0.9 --repeats 3 --draws 20000
    --run NAME``: both branches of the theory across the fraction (``branch_point``), their free energies with the repeats'
    spread, the crossing fraction and the spinodals, beside the networks' transition of ``results/modular_grokking/main.json``;
    written to ``results/modular_grokking/NAME.json`` with the command, figure ``figures/modular_grokking_branches_NAME.png``."""
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{NAME} branches", description=branches_main.__doc__.splitlines()[0])
    parser.add_argument("--moduli", type=int, nargs="+", default=[11])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.9])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--draws", type=int, default=20000)
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--split", type=int, default=0)
    parser.add_argument("--method", choices=("importance", "mcmc"), default="importance",
                        help="importance: fixed draws reweighted (free energies); mcmc: MALA chains started in each well")
    parser.add_argument("--steps", type=int, default=50, help="MALA steps per update (--method mcmc)")
    parser.add_argument("--damping", type=float, default=0.3, help="damping of the iteration (--method mcmc)")
    parser.add_argument("--two-starts", type=int, default=0, metavar="STEPS",
                        help="networks from the prior and from the full-table theory's law at each fraction, STEPS steps "
                             "(--start-width, --start-step-size; cached in runs/modular_grokking/), instead of the theory")
    parser.add_argument("--start-width", type=int, default=1024)
    parser.add_argument("--start-step-size", type=float, default=0.01)
    parser.add_argument("--kernel-only", action="store_true", help="only kernel_check (GP, the full-table law's kernel, networks)")
    parser.add_argument("--network-steps", type=int, default=0, help="kernel_check: also one network of this many steps per fraction")
    parser.add_argument("--run", default="branches")
    parser.add_argument("--config", default=str(CONFIGS / f"{NAME}.toml"))
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--figures", default=str(ROOT / "figures"))
    args = parser.parse_args(argv)
    raw = load_toml(args.config, SECTIONS)
    g = section(GrokkingSection, raw.get("grokking"), "grokking")
    stored = {}
    stored_path = results_file(args.results, NAME, "main")
    if stored_path.is_file():
        stored = json.loads(stored_path.read_text())
    out = {"points": {}, "critical_fraction": {}}
    with jax.enable_x64(True):
        for modulus in args.moduli:
            beta_full = float(g.betas[list(g.moduli).index(modulus)])
            u, kappa = library_couplings(modulus, g.kappa / beta_full, beta_full)
            full = solve_discrepancy(u, kappa, g.gamma, modulus, points=200)
            rows = []
            checks = [kernel_check(modulus, fraction, args.split, g, beta_full, full, args.draws, args.network_steps,
                                   args.repeats if args.kernel_only else 1) for fraction in args.fractions]
            out.setdefault("kernel_check", {})[str(modulus)] = checks
            for c in checks:
                print(f"kernel check P = {modulus}, fraction {c['fraction']:.2f}: relative test loss / accuracy: GP {c['gp']['test_loss_relative']:.3f} / "
                      f"{c['gp']['test_accuracy']:.3f}; full-table law's kernel {c['full_table_law_kernel']['test_loss_relative']:.3f} / "
                      f"{c['full_table_law_kernel']['test_accuracy']:.3f}" + (
                          f"; network own output {c['network']['own_output']['test_loss_relative']:.3f} / {c['network']['own_output']['test_accuracy']:.3f}, "
                          f"its own kernel {c['network']['own_kernel_regression']['test_loss_relative']:.3f} / {c['network']['own_kernel_regression']['test_accuracy']:.3f}, "
                          f"at its own residual {c['network'].get('own_kernel_at_own_residual', {}).get('test_loss_relative', float('nan')):.3f} "
                          f"[{c['network']['seconds']:.0f} s]" if "network" in c else ""), flush=True)
            if args.two_starts:
                out.setdefault("two_starts", {})[str(modulus)] = two_starts(modulus, args.fractions, args.two_starts, args.start_width,
                                                                            args.start_step_size, g, beta_full, full)
            if args.kernel_only or args.two_starts:
                continue
            for fraction in args.fractions:
                reps = [branch_point(modulus, fraction, args.split, r, args.draws, g, beta_full, full, args.max_iter, args.method,
                                     args.steps, args.damping) for r in range(args.repeats)]
                row = {"fraction": fraction, "repeats": reps}
                for branch in ("memorising", "generalising"):
                    for metric in ("free_energy", "test_loss_relative", "test_accuracy", "learned_fraction", "ess", "a_train", "final_change"):
                        values = [r[branch][metric] for r in reps]
                        row[f"{branch}_{metric}"], row[f"{branch}_{metric}_se"] = mean_se([np.nan if v is None else v for v in values])
                    row[f"{branch}_converged"] = [r[branch]["converged"] for r in reps]
                diff = [r["generalising"]["free_energy"] - r["memorising"]["free_energy"] if r["generalising"]["free_energy"] is not None
                        and r["memorising"]["free_energy"] is not None else float("nan") for r in reps]
                row["free_energy_difference"], row["free_energy_difference_se"] = mean_se(diff)
                rows.append(row)
                print(f"branches P = {modulus}, fraction {fraction:.2f}: memorising I = {row['memorising_free_energy']:.4f} +- "
                      f"{row['memorising_free_energy_se']:.2g}, test loss {row['memorising_test_loss_relative']:.3f}, ESS "
                      f"{row['memorising_ess']:.0f}, converged {row['memorising_converged']}; generalising I = {row['generalising_free_energy']:.4f} "
                      f"+- {row['generalising_free_energy_se']:.2g}, test loss {row['generalising_test_loss_relative']:.3f}, learned "
                      f"{row['generalising_learned_fraction']:.3f}, ESS {row['generalising_ess']:.0f}, converged {row['generalising_converged']}; "
                      f"I_gen - I_mem = {row['free_energy_difference']:.4f} +- {row['free_energy_difference_se']:.2g} "
                      f"[{sum(r[b]['seconds'] for r in reps for b in ('memorising', 'generalising')):.0f} s]", flush=True)
            out["points"][str(modulus)] = rows
            out["critical_fraction"][str(modulus)] = critical_fraction(rows, stored, modulus, full) if rows else None
            print(f"P = {modulus}: critical_fraction {out['critical_fraction'][str(modulus)]}", flush=True)
    out["meta"] = run_metadata({"args": vars(args), "grokking": raw.get("grokking")}, g.seed, argv=["branches", *argv])
    path = results_file(args.results, NAME, args.run)
    write_json(path, out)
    if any(out["points"].values()):
        plot_branches(out, Path(args.figures) / f"{NAME}_branches_{args.run}.png")
    print(f"wrote {path}", flush=True)
    return out


def plot_branches(out: dict, path: Path) -> None:
    """Relative test loss and free-energy difference of the two branches against the fraction, per P."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    for i, (modulus, rows) in enumerate(out["points"].items()):
        f = [r["fraction"] for r in rows]
        for branch, style in (("memorising", "s:"), ("generalising", "o-")):
            axes[0].errorbar(f, [r[f"{branch}_test_loss_relative"] for r in rows], np.nan_to_num([r[f"{branch}_test_loss_relative_se"] for r in rows]),
                             fmt=style, color=f"C{i}", label=f"theory, {branch} branch, P = {modulus}")
        axes[1].errorbar(f, [r["free_energy_difference"] for r in rows], np.nan_to_num([r["free_energy_difference_se"] for r in rows]),
                         fmt="o-", color=f"C{i}", label=f"P = {modulus}")
        nets = out["critical_fraction"][modulus].get("networks")
        if nets:
            for ax in axes:
                ax.axvline(nets, color=f"C{i}", lw=0.8, ls="--")
    axes[0].axhline(1.0, color="gray", lw=0.8, ls=":")
    axes[0].set(yscale="log", xlabel="training fraction", ylabel="test loss / that of f = 0", title="both branches (dashed: networks' f_c)")
    axes[1].axhline(0.0, color="gray", lw=0.8)
    axes[1].set(xlabel="training fraction", ylabel="I_generalising - I_memorising", title="free energy difference (lower is stable)")
    for ax in axes:
        ax.legend(fontsize=7)
    save_figure(fig, path, dpi=120)
