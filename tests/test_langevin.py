"""Langevin transform: exact stationary law on a Gaussian target."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mft_jax.train.langevin import langevin


def test_stationary_law_of_a_quadratic_potential():
    # U = k theta^2 / 2, prior variance s2, temperature T: the law is Gaussian with variance 1 / (k/T + 1/s2).
    k, s2, T, h = 2.0, 0.5, 0.3, 1e-3
    exact = 1.0 / (k / T + 1.0 / s2)
    # Discrete-time ULA variance for this linear recursion is exact / (1 - h (k + T/s2) / 2): 0.12% high, budgeted below.
    ula = exact / (1.0 - 0.5 * h * (k + T / s2))
    chains = 4096
    params = {"theta": jnp.zeros(chains)}
    transform = langevin(h, T, {"theta": s2}, jax.random.key(1))
    state = transform.init(params)

    def step(carry, _):
        params, state = carry
        grads = {"theta": k * params["theta"]}
        updates, state = transform.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, state), None, length=6000)  # 6000 h (k + T/s2) = 13 relaxation times
    sample_variance = float(jnp.var(params["theta"]))
    standard_error = ula * np.sqrt(2.0 / chains)  # variance estimator of 4096 independent chains
    assert abs(sample_variance - ula) < 4 * standard_error  # 4 sigma: false-failure rate 6e-5
    assert abs(ula - exact) < 0.2 * standard_error  # the step-size bias is well inside the statistical budget
