"""Rubin, Seroussi & Ringel (ICLR 2024) erf teacher-student, at a d that runs on a CPU.

Task: ``x ~ N(0, I_d)``, ``y = H1(w*.x) + eps H3(w*.x)``, ``H3(z) = z^3 - 3 z``, ``|w*| = 1``, eps = -0.3.

Map of their conventions onto docs/theory.md section 2 (ours: ``f = (1/N) sum_i a_i phi(w_i.x)``,
``p ~ exp(-beta N L - sum |a|^2/(2 sa2) - sum |w|^2/(2 sw2))``, ``L = 1/2 sum q (f - y)^2``, ``q = 1/n``):

- theirs: ``f = sum_c a_c erf(w_c.x)``, ``a_c ~ N(0, sigma_a^2/N)``, ``w_c ~ N(0, sigma_w^2/d I)``,
  likelihood ``exp(-sum_mu (f(x_mu) - y_mu)^2 / (2 sigma^2))`` over n samples.
- readout: ``a_c = a_i / N``, so ``a_i ~ N(0, N sigma_a^2)``: **sa2 = N sigma_a^2**; **sw2 = sigma_w^2 / d**.
- likelihood: ``sum_mu (f - y)^2/(2 sigma^2) = (n/sigma^2) L``; ours is ``beta N L``: **beta N = n / sigma^2**.
- coupling: ``c = beta^2 sa2 / 2 = n^2 sigma_a^2 / (2 sigma^4 N) = u d / 2`` with
  ``u = n^2 sigma_a^2 / (sigma^4 d N)``. Single-neuron law:
  ``rho(w) ~ exp(d [-|w|^2/(2 sigma_w^2) + (u/2) S(w)^2])``: both terms scale with d.
- GP part: ``beta sa2 = n sigma_a^2 / sigma^2`` (no N). In their limit (N -> inf at fixed u, so
  ``N ~ n^2``) ``beta sa2 = u sigma^2 d N / n -> inf``: the GP ridge vanishes; with n ~ d samples the GP
  learns the linear part H1 (kernel eigenvalue ~ 1/d) but not eps H3 (~ 1/d^3): the residual the
  neurons feel is ``r ~ eps H3(w*.x)``. Here (population by Gauss-Hermite quadrature, d = 4) we pick
  ``beta sa2 = gp_strength`` so that H1 is learnt and H3 is not (printed: the H1/H3 coefficients of the
  GP residual), and sweep u with ``beta = 2 c / gp_strength``, ``sa2 = gp_strength^2 / (2 c)``.

Computed: for each u the fixed point from the GP start and from a feature-learning start
(``solve_branches``, importance sampler), both free energies, the order parameter ``q = w.w*`` (its law);
Langevin networks (their posterior at finite N) at a few couplings; and the d -> inf saddle point of the
same single-neuron law, ``phi_u(q) = -q^2/(2 sigma_w^2) + (u/2) S(q)^2`` with the perpendicular part
``|w_perp|^2 -> sigma_w^2`` integrated out, ``S(q) = a3 E[H3(z) erf(q z / sqrt(1 + 2 sigma_w^2))]``,
``E[H3(z) erf(k z)] = -(4/sqrt(pi)) k^3 / (1 + 2 k^2)^(3/2)``: its first-order jump (u_c, where the
q > 0 maximum of phi_u reaches phi_u(0) = 0) and spinodal (where it first appears).

Run: ``python benchmarks/teacher_student.py [--quick] [--config configs/teacher_student.toml]``.
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
from mft_jax.config import data_from, load_toml, model_from, section  # noqa: E402
from mft_jax.foreground.importance import importance_sampler  # noqa: E402
from mft_jax.io import run_metadata, write_json  # noqa: E402
from mft_jax.neurons import NeuronLaw  # noqa: E402
from mft_jax.solver import solve_branches  # noqa: E402
from mft_jax.tasks import hermite3  # noqa: E402
from mft_jax.train.joint import langevin_optimizer, train  # noqa: E402

NAME = "teacher_student"
PAPER_U_C = 30.2  # Rubin, Seroussi & Ringel (ICLR 2024), large d
Q_BINS = np.linspace(-3.0, 3.0, 61)  # histogram bins for q = w.w*


@dataclasses.dataclass(frozen=True)
class TeacherStudentBenchmark:
    """``[benchmark]`` section of configs/teacher_student*.toml."""

    couplings_u: list
    network_u: list
    widths: list
    gp_strength: float = 100.0
    num_samples: int = 16384
    tol: float = 1e-4
    max_iter: int = 200
    num_seeds: int = 4
    steps: int = 8000
    burn_in: int = 4000
    record_every: int = 500
    step_size: float = 0.02
    seed: int = 0


def model_at(base, u: float, d: int, gp_strength: float):
    """``c = u d / 2``, ``beta sa2 = gp_strength``: ``beta = 2 c / gp_strength``, ``sa2 = gp_strength^2 / (2 c)``."""
    c = 0.5 * u * d
    return base.replace(beta=2 * c / gp_strength, sa2=gp_strength**2 / (2 * c))


def hermite_coefficients(data, residual) -> dict:
    """Projections of a residual on H1(z) and H3(z), z = w*.x = x_0 (the task's default teacher), in the data measure."""
    q, r, z = (np.asarray(a, dtype=float) for a in (data.q, residual[:, 0], data.x[:, 0]))
    h3 = np.asarray(hermite3(z))
    return {"h1": float(np.sum(q * r * z) / np.sum(q * z * z)), "h3": float(np.sum(q * r * h3) / np.sum(q * h3 * h3))}


def order_parameter(law: NeuronLaw) -> dict:
    """Law of ``q = w.w*``: weighted histogram (density), E|q|, E[q^2]."""
    q_values, weights = np.asarray(law.w[:, 0], dtype=float), np.asarray(law.weights(), dtype=float)
    density, _ = np.histogram(q_values, Q_BINS, weights=weights, density=True)
    return {"density": density, "mean_abs": float(weights @ np.abs(q_values)), "mean_sq": float(weights @ q_values**2)}


def large_d_saddle(sigma_w2: float, a3: float, u_values=None) -> dict:
    """d -> inf: jump u_c and spinodal u_s of argmax_q phi_u(q), phi_u = -q^2/(2 sigma_w^2) + (u/2) S(q)^2."""
    q = np.linspace(1e-3, 6.0, 6000)
    k = q / math.sqrt(1 + 2 * sigma_w2)
    overlap = -a3 * (4 / math.sqrt(math.pi)) * k**3 / (1 + 2 * k**2) ** 1.5
    slope = np.gradient(overlap, q)
    u_c = float(np.min(q**2 / (sigma_w2 * overlap**2)))  # phi_u(q*) = 0 = phi_u(0)
    u_s = float(np.min(q / (sigma_w2 * overlap * slope)))  # phi_u'(q) = 0 first has a root q > 0
    q_star = float(q[np.argmin(q**2 / (sigma_w2 * overlap**2))])
    return {"a3": a3, "u_c": u_c, "u_spinodal": u_s, "q_at_u_c": q_star}


def network_point(key, data, model, bench, width: int) -> dict:
    """Langevin networks from the prior: law of q over all neurons of all seeds at the end, loss after burn-in."""
    observe = lambda p: {"mean_abs_q": jnp.mean(jnp.abs(p["w"][:, 0]))}
    params, history = train(key, model, width, data, langevin_optimizer(model, bench.step_size), bench.steps,
                            num_seeds=bench.num_seeds, chunk=bench.record_every, observables=observe, progress=False)
    kept = history["step"] > bench.burn_in
    q_values = np.asarray(params["w"][..., 0]).reshape(-1)
    density, _ = np.histogram(q_values, Q_BINS, density=True)
    per_seed = history["mean_abs_q"][kept].mean(axis=0)
    loss = history["loss"][kept].mean(axis=0)
    seeds = bench.num_seeds
    return {
        "width": width, "density": density,
        "mean_abs": float(per_seed.mean()), "mean_abs_se": float(per_seed.std(ddof=1) / math.sqrt(seeds)),
        "loss": float(loss.mean()), "loss_se": float(loss.std(ddof=1) / math.sqrt(seeds)),
        "mean_abs_trace": history["mean_abs_q"].mean(axis=1), "trace_step": history["step"],
    }


def main(argv=None) -> dict:
    args = parse(NAME, __doc__.splitlines()[0], argv)
    raw = load_toml(args.config, {"task", "model", "benchmark"})
    bench = section(TeacherStudentBenchmark, raw.get("benchmark"), "benchmark")
    data, base = data_from(raw), model_from(raw)
    d = data.input_dim
    sigma_w2 = base.sw2 * d
    eps = float(raw["task"].get("eps", -0.3))
    key = jax.random.key(bench.seed)
    sampler = importance_sampler(bench.num_samples)

    sweep, gp_coefficients = [], None
    for index, u in enumerate(bench.couplings_u):
        model = model_at(base, float(u), d, bench.gp_strength)
        start = time.perf_counter()
        branches = solve_branches(data, model, sampler, key=jax.random.fold_in(key, index), tol=bench.tol, max_iter=bench.max_iter)
        point = {"u": float(u), "beta": model.beta, "sa2": model.sa2, "c": model.coupling, "stable": branches.stable,
                 "message": branches.message, "seconds": time.perf_counter() - start}
        for name in ("gp", "feature"):
            solution = getattr(branches, name)
            point[name] = {
                "free_energy": solution.free_energy, "loss": solution.loss, "converged": solution.converged,
                "iterations": solution.iterations, "ess": solution.diagnostics.get("ess"),
                "residual_hermite": hermite_coefficients(data, np.asarray(solution.residual)),
                "q": order_parameter(solution.law),
            }
        gp_coefficients = gp_coefficients or _gp_residual_coefficients(data, model, sampler, key)
        sweep.append(point)
        print(f"u = {u:7.4g}: F_gp {point['gp']['free_energy']:.6g}, F_feature {point['feature']['free_energy']:.6g}, "
              f"E|q| {point['gp']['q']['mean_abs']:.3f} / {point['feature']['q']['mean_abs']:.3f}, "
              f"loss {point['gp']['loss']:.4g} / {point['feature']['loss']:.4g}, ESS {point['gp']['ess']:.0f} "
              f"[{point['seconds']:.0f} s]", flush=True)

    networks = []
    for index, u in enumerate(bench.network_u):
        model = model_at(base, float(u), d, bench.gp_strength)
        for width in bench.widths:
            start = time.perf_counter()
            point = network_point(jax.random.fold_in(key, 7000 + 100 * index + int(width)), data, model, bench, int(width))
            point.update(u=float(u), seconds=time.perf_counter() - start)
            networks.append(point)
            print(f"networks u = {u:g}, N = {width}: E|q| {point['mean_abs']:.3f} +- {point['mean_abs_se']:.2g}, "
                  f"loss {point['loss']:.4g} +- {point['loss_se']:.2g} [{point['seconds']:.0f} s]", flush=True)

    results = {
        "config": raw, "d": d, "sigma_w2": sigma_w2, "eps": eps, "q_bins": Q_BINS, "paper_u_c": PAPER_U_C,
        "prior_mean_abs_q": math.sqrt(2 * base.sw2 / math.pi),
        "gp_residual_hermite": gp_coefficients, "sweep": sweep, "networks": networks,
        "crossing": _crossing(sweep),
        "large_d": {"their_limit": large_d_saddle(sigma_w2, eps), "our_gp_residual": large_d_saddle(sigma_w2, gp_coefficients["h3"])},
        "meta": run_metadata(raw, bench.seed),
    }
    write_json(Path(args.results) / f"{NAME}.json", results)
    results = _jsonable(results)
    print_table(results)
    paths = make_figures(results, args.figures)
    print("figures:", ", ".join(str(p) for p in paths))
    return results


def _gp_residual_coefficients(data, model, sampler, key) -> dict:
    from mft_jax.solver import gp_background

    background = gp_background(data, model, sampler, key=key)
    return hermite_coefficients(data, np.asarray(background.residual()))


def _crossing(sweep: list) -> dict:
    """Where F_feature - F_gp changes sign (linear interpolation in log u), if it does; which u have two branches."""
    two = [p["u"] for p in sweep if "two fixed points" in p["message"]]
    gap = [(p["u"], p["feature"]["free_energy"] - p["gp"]["free_energy"]) for p in sweep if "two fixed points" in p["message"]]
    crossing = None
    for (u0, g0), (u1, g1) in zip(gap[:-1], gap[1:]):
        if g0 > 0 >= g1:
            crossing = float(math.exp(math.log(u0) + (math.log(u1) - math.log(u0)) * g0 / (g0 - g1)))
    return {"u_with_two_branches": two, "u_crossing": crossing}


def _jsonable(results: dict) -> dict:
    import json

    from mft_jax.io import _jsonable as to_lists

    return json.loads(json.dumps(to_lists(results)))


def print_table(results: dict) -> None:
    gp = results["gp_residual_hermite"]
    print(f"\nteacher-student, d = {results['d']}, eps = {results['eps']}: GP residual = {gp['h1']:.3f} H1 + {gp['h3']:.3f} H3 "
          f"(target 1 H1 {results['eps']:+} H3); prior E|q| = {results['prior_mean_abs_q']:.3f}")
    print(f"{'u':>7} {'beta':>7} {'sa2':>8} {'F (GP start)':>13} {'F (feature)':>12} {'E|q| GP':>8} {'E|q| ft':>8} {'loss GP':>8} {'loss ft':>8} {'ESS':>7}  branches")
    for p in results["sweep"]:
        same = "same" if "same fixed point" in p["message"] else f"two, {p['stable']} stable"
        print(f"{p['u']:7.4g} {p['beta']:7.3g} {p['sa2']:8.3g} {p['gp']['free_energy']:13.6g} {p['feature']['free_energy']:12.6g} "
              f"{p['gp']['q']['mean_abs']:8.3f} {p['feature']['q']['mean_abs']:8.3f} {p['gp']['loss']:8.4g} {p['feature']['loss']:8.4g} "
              f"{p['gp']['ess']:7.0f}  {same}")
    crossing = results["crossing"]
    print(f"two branches at u = {crossing['u_with_two_branches'] or 'none'}; free-energy crossing u = {crossing['u_crossing']}")
    for label, saddle in results["large_d"].items():
        print(f"d -> inf saddle ({label}, a3 = {saddle['a3']:.3f}): u_c = {saddle['u_c']:.4g} (q* = {saddle['q_at_u_c']:.3f}), "
              f"spinodal u_s = {saddle['u_spinodal']:.4g}; paper u_c = {results['paper_u_c']}")
    if results["networks"]:
        print(f"\n{'u':>7} {'N':>6} {'E|q| net':>9} {'+-':>7} {'E|q| theory':>11} {'loss net':>9} {'+-':>7} {'loss theory':>11}")
    for p in results["networks"]:
        theory = min(results["sweep"], key=lambda s: abs(s["u"] - p["u"]))
        stable = theory[theory["stable"]]
        mark = "" if theory["u"] == p["u"] else f" (theory at u = {theory['u']:g})"
        print(f"{p['u']:7.4g} {p['width']:6d} {p['mean_abs']:9.3f} {p['mean_abs_se']:7.2g} {stable['q']['mean_abs']:11.3f} "
              f"{p['loss']:9.4g} {p['loss_se']:7.2g} {stable['loss']:11.4g}{mark}")


def make_figures(results: dict, outdir="figures") -> list:
    """``figures/teacher_student.png``: free energies and E|q| vs u; laws of q (theory vs networks); d -> inf potential."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    sweep = results["sweep"]
    u = np.array([p["u"] for p in sweep])
    centers = 0.5 * (np.asarray(results["q_bins"][1:]) + np.asarray(results["q_bins"][:-1]))
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.3))

    ax = axes[0]
    f_gp = np.array([p["gp"]["free_energy"] for p in sweep])
    f_ft = np.array([p["feature"]["free_energy"] for p in sweep])
    ax.plot(u, f_ft - f_gp, "o-", label=r"$F_{feature} - F_{GP}$")
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(results["paper_u_c"], color="r", ls=":", label=f"paper $u_c$ = {results['paper_u_c']}")
    ax.set(xscale="log", xlabel="u = $n^2\\sigma_a^2/(\\sigma^4 d N)$", ylabel="free-energy difference per neuron",
           title="two starts: " + ("one fixed point (difference = solver noise)" if not results["crossing"]["u_with_two_branches"] else "two branches"))
    ax.legend(fontsize=7)

    ax = axes[1]
    from mft_jax.plots import order_parameter_curve

    order_parameter_curve(u, [p["gp"]["q"]["mean_abs"] for p in sweep], xlabel="u", ylabel="E|q|, q = w.w*", label="theory, GP start", ax=ax)
    order_parameter_curve(u, [p["feature"]["q"]["mean_abs"] for p in sweep], xlabel="u", ylabel="E|q|, q = w.w*", label="theory, feature start",
                          critical=results["large_d"]["their_limit"]["u_c"], critical_label=r"d$\to\infty$ jump, residual $\epsilon H_3$", ax=ax)
    ax.axhline(results["prior_mean_abs_q"], color="gray", lw=0.8, label="prior")
    for width in sorted({p["width"] for p in results["networks"]}):
        points = [p for p in results["networks"] if p["width"] == width]
        ax.errorbar([p["u"] for p in points], [p["mean_abs"] for p in points], [p["mean_abs_se"] for p in points], fmt="^", label=f"Langevin networks N = {width}")
    ax.axvline(results["paper_u_c"], color="r", ls=":", label=f"paper $u_c$ = {results['paper_u_c']}")
    ax.set(xscale="log", title=f"order parameter, d = {results['d']}")
    ax.legend(fontsize=6)

    ax = axes[2]
    chosen = sorted({p["u"] for p in results["networks"]}) or [sweep[0]["u"], sweep[-1]["u"]]
    for i, value in enumerate(chosen):
        theory = min(sweep, key=lambda s: abs(s["u"] - value))
        ax.plot(centers, theory[theory["stable"]]["q"]["density"], color=f"C{i}", label=f"theory u = {theory['u']:g}")
        for p in results["networks"]:
            if p["u"] == value:
                ax.step(centers, p["density"], where="mid", color=f"C{i}", alpha=0.5, lw=0.8, label=f"networks u = {value:g}, N = {p['width']}")
    ax.set(xlabel="q = w.w*", ylabel="density", title="law of q: theory vs networks")
    ax.legend(fontsize=6)

    ax = axes[3]
    saddle = results["large_d"]["their_limit"]
    q = np.linspace(0, 4, 400)
    k = q / math.sqrt(1 + 2 * results["sigma_w2"])
    overlap = -saddle["a3"] * (4 / math.sqrt(math.pi)) * k**3 / (1 + 2 * k**2) ** 1.5
    for value in (0.8 * saddle["u_spinodal"], saddle["u_spinodal"], saddle["u_c"], 1.3 * saddle["u_c"]):
        ax.plot(q, -q**2 / (2 * results["sigma_w2"]) + 0.5 * value * overlap**2, label=f"u = {value:.3g}")
    ax.axhline(0, color="k", lw=0.6)
    ax.set(xlabel="q", ylabel=r"$\phi_u(q)$ (log density / d)", title=r"d$\to\infty$ saddle, residual = $\epsilon H_3$", ylim=(-1.0, 0.6))
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = outdir / f"{NAME}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]


if __name__ == "__main__":
    main()
