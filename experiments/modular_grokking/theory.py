"""The exact infinite-width theory on the training sets (tempered, pooled MCMC), its full-table check, and networks
started in its law."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import jax
import numpy as np

from pathlib import Path
from mft_jax.analysis.stats import mean_se
from mft_jax.theory.background import Background
from mft_jax.errors import ConfigError
from mft_jax.neurons import NeuronLaw
from mft_jax.theory.samplers.pooled import pooled_sampler
from mft_jax.theory.samplers.tempered import tempered_sampler
from mft_jax.theory.two_layer import solve
from mft_jax.tasks import make_data, make_split
from experiments.modular_grokking.config import GrokkingSection, TheorySection, TheoryStartSection
from experiments.modular_grokking.networks import model_at, network_point, summarise, test_metrics


def theory_sampler(t: TheorySection, chains: int | None = None, pool: int | None = None):
    """``[theory]``'s sampler; ``chains``, ``pool``: other than ``t.chains``, ``t.pool`` (the pool check)."""
    return pooled_sampler(tempered_sampler(chains or t.chains, t.steps, num_warmup=t.warmup, num_levels=t.levels,
                                           min_inverse_temperature=t.min_inverse_temperature), pool or t.pool)


def discrepancy(residual, y) -> tuple[float, float]:
    """``a = <r, y>/<y, y>`` and the off-target part ``|r - a y|/|a y|`` of a residual (P, C)."""
    r, y = np.asarray(residual, float), np.asarray(y, float)
    a = float(np.sum(r * y) / np.sum(y * y))
    return a, float(np.linalg.norm(r - a * y) / np.linalg.norm(a * y))


def theory_point(modulus: int, n_train: int | None, split: int, beta_full: float, a_full: float, g: GrokkingSection,
                 t: TheorySection, cache: Path) -> dict:
    """The exact theory on one split (``n_train=None``: the full table, where ``r = a y`` with the exact per-mode ``a``
    is the answer): ``t.keys`` independent solves; held-out metrics of each solve's prediction, the discrepancy
    ``a = <r, y>/<y, y>`` on the training pairs; cached as JSON.

    Two predictions from the solve's final law (kernel ``K``) and residual iterate ``r``, equal at a fixed point:
    ``f = beta sa2 K(x, X) G(r)`` with ``G(r) = (I + beta sa2 K Q)^-1 y`` the residual that law imposes (kernel regression
    with the law's kernel: ``f = y - G(r)`` on the training pairs; the reported one), and ``f = beta sa2 K(x, X) r``
    (``Solution.predict``; ``"at_iterate"``). The map is steep and the iterate stays ~0.6 from ``G(r)`` (module
    docstring), and the second amplifies that gap along the kernel's large eigenvalues: on the full table, where the
    truth on the training pairs is ``f = (1 - a) y``, it is off by a relative loss of ~17 (``full_table_check``)."""
    tag = "full" if n_train is None else f"n{n_train}_s{split}"
    path = cache / (f"theory_P{modulus}_beta{beta_full:g}_{tag}_M{t.chains}x{t.levels}_b{t.min_inverse_temperature:g}"
                    f"_pool{t.pool}_d{t.damping:g}_k{t.keys}_consistent.json")
    if path.is_file():
        return json.loads(path.read_text())
    if n_train is None:
        data = make_data("modular_addition", modulus=modulus)
        test, model = data, model_at(modulus, modulus**2, beta_full, g)
    else:
        data, test = make_split("modular_addition", modulus=modulus, n_train=n_train, seed=g.seed + split)
        model = model_at(modulus, n_train, beta_full, g)
    solves = []
    for k in range(t.keys):
        clock = time.perf_counter()
        sol = solve(data, model, theory_sampler(t), key=jax.random.key(1000 + k), init=a_full * data.y, damping=t.damping,
                    anderson=0, tol=t.tol, max_iter=t.max_iter, auto=False, stochastic=False)
        a, off_target = discrepancy(sol.residual, data.y)
        info = sol.diagnostics
        background = sol.background()
        consistent = background.residual()  # G(r) of the final law
        prediction = np.asarray(background.predict(test.x, consistent), float)
        at_iterate = np.asarray(sol.predict(test.x), float)
        # the pooled law is t.pool laws of t.chains particles (slot order): the spread of the per-law predictions (each
        # with its own G) gives the sampling error of the pooled one (a lower bound: successive laws are correlated)
        parts = [Background(model, NeuronLaw.from_samples(w), data) for w in sol.law.w.reshape(t.pool, t.chains, -1)]
        per_law = np.stack([np.asarray(b.predict(test.x), float) for b in parts])  # at its own G
        noise = 0.5 * float(np.mean(np.sum(per_law.var(axis=0, ddof=1) / t.pool, axis=1)))
        solves.append({"key": 1000 + k, **test_metrics(prediction, test), "a_train": a, "prediction": prediction.tolist(),
                       "a_train_consistent": discrepancy(consistent, data.y)[0],
                       "at_iterate": test_metrics(at_iterate, test),
                       "prediction_noise_loss_relative": noise / (0.5 * (modulus - 1) / modulus),
                       "off_target": off_target,
                       "converged": bool(sol.converged), "message": sol.message, "iterations": len(sol.history["change"]),
                       "final_change": float(info["change"]), "swap_rate": float(info["swap_rate"]),
                       "round_trips": float(info["round_trips"]), "acceptance_rate": float(info["acceptance_rate"]),
                       "warnings": list(info["warnings"]), "seconds": time.perf_counter() - clock})
    record = {"P": modulus, "n_train": modulus**2 if n_train is None else n_train, "split": split, "beta": model.beta,
              "solves": solves, "load_average": os.getloadavg()[0]}
    for metric in ("test_loss", "test_loss_relative", "test_accuracy", "a_train"):
        record[metric], record[metric + "_se"] = mean_se([s_[metric] for s_ in solves])
    if len(solves) > 1:  # the keys' mean prediction, and how much of the keys' difference is noise: E|f_0 - f_1|^2 / 4
        f = np.array([s_["prediction"] for s_ in solves])
        record["mean_prediction"] = test_metrics(f.mean(axis=0), test)
        record["key_difference_loss_relative"] = float(0.5 * np.mean(np.sum((f[0] - f[1]) ** 2, axis=1)) / 4) / (0.5 * (modulus - 1) / modulus)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return record


