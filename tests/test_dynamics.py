"""The mean-field training run (mft_jax.theory.dynamics) against closed forms and the static fixed point.

Each statistical test states its error budget and shows, inside the test, that a 10% error in the
checked quantity (a wrong twin) falls outside it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax.data import Dataset
from mft_jax.errors import ConfigError, NoFixedPointError
from mft_jax.model import TwoLayer
from mft_jax.tasks import make_data
from mft_jax.priors import sextic
from mft_jax.theory.dynamics import (Dynamics, Particles, initial_particles, kernel_flow, langevin_step, linear_moments,
                                     network_output, simulate, solve_dynamics, tangent_kernel)
from mft_jax.theory.fixed_point import Anderson, Damped
from mft_jax.theory.samplers.grid import GridSampler
from mft_jax.theory.two_layer import solve


def _loss(data, residual):
    return 0.5 * np.einsum("p,kpc->k", np.asarray(data.q, dtype=float), residual**2)


@pytest.fixture(scope="module")
def clover():
    return make_data("continuous_xor", quadrature=4)


def test_fixed_point_is_the_interacting_particle_system(clover):
    """With common random numbers the fixed point of the trajectory map is the M-particle system (a width-M network)
    stepped forward directly: equal to the engine's tolerance; another noise realisation is not."""
    model = TwoLayer("gelu", sa2=4.0, sw2=1.0, beta=1.0)
    options = dict(key=jax.random.key(0), steps=120, step_size=0.05, num_neurons=256)
    solution = solve_dynamics(clover, model, **options, windows=2, tol=1e-6)
    direct = simulate(clover, model, **options)
    assert solution.converged and solution.result.converged, solution.message
    gap = np.abs(solution.residual - direct).max()
    assert gap < 1e-4, gap
    other = simulate(clover, model, **{**options, "key": jax.random.key(1)})
    assert np.abs(other - direct).max() > 100 * 1e-4  # twin: a different noise path is far outside the tolerance
    anderson = solve_dynamics(clover, model, **options, solver=Anderson(5, 1.0), windows=[60, 120], tol=1e-6)
    assert anderson.converged and np.abs(anderson.residual - direct).max() < 1e-4
    assert solution.residual.shape == (121, 16, 1) and solution.times[-1] == pytest.approx(6.0)
    assert len(solution.laws) == 2 and solution.laws[-1].a.shape == (256, 1)


def test_unconverged_run_says_so(clover):
    model = TwoLayer("gelu", sa2=4.0, sw2=1.0, beta=1.0)
    options = dict(key=jax.random.key(0), steps=120, step_size=0.05, num_neurons=256, windows=1, max_iter=2, tol=1e-8)
    solution = solve_dynamics(clover, model, **options)
    assert not solution.converged and "no self-consistent trajectory" in solution.message
    with pytest.raises(NoFixedPointError, match="max_iter"):
        solve_dynamics(clover, model, **options, throw=True)
    halved = solve_dynamics(clover, model, **{**options, "windows": "auto", "max_iter": 12, "tol": 1e-5})
    assert halved.converged and "halved" in halved.message


@pytest.mark.parametrize("bad, match", [
    (dict(steps=0), "steps"), (dict(step_size=-1.0), "step_size"), (dict(temperature=-0.1), "temperature"),
    (dict(init="grid"), "init must be one of"), (dict(save_every=7), "must divide steps"),
    (dict(windows=[10, 5]), "windows"), (dict(solver="picard"), "solver"), (dict(num_neurons=3, init="antithetic"), "even"),
    (dict(test=make_data("continuous_xor", quadrature=2)._replace(y=np.zeros((4, 2)))), "test must be a Dataset"),
])
def test_bad_input_is_named(clover, bad, match):
    options = dict(key=jax.random.key(0), steps=20, step_size=0.05, num_neurons=8)
    with pytest.raises(ConfigError, match=match):
        solve_dynamics(clover, TwoLayer("gelu"), **{**options, **bad})


