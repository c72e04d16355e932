"""Reference solves and training runs, recorded bit for bit: a guard for refactors that must move nothing.

``python tests/reference_solves.py --write`` runs every case and writes ``tests/data/reference_solves.npz``
(arrays, numbers, words, and the fingerprint of the machine that made them); ``tests/test_reference_solves.py``
runs the cases again and asserts exact equality. Float results depend on the CPU's instruction set and the
library versions, so the test compares only on the fingerprint the file was written on (else it skips, naming
the difference): regenerate the file on the commit before a refactor, then run the test after it.

Cases (small sizes, seconds each): the two-layer solver with grid, importance, MCMC and tempered samplers,
direct and with continuation, the automatic escalation past a refused start, Newton ascent; the deep solver by
Newton, Anderson and the adaptive ``mcmc_layers``; a foreground, a deep-foreground and a joint training run.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import jax
import numpy as np

PATH = Path(__file__).parent / "data" / "reference_solves.npz"


def fingerprint() -> dict:
    """What float results depend on besides the code: versions, CPU and XLA flags."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    import jaxlib

    # the Makefile's --xla_cpu_multi_thread_eigen=true moves no bit of these cases (checked: make test on the recording machine)
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith("--xla_cpu_multi_thread_eigen"))
    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "numpy": np.__version__, "machine": platform.machine(),
            "cpu": cpu, "xla_flags": flags, "backend": jax.default_backend()}


def _two_layer(solution) -> dict:
    """The record of a two-layer solve. ``converged`` is the iteration's own verdict, as the 0.1 base recorded it
    (since 0.2 ``diagnostics["settled"]``: a law the sampler cannot vouch for is reported not converged, with its
    own message); the message is recorded for the solves whose verdict that change leaves alone."""
    from mft_jax.theory.fixed_point import Result

    record = {"residual": np.asarray(solution.residual), "loss": solution.loss,
              "free_energy": np.nan if solution.free_energy is None else solution.free_energy,
              "converged": solution.diagnostics.get("settled", solution.converged), "iterations": solution.iterations,
              "change": np.asarray(solution.history["change"]), "steps": list(solution.history["step"]),
              "actions": list(solution.actions), "message": solution.message}
    if solution.result is Result.UNVOUCHED:
        record["message"] = STORED_MESSAGE  # compared by the test against nothing new: see test_reference_solves
    return record


STORED_MESSAGE = "<the stored message: this solve's verdict changed by design in 0.2>"


def _deep(solution) -> dict:
    return {"residual": np.asarray(solution.residual), "kernels": np.stack([np.asarray(k) for k in solution.kernels]),
            "loss": solution.loss, "free_energy": solution.free_energy, "converged": solution.converged,
            "iterations": solution.iterations, "change": np.asarray(solution.history["change"]),
            "steps": list(solution.history["step"]), "actions": list(solution.actions),
            "message": solution.message}


# ------------------------------------------------------------------------------------- the cases
def grid_linear():
    from mft_jax import TwoLayer, make_data, solve
    from mft_jax.samplers import grid_sampler

    data = make_data("linear_teacher", quadrature=3, teacher=(1.0, -0.5))
    return _two_layer(solve(data, TwoLayer("linear", 1.0, 1.0, 1.0), grid_sampler(48, 10.0), key=jax.random.key(0),
                            tol=1e-6))


def grid_continuation():
    from mft_jax import Continuation, TwoLayer, make_data, solve
    from mft_jax.samplers import grid_sampler

    with jax.enable_x64(True):
        data = make_data("linear_teacher", quadrature=3, teacher=(2.0, 1.0))
        return _two_layer(solve(data, TwoLayer("linear", 1.0, 1.0, 2.0), grid_sampler(48, 10.0), key=jax.random.key(0),
                                schedule=Continuation(stages=6), tol=1e-10))


