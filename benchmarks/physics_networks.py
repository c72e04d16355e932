"""Finite-width networks for the physics benchmarks: Langevin sampling of the tempered posterior.

``p(a, W) ~ exp(-beta N L - sum_i |a_i|^2/(2 sa2) + |w_i|^2/(2 sw2))`` (THEORY.md section 2), sampled
by the per-neuron Langevin update ``theta <- theta - h (grad(N L) + T theta/s2) + sqrt(2 h T) xi``
(``mft_jax.train.langevin``) through ``mft_jax.train.run_loop``, many seeds vmapped; observables
are recorded every ``record_every`` steps so the caller can time-average after its burn-in.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.data import Dataset
from mft_jax.model import TwoLayer
from mft_jax.train.langevin import langevin
from mft_jax.train.loop import run_loop


def network_output(params: dict, model: TwoLayer, x: jax.Array) -> jax.Array:
    """``f(x) = (1/N) sum_i a_i phi(w_i . x)``: (P, C)."""
    return model.features(params["w"], x).T @ params["a"] / params["a"].shape[0]


def network_loss(params: dict, model: TwoLayer, data: Dataset) -> jax.Array:
    """``L = 1/2 sum_mu q_mu |f(x_mu) - y_mu|^2``."""
    r = data.y - network_output(params, model, data.x)
    return 0.5 * jnp.sum(data.q[:, None] * r * r)


def prior_networks(key: jax.Array, model: TwoLayer, width: int, num_seeds: int, input_dim: int, output_dim: int) -> dict:
    """``num_seeds`` prior draws ``a ~ N(0, sa2)``, ``w ~ N(0, sw2 I)``: {"a": (S, N, C), "w": (S, N, d)}."""
    key_a, key_w = jax.random.split(key)
    return {
        "a": jnp.sqrt(model.sa2) * jax.random.normal(key_a, (num_seeds, width, output_dim)),
        "w": jnp.sqrt(model.sw2) * jax.random.normal(key_w, (num_seeds, width, input_dim)),
    }


def langevin_networks(key, model: TwoLayer, data: Dataset, params: dict, *, steps: int, step_size: float,
                      record_every: int, observables=None) -> tuple[dict, dict]:
    """Run ``steps`` Langevin steps from ``params`` (leading seed axis), recording every ``record_every`` steps.

    Returns ``(params, history)``: the final parameters and, per record, ``step``, the train
    ``loss`` per seed and each array of ``observables(params_one_seed) -> dict`` per seed
    (history arrays have shape (records, seeds, ...)). One ``run_loop`` call: one compilation.
    """
    num_seeds = params["a"].shape[0]
    transform = langevin(step_size, model.temperature, {"a": model.sa2, "w": model.sw2}, key)
    opt_state = jax.vmap(lambda k: transform.init(None)._replace(key=k))(jax.random.split(key, num_seeds))
    observables = observables or (lambda p: {})

    def one_seed(params, opt_state):
        width = params["a"].shape[0]
        loss, grads = jax.value_and_grad(lambda p: width * network_loss(p, model, data))(params)
        updates, opt_state = transform.update(grads, opt_state, params)
        return jax.tree.map(jnp.add, params, updates), opt_state, loss / width

    def step(state, t):
        del t  # the noise comes from fold_in(key, count) inside the transform
        params, opt_state = state
        params, opt_state, loss = jax.vmap(one_seed)(params, opt_state)
        return (params, opt_state), {"loss": loss, **jax.vmap(observables)(params)}

    (params, _), history = run_loop(step, (params, opt_state), steps, chunk=record_every, progress=False, description="langevin")
    return params, {name: np.asarray(values) for name, values in history.items()}
