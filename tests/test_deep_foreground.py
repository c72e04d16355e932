"""Foreground neurons of one layer of a deep network against the fixed deep background
(``mft_jax.train.deep_foreground``, docs/theory.md 6.8).

- Deep linear network, depth 3: the neurons of layer 1 (weights w) and of layer 2 (whitened z)
  sample the theory's Gaussian law; their kernels match the closed-form ``Phi_l`` carried through
  the exact stationary law of the Euler chain at step h (the O(h) bias computed, not fitted), and
  the same check fails against the closed form at 1.1 beta and against the NNGP (the prior).
- tanh, depth 3: the kernels of both layers, step-size bias removed by Richardson extrapolation
  from h and h/2, match the solver's (grid + importance sampled) kernels; the same check fails
  against the NNGP.
- Exact resume, and bad input named.
"""

import jax
import numpy as np
import pytest

from mft_jax.data import make_dataset
from mft_jax.theory.deep import Deep, deep_nngp, gaussian_layers, grid_layers, solve_deep
from mft_jax.errors import ConfigError
from mft_jax.train.deep_foreground import layer_background, train_deep_foreground
from test_deep import closed_form_kernels, whitened_data

K_SE = 5.0  # every check: all distinct kernel entries within 5 standard errors (Bonferroni, below)


def max_z(kernel, reference, standard_error):
    """Largest ``|K - reference| / s.e.`` over the P(P+1)/2 distinct entries of a symmetric kernel."""
    rows, cols = np.triu_indices(kernel.shape[0])
    return float(np.max(np.abs(kernel - reference)[rows, cols] / standard_error[rows, cols]))


def along(moments, direction):
    """``u^T K u`` and its standard error from the per-neuron moments (M, P, P) (independent neurons)."""
    values = np.einsum("p,mpq,q->m", direction, moments, direction)
    return values.mean(), values.std(ddof=1) / np.sqrt(values.size)


def euler_kernel(basis, precision, step, temperature):
    """Kernel ``B S_h B^T`` of the Euler chain ``theta' = (I - h T Prec) theta + sqrt(2 h T) xi``.

    Its stationary covariance solves ``S = (I - h T Prec) S (I - h T Prec) + 2 h T I``, i.e.
    ``S_h = (Prec - h T Prec^2 / 2)^-1`` (the h -> 0 limit is the law's ``Prec^-1``).
    """
    return basis @ np.linalg.inv(precision - 0.5 * step * temperature * precision @ precision) @ basis.T


def linear_reference(layer, kernels, x, sw2, sW2):
    """(basis B, precision of theta) of the layer's Gaussian law, from the closed-form kernels alone.

    Layer 1 (theta = w): ``Prec = I / sw2 + X^T Phihat_1 X``, ``Phihat_1 = Phi_1^-1 - (sw2 X X^T)^-1``.
    Layer l >= 2 (theta = z, ``A A^T = sW2 Phi_(l-1)``): ``Prec = A^T Phi_l^-1 A``. Both give ``B Prec^-1 B^T = Phi_l``.
    """
    phi = kernels[layer - 1]
    if layer == 1:
        phihat = np.linalg.inv(phi) - np.linalg.inv(sw2 * x @ x.T)
        return x, np.eye(x.shape[1]) / sw2 + x.T @ phihat @ x
    factor = np.linalg.cholesky(sW2 * kernels[layer - 2])
    return factor, factor.T @ np.linalg.inv(phi) @ factor


