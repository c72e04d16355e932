"""Linear network, Gaussian inputs, linear teacher: the one case solved in closed form (docs/theory.md section 5).

With ``phi(z) = z``, ``x ~ N(0, I_d)`` and ``y = v . x`` the overlap is ``S(w) = u . w`` with
``u = E[r x]``, so the neuron law is Gaussian,

    rho(w) = N(0, Sigma),   Sigma^-1 = I/sw2 - 2 c u u^T,   normalizable iff g = 2 c sw2 |u|^2 < 1,

and ``u = lambda v`` with ``lambda (1 + beta sa2 sw2 / (1 - g)) = 1``, ``g = beta^2 sa2 sw2 lambda^2 |v|^2``;
loss ``lambda^2 |v|^2 / 2``; the variance of ``w`` along ``v`` is ``sw2 / (1 - g)``, across it ``sw2``.

The normalizability edge: at the fixed point ``g* < 1`` for every beta (``g -> 1`` would force
``lambda -> 0`` and so ``g -> 0``); as ``beta -> inf``, ``g* -> g_inf`` solving ``g = kappa (1 - g)^2``,
``kappa = |v|^2 / (sa2 sw2)``. What crosses the edge are residuals that are *not* the fixed point:
the GP residual ``u_gp = v / (1 + beta sa2 sw2)`` (``g_gp > 1`` once ``beta > 1/(sqrt(kappa) - 1)``
for ``kappa > 1``... precisely when ``beta sqrt(sa2 sw2 kappa) > 1 + beta sa2 sw2``) and the untrained
background ``r = y`` (``g = beta^2 sa2 sw2 |v|^2 > 1``). The benchmark sweeps beta, evaluates
``g`` for all three with ``mft_jax.theory.normalizability.runaway_strength``, shows the solver refusing
the runaway starts (``NonNormalizableError``) and reaching the fixed point by continuation in beta.
It compares loss and ``Cov(w)`` of the solver (grid and importance) and of Langevin networks at
a few widths with the closed form.

Run: ``python -m experiments.linear [--quick] [--config experiments/configs/linear.toml]``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from experiments._common import parse
from mft_jax.cli.config import data_from, load_toml, model_from, section
from mft_jax.errors import NonNormalizableError
from mft_jax.theory.samplers.grid import grid_sampler
from mft_jax.theory.samplers.importance import importance_sampler
from mft_jax.io import pyplot, run_metadata, save_figure, write_json
from mft_jax.theory.normalizability import runaway_strength
from mft_jax.theory.two_layer import solve
from mft_jax.train.joint import langevin_optimizer, train

NAME = "linear"


@dataclasses.dataclass(frozen=True)
class LinearBenchmark:
    """``[benchmark]`` section of configs/linear*.toml."""

    betas: list
    network_betas: list
    widths: list
    grid_size: int = 96
    grid_extent: float = 8.0
    num_samples: int = 200_000
    continuation: int = 32
    beta_start: float = 0.2
    num_seeds: int = 8
    burn_in: int = 6000
    steps: int = 12000
    record_every: int = 500
    step_size: float = 0.005
    seed: int = 0


def exact_lambda(beta: float, sa2: float, sw2: float, v_norm2: float) -> float:
    """Root of ``lambda (1 + beta sa2 sw2 / (1 - beta^2 sa2 sw2 lambda^2 |v|^2)) = 1`` in ``(0, 1)`` (bisection).

    The left side increases from 0 and diverges at the edge ``g = 1``, so the root is unique.
    """
    upper = min(1.0, 1.0 / (beta * math.sqrt(sa2 * sw2 * v_norm2)))
    low, high = 0.0, upper
    for _ in range(200):
        mid = 0.5 * (low + high)
        g = beta**2 * sa2 * sw2 * mid**2 * v_norm2
        value = mid * (1.0 + beta * sa2 * sw2 / (1.0 - g)) - 1.0 if g < 1 else math.inf
        low, high = (mid, high) if value < 0 else (low, mid)
    return 0.5 * (low + high)


def exact_solution(model, v: np.ndarray) -> dict:
    """Closed form at ``model.beta``: lambda, loss, g, Cov(w), and g of the GP and untrained (r = y) starts."""
    v_norm2 = float(v @ v)
    lam = exact_lambda(model.beta, model.sa2, model.sw2, v_norm2)
    u = lam * v
    precision = np.eye(v.size) / model.sw2 - 2 * model.coupling * np.outer(u, u)
    lam_gp = 1.0 / (1.0 + model.beta * model.sa2 * model.sw2)
    return {
        "lambda": lam,
        "loss": 0.5 * lam**2 * v_norm2,
        "g": 2 * model.coupling * model.sw2 * lam**2 * v_norm2,
        "g_gp_start": 2 * model.coupling * model.sw2 * lam_gp**2 * v_norm2,
        "g_feature_start": 2 * model.coupling * model.sw2 * v_norm2,
        "covariance": np.linalg.inv(precision),
        "gp_loss": 0.5 * lam_gp**2 * v_norm2,
    }


def g_infinity(sa2: float, sw2: float, v_norm2: float) -> float:
    """``lim_{beta -> inf} g*``: the root in (0, 1) of ``g = kappa (1 - g)^2``, ``kappa = |v|^2/(sa2 sw2)``."""
    kappa = v_norm2 / (sa2 * sw2)
    return ((2 * kappa + 1) - math.sqrt(4 * kappa + 1)) / (2 * kappa)


def law_covariance(law) -> np.ndarray:
    """``E_rho[w w^T]`` (the mean is 0 by the symmetry w -> -w)."""
    w = law.w
    return np.asarray(law.expectation(w[:, :, None] * w[:, None, :]), dtype=float)


def solver_point(data, model, sampler, key, continuation: int, beta_start: float) -> dict:
    """Solve from the GP start; if that start is past the edge, record the refusal and use continuation (``auto=False``:
    the default solve would escalate by itself, and this benchmark shows the refusal and the continuation explicitly)."""
    record = {"gp_start_refused": None}
    start = time.perf_counter()
    try:
        solution = solve(data, model, sampler, key=key, init="gp", tol=1e-6, max_iter=400, auto=False)
    except NonNormalizableError as error:
        record["gp_start_refused"] = str(error)
        solution = solve(data, model, sampler, key=key, init="gp", tol=1e-6, max_iter=400, continuation=continuation,
                         beta_start=min(beta_start, model.beta), auto=False)
    record.update(
        seconds=time.perf_counter() - start, loss=solution.loss, converged=solution.converged,
        iterations=solution.iterations, covariance=law_covariance(solution.law),
        g=runaway_strength(model, data, solution.residual)[0],
        diagnostics={k: v for k, v in solution.diagnostics.items() if k != "warnings"},
        message=solution.message,
    )
    return record


def feature_start_check(data, model, key) -> str | None:
    """The solver's answer to the untrained background ``r = y``: None or the NonNormalizableError text."""
    try:
        solve(data, model, grid_sampler(16, 8.0), key=key, init="feature", max_iter=1)
    except NonNormalizableError as error:
        return str(error)
    return None


