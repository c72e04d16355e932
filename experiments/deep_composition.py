"""Two and three layers on a compositional task, theory against networks (issue 10, benchmark a).

The target is a product of two continuous XORs, ``y = (x1 x2)(x3 x4)`` with ``x ~ N(0, I_4)``
(``mft_jax.tasks.xor_product``): a degree-4 function orthogonal to every polynomial of lower
degree, so a kernel must put weight on degree 4 to fit it, and a deep net can build it from the two
XORs. On ``P`` training points, at the same inverse temperature ``beta``:

- the Gaussian-process (NNGP) predictor of depth 2 and 3 (``deep_nngp_predict``),
- the mean-field theory of depth 2 and 3 (``solve_deep``, importance-sampled layer laws,
  predictions through the test-point kernels of docs/theory.md 6.4),
- Langevin networks of depth 2 and 3 at width ``N`` (``mft_jax.train.joint.train``; several seeds),
  their predictor averaged over the run after a burn-in (the posterior mean at that width).

Losses are ``1/2 E (f - y)^2`` on the training set and on fresh test points (mean and standard
error over seeds for the networks). Per hidden layer: the centred alignment and relative distance of
the networks' feature kernel ``Phi_l`` with the theory's and with the NNGP's, next to the noise floor
(two halves of the seeds), and the law of one neuron's target overlap ``o = (1/P) sum_mu phi(h_mu) y_mu``
(theory: the layer law's weighted particles, ``mft_jax.theory.deep.layer_law``; networks: every neuron of
every seed); for layer 1 also the law of the weight moments ``E w_i^2`` and ``E w_1 w_2 w_3 w_4``.

``--sampler mcmc`` solves the theory with resample-move layer laws (``mcmc_layers``) instead of fixed
importance draws: the feature-learning regime (e.g. ``--activation erf --beta 40``), where importance
weights collapse (``experiments/deep_mcmc.py``).

Per layer also the floor of the kernel distance (``compare.kernel_floor``: the seed mean's variance plus the theory's
particle variance; the half-set distance kept as ``half_set_distance``) and the learned part ``K - K_NNGP``
(``compare.learned_part``). ``--refloor RUN.json ...`` only re-expresses stored runs' floors from their stored
numbers (``results/deep_composition/floors.json``).

Writes ``results/deep_composition/main.json`` and ``figures/deep_composition.png``. ``--quick``: P = 32,
width 64, 2 seeds, 1000 steps, 2^11 samples, 500 test points (CPU, a few minutes); the default
(P = 64, beta = 8, width 512, 4 seeds, 4000 steps, 2^13 samples, 1000 test points) takes about
5 minutes on 2 cores (checkpoints or not: ``--runs ""`` skips them). The theory's
solve time is measured on whatever machine runs it (``theory.*.seconds``; the NNGP predictions,
timed apart in ``gp_seconds``, are costly for gelu: a 64^2-node Gauss-Hermite rule per pair of points).
gelu, not tanh or erf: an odd activation without biases gives an odd f, and y is even.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mft_jax import io
from mft_jax.analysis.compare import (
    half_set_floor_to_kernel_floor, kernel_alignment, kernel_floor, learned_part, particle_kernel_variance, relative_kernel_error,
)
from mft_jax.theory.deep import Deep, deep_nngp, deep_nngp_predict, importance_layers, layer_law, mcmc_layers, solve_deep
from mft_jax.tasks import get_task, make_data
from mft_jax.train.joint import langevin_optimizer, train

ROOT = Path(__file__).resolve().parent.parent
DEPTHS = (2, 3)


def half_mse(f, y) -> float:
    return float(0.5 * np.mean((np.asarray(f, np.float64) - np.asarray(y, np.float64)) ** 2))


def overlaps(h, model: Deep, y) -> np.ndarray:
    """Target overlap ``o = (1/P) sum_mu phi(h_mu) y_mu`` of each neuron: ``h`` (M, P) -> (M,)."""
    return np.asarray(model.activation(jnp.asarray(h)) @ jnp.asarray(y[:, 0]) / y.shape[0], np.float64)


def weighted_quantiles(values, weight, probs) -> list:
    order = np.argsort(values)
    cdf = np.cumsum(np.asarray(weight, np.float64)[order])
    return [float(values[order][min(np.searchsorted(cdf, p), len(cdf) - 1)]) for p in probs]


def layer_sampler(name: str, num_samples: int):
    """``importance``: fixed prior draws reweighted (``importance_layers``); ``mcmc``: resample-move particles refreshed at
    the iterate (``mcmc_layers``, docs/theory.md 6.7), for the strongly tilted laws where importance weights collapse."""
    return importance_layers(num_samples) if name == "importance" else mcmc_layers(num_samples)


def theory_run(data, test, model, num_samples, sampler="importance"):
    """GP and mean-field predictions, kernels and layer laws of one depth."""
    start = time.perf_counter()
    gp_train = deep_nngp_predict(model, data, data.x).block_until_ready()
    gp_test = deep_nngp_predict(model, data, test.x).block_until_ready()
    gp_seconds = time.perf_counter() - start
    start = time.perf_counter()
    solution = solve_deep(data, model, layer_sampler(sampler, num_samples), key=jax.random.key(0), tol=1e-5, max_iter=60)
    seconds = time.perf_counter() - start
    laws = [layer_law(solution, l) for l in range(1, model.hidden_layers + 1)]
    return {
        "seconds": round(seconds, 1), "gp_seconds": round(gp_seconds, 1), "iterations": solution.iterations, "converged": solution.converged,
        "message": solution.message, "ess": solution.diagnostics["ess"], "num_samples": num_samples, "sampler": sampler,
        "refreshes": solution.diagnostics["refreshes"],
        "loss": {"gp": {"train": half_mse(gp_train, data.y), "test": half_mse(gp_test, test.y)},
                 "mft": {"train": solution.loss, "test": half_mse(solution.predict(test.x), test.y)}},  # q = 1/P: loss = half_mse(y - r)
        "free_energy": solution.free_energy,
    }, solution, laws


def network_run(data, test, model, width, seeds, steps, step_size, out_dir, resume):
    """Langevin networks: run-averaged predictors, kernels per seed, final-parameter neuron statistics."""
    chunk = max(steps // 200, 1)
    result = train(jax.random.key(1), model, width, data, langevin_optimizer(model, step_size), steps, num_seeds=seeds,
                   chunk=chunk, out_dir=out_dir, checkpoint_every=max(steps // 10, chunk), resume=resume, progress=False,
                   observables=lambda p: {"kernels": model.feature_kernels(p, data.x), "train": model.apply(p, data.x),
                                          "test": model.apply(p, test.x)})
    burn = len(result.history["test"]) // 4
    mean = {k: np.asarray(result.history[k], np.float64)[burn:].mean(axis=0) for k in ("kernels", "train", "test")}
    mid = (burn + len(result.history["train"])) // 2  # equilibration check: the predictor averaged over each half of the kept run
    mean["train_halves"] = [np.asarray(result.history["train"], np.float64)[a:b].mean(axis=0) for a, b in ((burn, mid), (mid, None))]
    params = result.params  # (seeds, ...) leaves at the end of the run
    h = jax.vmap(lambda p: jnp.stack(model.preactivations(p, data.x)))(params)  # (S, H, P, N)
    return mean, np.asarray(h, np.float64), np.asarray(params["w"], np.float64), np.asarray(result.history["loss"])[burn:].mean(axis=0)


def theory_kernel_floor(seed_kernels, theory_kernel, law, model):
    """``compare.kernel_floor`` of the seed-mean kernel against the theory's, with the theory's particle variance
    (``compare.particle_kernel_variance`` of the layer law's features ``phi(h)`` and weights)."""
    features = np.asarray(model.activation(jnp.asarray(law.h)), np.float64)
    variance, perpendicular = particle_kernel_variance(features, np.asarray(law.weight, np.float64))
    return kernel_floor(np.asarray(seed_kernels, np.float64), np.asarray(theory_kernel, np.float64),
                        theory_variance=variance, theory_variance_perpendicular=perpendicular)


def refloor(paths) -> dict:
    """The stored deep-composition results with ``kernel_floor``'s floor in place of the half-set one, from stored
    numbers only (``compare.half_set_floor_to_kernel_floor``): the seed mean's part is exact (half-set distance / 2);
    the theory's part is a stand-in (``N S d_half^2 / (4 ESS)``, a lower bound: the run average lowers the per-seed
    variance below one snapshot's), so ``ratio_to_floor`` is an upper bound; a rerun gives the exact floor."""
    out = {}
    for path in paths:
        payload = json.loads(Path(path).read_text())
        rows = {}
        for name, layers in payload["layers"].items():
            ess = payload["theory"][name]["ess"]
            for layer, entry in layers.items():
                if "distance" not in entry:
                    continue
                l = int(layer.removeprefix("layer"))
                half = entry["distance"].get("half_set_distance", entry["distance"]["noise_floor"])
                floor = half_set_floor_to_kernel_floor(half, payload["seeds"], payload["width"], ess[l - 1])
                d = entry["distance"]["theory"]
                rows[f"{name}/{layer}"] = {"distance_theory": d, "distance_nngp": entry["distance"]["nngp"], "half_set_floor": half,
                                           "floor_networks": floor["networks"], "floor_theory_lower_bound": floor["theory"],
                                           "floor": floor["distance"], "ratio_to_floor_upper_bound": d / floor["distance"],
                                           "ratio_to_networks_floor": d / floor["networks"], "ratio_to_half_set_floor": d / half,
                                           "nngp_ratio_to_floor": entry["distance"]["nngp"] / floor["distance"]}
        out[Path(path).name] = {"width": payload["width"], "seeds": payload["seeds"], "steps": payload["steps"], "layers": rows}
    return out


def layer1_moments(w, weight=None) -> dict:
    """``E w_i^2`` (mean over i) and ``E w1 w2 w3 w4`` of layer-1 weights (M, 4)."""
    weight = np.full(len(w), 1.0 / len(w)) if weight is None else np.asarray(weight, np.float64)
    return {"w_sq": float(weight @ np.mean(w**2, axis=1)), "w1w2w3w4": float(weight @ np.prod(w[:, :4], axis=1))}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="P = 32, width 64, 2 seeds, short runs, 2^11 samples")
    parser.add_argument("--train-points", type=int, default=None)
    parser.add_argument("--test-points", type=int, default=None)
    parser.add_argument("--beta", type=float, default=8.0)
    parser.add_argument("--activation", default="gelu")
    parser.add_argument("--sw2", type=float, default=1.0)
    parser.add_argument("--num-samples", type=int, default=None, help="particles per layer (theory)")
    parser.add_argument("--sampler", choices=("importance", "mcmc"), default="importance",
                        help="layer laws of the theory: importance (fixed prior draws) or mcmc (resample-move, strong tilts)")
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--step-size", type=float, default=0.01)
    parser.add_argument("--skip-networks", action="store_true", help="theory and GP only")
    parser.add_argument("--depths", type=int, nargs="+", default=list(DEPTHS), help="network depths to run (default 2 3)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--figure", default=None)
    parser.add_argument("--runs", default=str(ROOT / "runs" / "deep_composition"), help="checkpoints (resume with --resume); '' for none")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--refloor", nargs="+", default=None, metavar="JSON",
                        help="only re-express stored results' kernel floors (compare.kernel_floor) into results/deep_composition/floors.json")
    args = parser.parse_args(argv)
    if args.refloor:
        floors = {"results": refloor(args.refloor), "meta": io.run_metadata(None, None, argv=None if argv is None else list(argv))}
        io.write_json(args.out or ROOT / "results" / "deep_composition" / "floors.json", floors)
        for file, entry in floors["results"].items():
            for key, row in entry["layers"].items():
                print(f"{file} {key}: distance {row['distance_theory']:.4f}, floor {row['floor']:.4f} (networks {row['floor_networks']:.4f}); "
                      f"ratio <= {row['ratio_to_floor_upper_bound']:.2f} (to the seed part alone {row['ratio_to_networks_floor']:.2f}, "
                      f"to the half-set floor {row['ratio_to_half_set_floor']:.2f}); NNGP {row['nngp_ratio_to_floor']:.1f}x", flush=True)
        return
    quick = args.quick
    P = args.train_points or (32 if quick else 64)
    width = args.width or (64 if quick else 512)
    seeds = args.seeds or (2 if quick else 4)
    steps = args.steps or (1000 if quick else 4000)
    num_samples = args.num_samples or (2**11 if quick else 2**13)
    test_points = args.test_points or (500 if quick else 1000)
    suffix = "_quick" if quick else ""
    out = Path(args.out or ROOT / "results" / "deep_composition" / ("quick.json" if quick else "main.json"))
    figure = Path(args.figure or ROOT / "figures" / f"deep_composition{suffix}.png")
    print(f"deep_composition: devices: {', '.join(io.devices())}", flush=True)

    data = make_data("xor_product", n_train=P, seed=0)
    test = get_task("xor_product").sample(jax.random.key(99), test_points)
    y = np.asarray(data.y, np.float64)
    payload = {"quick": quick, "train_points": P, "test_points": test_points, "beta": args.beta,
               "activation": args.activation, "sw2": args.sw2, "width": width, "seeds": seeds, "steps": steps,
               "step_size": args.step_size, "sampler": args.sampler, "theory": {}, "networks": {}, "layers": {}, "losses": {}}
    for depth in args.depths:
        model = Deep(args.activation, depth=depth, sa2=1.0, sW2=1.0, sw2=args.sw2, beta=args.beta)
        name = f"depth{depth}"
        record, solution, laws = theory_run(data, test, model, num_samples, args.sampler)
        payload["theory"][name] = record
        print(f"theory {name}: {record['message']} in {record['seconds']} s; ESS {[round(e) for e in record['ess']]}; "
              f"GP train/test {record['loss']['gp']['train']:.4f}/{record['loss']['gp']['test']:.4f}; "
              f"MFT train/test {record['loss']['mft']['train']:.4f}/{record['loss']['mft']['test']:.4f}", flush=True)
        payload["losses"][f"gp_{name}"] = record["loss"]["gp"]
        payload["losses"][f"mft_{name}"] = record["loss"]["mft"]
        nngp = deep_nngp(model, data.x)
        layers = {}
        for l, law in enumerate(laws, start=1):
            o = overlaps(law.h, model, y)
            weight = np.asarray(law.weight, np.float64)
            layers[f"layer{l}"] = {"overlap": {"theory_mean": float(weight @ o), "theory_sd": float(np.sqrt(weight @ (o - weight @ o) ** 2)),
                                               "theory_quantiles": weighted_quantiles(o, weight, (0.05, 0.25, 0.5, 0.75, 0.95)),
                                               "theory_hist": np.histogram(o, bins=40, weights=weight)}}
            if law.w is not None:
                layers[f"layer{l}"]["weights"] = {"theory": layer1_moments(np.asarray(law.w, np.float64), weight)}
        if not args.skip_networks:
            start = time.perf_counter()
            run_dir = Path(args.runs) / f"{name}_width{width}" if args.runs else None
            mean, h, w, inst_loss = network_run(data, test, model, width, seeds, steps, args.step_size, run_dir, args.resume)
            seconds = time.perf_counter() - start
            per_seed = {"train": [half_mse(mean["train"][s], y) for s in range(seeds)],
                        "test": [half_mse(mean["test"][s], test.y) for s in range(seeds)]}
            sem = lambda v: float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
            payload["losses"][f"networks_{name}"] = {
                "train": float(np.mean(per_seed["train"])), "train_sem": sem(per_seed["train"]),
                "test": float(np.mean(per_seed["test"])), "test_sem": sem(per_seed["test"]),
                "instantaneous_train": float(np.mean(inst_loss)), "per_seed": per_seed,
                "train_halves": [float(np.mean([half_mse(half[s], y) for s in range(seeds)])) for half in mean["train_halves"]]}
            payload["networks"][name] = {"seconds": round(seconds, 1)}
            kernel_mean = mean["kernels"].mean(axis=0)
            half_a, half_b = mean["kernels"][: max(seeds // 2, 1)].mean(axis=0), mean["kernels"][max(seeds // 2, 1):].mean(axis=0)
            for l in range(1, model.hidden_layers + 1):
                entry = layers[f"layer{l}"]
                theory_k = solution.kernels[l - 1]
                floor = theory_kernel_floor(mean["kernels"][:, l - 1], theory_k, laws[l - 1], model) if seeds > 1 else None
                entry["alignment"] = {"theory": float(kernel_alignment(theory_k, kernel_mean[l - 1])),
                                      "nngp": float(kernel_alignment(nngp[l - 1], kernel_mean[l - 1])),
                                      "noise_floor": 1.0 - floor.alignment if floor else None,
                                      "half_set_alignment": float(kernel_alignment(half_a[l - 1], half_b[l - 1])) if seeds > 1 else None}
                entry["distance"] = {"theory": float(relative_kernel_error(kernel_mean[l - 1], theory_k)),
                                     "nngp": float(relative_kernel_error(kernel_mean[l - 1], nngp[l - 1])),
                                     "noise_floor": floor.distance if floor else None,
                                     "noise_floor_parts": {"networks": floor.networks, "theory": floor.theory} if floor else None,
                                     "half_set_distance": float(relative_kernel_error(half_a[l - 1], half_b[l - 1])) if seeds > 1 else None}
                entry["distance"]["ratio_to_floor"] = entry["distance"]["theory"] / floor.distance if floor else None
                entry["learned_part"] = learned_part(kernel_mean[l - 1], theory_k, nngp[l - 1], floor=floor)
                o_net = np.stack([overlaps(h[s, l - 1].T, model, y) for s in range(seeds)])  # (S, N)
                entry["overlap"].update({"networks_mean": float(o_net.mean()), "networks_mean_sem": sem(o_net.mean(axis=1)),
                                         "networks_sd": float(o_net.std()), "networks_sd_sem": sem(o_net.std(axis=1)),
                                         "networks_quantiles": [float(v) for v in np.quantile(o_net, (0.05, 0.25, 0.5, 0.75, 0.95))],
                                         "networks_values": o_net.ravel()})
                if l == 1:
                    per = [layer1_moments(w[s]) for s in range(seeds)]
                    entry["weights"]["networks"] = {k: float(np.mean([m[k] for m in per])) for k in per[0]}
                    entry["weights"]["networks_sem"] = {k: sem([m[k] for m in per]) for k in per[0]}
                print(f"  layer {l}: learned part K - K_NNGP: distance theory {entry['learned_part']['theory']['distance']:.3f} (NNGP 1; "
                      f"floor {entry['learned_part'].get('distance_floor')}), alignment theory {entry['learned_part']['theory']['alignment']:.4f} "
                      f"(NNGP 0); distance / floor {entry['distance']['ratio_to_floor']}", flush=True)
                print(f"  layer {l}: alignment theory {entry['alignment']['theory']:.4f} NNGP {entry['alignment']['nngp']:.4f} "
                      f"(floor {entry['alignment']['noise_floor']}); distance theory {entry['distance']['theory']:.4f} "
                      f"NNGP {entry['distance']['nngp']:.4f} (floor {entry['distance']['noise_floor']}); overlap mean/sd "
                      f"theory {entry['overlap']['theory_mean']:.4f}/{entry['overlap']['theory_sd']:.4f} networks "
                      f"{entry['overlap']['networks_mean']:.4f}/{entry['overlap']['networks_sd']:.4f}", flush=True)
            net = payload["losses"][f"networks_{name}"]
            print(f"networks {name} (N = {width}, {seeds} seeds, {seconds:.0f} s): train {net['train']:.4f} +- {net['train_sem']:.4f}, "
                  f"test {net['test']:.4f} +- {net['test_sem']:.4f}", flush=True)
        payload["layers"][name] = layers
    payload["meta"] = io.run_metadata({k: payload[k] for k in ("train_points", "beta", "activation", "sw2", "width", "seeds", "steps")}, 0)
    io.write_json(out, payload)
    plot(payload, figure)
    print(f"deep_composition: wrote {out} and {figure}")


def plot(payload, path) -> None:
    plt = io.pyplot()

    panels = [(name, layer) for name in payload["layers"] for layer in payload["layers"][name]]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(3.8 * (len(panels) + 1), 3.6))
    for ax, (name, layer) in zip(axes, panels):
        entry = payload["layers"][name][layer]["overlap"]
        counts, edges = (np.asarray(v, np.float64) for v in entry["theory_hist"])
        ax.stairs(counts / np.diff(edges), edges, color="C0", label="theory")
        if "networks_values" in entry:
            ax.hist(np.asarray(entry["networks_values"]), bins=edges, density=True, histtype="step", color="C1", label="networks")
        ax.set_xlabel(r"target overlap $\frac{1}{P}\sum_\mu \phi(h_\mu) y_\mu$")
        ax.set_title(f"{name}, {layer}")
        ax.legend(fontsize=7)
    ax = axes[-1]
    names = list(payload["losses"])
    test = [payload["losses"][n]["test"] for n in names]
    errors = [payload["losses"][n].get("test_sem", 0.0) for n in names]
    ax.bar(range(len(names)), test, yerr=errors, color=["0.6" if n.startswith("gp") else "C0" if n.startswith("mft") else "C1" for n in names])
    ax.axhline(0.5, color="k", lw=0.6, ls=":")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(r"test loss $\frac{1}{2}E(f-y)^2$ (0.5: f = 0)")
    fig.suptitle(f"y = (x1 x2)(x3 x4), P = {payload['train_points']}, {payload['activation']}, beta = {payload['beta']:g}, N = {payload['width']}")
    io.save_figure(fig, path, dpi=130)


make_figures = io.figure_redrawer("deep_composition", plot)

if __name__ == "__main__":
    main()