@pytest.mark.parametrize("layer", [1, 2])
def test_deep_linear_foreground_samples_the_theory_law(x64, layer):
    data, sw2 = whitened_data()
    beta, sa2, sW2 = 2.0, 1.0, 1.0  # kappa = 1.399: Phi_1, Phi_2 grow by 40%, 96% along yhat
    model = Deep("linear", depth=3, sa2=sa2, sW2=sW2, sw2=sw2, beta=beta)
    solution = solve_deep(data, model, gaussian_layers(), tol=1e-10)
    assert solution.converged, solution.message
    x, y = np.asarray(data.x), np.asarray(data.y)
    kernels, _ = closed_form_kernels(beta, sa2, y, 3)
    basis, precision = linear_reference(layer, kernels, x, sw2, sW2)
    np.testing.assert_allclose(basis @ np.linalg.inv(precision) @ basis.T, kernels[layer - 1], atol=1e-10)  # the reference is the law
    temperature = 1.0 / beta
    # h T lambda_max(Prec) = 0.05: the slowest mode relaxes by exp(-0.05 * 0.71) per step (lambda_min / lambda_max = 1/kappa),
    # so 200 burn-in steps leave exp(-14) of the prior start; 1200 averaged steps give ~40 effective samples per neuron.
    step = 0.05 / (temperature * np.linalg.eigvalsh(precision).max())
    neurons = train_deep_foreground(jax.random.key(layer), solution, layer, num_neurons=4096, steps=1400, step_size=step,
                                    burn_in=200, progress=False)
    kernel, standard_error = np.asarray(neurons.kernel), np.asarray(neurons.kernel_standard_error)
    assert neurons.theta.shape == (4096, x.shape[1] if layer == 1 else x.shape[0])
    yhat = y[:, 0] / np.linalg.norm(y)
    learnt, learnt_error = along(np.asarray(neurons.moments), yhat)  # the kernel along the target: where it learns

    def check(reference):
        """max z over the 21 distinct entries and ``yhat^T K yhat``."""
        return max(max_z(kernel, reference, standard_error), abs(learnt - yhat @ reference @ yhat) / learnt_error)

    # Error budget: each entry is a mean over 4096 independent neurons (normal to < 1e-3 in its tails);
    # 5 s.e. on 22 statistics: false-failure rate < 22 * 5.7e-7 = 1.3e-5.
    euler = euler_kernel(basis, precision, step, temperature)
    z = check(euler)
    bias = np.max(np.abs(euler - kernels[layer - 1]))  # the O(h) step-size bias: 2.5% of the top entry, 10 s.e.
    assert z < K_SE, f"layer {layer}: max z = {z:.2f} against the theory law at step h (step bias {bias:.4f})"
    report = f"deep linear layer {layer}: max z {z:.2f} vs theory (yhat K yhat {learnt:.4f} +- {learnt_error:.4f}, theory {yhat @ euler @ yhat:.4f} at h, {yhat @ kernels[layer - 1] @ yhat:.4f} at h = 0)"
    # power: the closed form at 1.1 beta and the NNGP (the prior, Phi_l = I here), through the same Euler law
    # (measured with 600 averaged steps, max z: 1.1 beta 7.8 (layer 1) and 16 (layer 2), NNGP 59 and 104; the theory 2.3, 2.1)
    wrong_kernels, _ = closed_form_kernels(1.1 * beta, sa2, y, 3)
    priors = [np.asarray(k) for k in deep_nngp(model, data.x)]
    for name, wrong in (("1.1 beta", wrong_kernels), ("NNGP", priors)):
        wrong_z = check(euler_kernel(*linear_reference(layer, wrong, x, sw2, sW2), step, temperature))
        assert wrong_z > K_SE, f"layer {layer}: the check cannot tell the theory from the {name} (max z = {wrong_z:.2f})"
        report += f"; {name} {wrong_z:.1f}"
    print(report)  # pytest -s shows the measured numbers (README)
    if layer == 1:
        law = neurons.weight_law()
        assert law.w.shape == (4096, x.shape[1])


def xor_like_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 2))
    return make_dataset(x, 2.0 * np.tanh(x[:, :1] * x[:, 1:]), np.full(4, 0.25))