def along_across(covariance, v):
    """Variance of w along the teacher direction v and the mean variance across it: ``(u^T C u, (tr C - u^T C u)/(d - 1))``."""
    covariance = np.asarray(covariance, dtype=float)
    unit = np.asarray(v, dtype=float) / np.linalg.norm(v)
    along = np.einsum("i,...ij,j->...", unit, covariance, unit)
    return along, (np.trace(covariance, axis1=-2, axis2=-1) - along) / (unit.size - 1)


def network_point(key, data, model, bench: LinearBenchmark, width: int, v: np.ndarray) -> dict:
    """Langevin networks at one width: loss and Cov(w) over neurons, time-averaged after the burn-in,
    mean and standard error over the independent seeds."""
    second_moment = lambda p: {"ww": p["w"].T @ p["w"] / p["w"].shape[0]}  # E_neurons[w w^T] of one network
    history = train(key, model, width, data, langevin_optimizer(model, bench.step_size), bench.steps, num_seeds=bench.num_seeds,
                    chunk=bench.record_every, observables=second_moment, progress=False).history
    kept = history["step"] > bench.burn_in
    covariance = history["ww"][kept].mean(axis=0)  # (S, d, d)
    loss = history["loss"][kept].mean(axis=0)  # (S,)
    seeds = bench.num_seeds
    along, across = along_across(covariance, v)  # per seed
    return {
        "width": width, "records": int(kept.sum()),
        "var_along": float(along.mean()), "var_along_se": float(along.std(ddof=1) / math.sqrt(seeds)),
        "var_across": float(across.mean()), "var_across_se": float(across.std(ddof=1) / math.sqrt(seeds)),
        "loss": float(loss.mean()), "loss_se": float(loss.std(ddof=1) / math.sqrt(seeds)),
        "covariance": covariance.mean(axis=0), "covariance_se": covariance.std(axis=0, ddof=1) / math.sqrt(seeds),
    }


