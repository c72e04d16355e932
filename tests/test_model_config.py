"""The two-layer prior, activations and config validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mft_jax import TwoLayer, get_activation, register_activation
from mft_jax.cli.config import ModelConfig, load_toml, section
from mft_jax.errors import ConfigError
from mft_jax.tasks import make_data


def test_single_neuron_law_terms_follow_theory(x64):
    # docs/theory.md section 3 by hand for one neuron: S = sum q r phi(w.x), log rho = -|w|^2/(2 sw2) + c |S|^2.
    data = make_data("continuous_xor", quadrature=4)
    model = TwoLayer("tanh", sa2=0.7, sw2=1.3, beta=3.0)
    w = jnp.array([[0.4, -1.1]])
    r = data.y * 0.5 + 0.3 * data.x[:, :1]  # breaks the odd symmetry that makes S = 0 for the xor target
    S = np.sum(np.asarray(data.q)[:, None] * np.asarray(r) * np.tanh(np.asarray(data.x) @ np.asarray(w[0]))[:, None], axis=0)
    c = 3.0**2 * 0.7 / 2
    np.testing.assert_allclose(model.overlap(w, data, r)[0], S, rtol=1e-12)
    np.testing.assert_allclose(model.log_density(w, data, r)[0], -(0.4**2 + 1.1**2) / 2.6 + c * S @ S, rtol=1e-12)
    np.testing.assert_allclose(model.readout_mean(w, data, r)[0], 3.0 * 0.7 * S, rtol=1e-12)


@pytest.mark.parametrize("key, value", [("sa2", 0.0), ("sw2", -1.0), ("beta", float("nan")), ("beta", float("inf"))])
def test_impossible_hyperparameters_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"model {key} must be a finite number > 0"):
        TwoLayer("erf", **{key: value})


def test_activation_registry():
    assert float(get_activation("ramp")(jnp.array(1.7))) == 1.0
    with pytest.raises(ConfigError, match="unknown activation 'sigmoidd'; allowed: .*erf"):
        get_activation("sigmoidd")
    softplus = register_activation("softplus_test", jax.nn.softplus, growth=1)
    assert TwoLayer("softplus_test").activation is softplus
    custom = TwoLayer(lambda z: jnp.sin(z)).activation
    assert custom.growth is None and float(custom(jnp.array(0.0))) == 0.0


def test_config_sections_are_validated(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[model]\nactivation = "erf"\nbeta = "hot"\n')
    raw = load_toml(path, ["model", "task"])
    with pytest.raises(ConfigError, match=r"\[model\] beta = 'hot' has the wrong type"):
        section(ModelConfig, raw["model"], "model")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['betta'\] in \[model\]; allowed: activation, sa2, sw2, beta, scaling"):
        section(ModelConfig, {"betta": 1.0}, "model")
    path.write_text("[modell]\n")
    with pytest.raises(ConfigError, match=r"unknown config section \[modell\]"):
        load_toml(path, ["model", "task"])
