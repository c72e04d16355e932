"""Modular addition with square activation (Rubin, Seroussi & Ringel, ICLR 2024), scoped to a CPU.

Inputs are two-hot ``x = e_n (+) e_m`` in R^(2P), targets ``y_p = delta_{p,(n+m) mod P} - 1/P``;
``phi(z) = z^2``. Three findings, each computed:

1. Non-normalizability. ``S(w) = sum_mu q_mu r_mu (w.x_mu)^2`` is quadratic in w, so ``c |S(w)|^2`` is
   quartic and beats the prior ``|w|^2/(2 sw2)``: ``rho`` has no finite mass for any nonzero
   residual (docs/theory.md section 3). ``solve`` says so (``NonNormalizableError``, message recorded).
2. The metastable law in the well around the origin, which Rubin et al. describe: the importance
   sampler draws from the prior and never reaches the runaway tail (beyond the barrier where
   ``c |S|^2`` overtakes the prior); ``solve(..., normalizability="metastable")`` iterates that law.
   A finite network is proper (``exp(-beta N L) <= 1``) and Langevin networks started at the prior
   stay in the same well for the run; they are compared with it.
3. Checks: the NNGP kernel ``K(x, x') = E_prior[(w.x)^2 (w.x')^2] = sw2^2 [|x|^2 |x'|^2 + 2 (x.x')^2]``
   (docs/theory.md's ``sa2 [K_xx K_x'x' + 2 K_xx'^2]`` with ``K_xx' = sw2 x.x' = sw2 (delta_nn' + delta_mm')`` is
   the network-output covariance, i.e. ``sa2`` times ours) against ``mft_jax.gp.nngp_kernel`` and the
   importance law at residual 0; the concentration of neurons on single Fourier modes (fraction of
   ``|w|^2`` in the top nonzero Fourier mode of each half, modes k and P-k paired) for theory, networks and
   prior; the test loss on the held-out pairs vs training fraction for the GP, the metastable mean-field
   solution and the networks (the trivial predictor f = 0 scores ``(P - 1) / (2 P)``).

We keep ``beta sa2 = gp_strength`` fixed and vary ``c = beta^2 sa2 / 2``
(``beta = 2 c / gp_strength``, ``sa2 = gp_strength^2 / (2 c)``). Missing (CPU scope): large P,
the grokking dynamics in time, the metastable state's lifetime vs N.

Run: ``python benchmarks/modular_addition.py [--quick] [--config configs/modular_addition.toml]``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from benchmark_cli import parse  # noqa: E402
from mft_jax.config import load_toml, model_from, section  # noqa: E402
from mft_jax.errors import NonNormalizableError  # noqa: E402
from mft_jax.foreground.importance import importance_sampler  # noqa: E402
from mft_jax.gp import gp_predict, nngp_kernel  # noqa: E402
from mft_jax.io import run_metadata, write_json  # noqa: E402
from mft_jax.solver import gp_background, solve  # noqa: E402
from mft_jax.tasks import make_data  # noqa: E402
from mft_jax.train.joint import langevin_optimizer, train  # noqa: E402
from mft_jax.train.network import predict  # noqa: E402

NAME = "modular_addition"


@dataclasses.dataclass(frozen=True)
class ModularBenchmark:
    """``[benchmark]`` section of configs/modular_addition*.toml."""

    couplings: list
    train_fractions: list
    network_fractions: list
    gp_strength: float = 10.0
    num_samples: int = 65536
    tol: float = 1e-4
    max_iter: int = 200
    network_coupling: float = 5.0
    width: int = 256
    num_seeds: int = 4
    steps: int = 6000
    burn_in: int = 3000
    record_every: int = 500
    step_size: float = 0.002
    seed: int = 0


def model_at(base, c: float, gp_strength: float):
    """``beta sa2 = gp_strength`` and ``c = beta^2 sa2 / 2``."""
    return base.replace(beta=2 * c / gp_strength, sa2=gp_strength**2 / (2 * c))


def top_mode_fraction(w: jax.Array, modulus: int) -> jax.Array:
    """Per neuron: fraction of ``|w|^2`` in the top nonzero Fourier mode, averaged over the n- and m-halves.

    Mode k pairs the DFT coefficients k and P - k (one real cos/sin pair); DC counts in the total only.
    """
    halves = jnp.stack([w[:, :modulus], w[:, modulus:]], axis=1)  # (M, 2, P)
    power = jnp.abs(jnp.fft.fft(halves, axis=-1)) ** 2
    ks = jnp.arange(1, modulus // 2 + 1)
    paired = power[..., ks] + jnp.where(ks == modulus - ks, 0.0, power[..., modulus - ks])
    return jnp.mean(jnp.max(paired, axis=-1) / jnp.sum(power, axis=-1), axis=1)


def held_out(full, train_set):
    """The pairs of the full table that are not in ``train_set`` (rows of the two-hot table)."""
    seen = {tuple(np.asarray(row).round().astype(int)) for row in np.asarray(train_set.x)}
    mask = np.array([tuple(row) not in seen for row in np.asarray(full.x).round().astype(int)])
    return full.x[mask], full.y[mask]


def test_loss(prediction, y) -> float:
    """``1/2 mean_mu |f(x_mu) - y_mu|^2`` over held-out pairs."""
    return float(0.5 * np.mean(np.sum((np.asarray(prediction) - np.asarray(y)) ** 2, axis=1)))


def kernel_check(full, model, key, num_samples) -> dict:
    """Closed form ``sw2^2 (|x|^2|x'|^2 + 2 (x.x')^2)`` vs mft_jax.gp vs the importance law at residual 0."""
    x = np.asarray(full.x, dtype=float)
    gram = x @ x.T
    closed = model.sw2**2 * (np.outer(np.diag(gram), np.diag(gram)) + 2 * gram**2)
    library = np.asarray(nngp_kernel(model.activation, model.sw2, full.x, full.x), dtype=float)
    sampled = np.asarray(gp_background(full, model, importance_sampler(num_samples), key=key).kernel(), dtype=float)
    distinct = {int(v): float(closed[np.argwhere(np.round(gram) == v)[0][0], np.argwhere(np.round(gram) == v)[0][1]]) for v in (0, 1, 2)}
    return {
        "closed_form_by_overlap": distinct,
        "max_rel_error_gp_module": float(np.max(np.abs(library - closed)) / np.max(closed)),
        "max_rel_error_importance": float(np.max(np.abs(sampled - closed)) / np.max(closed)),
        "importance_samples": num_samples,
    }


def theory_point(train_set, x_test, y_test, model, bench, key, modulus) -> dict:
    """Solver refusal (words), then the metastable law: train/test loss, ESS, Fourier concentration."""
    record = {}
    try:
        solve(train_set, model, importance_sampler(256), key=key, max_iter=1)
        record["refusal"] = None
    except NonNormalizableError as error:
        record["refusal"] = str(error)
    start = time.perf_counter()
    solution = solve(train_set, model, importance_sampler(bench.num_samples), key=key, normalizability="metastable",
                     tol=bench.tol, max_iter=bench.max_iter)
    fraction = top_mode_fraction(solution.law.w, modulus)
    record.update(
        converged=solution.converged, iterations=solution.iterations, train_loss=solution.loss,
        test_loss=test_loss(solution.predict(x_test), y_test), ess=float(solution.diagnostics.get("ess", float("nan"))),
        top_mode_fraction=float(solution.law.expectation(fraction)), seconds=time.perf_counter() - start,
        message=solution.message,
    )
    return record


def network_point(key, train_set, x_test, y_test, model, bench, modulus) -> dict:
    """Langevin networks from the prior, after burn-in: the test loss of each network (finite-N posterior
    fluctuations of f included, ~ sa2 K / N), the test loss of the posterior-mean predictor (time and seed
    average of f: the quantity the N -> inf theory predicts) and the Fourier concentration."""
    observe = lambda p: {
        "output": predict(p, model, x_test),
        "top_mode_fraction": jnp.mean(top_mode_fraction(p["w"], modulus)),
    }
    history = train(key, model, bench.width, train_set, langevin_optimizer(model, bench.step_size), bench.steps,
                    num_seeds=bench.num_seeds, chunk=bench.record_every, observables=observe, progress=False).history
    kept = history["step"] > bench.burn_in
    outputs = history["output"][kept]  # (K, S, n_test, P)
    per_network = 0.5 * np.mean(np.sum((outputs - np.asarray(y_test)) ** 2, axis=-1), axis=-1).mean(axis=0)  # (S,)
    seeds = bench.num_seeds
    out = {"test_loss_mean_predictor": test_loss(outputs.mean(axis=(0, 1)), y_test),
           "test_loss": float(per_network.mean()), "test_loss_se": float(per_network.std(ddof=1) / math.sqrt(seeds))}
    for name in ("loss", "top_mode_fraction"):
        per_seed = history[name][kept].mean(axis=0)
        out[name] = float(per_seed.mean())
        out[name + "_se"] = float(per_seed.std(ddof=1) / math.sqrt(seeds))
    return out


def main(argv=None) -> dict:
    args = parse(NAME, __doc__.splitlines()[0], argv)
    raw = load_toml(args.config, {"task", "model", "benchmark"})
    bench = section(ModularBenchmark, raw.get("benchmark"), "benchmark")
    base = model_from(raw)
    modulus = int(raw["task"].get("modulus", 11))
    full = make_data("modular_addition", modulus=modulus)
    key = jax.random.key(bench.seed)
    prior_fraction = float(jnp.mean(top_mode_fraction(jax.random.normal(key, (65536, 2 * modulus)), modulus)))
    kernels = kernel_check(full, base, jax.random.fold_in(key, 1), bench.num_samples)
    print(f"NNGP kernel: closed form by x.x' = {kernels['closed_form_by_overlap']}; max rel. error mft_jax.gp "
          f"{kernels['max_rel_error_gp_module']:.2e}, importance ({bench.num_samples} draws) {kernels['max_rel_error_importance']:.2e}", flush=True)

    sweep = []
    for index, fraction in enumerate(bench.train_fractions):
        n_train = max(1, round(fraction * modulus**2))
        train_set = make_data("modular_addition", modulus=modulus, n_train=n_train, seed=bench.seed + index)
        x_test, y_test = held_out(full, train_set)
        gp_model = model_at(base, bench.couplings[0], bench.gp_strength)  # the GP depends on beta sa2 only
        point = {"fraction": fraction, "n_train": n_train, "n_test": int(x_test.shape[0]),
                 "gp_test_loss": test_loss(gp_predict(train_set, gp_model, x_test), y_test), "theory": [], "networks": None}
        for c in bench.couplings:
            record = theory_point(train_set, x_test, y_test, model_at(base, float(c), bench.gp_strength), bench, jax.random.fold_in(key, 100 + index), modulus)
            record["c"] = float(c)
            point["theory"].append(record)
            print(f"fraction {fraction:.2f} (n_train {n_train}), c = {c:g}: GP test {point['gp_test_loss']:.4f}, metastable MF test "
                  f"{record['test_loss']:.4f}, train {record['train_loss']:.4g}, ESS {record['ess']:.0f}, top-mode fraction "
                  f"{record['top_mode_fraction']:.3f} [{record['seconds']:.0f} s]", flush=True)
        if fraction in bench.network_fractions:
            model = model_at(base, bench.network_coupling, bench.gp_strength)
            start = time.perf_counter()
            point["networks"] = network_point(jax.random.fold_in(key, 500 + index), train_set, x_test, y_test, model, bench, modulus)
            point["networks"]["c"] = bench.network_coupling
            print(f"networks N = {bench.width}, c = {bench.network_coupling:g}: test {point['networks']['test_loss']:.4f} +- "
                  f"{point['networks']['test_loss_se']:.2g} (posterior-mean predictor {point['networks']['test_loss_mean_predictor']:.4f}), top-mode fraction {point['networks']['top_mode_fraction']:.3f} "
                  f"[{time.perf_counter() - start:.0f} s]", flush=True)
        sweep.append(point)

    results = {"config": raw, "modulus": modulus, "trivial_test_loss": (modulus - 1) / (2 * modulus),
               "prior_top_mode_fraction": prior_fraction, "kernel_check": kernels, "sweep": sweep,
               "meta": run_metadata(raw, bench.seed)}
    write_json(Path(args.results) / f"{NAME}.json", results)
    print_table(results)
    paths = make_figures(results, args.figures)
    print("figures:", ", ".join(str(p) for p in paths))
    return results


def print_table(results: dict) -> None:
    print(f"\nmodular addition P = {results['modulus']}, square activation; trivial test loss {results['trivial_test_loss']:.4f}, "
          f"prior top-mode fraction {results['prior_top_mode_fraction']:.3f}")
    refusal = next((t["refusal"] for p in results["sweep"] for t in p["theory"] if t["refusal"]), None)
    print(f"solver without opt-in: {refusal}")
    print(f"{'frac':>5} {'n_tr':>5} {'c':>6} {'GP test':>8} {'MF test':>8} {'MF train':>9} {'ESS':>7} {'top mode':>8} | {'net test':>9} {'+-':>6} {'net mean-f test':>15} {'net top':>8} {'+-':>6}")
    for p in results["sweep"]:
        for t in p["theory"]:
            net = p["networks"] if p["networks"] and p["networks"]["c"] == t["c"] else None
            tail = f"{net['test_loss']:9.4f} {net['test_loss_se']:6.2g} {net['test_loss_mean_predictor']:15.4f} {net['top_mode_fraction']:8.3f} {net['top_mode_fraction_se']:6.2g}" if net else ""
            print(f"{p['fraction']:5.2f} {p['n_train']:5d} {t['c']:6.3g} {p['gp_test_loss']:8.4f} {t['test_loss']:8.4f} {t['train_loss']:9.4g} "
                  f"{t['ess']:7.0f} {t['top_mode_fraction']:8.3f} | {tail}")


def make_figures(results: dict, outdir="figures") -> list:
    """``figures/modular_addition.png``: test loss and Fourier concentration vs training fraction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    sweep = results["sweep"]
    fractions = np.array([p["fraction"] for p in sweep])
    couplings = [t["c"] for t in sweep[0]["theory"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    ax = axes[0]
    ax.plot(fractions, [p["gp_test_loss"] for p in sweep], "k--o", label="GP (NNGP kernel)")
    from mft_jax.plots import order_parameter_curve

    for i, c in enumerate(couplings):
        order_parameter_curve(fractions, [p["theory"][i]["test_loss"] for p in sweep], xlabel="training fraction",
                              ylabel="test loss (held-out pairs)", label=f"metastable MF, c = {c:g}", ax=ax)
    nets = [p for p in sweep if p["networks"]]
    if nets:
        ax.plot([p["fraction"] for p in nets], [p["networks"]["test_loss_mean_predictor"] for p in nets],
                "^", color="C3", ms=8, label=f"Langevin networks (posterior-mean f), c = {nets[0]['networks']['c']:g}")
    ax.axhline(results["trivial_test_loss"], color="gray", lw=0.8, label="f = 0")
    ax.set(xlabel="training fraction", ylabel="test loss (held-out pairs)", title=f"modular addition, P = {results['modulus']}")
    ax.legend(fontsize=7)
    ax = axes[1]
    for i, c in enumerate(couplings):
        order_parameter_curve(fractions, [p["theory"][i]["top_mode_fraction"] for p in sweep], xlabel="training fraction",
                              ylabel="|w|$^2$ fraction in the top Fourier mode", label=f"metastable MF, c = {c:g}", ax=ax)
    if nets:
        ax.errorbar([p["fraction"] for p in nets], [p["networks"]["top_mode_fraction"] for p in nets], [p["networks"]["top_mode_fraction_se"] for p in nets],
                    fmt="^", color="C3", ms=8, label="Langevin networks")
    ax.axhline(results["prior_top_mode_fraction"], color="gray", lw=0.8, label="prior")
    ax.set(xlabel="training fraction", ylabel="|w|$^2$ fraction in the top Fourier mode", title="single-Fourier-mode neurons")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = outdir / f"{NAME}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]


if __name__ == "__main__":
    main()