# ---------------------------------------------------------------------------------------- (a) linear closed form
def test_linear_activation_matches_the_moment_recursion():
    """phi(z) = z: 8 independent particle runs (M = 4096, antithetic pairs, so f(., 0) = 0 exactly) against the exact
    second-moment recursion at the same step (the M -> infinity limit). Two statistics, each with budget 5 s.e. (s.e. from
    the spread over the 8 runs): the loss at t = 0.1, 0.2, .., 0.5 (the descent) and its average over t in [2.5, 5] (the
    approach to equilibrium). Wrong twins: the recursion 10% hotter is off the late average by > 8 s.e.; one whose
    steps are 10% longer (the time axis 10% off) is off the descent by > 8 s.e."""
    data = make_data("linear_teacher", teacher=(1.0, -0.5), quadrature=3)
    model = TwoLayer("linear", sa2=1.0, sw2=1.0, beta=2.0)
    steps, h = 100, 0.05
    runs = [solve_dynamics(data, model, key=jax.random.key(s), steps=steps, step_size=h, num_neurons=4096, init="antithetic",
                           windows=5, tol=1e-6) for s in range(8)]
    assert all(run.converged for run in runs)
    assert np.all(np.stack([run.loss[0] for run in runs]) == pytest.approx(_loss(data, np.asarray(data.y)[None])[0], rel=1e-6))
    early, late = slice(2, 11, 2), slice(50, 101)

    def statistics(loss):
        return np.concatenate([loss[early], [loss[late].mean()]])

    values = np.stack([statistics(run.loss) for run in runs])
    mean, error = values.mean(0), values.std(0, ddof=1) / np.sqrt(len(runs))
    z = lambda loss: np.abs(mean - statistics(loss)) / error  # noqa: E731
    exact = z(linear_moments(data, model, steps=steps, step_size=h).loss)
    assert exact.max() < 5, exact
    hotter = z(linear_moments(data, model, steps=steps, step_size=h, temperature=1.1 * model.temperature).loss)
    assert hotter[-1] > 8, hotter
    longer = z(linear_moments(data, model, steps=steps, step_size=1.1 * h).loss)
    assert longer[:-1].max() > 8, longer


def test_linear_moments_refuses_other_activations(clover):
    with pytest.raises(ConfigError, match="linear activation"):
        linear_moments(clover, TwoLayer("gelu"), steps=2, step_size=0.1)


def test_time_step_error_is_first_order():
    """Euler-Maruyama is weakly first order: on the linear network's exact moments, halving h halves the largest
    error of the loss curve on t in [0, 5] (against h / 64); a second-order scheme would quarter it."""
    data = make_data("linear_teacher", teacher=(1.0, -0.5), quadrature=3)
    model = TwoLayer("linear", sa2=1.0, sw2=1.0, beta=2.0)
    t, h = 5.0, 0.1
    curve = lambda j: linear_moments(data, model, steps=int(round(2**j * t / h)), step_size=h / 2**j).loss[::2**j]  # noqa: E731
    reference = curve(6)
    errors = [np.abs(curve(j) - reference).max() for j in range(3)]
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all((ratios > 1.7) & (ratios < 2.3)), (errors, ratios)


# ---------------------------------------------------------------------------------------- (c) the lazy / NTK limit
def test_large_output_scale_gives_kernel_gradient_flow():
    """f = alpha E[a phi]: as alpha grows the run becomes kernel gradient flow with the tangent kernel of the initial
    particles, r_k = (I - h Theta Q)^k y (deterministic given the particles, T = 0). The deviation falls at least like
    1/alpha (by a factor > 1.6 from alpha = 20 to 40; measured 2.8) and is small (< 5% of |y|); a 10% smaller kernel
    (the flow 10% slower) deviates by more than 5 times as much."""
    data = make_data("teacher_student", d=2, quadrature=4)
    model = TwoLayer("erf", sa2=1.0, sw2=1.0, beta=1.0)
    steps, h = 100, 0.05
    deviations = []
    for alpha in (20.0, 40.0):
        run = solve_dynamics(data, model, key=jax.random.key(0), steps=steps, step_size=h, temperature=0.0, num_neurons=512,
                             init="antithetic", output_scale=alpha, tol=1e-6)
        assert run.converged, run.message
        theta = tangent_kernel(model, run.laws[0], data.x)
        flow = kernel_flow(theta, data, run.times, step_size=h)
        deviations.append(np.abs(run.residual - flow).max())
    scale = np.abs(np.asarray(data.y)).max()
    assert deviations[1] < 0.05 * scale, deviations
    assert deviations[0] / deviations[1] > 1.6, deviations
    slower = kernel_flow(0.9 * theta, data, run.times, step_size=h)
    assert np.abs(run.residual - slower).max() > 5 * deviations[1]
    continuous = kernel_flow(theta, data, run.times)  # the h -> 0 flow exp(-t Theta Q) y is within O(h) of the discrete one
    assert np.abs(continuous - flow).max() < 0.05 * scale


