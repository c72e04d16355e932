"""Both branches of the theory on a partial table (restricted ensembles), the kernel check and the two-start networks
(``python -m experiments.modular_grokking branches``; ``branches_run.branches_main``), and the crossing fraction."""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import numpy as np

from mft_jax.analysis.stats import mean_se
from mft_jax.neurons import NeuronLaw
from mft_jax.tasks import make_data, make_split
from mft_jax.theory.background import Background
from mft_jax.theory.fixed_point import Damped
from mft_jax.theory.reduced.modular import coexistence_coupling, mode_powers, pair_mode, prior_gp_predict, saddle, sample_neurons
from mft_jax.theory.samplers.mcmc import mcmc_sampler
from mft_jax.theory.samplers.proposal import proposal_sampler, started_sampler
from mft_jax.theory.two_layer import solve
from mft_jax.train.joint import langevin_optimizer, train
from experiments.modular_grokking.config import GrokkingSection, NAME, ROOT
from experiments.modular_grokking.networks import model_at, network_point, test_metrics
from experiments.modular_grokking.theory import discrepancy


def branch_point(modulus: int, fraction: float, split: int, repeat: int, draws: int, g: GrokkingSection, beta_full: float,
                 full, max_iter: int, method: str = "importance", steps: int = 50, damping: float = 0.3) -> dict:
    """Both branches of the exact theory on one training set (restricted ensembles, ``mft_jax.theory.samplers.proposal``).

    The single-neuron law on a partial table has two wells per Fourier pair mode (zero and learned). The solve's free
    energy ``I(r)`` is strictly concave for a fixed set of particles (``solve_branches``), so a branch is defined by the
    particles that carry the law: ``"memorising"``: exact draws of the prior (``sample_neurons`` at coupling 0; importance
    weights ``exp(c |S_r|^2)``), which hold the zero wells; ``"generalising"``: exact draws of the full-table theory's law
    (``sample_neurons`` at its self-consistent coupling ``g_full``), weights ``exp(c |S_r|^2 - c_full |S_full|^2)`` and
    ``log_norm = log E_prior exp(c_full |S_full|^2) = (P-1)/2 [log Z_pair(g_full) - log Z_pair(0)]`` (exact per-mode
    integrals), which hold the learned wells. Each is solved from its own start (the GP residual; ``a_full y``) by the
    deterministic fixed-point iteration (Anderson), its free energy ``I`` from the same draws; ``repeat`` picks the draws.

    ``method="mcmc"``: the same two sets of draws start ``draws`` MALA chains (``mcmc_sampler``, ``steps`` per update; the
    generalising one by ``started_sampler``), which follow the law within their wells as ``r`` moves (no importance
    weights to collapse); damped iteration (``damping``), no free energy (MALA gives no log partition).
    """
    n_train = int(round(fraction * modulus**2))
    data, test = make_split("modular_addition", modulus=modulus, n_train=n_train, seed=g.seed + split)
    model = model_at(modulus, n_train, beta_full, g)
    full_data = make_data("modular_addition", modulus=modulus)
    full_model = model_at(modulus, modulus**2, beta_full, g)
    pairs = (modulus - 1) // 2
    log_norm = pairs * (pair_mode(full.g, g.gamma, modulus, 300).log_partition - pair_mode(0.0, g.gamma, modulus, 300).log_partition)
    barrier = saddle(coexistence_coupling(g.gamma), g.gamma).barrier
    out = {"P": modulus, "fraction": fraction, "n_train": n_train, "split": split, "repeat": repeat, "draws": draws}
    for branch, coupling in (("memorising", 0.0), ("generalising", full.g)):
        rng = np.random.default_rng([g.seed, modulus, n_train, split, repeat, int(coupling > 0)])
        w = sample_neurons(rng, coupling, g.gamma, modulus, draws, points=300)
        init = full.a * data.y if coupling > 0 else "gp"
        if method == "mcmc":
            sampler = started_sampler(mcmc_sampler(draws, steps, num_warmup=steps // 2), lambda key, w=w: w)
            options = dict(solver=Damped(damping), tol=1e-3)
        elif coupling > 0:
            log_ratio = -np.asarray(full_model.log_tilt(jax.numpy.asarray(w), full_data, full.a * full_data.y))
            sampler, options = proposal_sampler(lambda key, w=w, lr=log_ratio: (w, lr), log_norm), dict(tol=1e-6)
        else:
            sampler, options = proposal_sampler(lambda key, w=w: (w, np.zeros(len(w)))), dict(tol=1e-6)
        clock = time.perf_counter()
        sol = solve(data, model, sampler, key=jax.random.key(repeat), init=init, max_iter=max_iter, auto=False, **options)
        weights = np.asarray(sol.law.weights(), float)
        powers = np.asarray(mode_powers(sol.law.w), float)
        learned = float(weights @ np.mean(powers[:, 0, :] * powers[:, 1, :] > barrier**2, axis=1))
        prediction = np.asarray(sol.kernel_regression(test.x), float)
        out[branch] = {"free_energy": sol.free_energy, "converged": bool(sol.converged), "message": sol.message,
                       "iterations": sol.iterations, "final_change": float(sol.diagnostics["change"]),
                       "ess": float(sol.diagnostics.get("ess", float("nan"))), "learned_fraction": learned,
                       "acceptance_rate": float(sol.diagnostics.get("acceptance_rate", float("nan"))), "method": method,
                       "a_train": discrepancy(sol.residual, data.y)[0], **test_metrics(prediction, test),
                       "seconds": time.perf_counter() - clock}
    return out


def kernel_check(modulus: int, fraction: float, split: int, g: GrokkingSection, beta_full: float, full, draws: int,
                 network_steps: int = 0, repeats: int = 1) -> dict:
    """Does the theory's *kernel* generalise on this training set? Kernel regression ``f = beta sa2 K(x, X) Q G``,
    ``G = (I + beta sa2 K Q)^-1 y``, with (a) the GP kernel (``prior_gp_predict``), (b) the full-table theory's exact law
    (``draws`` draws of ``sample_neurons`` at ``g_full``: all its Fourier modes learned, as a generalising state has them).
    With ``network_steps > 0`` also one Langevin network (``[grokking]``'s width and step, ``network_steps`` steps) on the
    set: (c) its own held-out output at the end, (d) kernel regression with its own neurons' kernel (the network turned
    into a background, its own ``G``), (e) ``beta sa2 K_own(x, X) Q r_net`` at the network's own training residual (its
    readouts replaced by their mean-field conditional means ``E[a | w] = beta sa2 S_r(w)``). (c) generalising while (e)
    does not says the networks' readouts carry what the single-neuron law's ``a | w`` does not."""
    n_train = int(round(fraction * modulus**2))
    data, test = make_split("modular_addition", modulus=modulus, n_train=n_train, seed=g.seed + split)
    model = model_at(modulus, n_train, beta_full, g)
    laws = [sample_neurons(np.random.default_rng([g.seed, modulus, 77 + r]), full.g, g.gamma, modulus, draws, points=300)
            for r in range(repeats)]  # independent draws of the full-table law: the spread of (b)

    def regression(weights_w):
        background = Background(model, NeuronLaw.from_samples(jax.numpy.asarray(weights_w)), data)
        return np.asarray(background.predict(test.x, background.imposed_residual()), float)

    out = {"fraction": fraction, "n_train": n_train, "gp": test_metrics(prior_gp_predict(data, model, test.x, g.gamma), test),
           "full_table_law_kernel_repeats": [test_metrics(regression(w), test) for w in laws]}
    out["full_table_law_kernel"] = {k: float(np.mean([m[k] for m in out["full_table_law_kernel_repeats"]]))
                                    for k in ("test_loss", "test_loss_relative", "test_accuracy")}
    out["full_table_law_kernel"]["test_loss_relative_se"] = mean_se([m["test_loss_relative"] for m in out["full_table_law_kernel_repeats"]])[1]
    if network_steps:
        clock = time.perf_counter()
        result = train(jax.random.key(modulus * 1000 + n_train), model, g.width, data, langevin_optimizer(model, g.step_size),
                       network_steps, num_seeds=1, chunk=max(network_steps // 10, 1), progress=False)
        params = jax.tree.map(lambda z: z[0], result.params)
        own = np.asarray(model.apply(params, test.x), float)
        residual = data.y - model.apply(params, data.x)
        own_law = Background(model, NeuronLaw.from_samples(params["w"]), data)
        at_own_residual = np.asarray(own_law.predict(test.x, residual), float)  # beta sa2 K_own(x, X) Q r_net: a_i -> E[a | w_i]
        out["network"] = {"steps": network_steps, "width": g.width, "seconds": time.perf_counter() - clock,
                          "own_output": test_metrics(own, test), "own_kernel_regression": test_metrics(regression(params["w"]), test),
                          "own_kernel_at_own_residual": test_metrics(at_own_residual, test),
                          "train_loss_relative": float(0.5 * np.mean(np.sum(np.asarray(residual) ** 2, 1)) / (0.5 * (modulus - 1) / modulus))}
    return out


def two_starts(modulus: int, fractions, steps: int, width: int, step_size: float, g: GrokkingSection, beta_full: float, full) -> list:
    """Networks on split 0 from the prior and from the full-table theory's single-neuron law (``network_point``, same key
    per fraction as ``[theory_start]``), ``steps`` Langevin steps: held-out relative loss over the run (12 records) of
    each, and the gap between the starts at the end (hysteresis while it stays open)."""
    cache = ROOT / "runs" / NAME
    key = jax.random.key(g.seed)
    varied = dataclasses.replace(g, width=width, steps=steps, step_size=step_size, burn_in=steps // 2, record_every=max(steps // 12, 1))
    rows = []
    for fraction in fractions:
        n_train = int(round(fraction * modulus**2))
        row = {"fraction": fraction, "n_train": n_train, "steps": steps, "width": width, "step_size": step_size}
        for start, coupling in (("prior", None), ("learned", full.g)):
            p = network_point(jax.random.fold_in(key, 8_000_000 + n_train), modulus, n_train, 0, beta_full, varied, cache, start_coupling=coupling)
            row[start] = {"test_loss_relative": p["test_loss_relative"], "test_accuracy": p["test_accuracy"],
                          "second_half_test_loss_relative": p["second_half"]["test_loss_relative"], "train_loss": p["train_loss"],
                          "trace": [t["test_loss_relative"] for t in p["trace"]], "seconds": p["seconds"]}
        row["gap_last_record"] = row["learned"]["trace"][-1] - row["prior"]["trace"][-1]
        rows.append(row)
        print(f"two starts P = {modulus}, fraction {fraction:.2f}, N = {width}, {steps} x {step_size:g}: relative test loss trace prior "
              f"{[round(v, 2) for v in row['prior']['trace']]}, learned {[round(v, 2) for v in row['learned']['trace']]}", flush=True)
    return rows


def critical_fraction(rows: list[dict], stored: dict, modulus: int, full) -> dict:
    """Of restricted ensembles only (at N = infinity the fixed point on a training set is unique, docs/theory.md section 9;
    the theory's f_c is ``critical.critical_main``'s): ``f_c`` where ``I_gen - I_mem`` changes sign (linear interpolation; its error from the repeats' s.e. at the two
    bracketing fractions, propagated through the interpolation), spinodals (the generalising branch ceases to exist:
    its learned fraction below half the full table's; the memorising branch: its learned fraction above half), and the
    networks' transition (held-out loss below that of f = 0, prior start) from ``results/modular_grokking/main.json``."""
    fractions = [r["fraction"] for r in rows]
    diff = [r["free_energy_difference"] for r in rows]
    err = [r["free_energy_difference_se"] for r in rows]
    theory, theory_err = float("nan"), float("nan")
    for i in range(1, len(rows)):
        if np.sign(diff[i - 1]) != np.sign(diff[i]) and np.isfinite(diff[i - 1]) and np.isfinite(diff[i]):
            slope = (diff[i] - diff[i - 1]) / (fractions[i] - fractions[i - 1])
            theory = fractions[i - 1] - diff[i - 1] / slope
            theory_err = float(math.hypot(np.nan_to_num(err[i - 1]), np.nan_to_num(err[i])) / abs(slope))
            break
    spinodals = {"generalising_lost_below": None, "memorising_lost_above": None}
    for r in rows:
        if r["generalising_learned_fraction"] < 0.5 * full.learned:
            spinodals["generalising_lost_below"] = r["fraction"]
        if r["memorising_learned_fraction"] > 0.5 * full.learned and spinodals["memorising_lost_above"] is None:
            spinodals["memorising_lost_above"] = r["fraction"]
    nets = stored.get("networks", {}).get(str(modulus), {}).get("transition_loss_below_1", {})
    return {"theory": theory, "theory_err": theory_err, "theory_sign": "I_gen - I_mem across the fractions: " + ", ".join(f"{d:+.3g}" for d in diff),
            "networks": nets.get("mean"), "networks_err": nets.get("se"),
            "networks_definition": "prior-start networks: held-out loss below that of f = 0 (transition_loss_below_1 of "
                                   "results/modular_grokking/main.json; N = 256, 3000 steps, not equilibrated)",
            "spinodals": spinodals, "hysteresis": None,
            "hysteresis_note": "networks from a learned start across the fraction were not run in this session"}
