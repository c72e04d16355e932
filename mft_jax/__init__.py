"""mft_jax: the mean-field theory of wide neural networks, in JAX.

The nouns of docs/theory.md as modules: ``data`` (weighted datasets), ``tasks``, ``activations``,
``model`` (the two-layer prior), ``deep`` (the deep prior and its per-layer fixed point), ``protocol``
(what every model implements: prior sampling, the network, gains, single-site laws), ``neurons`` (the law of one neuron as weighted particles),
``background`` and ``solver`` (the fixed point ``K = B(F(K))``), ``train`` (finite networks
and single-neuron trainers), ``compare`` (distances between neuron laws).
"""

from mft_jax import _moved

_moved.install()

from mft_jax.activations import Activation, get_activation, register_activation
from mft_jax.data import Dataset, make_dataset
from mft_jax.errors import ConfigError, NonFiniteError, NonNormalizableError, NoFixedPointError
from mft_jax.model import TwoLayer
from mft_jax.neurons import NeuronLaw
from mft_jax.protocol import LayerBackground, Model
from mft_jax.tasks import Task, get_task, make_data, register_task

__all__ = [
    "Activation", "ConfigError", "Dataset", "LayerBackground", "Model", "NeuronLaw", "NoFixedPointError", "NonFiniteError",
    "NonNormalizableError", "Task", "TwoLayer", "get_activation", "get_task", "make_data",
    "make_dataset", "register_activation", "register_task",
]
__version__ = "0.1.0"