# ---------------------------------------------------------------------------------------- (b) long times: the static fixed point
@pytest.mark.slow
def test_long_time_limit_is_the_static_fixed_point(clover):
    """T = 1: the late-time loss (t in [5, 45], after the approach from the prior) equals the static fixed point's.

    Euler's O(h) bias (about 1% of f at h = 0.05 here) is removed by Richardson extrapolation, 2 L(h/2) - L(h); its
    error budget is 5 x the standard error from 8 blocks of each run's late times (M = 8192 particles; the width-M
    correction is O(1/M), measured below 1e-3 for M = 2048 -> 16384). The static loss at a 10% larger beta is outside it.
    Measured (key 5): 0.7 s.e. from the static loss, 7.8 s.e. from the twin's. Slow (about 1.5 minutes
    on 2 cores): the budget needs long averages at two step sizes.
    """
    model = TwoLayer("gelu", sa2=4.0, sw2=1.0, beta=1.0)
    static = [solve(clover, model.replace(beta=beta), GridSampler(64, 8.0), key=jax.random.key(0), progress=False)
              for beta in (1.0, 1.1)]
    assert all(s.converged for s in static)
    levels = []
    for h in (0.05, 0.025):
        run = solve_dynamics(clover, model, key=jax.random.key(5), steps=int(round(45 / h)), step_size=h, num_neurons=8192)
        assert run.converged, run.message
        late = run.loss[int(round(5 / h)) + 1:].reshape(8, -1).mean(1)
        levels.append((late.mean(), late.std(ddof=1) / np.sqrt(8)))
    (coarse, coarse_error), (fine, fine_error) = levels
    extrapolated, error = 2 * fine - coarse, np.hypot(2 * fine_error, coarse_error)
    print(f"late loss {extrapolated:.5f} +- {error:.5f} (h -> 0), static {static[0].loss:.5f}, at 1.1 beta {static[1].loss:.5f}")
    assert abs(extrapolated - static[0].loss) < 5 * error, (extrapolated, error, static[0].loss)
    assert abs(extrapolated - static[1].loss) > 5 * error, (extrapolated, error, static[1].loss)


@pytest.mark.slow
def test_experiment_quick_run(tmp_path):
    """``python -m experiments.dynamics --quick``: runs end to end, writes its JSON (with the command) and figure."""
    from experiments import dynamics

    results = dynamics.main(["--quick", "--results", str(tmp_path), "--figures", str(tmp_path)])
    assert (tmp_path / "quick.json").exists() and (tmp_path / "dynamics_quick.png").exists()
    assert results["meta"]["command"].startswith("python -m experiments.dynamics --quick")
    for out in results["settings"].values():
        assert out["theory"]["converged"]
        assert len(out["networks"]) == 2 and all(len(point["laws"]) == 3 for point in out["networks"])


# ---------------------------------------------------------------------------------------- a weight penalty (non-Gaussian prior)
def test_penalty_fixed_point_is_the_interacting_particle_system(clover):
    """With a sextic weight penalty the fixed point of the trajectory map is still the M-particle system stepped
    forward directly (common random numbers, engine tolerance); the same system without the penalty is far outside it."""
    model = TwoLayer("gelu", sa2=4.0, sw2=1.0, beta=1.0, penalty=sextic(2.0))
    options = dict(key=jax.random.key(0), steps=80, step_size=0.05, num_neurons=256)
    solution = solve_dynamics(clover, model, **options, windows=2, tol=1e-6)
    direct = simulate(clover, model, **options)
    assert solution.converged, solution.message
    gap = np.abs(solution.residual - direct).max()
    assert gap < 1e-4, gap
    gaussian = simulate(clover, model.replace(penalty=None), **options)
    assert np.abs(gaussian - direct).max() > 100 * 1e-4  # twin: the penalty's force is far outside the tolerance


