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

# The solvers and samplers load on first use (PEP 562): importing blackjax touches a JAX backend, and a
# multi-process job must start jax.distributed before that (mft_jax.distributed, the CLI).
_LAZY = {
    "Ascent": "mft_jax.theory.ascent", "DeepSolution": "mft_jax.theory.deep", "solve_deep": "mft_jax.theory.deep",
    "Anderson": "mft_jax.theory.fixed_point", "Continuation": "mft_jax.theory.fixed_point", "Damped": "mft_jax.theory.fixed_point",
    "NewtonKrylov": "mft_jax.theory.fixed_point", "Result": "mft_jax.theory.fixed_point", "Branches": "mft_jax.theory.two_layer",
    "Solution": "mft_jax.theory.two_layer", "solve": "mft_jax.theory.two_layer", "solve_branches": "mft_jax.theory.two_layer",
}


def __getattr__(name: str):
    import importlib

    if name == "samplers":
        return importlib.import_module("mft_jax.samplers")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mft_jax' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | {"samplers"})


__all__ = [
    "Activation", "Anderson", "Ascent", "Branches", "ConfigError", "Continuation", "Damped", "Dataset", "Deep",
    "DeepSolution", "LayerBackground", "LayerBackgrounds", "Model", "NeuronLaw", "NewtonKrylov", "NoFixedPointError",
    "NonFiniteError", "NonNormalizableError", "Result", "Solution", "Task", "TwoLayer", "get_activation", "get_task",
    "make_data", "make_dataset", "register_activation", "register_task", "samplers", "solve", "solve_branches",
    "solve_deep",
]
__version__ = "0.1.0"