def main(argv=None) -> dict:
    args = parse(NAME, __doc__.splitlines()[0], argv)
    raw = load_toml(args.config, {"task", "model", "benchmark"})
    bench = section(LinearBenchmark, raw.get("benchmark"), "benchmark")
    data, base = data_from(raw), model_from(raw)
    v = np.asarray(raw["task"]["teacher"], dtype=float)
    key = jax.random.key(bench.seed)

    sweep = []
    for index, beta in enumerate(bench.betas):
        model = base.replace(beta=float(beta))
        exact = exact_solution(model, v)
        grid = solver_point(data, model, grid_sampler(bench.grid_size, bench.grid_extent), jax.random.fold_in(key, index), bench.continuation, bench.beta_start)
        importance = solver_point(data, model, importance_sampler(bench.num_samples), jax.random.fold_in(key, 1000 + index), bench.continuation, bench.beta_start)
        feature_refused = feature_start_check(data, model, key)
        sweep.append({"beta": float(beta), "exact": exact, "grid": grid, "importance": importance, "feature_start_refused": feature_refused})
        print(f"beta = {beta:8.3g}: g* = {exact['g']:.4f}, loss exact {exact['loss']:.6g}, grid {grid['loss']:.6g}, "
              f"importance {importance['loss']:.6g}; GP start {'refused' if grid['gp_start_refused'] else 'ok'}, "
              f"r = y start {'refused' if feature_refused else 'ok'}", flush=True)

    networks = []
    for index, beta in enumerate(bench.network_betas):
        model = base.replace(beta=float(beta))
        exact = exact_solution(model, v)
        for width in bench.widths:
            start = time.perf_counter()
            point = network_point(jax.random.fold_in(key, 5000 + 100 * index + width), data, model, bench, int(width), v)
            point.update(beta=float(beta), seconds=time.perf_counter() - start, exact_loss=exact["loss"], exact_covariance=exact["covariance"])
            networks.append(point)
            print(f"networks beta = {beta:g}, N = {width}: loss {point['loss']:.5g} +- {point['loss_se']:.2g} "
                  f"(exact {exact['loss']:.5g}) [{point['seconds']:.0f} s]", flush=True)

    results = {
        "config": raw, "teacher": v, "g_infinity": g_infinity(base.sa2, base.sw2, float(v @ v)),
        "sweep": sweep, "networks": networks, "meta": run_metadata(raw, bench.seed),
    }
    write_json(args.out, results)
    results = _jsonable(results)
    print_table(results)
    paths = make_figures(results, args.figures)
    print("figures:", ", ".join(str(p) for p in paths))
    return results


def _jsonable(results: dict) -> dict:
    import json

    from mft_jax.io import _jsonable as to_lists

    return json.loads(json.dumps(to_lists(results)))


def _along(covariance, v):
    along, across = along_across(covariance, v)
    return float(along), float(across)


def print_table(results: dict) -> None:
    v = results["teacher"]
    print("\nlinear teacher, |v|^2 = %.3g, g_inf = %.4f (fixed point stays below the edge g = 1)" % (np.dot(v, v), results["g_infinity"]))
    header = f"{'beta':>7} {'g*':>7} {'g_GP':>7} {'g_r=y':>8} {'loss exact':>11} {'rel.err grid':>12} {'rel.err IS':>11} {'var_v exact':>11} {'grid':>8} {'IS':>8}  GP start / r=y start"
    print(header)
    for point in results["sweep"]:
        exact = point["exact"]
        var_exact, _ = _along(exact["covariance"], v)
        var_grid, _ = _along(point["grid"]["covariance"], v)
        var_is, _ = _along(point["importance"]["covariance"], v)
        gp = "refused->continuation" if point["grid"]["gp_start_refused"] else "ok"
        feature = "refused" if point["feature_start_refused"] else "ok"
        print(f"{point['beta']:7.3g} {exact['g']:7.4f} {exact['g_gp_start']:7.3f} {exact['g_feature_start']:8.3g} {exact['loss']:11.6g} "
              f"{abs(point['grid']['loss'] / exact['loss'] - 1):12.2e} {abs(point['importance']['loss'] / exact['loss'] - 1):11.2e} "
              f"{var_exact:11.5g} {var_grid:8.5g} {var_is:8.5g}  {gp} / {feature}")
    print(f"\n{'beta':>6} {'N':>6} {'loss net':>10} {'+-':>8} {'loss exact':>10} {'var_v net':>10} {'+-':>7} {'var_v exact':>11} {'var_perp net':>12} {'+-':>7} {'exact':>6}")
    for point in results["networks"]:
        exact_v, exact_perp = _along(point["exact_covariance"], v)
        print(f"{point['beta']:6.3g} {point['width']:6d} {point['loss']:10.5g} {point['loss_se']:8.2g} {point['exact_loss']:10.5g} "
              f"{point['var_along']:10.4g} {point['var_along_se']:7.2g} {exact_v:11.4g} {point['var_across']:12.4g} {point['var_across_se']:7.2g} {exact_perp:6.3g}")