def test_particle_step_is_the_network_step(clover):
    """One particle step equals one ``langevin_optimizer`` step of the width-M mean-field network with the same weights,
    its own residual and the same noise, penalty included (T = 0.5: the penalty's force is T grad Gamma). The two draw
    their noise differently, so each step's noise is regenerated here from its key and exchanged: the steps must then
    agree to float32 rounding (1e-5 of the weights' scale). Twin: the penalty force untamed (10% of the weights'
    change in a step) is off by > 100 times that."""
    from mft_jax.train.joint import energy, langevin_optimizer
    from mft_jax.train.langevin import tamed_penalty_force

    model = TwoLayer("gelu", sa2=4.0, sw2=2.0, beta=2.0, penalty=sextic(3.0))
    h, width = 0.2, 64
    params = model.init_params(jax.random.key(3), width, clover.input_dim, clover.output_dim)
    transform = langevin_optimizer(model, h)(jax.random.key(4))
    grads = jax.grad(energy)(params, model, clover)
    updates, _ = transform.update(grads, transform.init(params), params)
    key_a, key_w = jax.random.split(jax.random.fold_in(jax.random.key(4), 0), 2)  # the optimizer's noise of update 0
    scale = np.sqrt(2 * h * model.temperature)
    net_drift = {k: np.asarray(updates[k]) - scale * np.asarray(jax.random.normal(kk, params[k].shape)) for k, kk in
                 (("a", key_a), ("w", key_w))}

    particles = Particles(params["a"], params["w"], jnp.full((width,), 1.0 / width))
    dynamics = Dynamics(h, model.temperature, 1.0)
    residual = clover.y - network_output(model, dynamics, particles, clover.x)
    assert np.abs(residual - (clover.y - model.apply(params, clover.x))).max() < 1e-6
    key = jax.random.key(5)
    moved = langevin_step(model, dynamics, particles, clover, residual, key)
    noise = scale * np.asarray(jax.random.normal(key, (width, 1 + clover.input_dim)))
    drift_a = np.asarray(moved.a - params["a"]) - noise[:, :1]
    drift_w = np.asarray(moved.w - params["w"]) - noise[:, 1:]
    gaps = [np.abs(drift_a - net_drift["a"]).max(), np.abs(drift_w - net_drift["w"]).max()]
    assert max(gaps) < 1e-5 * np.abs(np.asarray(params["w"])).max(), gaps
    untamed = model.temperature * jax.grad(lambda w: jnp.sum(model.penalty(w)))(params["w"])
    change = h * np.abs(np.asarray(untamed - tamed_penalty_force(model.penalty, params["w"], model.temperature, h))).max()
    assert change > 0.1 * np.abs(net_drift["w"]).max() and change > 100 * max(gaps), (change, gaps)


def test_penalty_stationary_law_matches_quadrature():
    """Zero residual, T = 1: every particle's w relaxes to the prior exp(-w^2/(2 sw2) - Gamma(w)), Gamma = gamma w^6/6
    (1-D), whatever T. Checked: E[w^6] (the penalty's own moment) against its quadrature value. Budget: Euler's O(h) bias
    removed by Richardson extrapolation 2 m(h) - m(2h) (h = 0.002); 4 s.e., the s.e. from 16 independent groups of
    M = 65536 particles (no interaction at r = 0), each averaged over t in [3, 8]. Measured: z = -0.2; wrong twin
    (gamma x 1.1, the quadrature moment 9% lower) z = 16, required > 8."""
    data = Dataset(jnp.ones((1, 1)), jnp.ones((1,)), jnp.zeros((1, 1)))

    def quadrature(gamma):
        w = np.linspace(-6.0, 6.0, 200_001)
        log_density = -w**2 / 8.0 - gamma * w**6 / 6.0
        p = np.exp(log_density - log_density.max())
        return float((p * w**6).sum() / p.sum())

    def moment(h, groups=16):
        model = TwoLayer("erf", sa2=1.0, sw2=4.0, beta=1.0, penalty=sextic(1.0))
        dynamics = Dynamics(h, 1.0, 1.0)
        start = initial_particles(jax.random.key(0), model, 65536, 1, 1, "prior")
        burn, every = int(round(3.0 / h)), int(round(0.25 / h))

        @jax.jit
        def run(particles):
            def step(state, k):
                state = langevin_step(model, dynamics, state, data, jnp.zeros((1, 1)), jax.random.fold_in(jax.random.key(1), k))
                return state, jnp.mean(state.w.reshape(groups, -1) ** 6, axis=1)

            return jax.lax.scan(step, particles, jnp.arange(int(round(8.0 / h))))[1]

        return np.asarray(run(start))[burn::every].mean(0)  # (groups,)

    extrapolated = 2 * moment(0.002) - moment(0.004)
    mean, error = extrapolated.mean(), extrapolated.std(ddof=1) / np.sqrt(len(extrapolated))
    z, twin = (mean - quadrature(1.0)) / error, (mean - quadrature(1.1)) / error
    assert abs(z) < 4, (mean, error, quadrature(1.0))
    assert abs(twin) > 8, (mean, error, quadrature(1.1))