def grid_escalation():
    from mft_jax import TwoLayer, make_data, solve
    from mft_jax.samplers import grid_sampler

    with jax.enable_x64(True):
        data = make_data("linear_teacher", quadrature=3, teacher=(2.0, 1.0))
        return _two_layer(solve(data, TwoLayer("linear", 1.0, 0.5, 5.0), grid_sampler(48, 10.0), key=jax.random.key(0),
                                init="feature", tol=1e-10))


def grid_clover_regrid():
    from mft_jax import TwoLayer, make_data, solve
    from mft_jax.samplers import grid_sampler

    data = make_data("continuous_xor", quadrature=6)
    return _two_layer(solve(data, TwoLayer("ramp", 1.0, 1.0, 60.0), grid_sampler(24, 3.0), key=jax.random.key(0),
                            tol=1e-5))


def grid_newton():
    from mft_jax import Ascent, TwoLayer, make_data, solve
    from mft_jax.samplers import grid_sampler

    data = make_data("continuous_xor", quadrature=6)
    return _two_layer(solve(data, TwoLayer("ramp", 1.0, 1.0, 20.0), grid_sampler(32, 6.0), key=jax.random.key(0),
                            solver=Ascent(), auto=False, adapt_grid=False))


def importance_damped():
    from mft_jax import Damped, TwoLayer, make_data, solve
    from mft_jax.samplers import importance_sampler

    data = _teacher_data()
    return _two_layer(solve(data, TwoLayer("erf", 1.0, 1.0, 4.0), importance_sampler(4096), key=jax.random.key(1),
                            solver=Damped(0.5)))


def mcmc_noise_floor():
    from mft_jax import TwoLayer, make_data, solve
    from mft_jax.samplers import mcmc_sampler

    data = _teacher_data()
    # auto=False: the iteration as recorded on the 0.1 base (since 0.2, auto=True also escalates unmixed chains)
    return _two_layer(solve(data, TwoLayer("erf", 1.0, 1.0, 4.0), mcmc_sampler(256, 20, num_warmup=10),
                            key=jax.random.key(2), max_iter=40, auto=False))


def tempered_few_steps():
    from mft_jax import TwoLayer, make_data, solve
    from mft_jax.samplers import tempered_sampler

    data = _teacher_data()
    solution = solve(data, TwoLayer("erf", 1.0, 1.0, 4.0), tempered_sampler(64, 8, num_levels=3, num_warmup=4),
                     key=jax.random.key(3), max_iter=6, auto=False)
    return {**_two_layer(solution), "diagnostics": json.dumps(solution.diagnostics, sort_keys=True)}


def deep_gaussian_newton():
    from mft_jax import Deep, make_dataset, solve_deep
    from mft_jax.samplers import gaussian_layers

    x, y = _deep_data()
    return _deep(solve_deep(make_dataset(x, y), Deep("linear", depth=3, sw2=1.0, beta=4.0), gaussian_layers(),
                            key=jax.random.key(0), tol=1e-6))


def deep_importance_anderson():
    from mft_jax import Anderson, Deep, make_dataset, solve_deep
    from mft_jax.samplers import importance_layers

    x, y = _deep_data()
    return _deep(solve_deep(make_dataset(x, y), Deep("erf", depth=3, beta=3.0), importance_layers(1024),
                            key=jax.random.key(1), solver=Anderson(5, 0.5, halvings=12), tol=1e-6, max_iter=40))


def deep_mcmc_layers():
    from mft_jax import Deep, make_dataset, solve_deep
    from mft_jax.samplers import mcmc_layers

    rng = np.random.default_rng(2)  # sw2 X X^T = I_P (tests/test_deep.py::whitened_data): importance collapses here
    u, _, vt = np.linalg.svd(rng.normal(size=(4, 6)), full_matrices=False)
    data = make_dataset(np.sqrt(6) * u @ vt, rng.normal(size=(4, 1)), np.full(4, 0.25))
    solution = solve_deep(data, Deep("linear", depth=3, sw2=1 / 6, beta=50.0), mcmc_layers(512, 10),
                          key=jax.random.key(2), tol=1e-6, max_iter=30)
    return {**_deep(solution), "refreshes": json.dumps(solution.history["refreshes"], sort_keys=True)}


