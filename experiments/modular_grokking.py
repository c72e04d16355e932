"""Modular addition from part of the table: test loss and accuracy vs training fraction (networks, GP).

Issue 9 item 5. The setting of ``experiments/modular_addition.py`` (square activation, two-hot inputs of
``Z_P``, prior ``exp(-|w|^2/2 - Gamma)`` with ``Gamma = fourier_sextic(gamma)``), trained on a random
fraction of the ``P^2`` pairs (``mft_jax.tasks.make_split``: the training set of ``make_data(n_train=k,
seed=s)`` and the held-out rest, nested in k for one s). The noise is per example: ``beta(n) = beta n/P^2``
at fixed ``sa2 = kappa/beta`` (the posterior ``exp(-sum_mu |r_mu|^2/(2 T_1) - prior)`` of a fixed noise ``T_1``;
``beta`` and ``kappa`` are the full-table values). For each P and fraction, over ``num_seeds`` splits:

1. ``networks``: Langevin square networks with the same prior (``mft_jax.train.joint``); the prediction on the
   held-out pairs is the network output averaged over the recorded steps after the burn-in (the posterior mean).
2. ``gp``: the Gaussian process with the same prior (``mft_jax.theory.reduced.modular.prior_gp_predict``: the exact NNGP kernel
   ``E[(w.x)^2 (w.x')^2]`` under the sextic prior).
3. ``theory`` (``[theory]``, per P of ``moduli``): the exact infinite-width theory on the same training sets
   (``mft_jax.theory.two_layer.solve``, the full 2P-dimensional single-neuron law). Plain MALA chains (``mcmc_sampler``) do not
   serve: the kernel of a few hundred particles biases ``G(r) = (I + beta sa2 K Q)^-1 y`` where the gain on the target
   is large, and its noise floor sits above the solver's ceiling. The sampler is replica-exchange MALA
   (``tempered_sampler``: crosses the barrier between the zero and the learned wells) pooled over the last updates
   (``pooled_sampler``); the map is steep (a slope of order -27 along the target at P = 11), so the damping is small
   (0.03) and the relative change ``|G(r) - r|/|G(r)|`` stays of order 0.5 however close ``r`` is: the slope amplifies
   the sampler's noise. The noise-floor rule would call that "stalled", so the solve runs a fixed ``max_iter``
   iterations (``stochastic=False``; it reports not converged, in words) and the route is validated where the answer is
   known: first the same solve on the full table against the exact per-mode ``a`` (``full_table_check``), and the map at
   the exact fixed point with single and pooled laws (``pool_check``). The prediction on held-out pairs is kernel
   regression with the final law's kernel, ``beta sa2 K(x, X) G(r)`` (``theory_point``): the law's own
   ``beta sa2 K(x, X) r`` amplifies the iterate's distance from ``G(r)``, by a relative loss of ~17 on the full table.

4. ``full_table_networks`` (``[full_table_networks]``): networks on the full table at the same coupling, where the
   exact per-mode theory is known, from the prior and from the theory's own single-neuron law, at two widths and run
   lengths: how far from the theory's state the networks are where they are trained, and whether that is run length
   (barrier crossing) or width.

5. ``theory_start`` (``[theory_start]``): networks on the theory's training sets started in the full-table theory's
   single-neuron law (modes learned) at a step size that holds that basin: the networks in the theory's basin
   against the exact theory on the same set.

Test loss ``1/2 mean_test |f - y|^2`` (relative: over that of f = 0, ``(P-1)/(2P)``) and test accuracy
(``argmax_p f_p = (n + m) mod P``). The transition fraction is where the relative test loss of a split
first falls below 1/2 (linear interpolation on the fraction grid), mean and s.e. over the splits that cross; likewise
where it falls below 1 (better than f = 0) and where the accuracy rises above 1/2.

Run: ``python -m experiments.modular_grokking [--quick] [--config experiments/configs/modular_grokking.toml]``.
Network points are cached in ``runs/modular_grokking/`` (delete to recompute).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from experiments._common import parse
from mft_jax.analysis.stats import mean_se
from mft_jax.theory.background import Background
from mft_jax.cli.config import load_toml, section
from mft_jax.errors import ConfigError
from mft_jax.io import pyplot, run_metadata, save_figure, write_results
from experiments.modular_addition import NetworkSection, network_point as full_table_point
from mft_jax.model import TwoLayer
from mft_jax.neurons import NeuronLaw
from mft_jax.theory.reduced.modular import library_couplings, prior_gp_predict, sample_neurons, solve_discrepancy
from mft_jax.priors import fourier_sextic
from mft_jax.theory.samplers.pooled import pooled_sampler
from mft_jax.theory.samplers.tempered import tempered_sampler
from mft_jax.theory.two_layer import solve
from mft_jax.tasks import make_data, make_split
from mft_jax.train.joint import langevin_optimizer, train
from mft_jax.train.network import predict

NAME = "modular_grokking"


@dataclasses.dataclass(frozen=True)
class GrokkingSection:
    """``[grokking]``: moduli, fractions, the prior and the Langevin networks (library units, mean-field)."""

    moduli: list = dataclasses.field(default_factory=lambda: [11, 23])
    betas: list = dataclasses.field(default_factory=lambda: [3000.0, 3000.0])  # full-table beta, one per modulus
    fractions: list = dataclasses.field(default_factory=lambda: [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98])
    kappa: float = 10.0  # full-table beta sa2
    gamma: float = 10.0
    width: int = 256
    num_seeds: int = 3  # splits, one network each
    steps: int = 3000
    burn_in: int = 1500
    record_every: int = 250
    step_size: float = 0.1
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class TheorySection:
    """``[theory]``: the exact infinite-width theory on the training set (``mft_jax.theory.two_layer.solve`` in 2P dimensions),
    sampled by replica-exchange MALA (``tempered_sampler``) pooled over the last ``pool`` updates (``pooled_sampler``),
    damped iteration from ``r = a_full y`` (the full table's exact ``a``); ``keys`` independent solves per point, at each
    P of ``moduli`` (each one of ``[grokking]``'s: its networks' splits and full-table coupling)."""

    moduli: list = dataclasses.field(default_factory=lambda: [11])
    fractions: list = dataclasses.field(default_factory=lambda: [0.5, 0.7, 0.9])
    splits: int = 1
    keys: int = 2
    chains: int = 512
    steps: int = 100
    warmup: int = 50
    levels: int = 8
    min_inverse_temperature: float = 0.1
    pool: int = 16
    damping: float = 0.03
    max_iter: int = 120  # a fixed run length: the relative-change rule does not apply to this steep map (docstring)
    tol: float = 1e-3
    full_table_check: bool = True
    pool_check_chains: list = dataclasses.field(default_factory=lambda: [256, 1024])  # single laws; the last also pooled


@dataclasses.dataclass(frozen=True)
class WidthTrendSection:
    """``[width_trend]``: the networks of ``[grokking]`` at ``modulus`` (same splits and keys) at several widths: do they
    move towards the infinite-width theory of ``[theory]`` as N grows?"""

    modulus: int = 11
    widths: list = dataclasses.field(default_factory=lambda: [1024, 2048])
    fractions: list = dataclasses.field(default_factory=lambda: [0.5, 0.9])


@dataclasses.dataclass(frozen=True)
class FullTableSection:
    """``[full_table_networks]``: networks on the full table at ``[grokking]``'s coupling (its beta, kappa, gamma), where
    the exact per-mode theory is known, by ``modular_addition.network_point``. Run ``i`` has width ``widths[i]``,
    ``steps[i]`` Langevin steps of size ``step_sizes[i]`` (burn-in half) and starts from ``starts[i]``: ``"prior"``, or
    ``"theory"`` (first-layer weights drawn from the theory's own single-neuron law, readouts from the prior). From the
    prior a neuron's mode must cross the per-mode barrier to learn; from the theory's law it starts learned. Where the
    starts meet, and how that moves with the step size and the width, separates run length, discretisation and width."""

    modulus: int = 11
    widths: list = dataclasses.field(default_factory=lambda: [256])
    steps: list = dataclasses.field(default_factory=lambda: [3000])
    step_sizes: list = dataclasses.field(default_factory=lambda: [0.1])
    starts: list = dataclasses.field(default_factory=lambda: ["prior"])
    num_seeds: int = 2

    def __post_init__(self):
        lengths = {len(self.widths), len(self.steps), len(self.step_sizes), len(self.starts)}
        if len(lengths) != 1 or 0 in lengths:
            raise ConfigError("[full_table_networks] widths, steps, step_sizes and starts are one entry per run and must have "
                              f"the same, nonzero length; got {len(self.widths)}, {len(self.steps)}, {len(self.step_sizes)}, {len(self.starts)}")
        bad = [s_ for s_ in self.starts if s_ not in ("prior", "theory")]
        if bad:
            raise ConfigError(f"[full_table_networks] starts must be 'prior' or 'theory'; got {bad}")


@dataclasses.dataclass(frozen=True)
class TheoryStartSection:
    """``[theory_start]``: networks on the ``[theory]`` training sets (split 0) started in the full-table theory's
    single-neuron law (its modes learned: the basin the prior start does not reach in these runs, ``[full_table_networks]``),
    at a step size that holds that basin, against the exact theory on the same sets."""

    modulus: int = 11
    fractions: list = dataclasses.field(default_factory=lambda: [0.5, 0.9])
    steps: list = dataclasses.field(default_factory=lambda: [30000, 30000])  # one entry per fraction entry
    width: int = 1024
    step_size: float = 0.01

    def __post_init__(self):
        if len(self.fractions) != len(self.steps):
            raise ConfigError(f"[theory_start] fractions and steps are one entry per run; got {len(self.fractions)} and {len(self.steps)}")


@dataclasses.dataclass(frozen=True)
class CheckSection:
    """``[width_check]``, ``[steps_check]``: the networks of ``[grokking]`` (same splits and keys) at another width and/or
    another number of steps (burn-in scaled alike; 0: as in ``[grokking]``), at one P and a few fractions."""

    modulus: int = 23
    width: int = 0
    steps: int = 0
    fractions: list = dataclasses.field(default_factory=lambda: [0.7, 0.8, 0.9])


def model_at(modulus: int, fraction_points: int, beta_full: float, g: GrokkingSection) -> TwoLayer:
    """Per-example noise: ``beta = beta_full n/P^2``, ``sa2 = kappa/beta_full`` fixed."""
    beta = beta_full * fraction_points / modulus**2
    return TwoLayer("square", sa2=g.kappa / beta_full, sw2=1.0, beta=beta, penalty=fourier_sextic(g.gamma))


def test_metrics(f, test) -> dict:
    """Test loss ``1/2 mean |f - y|^2``, that over f = 0's, and accuracy of ``argmax f``."""
    f, y = np.asarray(f, float), np.asarray(test.y, float)
    modulus = y.shape[1]
    loss = 0.5 * float(np.mean(np.sum((f - y) ** 2, axis=1)))
    return {"test_loss": loss, "test_loss_relative": loss / (0.5 * (modulus - 1) / modulus),
            "test_accuracy": float(np.mean(np.argmax(f, 1) == np.argmax(y, 1)))}


def network_point(key, modulus: int, n_train: int, split: int, beta_full: float, g: GrokkingSection, cache: Path,
                  start_coupling: float | None = None) -> dict:
    """One Langevin network on one split: time-averaged held-out output after the burn-in; cached as JSON.
    ``start_coupling``: first-layer weights drawn from the per-mode single-neuron law at this coupling
    (``mft_jax.theory.reduced.modular.sample_neurons``; the full-table theory's, so the modes start learned), readouts from the prior;
    None: the prior."""
    tag = "" if start_coupling is None else f"_start{start_coupling:.4g}"
    path = cache / f"P{modulus}_beta{beta_full:g}_n{n_train}_s{split}_N{g.width}_T{g.steps}_h{g.step_size:g}{tag}.json"
    if path.is_file():
        return json.loads(path.read_text())
    data, test = make_split("modular_addition", modulus=modulus, n_train=n_train, seed=g.seed + split)
    model = model_at(modulus, n_train, beta_full, g)
    observe = lambda p: {"test_output": predict(p, model, test.x)}
    init_params = None
    if start_coupling is not None:
        rng = np.random.default_rng([g.seed, modulus, n_train, split, g.width])
        w = sample_neurons(rng, start_coupling, g.gamma, modulus, g.width, points=300)
        init_params = {"a": math.sqrt(model.sa2) * rng.standard_normal((1, g.width, modulus)), "w": w.reshape(1, g.width, 2 * modulus)}
    clock = time.perf_counter()
    result = train(key, model, g.width, data, langevin_optimizer(model, g.step_size), g.steps, num_seeds=1,
                   chunk=g.record_every, observables=observe, progress=False, init_params=init_params)
    seconds = time.perf_counter() - clock
    steps = np.asarray(result.history["step"])
    outputs = np.asarray(result.history["test_output"], float)[:, 0]  # (records, n_test, P)
    kept = steps > g.burn_in
    late = steps > (g.burn_in + g.steps) / 2
    record = {"P": modulus, "n_train": n_train, "split": split, "beta": model.beta, "sa2": model.sa2, "width": g.width,
              "seconds": seconds, "load_average": os.getloadavg()[0],
              "train_loss": float(np.asarray(result.history["loss"], float)[kept].mean()),
              **test_metrics(outputs[kept].mean(0), test),
              "second_half": test_metrics(outputs[late].mean(0), test),
              "trace": [test_metrics(o, test) for o in outputs]}
    record["steps_recorded"] = steps.tolist()
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return record


def theory_sampler(t: TheorySection, chains: int | None = None, pool: int | None = None):
    """``[theory]``'s sampler; ``chains``, ``pool``: other than ``t.chains``, ``t.pool`` (the pool check)."""
    return pooled_sampler(tempered_sampler(chains or t.chains, t.steps, num_warmup=t.warmup, num_levels=t.levels,
                                           min_inverse_temperature=t.min_inverse_temperature), pool or t.pool)


def discrepancy(residual, y) -> tuple[float, float]:
    """``a = <r, y>/<y, y>`` and the off-target part ``|r - a y|/|a y|`` of a residual (P, C)."""
    r, y = np.asarray(residual, float), np.asarray(y, float)
    a = float(np.sum(r * y) / np.sum(y * y))
    return a, float(np.linalg.norm(r - a * y) / np.linalg.norm(a * y))


def split_points(key, modulus: int, fraction: float, beta_full: float, g: GrokkingSection, cache: Path) -> list[dict]:
    """The networks of every split at one fraction of ``g.fractions`` (keys fixed by the fraction's place there, so every
    section that varies ``g`` runs the same splits from the same keys)."""
    i = list(g.fractions).index(fraction)
    n_train = int(round(fraction * modulus**2))
    return [network_point(jax.random.fold_in(key, 100_000 * modulus + 100 * i + s), modulus, n_train, s, beta_full, g, cache)
            for s in range(g.num_seeds)]


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


def gp_point(modulus: int, n_train: int, split: int, beta_full: float, g: GrokkingSection) -> dict:
    """The GP with the same prior (exact sextic-prior NNGP kernel) on the same split."""
    data, test = make_split("modular_addition", modulus=modulus, n_train=n_train, seed=g.seed + split)
    model = model_at(modulus, n_train, beta_full, g)
    return test_metrics(prior_gp_predict(data, model, test.x, g.gamma), test)


def transition(fractions, values, level: float, falling: bool = True) -> float:
    """First fraction at which ``values`` cross ``level`` (falling below it, or rising above it with ``falling=False``),
    by linear interpolation between grid fractions; the first fraction if already past there (then an upper bound); NaN if never."""
    sign = 1.0 if falling else -1.0
    past = [sign * (level - v) > 0 for v in values]
    if past[0]:
        return float(fractions[0])
    for i in range(1, len(fractions)):
        if past[i]:
            lo, hi = values[i - 1], values[i]
            return float(fractions[i - 1] + (lo - level) / (lo - hi) * (fractions[i] - fractions[i - 1]))
    return float("nan")


def summarise(fractions, per_split: list[list[dict]]) -> dict:
    """``per_split[i][s]``: metrics at fraction i, split s -> mean and s.e. per fraction, and the transition fraction."""
    out = {"fractions": list(fractions)}
    for metric in ("test_loss", "test_loss_relative", "test_accuracy"):
        stats = [mean_se([point[metric] for point in points]) for points in per_split]
        out[metric] = [m for m, _ in stats]
        out[metric + "_se"] = [s for _, s in stats]
    splits = len(per_split[0])
    series = lambda metric, s: [per_split[i][s][metric] for i in range(len(fractions))]  # noqa: E731
    for name, metric, level, falling in (("loss_below_1", "test_loss_relative", 1.0, True), ("loss_below_half", "test_loss_relative", 0.5, True),
                                         ("accuracy_above_half", "test_accuracy", 0.5, False)):
        crossings = [transition(fractions, series(metric, s), level, falling) for s in range(splits)]
        mean, se = mean_se(crossings)
        out["transition_" + name] = {"per_split": crossings, "mean": mean, "se": se, "found": int(np.sum(np.isfinite(crossings)))}
    return out


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


def width_trend(trend: WidthTrendSection, g: GrokkingSection, key, cache: Path) -> dict:
    """Relative test loss of the ``[grokking]`` networks (same keys and splits) at each width of ``trend.widths``."""
    beta_full = float(g.betas[list(g.moduli).index(trend.modulus)])
    rows = []
    for fraction in trend.fractions:
        for width in [g.width] + list(trend.widths):
            points = split_points(key, trend.modulus, fraction, beta_full, dataclasses.replace(g, width=width), cache)
            loss, loss_se = mean_se([p["test_loss_relative"] for p in points])
            rows.append({"fraction": fraction, "width": width, "test_loss_relative": loss, "test_loss_relative_se": loss_se,
                         "train_loss": float(np.mean([p["train_loss"] for p in points])),
                         "per_split": [p["test_loss_relative"] for p in points]})
            print(f"width trend P = {trend.modulus}, fraction {fraction:.2f}, N = {width}: relative test loss {loss:.3f} +- {loss_se:.2g} "
                  f"(train loss {rows[-1]['train_loss']:.3g}) [{sum(p['seconds'] for p in points):.0f} s]", flush=True)
    return {"P": trend.modulus, "rows": rows}


def full_table_networks(ft: FullTableSection, g: GrokkingSection, key, cache: Path) -> dict:
    """``[full_table_networks]``: per width, run length and start, the networks' discrepancy ``a`` (second half of the
    run), its halves, the fraction of (neuron, mode) pairs past the barrier, against the exact theory's."""
    beta_full = float(g.betas[list(g.moduli).index(ft.modulus)])
    rows = []
    for width, steps, step_size, start in zip(ft.widths, ft.steps, ft.step_sizes, ft.starts):
        net = NetworkSection(moduli=[ft.modulus], betas=[beta_full], kappa=g.kappa, gamma=g.gamma, width=width,
                             num_seeds=ft.num_seeds, steps=steps, burn_in=steps // 2, record_every=max(steps // 12, 1),
                             step_size=step_size, seed=g.seed)
        # one key per width
        p = full_table_point(jax.random.fold_in(key, 7_000_000 + width), ft.modulus, beta_full, net, cache, start=start)
        rows.append({"width": width, "steps": steps, "step_size": step_size, "time": steps * step_size, "start": start,
                     **{k: p[k] for k in ("a", "a_se", "a_first_half", "a_second_half", "learned", "learned_se", "top_mode_share",
                                          "seconds")},
                     "finite_width_ratio": p["theory"]["finite_width_ratio"], "a_trace": p["a_trace"],
                     "learned_trace": p["learned_trace"], "steps_recorded": p["steps_recorded"]})
        theory = p["theory"]
        print(f"full table P = {ft.modulus}, beta = {beta_full:g}, N = {width}, {steps} x {step_size:g} steps from the {start}: a = "
              f"{p['a']:.4f} +- {p['a_se']:.2g} (halves {p['a_first_half']:.4f} / {p['a_second_half']:.4f}), past the barrier "
              f"{p['learned']:.3f}; theory a = {theory['a']:.4f}, past the barrier {theory['learned']:.3f} [{p['seconds']:.0f} s]", flush=True)
    return {"P": ft.modulus, "beta": beta_full, "theory": {k: theory[k] for k in ("a", "a_gp", "learned", "phase")},
            "rows": rows}


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


def main(argv=None) -> dict:
    args = parse(NAME, __doc__.splitlines()[0], argv)
    raw = load_toml(args.config, {"grokking", "theory", "width_trend", "full_table_networks", "theory_start", "width_check", "steps_check"})
    g = section(GrokkingSection, raw.get("grokking"), "grokking")
    t = section(TheorySection, raw["theory"], "theory") if "theory" in raw else None
    if t is not None:
        check_theory_moduli(t, g)  # before the networks run
    cache = ROOT / "runs" / NAME
    key = jax.random.key(g.seed)
    results = {"networks": {}, "gp": {}, "full_table_theory": {}}
    for index, modulus in enumerate(g.moduli):
        beta_full = float(g.betas[index])
        u, kappa = library_couplings(modulus, g.kappa / beta_full, beta_full)
        full = solve_discrepancy(u, kappa, g.gamma, modulus, points=200)
        results["full_table_theory"][str(modulus)] = {"a": full.a, "g": full.g, "phase": full.phase, "learned": full.learned,
                                                       "a_gp": 1 / (1 + 4 * kappa / modulus**2), "beta": beta_full, "sa2": g.kappa / beta_full}
        nets, gps, raw_points = [], [], []
        for fraction in g.fractions:
            n_train = int(round(fraction * modulus**2))
            points = split_points(key, modulus, fraction, beta_full, g, cache)
            gp = [gp_point(modulus, n_train, s, beta_full, g) for s in range(g.num_seeds)]
            nets.append(points)
            gps.append(gp)
            raw_points.append({"fraction": fraction, "n_train": n_train, "networks": [{k: v for k, v in p.items() if k != "trace"} for p in points],
                               "gp": gp})
            net_loss, net_se = mean_se([p["test_loss_relative"] for p in points])
            acc, acc_se = mean_se([p["test_accuracy"] for p in points])
            gp_loss, gp_se = mean_se([p["test_loss_relative"] for p in gp])
            gp_acc, _ = mean_se([p["test_accuracy"] for p in gp])
            print(f"P = {modulus}, fraction {fraction:.2f} (n = {n_train}, beta = {points[0]['beta']:.3g}): networks relative test loss "
                  f"{net_loss:.3f} +- {net_se:.2g}, accuracy {acc:.3f} +- {acc_se:.2g} (train loss {np.mean([p['train_loss'] for p in points]):.3g}); "
                  f"GP {gp_loss:.3f} +- {gp_se:.2g}, accuracy {gp_acc:.3f} [{sum(p['seconds'] for p in points):.0f} s]", flush=True)
        results["networks"][str(modulus)] = {**summarise(g.fractions, nets), "points": raw_points}
        results["gp"][str(modulus)] = summarise(g.fractions, gps)
        for name in ("networks", "gp"):
            r = results[name][str(modulus)]
            print(f"P = {modulus}: {name} transitions (fraction; mean +- s.e. over the splits that cross): " + "; ".join(
                f"{k[len('transition_'):]} {v['mean']:.3f} +- {v['se']:.2g} ({v['found']} of {g.num_seeds})"
                for k, v in r.items() if k.startswith("transition_")), flush=True)
    if t is not None:
        results["theory"] = theory_section(t, g, results, cache)
    if "width_trend" in raw:
        results["width_trend"] = width_trend(section(WidthTrendSection, raw["width_trend"], "width_trend"), g, key, cache)
    if "full_table_networks" in raw:
        results["full_table_networks"] = full_table_networks(section(FullTableSection, raw["full_table_networks"], "full_table_networks"),
                                                             g, key, cache)
    if "theory_start" in raw:
        results["theory_start"] = theory_start(section(TheoryStartSection, raw["theory_start"], "theory_start"), g, results, key, cache)
    for name in ("width_check", "steps_check"):
        if name not in raw:
            continue
        check = section(CheckSection, raw[name], name)
        steps = check.steps or g.steps
        varied = dataclasses.replace(g, width=check.width or g.width, steps=steps, burn_in=g.burn_in * steps // g.steps)
        beta_full = float(g.betas[list(g.moduli).index(check.modulus)])
        per_fraction = []
        for fraction in check.fractions:
            points = split_points(key, check.modulus, fraction, beta_full, varied, cache)  # same keys and splits as [grokking]
            per_fraction.append(points)
            loss, loss_se = mean_se([p["test_loss_relative"] for p in points])
            late, late_se = mean_se([p["second_half"]["test_loss_relative"] for p in points])
            acc, acc_se = mean_se([p["test_accuracy"] for p in points])
            print(f"{name} P = {check.modulus}, N = {varied.width}, {varied.steps} steps, fraction {fraction:.2f}: networks relative test loss "
                  f"{loss:.3f} +- {loss_se:.2g} (second half {late:.3f} +- {late_se:.2g}), accuracy {acc:.3f} +- {acc_se:.2g} "
                  f"[{sum(p['seconds'] for p in points):.0f} s]", flush=True)
        results[name] = {"P": check.modulus, "width": varied.width, "steps": varied.steps, **summarise(check.fractions, per_fraction),
                         "second_half_test_loss_relative": [mean_se([p["second_half"]["test_loss_relative"] for p in points]) for points in per_fraction],
                         "points": [[{k: v for k, v in p.items() if k != "trace"} for p in points] for points in per_fraction]}
    results["config"] = raw
    results["meta"] = run_metadata(raw, g.seed)
    write_results(args.out, results, make_figures, args.figures)
    return results


def _colour(results: dict, modulus) -> str:
    """The colour of modulus P in the figure: that of its networks' curve, black if it has none."""
    moduli = list(results["networks"])
    return f"C{moduli.index(str(modulus))}" if str(modulus) in moduli else "k"


def make_figures(results: dict, outdir="figures") -> list:
    """Relative test loss and test accuracy vs training fraction: networks, GP, the training-set theory and the networks
    started in its basin; one colour per P."""
    plt = pyplot()

    outdir = Path(outdir)
    fig, axes = plt.subplots(1, 2, figsize=(11, 6), layout="constrained")
    for i, (modulus, nets) in enumerate(results["networks"].items()):
        gp = results["gp"][modulus]
        for ax, metric in zip(axes, ("test_loss_relative", "test_accuracy")):
            ax.errorbar(nets["fractions"], nets[metric], nets[metric + "_se"], fmt="o-", color=f"C{i}", label=f"networks P = {modulus}")
            ax.errorbar(gp["fractions"], gp[metric], gp[metric + "_se"], fmt="s:", color=f"C{i}", mfc="none", label=f"GP P = {modulus}")
    markers = {"width_check": "D", "steps_check": "v"}
    for name, marker in markers.items():
        check = results.get(name)
        if not check:
            continue
        colour = _colour(results, check["P"])
        for ax, metric in zip(axes, ("test_loss_relative", "test_accuracy")):
            ax.errorbar(check["fractions"], check[metric], check[metric + "_se"], fmt=marker, color=colour, mfc="none", ms=8,
                        label=f"networks P = {check['P']}, N = {check['width']}, {check['steps']} steps")
    for modulus, theory in results.get("theory", {}).items():
        colour = _colour(results, modulus)
        for ax, metric in zip(axes, ("test_loss_relative", "test_accuracy")):
            ax.errorbar(theory["fractions"], theory[metric], np.nan_to_num(theory[metric + "_se"]), fmt="*--", color=colour, ms=10,
                        label=f"exact theory on the training set, P = {modulus}")
    if results.get("theory"):
        axes[0].set_yscale("log")  # the theory's held-out loss is 2-8x that of f = 0
    start = results.get("theory_start")
    if start:  # the networks started in the theory's basin: one marker per run length
        colour = _colour(results, start["P"])
        for steps in sorted({r["steps"] for r in start["rows"]}):
            rows = [r for r in start["rows"] if r["steps"] == steps]
            for ax, metric in zip(axes, ("test_loss_relative", "test_accuracy")):
                ax.plot([r["fraction"] for r in rows], [r[metric] for r in rows], "^" if steps == min(r["steps"] for r in start["rows"]) else "P",
                        color=colour, ms=9, mfc="none", label=f"networks from the theory's law, P = {start['P']}, N = {start['width']}, "
                        f"{steps} x {start['step_size']:g} steps")
    axes[0].axhline(0.5, color="gray", lw=0.8, ls="--")
    axes[0].axhline(1.0, color="gray", lw=0.8, ls=":")
    axes[0].set(xlabel="training fraction of the P^2 pairs", ylabel="test loss / test loss of f = 0", title="held-out pairs: loss")
    axes[1].set(xlabel="training fraction of the P^2 pairs", ylabel="test accuracy", title="held-out pairs: accuracy")
    handles, labels = axes[0].get_legend_handles_labels()  # one legend below both panels: the curves need the room
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=7)
    return [save_figure(fig, outdir / f"{NAME}.png", dpi=120)]


if __name__ == "__main__":
    main()