# ---------------------------------------------------------------------------------------- checkpoints and resume
def test_checkpoint_resume_is_bit_identical(clover, tmp_path, monkeypatch):
    """A run interrupted right after its first window was checkpointed resumes from the file and gives bit-identical
    output to an uninterrupted run; a checkpoint written with other settings is refused, naming them."""
    from mft_jax.theory import dynamics

    model = TwoLayer("gelu", sa2=4.0, sw2=1.0, beta=1.0, penalty=sextic(1.0))
    options = dict(key=jax.random.key(0), steps=60, step_size=0.05, num_neurons=128, windows=3, save_every=20, tol=1e-6)
    whole = solve_dynamics(clover, model, **options)
    path = tmp_path / "run.npz"
    save = dynamics._save_checkpoint

    class Interrupted(Exception):
        pass

    def save_then_stop(*args):
        save(*args)
        raise Interrupted

    monkeypatch.setattr(dynamics, "_save_checkpoint", save_then_stop)
    with pytest.raises(Interrupted):
        solve_dynamics(clover, model, **options, checkpoint=path)
    monkeypatch.setattr(dynamics, "_save_checkpoint", save)
    assert len(np.load(path)["solved"]) == 20  # the first window only
    resumed = solve_dynamics(clover, model, **options, checkpoint=path)
    assert resumed.converged, resumed.message
    assert np.array_equal(resumed.residual, whole.residual) and np.array_equal(resumed.loss, whole.loss)
    assert resumed.history == whole.history and resumed.message == whole.message
    for mine, theirs in zip(resumed.laws, whole.laws):
        assert np.array_equal(mine.w, theirs.w) and np.array_equal(mine.a, theirs.a)
    assert not np.array_equal(solve_dynamics(clover, model, **{**options, "key": jax.random.key(1)}).residual, whole.residual)
    with pytest.raises(ConfigError, match="different run: settings.step_size"):
        solve_dynamics(clover, model, **{**options, "step_size": 0.04}, checkpoint=path)
    with pytest.raises(ConfigError, match="different run: model.penalty.gamma"):
        solve_dynamics(clover, model.replace(penalty=sextic(2.0)), **options, checkpoint=path)
    (tmp_path / "junk.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="checkpoint"):
        solve_dynamics(clover, model, **options, checkpoint=tmp_path / "junk.npz")


@pytest.mark.slow
def test_grokking_quick_run(tmp_path):
    """``python -m experiments.dynamics grokking --quick``: theory and networks on modular addition (sextic penalty) end to
    end; writes its JSON (with the command) and figure, the theory converged, one grokking time per level and seed."""
    from experiments import dynamics

    results = dynamics.main(["grokking", "--quick", "--results", str(tmp_path), "--figures", str(tmp_path)])
    assert (tmp_path / "grokking_quick.json").exists() and (tmp_path / "dynamics_grokking_quick.png").exists()
    assert results["meta"]["command"].startswith("python -m experiments.dynamics grokking --quick")
    for out in results["fractions"]:
        assert all(th["converged"] for th in out["theory"])
        for net in out["networks"]:
            assert all(len(c["per_seed"]) == results["config"]["seeds"] for c in net["grokking_time"].values())
