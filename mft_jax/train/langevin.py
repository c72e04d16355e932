"""Langevin dynamics as an optax transform (docs/theory.md section 2).

Per parameter ``theta`` with prior variance ``s2`` and temperature ``T = 1/beta``:

    theta <- theta - h (grad_theta U + T theta / s2) + sqrt(2 h T) xi,     xi ~ N(0, I)

whose stationary law (as h -> 0) is ``exp(-U / T - |theta|^2 / (2 s2))`` (times ``exp(-Gamma(theta))`` with a
weight penalty, docs/theory.md section 7). With ``U = N L`` this is
the tempered posterior of the network; with ``U = V(a, w)`` the single-neuron law. The O(h)
discretisation bias is the caller's budget: pick ``h`` so it sits below the statistical error.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mft_jax.errors import ConfigError


def tamed_penalty_force(gamma, theta: jax.Array, temperature, step_size) -> jax.Array:
    """The penalty's force on ``theta`` as both Langevin steps apply it (the networks' ``langevin`` and the mean-field
    particles' ``mft_jax.theory.dynamics.langevin_step``): ``F / (1 + h |F|)`` elementwise, ``F = T grad Gamma(theta)``
    (``Gamma`` maps (rows, d) to one value per row; tamed unadjusted Langevin, Brosse et al. 2019, see ``langevin``)."""
    force = temperature * jax.grad(lambda value: jnp.sum(gamma(value)))(theta)
    return force / (1.0 + step_size * jnp.abs(force))


class LangevinState(NamedTuple):
    key: jax.Array
    count: jax.Array


def langevin(step_size: float, temperature: float, prior_variance, key: jax.Array, penalty: dict | None = None) -> optax.GradientTransformation:
    """Updates ``-h (g + T theta / s2 + T grad Gamma(theta)) + sqrt(2 h T) xi``; ``prior_variance`` is a pytree prefix of the params.

    ``penalty``: ``{name: Gamma}`` for entries of a dict of params whose prior carries a non-Gaussian
    term ``exp(-Gamma)`` (``mft_jax.priors``; ``Gamma`` maps a (rows, d) array to one value per row), so the
    stationary law is ``exp(-U/T - |theta|^2/(2 s2) - sum_rows Gamma)``. A sextic force ``T grad Gamma ~ |theta|^5``
    makes explicit Euler unstable where ``h T grad Gamma`` is O(1) (prior draws in the tail), so this force is
    *tamed*, ``F / (1 + h |F|)`` elementwise (tamed unadjusted Langevin, Brosse et al. 2019): equal to ``F`` up
    to O(h F^2), so the O(h) bias of the scheme is unchanged where the law lives. The noise of update number
    ``count`` is drawn from ``fold_in(key, count)``, so a resumed run continues the same noise sequence.
    """
    if not step_size > 0:
        raise ConfigError(f"Langevin step_size must be > 0, got {step_size!r}")
    if not temperature >= 0:
        raise ConfigError(f"Langevin temperature must be >= 0, got {temperature!r}")

    def init(params):
        return LangevinState(key, jnp.zeros((), jnp.int32))

    def update(grads, state, params):
        if params is None:
            raise ValueError("langevin needs params (weight decay T theta / s2)")
        if penalty:
            grads = dict(grads)
            for name, gamma in penalty.items():
                grads[name] = grads[name] + tamed_penalty_force(gamma, params[name], temperature, step_size)
        variances = jax.tree.broadcast(prior_variance, params)
        leaves, treedef = jax.tree.flatten(params)
        noise_keys = jax.tree.unflatten(treedef, list(jax.random.split(jax.random.fold_in(state.key, state.count), len(leaves))))

        def one(g, theta, s2, noise_key):
            drift = g + temperature * theta / s2
            return -step_size * drift + jnp.sqrt(2.0 * step_size * temperature) * jax.random.normal(noise_key, theta.shape, theta.dtype)

        updates = jax.tree.map(one, grads, params, variances, noise_keys)
        return updates, LangevinState(state.key, state.count + 1)

    return optax.GradientTransformation(init, update)