def make_figures(results: dict, outdir="figures") -> list:
    """``figures/linear.png``: g and loss vs beta (exact, grid, importance, networks); networks' approach vs width."""
    plt = pyplot()

    outdir = Path(outdir)
    v = np.asarray(results["teacher"], dtype=float)
    sweep = results["sweep"]
    betas = np.array([p["beta"] for p in sweep])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))

    ax = axes[0]
    ax.plot(betas, [p["exact"]["g"] for p in sweep], "k-", label="fixed point $g^*$ (exact)")
    ax.plot(betas, [p["grid"]["g"] for p in sweep], "o", mfc="none", label="fixed point (grid solver)")
    ax.plot(betas, [p["exact"]["g_gp_start"] for p in sweep], "--", label="GP residual")
    ax.plot(betas, [p["exact"]["g_feature_start"] for p in sweep], ":", label="untrained $r = y$")
    refused = [p["beta"] for p in sweep if p["grid"]["gp_start_refused"]]
    if refused:
        ax.plot(refused, [p["exact"]["g_gp_start"] for p in sweep if p["grid"]["gp_start_refused"]], "rx", ms=8, label="solver: NonNormalizableError")
    ax.axhline(1.0, color="r", lw=0.8)
    ax.axhline(results["g_infinity"], color="gray", lw=0.8, ls="-.", label=r"$g_\infty$")
    ax.set(xscale="log", yscale="log", xlabel=r"$\beta$", ylabel=r"$g = 2 c\, s_w^2 |u|^2$ (edge at 1)", title="normalizability")
    ax.legend(fontsize=7)

    ax = axes[1]
    ax.plot(betas, [p["exact"]["loss"] for p in sweep], "k-", label="mean field (exact)")
    ax.plot(betas, [p["exact"]["gp_loss"] for p in sweep], "k--", label="GP")
    ax.plot(betas, [p["grid"]["loss"] for p in sweep], "o", mfc="none", label="solver, grid")
    ax.plot(betas, [p["importance"]["loss"] for p in sweep], "s", mfc="none", ms=4, label="solver, importance")
    for beta in sorted({p["beta"] for p in results["networks"]}):
        points = [p for p in results["networks"] if p["beta"] == beta]
        widest = max(points, key=lambda p: p["width"])
        ax.errorbar([beta], [widest["loss"]], [widest["loss_se"]], fmt="^", color="C3", label=f"networks N = {widest['width']}" if beta == results["networks"][0]["beta"] else None)
    ax.set(xscale="log", yscale="log", xlabel=r"$\beta$", ylabel="loss $L$", title=r"loss $\lambda^2|v|^2/2$")
    ax.legend(fontsize=7)

    ax = axes[2]
    for beta in sorted({p["beta"] for p in results["networks"]}):
        points = sorted([p for p in results["networks"] if p["beta"] == beta], key=lambda p: p["width"])
        widths = np.array([p["width"] for p in points])
        err = np.array([abs(p["loss"] / p["exact_loss"] - 1) for p in points])
        se = np.array([p["loss_se"] / p["exact_loss"] for p in points])
        ax.errorbar(widths, err, se, fmt="o-", label=rf"loss, $\beta$ = {beta:g}")
        var = np.array([p["var_along"] / _along(p["exact_covariance"], v)[0] - 1 for p in points])
        var_se = np.array([p["var_along_se"] / _along(p["exact_covariance"], v)[0] for p in points])
        ax.errorbar(widths, np.abs(var), var_se, fmt="s--", label=rf"Var$(w\cdot\hat v)$, $\beta$ = {beta:g}")
    ax.plot(widths, 1.0 / widths, "k:", lw=0.8, label="1/N")
    ax.set(xscale="log", yscale="log", xlabel="width N", ylabel="|network / exact - 1|", title="Langevin networks vs theory")
    ax.legend(fontsize=7)
    return [save_figure(fig, outdir / f"{NAME}.png", dpi=120)]


if __name__ == "__main__":
    main()