def train_foreground_run():
    from mft_jax import TwoLayer, make_data
    from mft_jax.train.foreground import train_foreground

    data = make_data("continuous_xor", quadrature=4)
    model = TwoLayer("erf", 1.0, 1.0, 2.0)
    law = train_foreground(jax.random.key(4), model, data, 0.5 * data.y, num_neurons=64, steps=50, step_size=0.01,
                           chunk=25, progress=False)
    return {"w": np.asarray(law.w), "weights": np.asarray(law.weights())}


def train_deep_foreground_run():
    from mft_jax import Deep, make_dataset, solve_deep
    from mft_jax.samplers import gaussian_layers
    from mft_jax.train.deep_foreground import train_deep_foreground

    x, y = _deep_data()
    solution = solve_deep(make_dataset(x, y), Deep("linear", depth=3, beta=4.0), gaussian_layers(),
                          key=jax.random.key(0), tol=1e-6)
    neurons = train_deep_foreground(jax.random.key(5), solution, 2, num_neurons=32, steps=40, step_size=0.01,
                                    burn_in=20, chunk=20, progress=False)
    return {"theta": np.asarray(neurons.theta), "moments": np.asarray(neurons.moments)}


def train_joint_run():
    from mft_jax import TwoLayer, make_data
    from mft_jax.train.joint import langevin_optimizer, train

    data = make_data("continuous_xor", quadrature=4)
    model = TwoLayer("erf", 1.0, 1.0, 2.0)
    result = train(jax.random.key(6), model, 16, data, langevin_optimizer(model, 0.01), 60, num_seeds=2, chunk=20,
                   progress=False)
    return {"a": np.asarray(result.params["a"]), "w": np.asarray(result.params["w"]),
            "loss": np.asarray(result.history["loss"])}


def _teacher_data():
    from mft_jax import make_dataset

    return make_dataset(*_deep_data())


def _deep_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3)) / np.sqrt(3)
    return x, np.tanh(x @ np.array([1.0, -0.5, 0.3]))[:, None]


CASES = {f.__name__: f for f in (
    grid_linear, grid_continuation, grid_escalation, grid_clover_regrid, grid_newton, importance_damped, mcmc_noise_floor,
    tempered_few_steps, deep_gaussian_newton, deep_importance_anderson, deep_mcmc_layers, train_foreground_run,
    train_deep_foreground_run, train_joint_run)}


# ------------------------------------------------------------------------------------- storage
def flatten(name: str, record: dict) -> dict:
    """``{"case/field": array}`` for ``np.savez``: numbers as 0-d arrays, words as unicode arrays."""
    out = {}
    for field, value in record.items():
        if isinstance(value, (list, tuple)):
            value = np.asarray(value, dtype=str) if value else np.zeros(0, dtype="<U1")
        out[f"{name}/{field}"] = np.asarray(value)
    return out


def load() -> tuple[dict, dict]:
    """The stored fingerprint and ``{"case/field": array}``."""
    with np.load(PATH) as stored:
        records = {key: stored[key] for key in stored.files}
    return json.loads(str(records.pop("fingerprint"))), records


def main(argv: list[str]) -> None:
    if argv != ["--write"]:
        raise SystemExit("usage: python tests/reference_solves.py --write   (records every case to " + str(PATH) + ")")
    records = {"fingerprint": np.asarray(json.dumps(fingerprint(), sort_keys=True))}
    for name, case in CASES.items():
        print(name, flush=True)
        records.update(flatten(name, case()))
    PATH.parent.mkdir(exist_ok=True)
    np.savez(PATH, **records)
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main(sys.argv[1:])