def pool_check(modulus: int, t: TheorySection, g: GrokkingSection, beta_full: float, a_full: float) -> list[dict]:
    """The map at the exact full-table fixed point ``r = a_full y``: ``G(r)``'s discrepancy ``a_G = <G, y>/<y, y>`` (must be
    ``a_full``) and its off-target part, from ``chains`` tempered chains pooled over ``pool`` updates (after ``pool + 2``
    updates at that residual): the O(1/M) bias of the nonlinear residual solve, and what pooling does to it."""
    data = make_data("modular_addition", modulus=modulus)
    model = model_at(modulus, modulus**2, beta_full, g)
    out = []
    configs = [(chains, 1) for chains in t.pool_check_chains] + [(t.pool_check_chains[-1], t.pool)]
    for chains, pool in configs:
        sampler = theory_sampler(t, chains, pool)
        state = sampler.init(jax.random.key(7), model, data)
        for _ in range(pool + 2):
            law, state = sampler.update(state, model, data, a_full * data.y)
        a_g, off_target = discrepancy(Background(model, law, data).residual(), data.y)
        out.append({"chains": chains, "pool": pool, "a_G": a_g, "a_exact": a_full, "off_target": off_target})
        print(f"  pool check: {chains} chains x {pool} updates: a_G = {a_g:.4f} (exact {a_full:.4f}), off-target "
              f"{out[-1]['off_target']:.3f}", flush=True)
    return out


def check_theory_moduli(t: TheorySection, g: GrokkingSection) -> None:
    """``[theory]`` runs on the splits of ``[grokking]``'s networks at their full-table coupling: its P must be theirs."""
    missing = [m for m in t.moduli if m not in g.moduli]
    if missing or not t.moduli:
        raise ConfigError(f"[theory] moduli must be a nonempty subset of [grokking] moduli {list(g.moduli)} (the training-set "
                          f"theory runs on those networks' splits at their full-table coupling); got {list(t.moduli)}")


def theory_section(t: TheorySection, g: GrokkingSection, results: dict, cache: Path) -> dict:
    """Per P of ``t.moduli``: ``theory_at`` (keyed by ``str(P)``; ``main`` has checked them with ``check_theory_moduli``)."""
    return {str(modulus): theory_at(modulus, t, g, results, cache) for modulus in t.moduli}


