"""Datasets, tasks and their input validation."""

import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax.data import gauss_hermite_normal, make_dataset
from mft_jax.errors import ConfigError
from mft_jax.tasks import get_task, make_data


def test_gauss_hermite_moments_are_exact(x64):
    # n = 6 nodes per dim integrate polynomials up to degree 11 exactly: E[x^4] = 3, E[x1^2 x2^2] = 1.
    x, q = gauss_hermite_normal(6, 2)
    np.testing.assert_allclose(q.sum(), 1.0, rtol=1e-14)
    np.testing.assert_allclose(q @ x[:, 0] ** 4, 3.0, rtol=1e-12)
    np.testing.assert_allclose(q @ (x[:, 0] ** 2 * x[:, 1] ** 2), 1.0, rtol=1e-12)
    np.testing.assert_allclose(q @ x[:, 0] ** 3, 0.0, atol=1e-12)


def test_continuous_xor_population_has_unit_target_variance():
    data = make_data("continuous_xor", quadrature=8)
    assert data.x.shape == (64, 2) and data.y.shape == (64, 1)
    # E[(x1 x2)^2] = 1 exactly under the quadrature (degree 4 <= 15); float32 rounding only.
    np.testing.assert_allclose(float(data.q @ data.y[:, 0] ** 2), 1.0, rtol=1e-5)


def test_xor_product_is_a_unit_variance_degree_four_target():
    data = make_data("xor_product", quadrature=6)
    assert data.x.shape == (6**4, 4) and data.y.shape == (6**4, 1)
    x, y = np.asarray(data.x, np.float64), np.asarray(data.y[:, 0], np.float64)
    q = np.asarray(data.q, np.float64)
    np.testing.assert_allclose(y, x[:, 0] * x[:, 1] * x[:, 2] * x[:, 3], rtol=1e-5, atol=1e-6)
    # Gauss-Hermite with 6 nodes per axis is exact to degree 11 per axis: E[y^2] = 1, and y is
    # orthogonal to every polynomial of degree < 4 (e.g. the two XORs it composes).
    np.testing.assert_allclose(q @ y**2, 1.0, rtol=1e-5)
    for lower in (x[:, 0] * x[:, 1], x[:, 2] * x[:, 3], x[:, 0] ** 2, np.ones_like(y)):
        assert abs(q @ (y * lower)) < 1e-5


def test_modular_addition_targets_are_centred_one_hot():
    data = make_data("modular_addition", modulus=5)
    assert data.x.shape == (25, 10) and data.y.shape == (25, 5)
    np.testing.assert_allclose(np.asarray(data.y.sum(axis=1)), 0.0, atol=1e-6)
    n, m = np.argmax(data.x[:, :5], 1), np.argmax(data.x[:, 5:], 1)
    np.testing.assert_array_equal(np.argmax(data.y, 1), (n + m) % 5)
    subset = make_data("modular_addition", modulus=5, n_train=10, seed=3)
    assert subset.x.shape == (10, 10) and len({tuple(r) for r in np.asarray(subset.x)}) == 10


def test_teacher_student_target_is_h1_plus_eps_h3():
    task = get_task("teacher_student", d=3, eps=-0.3, teacher=[0.0, 2.0, 0.0])
    x = jnp.array([[0.3, 1.5, -2.0]])
    z = 1.5
    np.testing.assert_allclose(task.target(x)[0, 0], z - 0.3 * (z**3 - 3 * z), rtol=1e-6)


def test_training_set_and_samples_are_seeded():
    a = make_data("linear_teacher", teacher=[1.0, -1.0], n_train=50, seed=1)
    b = make_data("linear_teacher", teacher=[1.0, -1.0], n_train=50, seed=1)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_allclose(a.y[:, 0], a.x[:, 0] - a.x[:, 1], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="xor"), "unknown task 'xor'"),
        (dict(name="continuous_xor", quadratur=4), "no option(s) ['quadratur']"),
        (dict(name="continuous_xor"), "exactly one of quadrature, samples, n_train"),
        (dict(name="continuous_xor", quadrature=4, samples=10), "exactly one of"),
        (dict(name="continuous_xor", samples=-3), "samples must be a positive integer"),
        (dict(name="teacher_student", d=30, quadrature=32), "use `samples`"),
        (dict(name="modular_addition", modulus=5, quadrature=3), "finite input table"),
    ],
)
def test_bad_task_configs_name_the_problem(kwargs, message):
    name = kwargs.pop("name")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        make_data(name, **kwargs)


@pytest.mark.parametrize(
    "x, y, q, message",
    [
        (np.ones((3,)), np.ones(3), None, r"x must have shape \(P, d\)"),
        (np.ones((3, 2)), np.ones(4), None, "y must have shape"),
        (np.array([[0.0], [np.nan]]), np.ones(2), None, "x has 1 NaN/inf entries"),
        (np.ones((2, 1)), np.ones(2), np.array([1.0, 0.0]), "must be > 0"),
        (np.ones((2, 1)), np.ones(2), np.array([1.0, 1.0]), "must sum to 1"),
    ],
)
def test_bad_arrays_are_refused(x, y, q, message):
    with pytest.raises(ConfigError, match=message):
        make_dataset(x, y, q)


def test_npz_task_round_trip(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, x=np.random.default_rng(0).normal(size=(5, 3)), y=np.arange(5.0))
    data = make_data("npz", path=str(path))
    assert data.x.shape == (5, 3) and data.y.shape == (5, 1)
    np.testing.assert_allclose(data.q, 0.2)
    np.savez(tmp_path / "bad.npz", x=np.ones((2, 2)), target=np.ones(2))
    with pytest.raises(ConfigError, match="must hold arrays x, y"):
        make_data("npz", path=str(tmp_path / "bad.npz"))


def test_digits_task_is_a_normalised_two_class_table():
    data = make_data("digits", n_train=50, seed=0)
    assert data.x.shape == (50, 64)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(data.x), axis=1), 1.0, rtol=1e-5)
    assert set(np.unique(np.asarray(data.y))) == {-1.0, 1.0}
    with pytest.raises(ConfigError, match="two different digits 0-9"):
        make_data("digits", classes=(3, 3), n_train=5)
    with pytest.raises(ConfigError, match="exceeds the 360 inputs"):
        make_data("digits", n_train=1000)