@pytest.mark.slow  # default-suite budget: moved to make test-slow (2026-12-01, suite 12:19 on this machine)
def test_tanh_foreground_matches_the_sampled_theory_kernels(x64):
    data = xor_like_data()
    model = Deep("tanh", depth=3, sa2=1.0, sW2=1.0, sw2=1.0, beta=10.0)
    sampler = grid_layers(64, 6.0, 2**16)  # layer 1 on a 64^2 weight grid, layer 2 by importance (ESS ~5e4)
    solutions = [solve_deep(data, model, sampler, key=jax.random.key(k), tol=1e-9) for k in (0, 1)]
    assert all(s.converged for s in solutions), [s.message for s in solutions]
    priors = [np.asarray(k) for k in deep_nngp(model, data.x)]
    for layer in (1, 2):
        theory = np.asarray(solutions[0].kernels[layer - 1])
        runs = []
        for factor, seed in ((1, 10), (2, 20)):  # h = 0.1 and h / 2 (twice the steps: the same time)
            neurons = train_deep_foreground(jax.random.key(seed + layer), solutions[0], layer, num_neurons=4096,
                                            steps=600 * factor, step_size=0.1 / factor, burn_in=150 * factor, progress=False)
            runs.append((np.asarray(neurons.kernel), np.asarray(neurons.kernel_standard_error)))
        # Richardson: the O(h) bias cancels in 2 K(h/2) - K(h); the runs are independent, so the s.e. add in quadrature
        kernel = 2 * runs[1][0] - runs[0][0]
        standard_error = np.sqrt(4 * runs[1][1] ** 2 + runs[0][1] ** 2)
        # The theory's own Monte Carlo error: two particle seeds differ by < 0.5 s.e. of the foreground (measured 0.08 and 0.26)
        theory_noise = np.max(np.abs(np.asarray(solutions[1].kernels[layer - 1]) - theory) / standard_error)
        assert theory_noise < 0.5, f"layer {layer}: the theory kernels are too noisy for this check ({theory_noise:.2f} s.e.)"
        # Error budget: 5 s.e. on 10 distinct entries (false failures < 1e-5), plus the theory noise above
        z = max_z(kernel, theory, standard_error)
        assert z < K_SE + theory_noise, f"layer {layer}: max z = {z:.2f} against the theory"
        # power: the NNGP kernels (the prior laws) fail the same check (measured z = 9.6 and 31)
        prior_z = max_z(kernel, priors[layer - 1], standard_error)
        assert prior_z > K_SE + theory_noise, f"layer {layer}: the check cannot tell the theory from the NNGP (max z = {prior_z:.2f})"
        distance = np.linalg.norm(kernel - theory) / np.linalg.norm(theory)
        print(f"tanh layer {layer}: max z {z:.2f} vs theory (relative distance {distance:.4f}), NNGP {prior_z:.1f} "
              f"(NNGP-theory distance {np.linalg.norm(priors[layer - 1] - theory) / np.linalg.norm(theory):.4f}), theory noise {theory_noise:.2f} s.e.")


@pytest.mark.slow  # default-suite budget: moved to make test-slow (2026-12-01, suite 12:19 on this machine)
def test_deep_foreground_resumes_exactly(x64, tmp_path):
    data, sw2 = whitened_data()
    solution = solve_deep(data, Deep("linear", depth=3, sw2=sw2, beta=2.0), gaussian_layers(), tol=1e-10)
    settings = dict(num_neurons=8, step_size=0.1, burn_in=5, progress=False, chunk=10, checkpoint_every=10)
    whole = train_deep_foreground(jax.random.key(3), solution, 2, steps=40, **settings)
    train_deep_foreground(jax.random.key(3), solution, 2, steps=20, out_dir=tmp_path, **settings)
    resumed = train_deep_foreground(jax.random.key(3), solution, 2, steps=40, out_dir=tmp_path, resume=True, **settings)
    np.testing.assert_array_equal(np.asarray(resumed.theta), np.asarray(whole.theta))
    np.testing.assert_array_equal(np.asarray(resumed.moments), np.asarray(whole.moments))


def test_deep_foreground_bad_input_is_named(x64):
    data, sw2 = whitened_data()
    solution = solve_deep(data, Deep("linear", depth=3, sw2=sw2, beta=2.0), gaussian_layers(), tol=1e-10)
    run = dict(num_neurons=4, steps=2, step_size=0.1, progress=False)
    for layer in (0, 3, 1.0, True):
        with pytest.raises(ConfigError, match=r"layer must be an integer in 1\.\.2"):
            train_deep_foreground(jax.random.key(0), solution, layer, **run)
    with pytest.raises(ConfigError, match="needs a fixed point with a model of the protocol"):
        layer_background(solution._asdict(), 1)
    with pytest.raises(ConfigError, match="burn_in"):
        train_deep_foreground(jax.random.key(0), solution, 1, **{**run, "steps": 2}, burn_in=2)
    for key, value in (("num_neurons", 0), ("step_size", -0.1), ("temperature", float("nan"))):
        with pytest.raises(ConfigError, match=key):
            train_deep_foreground(jax.random.key(0), solution, 1, **{**run, key: value})