def theory_at(modulus: int, t: TheorySection, g: GrokkingSection, results: dict, cache: Path) -> dict:
    """The exact theory on the training sets of ``modulus`` (the splits of the networks), and first, if asked, the same
    solver route on the full table against the exact per-mode ``a`` (its check)."""
    full = results["full_table_theory"][str(modulus)]
    beta_full = full["beta"]
    out = {"P": modulus, "settings": dataclasses.asdict(t), "method": "mft_jax.theory.two_layer.solve (auto=False, anderson=0) with "
           "pooled_sampler(tempered_sampler(...)); start r = a_full y; errors: spread over independent solves (keys)"}
    if t.full_table_check:
        out["pool_check"] = pool_check(modulus, t, g, beta_full, full["a"])
        check = theory_point(modulus, None, 0, beta_full, full["a"], g, t, cache)
        out["full_table_check"] = {**check, "a_exact": full["a"]}
        print(f"theory P = {modulus}, full table: a = {check['a_train']:.4f} +- {check['a_train_se']:.2g} by the 2P-dimensional "
              f"solve vs {full['a']:.4f} exact per mode ({', '.join(s_['message'][:60] for s_ in check['solves'])})", flush=True)
    per_fraction, points = [], []
    for fraction in t.fractions:
        n_train = int(round(fraction * modulus**2))
        records = [theory_point(modulus, n_train, split, beta_full, full["a"], g, t, cache) for split in range(t.splits)]
        per_fraction.append(records)
        points.append({"fraction": fraction, "n_train": n_train, "splits": records})
        r = records[0]
        print(f"theory P = {modulus}, fraction {fraction:.2f} (n = {n_train}): relative test loss {r['test_loss_relative']:.3f} "
              f"+- {r['test_loss_relative_se']:.2g} (sampling noise in it >= {np.mean([s_['prediction_noise_loss_relative'] for s_ in r['solves']]):.3g}; "
              f"keys' mean {r.get('mean_prediction', {}).get('test_loss_relative', float('nan')):.3f}, noise in the keys' "
              f"difference {r.get('key_difference_loss_relative', float('nan')):.3g}), accuracy {r['test_accuracy']:.3f}, a_train {r['a_train']:.3f}; converged "
              f"{[s_['converged'] for s_ in r['solves']]} in {[s_['iterations'] for s_ in r['solves']]} iterations "
              f"[{sum(s_['seconds'] for s_ in r['solves']):.0f} s]", flush=True)
    out.update(summarise(t.fractions, per_fraction), points=points)
    return out


def theory_start(ts: TheoryStartSection, g: GrokkingSection, results: dict, key, cache: Path) -> dict:
    """``[theory_start]``: per fraction, the network on split 0 from the full-table theory's law (``network_point`` with
    ``start_coupling``), next to the prior-start networks of ``[grokking]`` and the exact theory on that split."""
    full = results["full_table_theory"][str(ts.modulus)]
    theory = {round(p["fraction"], 6): p["splits"][0] for p in results.get("theory", {}).get(str(ts.modulus), {}).get("points", [])}
    rows = []
    for fraction, steps in zip(ts.fractions, ts.steps):
        n_train = int(round(fraction * ts.modulus**2))
        varied = dataclasses.replace(g, width=ts.width, steps=steps, step_size=ts.step_size, burn_in=steps // 2,
                                     record_every=max(steps // 12, 1))
        p = network_point(jax.random.fold_in(key, 8_000_000 + n_train), ts.modulus, n_train, 0, full["beta"], varied, cache,
                          start_coupling=full["g"])
        th = theory.get(round(fraction, 6), {})
        row = {"fraction": fraction, "n_train": n_train, "steps": steps, "time": steps * ts.step_size,
               **{k: p[k] for k in ("test_loss_relative", "test_accuracy", "train_loss", "seconds")},
               "test_loss_relative_trace": [t["test_loss_relative"] for t in p["trace"]], "steps_recorded": p["steps_recorded"],
               "second_half_test_loss_relative": p["second_half"]["test_loss_relative"],
               "theory_test_loss_relative": th.get("test_loss_relative"), "theory_test_loss_relative_se": th.get("test_loss_relative_se")}
        rows.append(row)
        print(f"theory start P = {ts.modulus}, fraction {fraction:.2f} (n = {n_train}), N = {ts.width}, {steps} x {ts.step_size:g} steps: "
              f"relative test loss {row['test_loss_relative']:.3f} (second half {row['second_half_test_loss_relative']:.3f}), accuracy "
              f"{row['test_accuracy']:.3f}, train loss {row['train_loss']:.3g}; exact theory on the set "
              f"{th.get('test_loss_relative', float('nan')):.3g} [{p['seconds']:.0f} s]", flush=True)
    return {"P": ts.modulus, "width": ts.width, "step_size": ts.step_size, "start_coupling": full["g"], "rows": rows}
