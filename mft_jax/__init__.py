"""mft_jax: the mean-field theory of wide neural networks, in JAX.

The public API is flat (``mft_jax.solve``, ``mft_jax.TwoLayer``, ``mft_jax.samplers.grid_sampler``, ...), so
modules can move behind it. The nouns of docs/theory.md: ``data`` (weighted datasets), ``tasks``, ``activations``,
``model`` (the priors ``TwoLayer`` and ``Deep``), ``protocol`` (what every model implements), ``neurons`` (the law
of one neuron as weighted particles); ``theory`` (the fixed point ``K = B(F(K))``: ``solve``, ``solve_deep``, the
engine's solver objects and the ``Continuation`` policy; ``samplers`` the maps F); ``train`` (finite networks and
single-neuron trainers); ``analysis`` (distances between neuron laws, plots); ``cli``.
"""

from mft_jax import _moved

_moved.install()

from mft_jax.activations import Activation, get_activation, register_activation  # noqa: E402
from mft_jax.data import Dataset, make_dataset  # noqa: E402
from mft_jax.errors import ConfigError, NonFiniteError, NonNormalizableError, NoFixedPointError  # noqa: E402
from mft_jax.model import Deep, TwoLayer  # noqa: E402
from mft_jax.neurons import NeuronLaw  # noqa: E402
from mft_jax.protocol import LayerBackground, LayerBackgrounds, Model  # noqa: E402
from mft_jax.tasks import Task, get_task, make_data, register_task  # noqa: E402
from mft_jax.theory.ascent import Ascent  # noqa: E402
from mft_jax.theory.deep import DeepSolution, solve_deep  # noqa: E402
from mft_jax.theory.fixed_point import Anderson, Continuation, Damped, NewtonKrylov, Result  # noqa: E402
from mft_jax.theory.two_layer import Branches, Solution, solve, solve_branches  # noqa: E402
from mft_jax import samplers  # noqa: E402

__all__ = [
    "Activation", "Anderson", "Ascent", "Branches", "ConfigError", "Continuation", "Damped", "Dataset", "Deep",
    "DeepSolution", "LayerBackground", "LayerBackgrounds", "Model", "NeuronLaw", "NewtonKrylov", "NoFixedPointError",
    "NonFiniteError", "NonNormalizableError", "Result", "Solution", "Task", "TwoLayer", "get_activation", "get_task",
    "make_data", "make_dataset", "register_activation", "register_task", "samplers", "solve", "solve_branches",
    "solve_deep",
]
__version__ = "0.1.0"
