"""Single-neuron samplers: the map F from a background (residual ``r``) to the law ``rho(w)``.

A sampler is a frozen dataclass of its settings (hashable: it is a static argument of the jitted
fixed-point map, and a new object with the same settings does not recompile) with a pair of pure
functions, optax-style:

    state = sampler.init(key, model, data)
    law, state = sampler.update(state, model, data, residual)     # jittable; the model is traced

``update`` returns the ``NeuronLaw`` of ``rho(w) ~ exp(log_prior_w(w) + c |S(w)|^2)`` for the given
residual. ``state`` carries what must persist between fixed-point iterations (the grid, fixed
proposal draws, MCMC chain positions) and ``state.info``, a typed record of scalars (a NamedTuple:
effective sample size, acceptance rate, ...). A record with a ``log_partition`` field
(``log E_prior[exp(c |S(w)|^2)]``) lets the solver give the free energy.

A sampler declares what it is: ``stochastic`` (its law is noisy from one update to the next: the
solver then takes damped steps and stops at the noise floor) and ``warnings(info, law)`` (words
for a law it cannot vouch for: the solver then does not report the solve converged). A sampler that can adapt
itself to a law it does not resolve returns a new sampler from ``refined(law, info, model, data)`` (the grid
re-grids; the default: ``None``), and one that a costlier run would fix from ``escalated(info)`` (MCMC: longer
chains). The solver never asks for a sampler's name or type.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax

from mft_jax.neurons import NeuronLaw
from mft_jax.precision import wrap_methods


class Sampler:
    """Base class of the samplers F: subclass as a frozen dataclass of settings and fill in the three methods."""

    name: ClassVar[str] = "sampler"
    stochastic: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        """A subclass's ``init`` / ``update`` run at the library's matmul precision (``mft_jax.precision``)."""
        super().__init_subclass__(**kwargs)
        wrap_methods(cls, ("init", "update"))

    def init(self, key: jax.Array, model, data) -> Any:
        raise NotImplementedError

    def update(self, state: Any, model, data, residual: jax.Array) -> tuple[NeuronLaw, Any]:
        raise NotImplementedError

    def warnings(self, info: Any, law: NeuronLaw) -> list[str]:
        """Words for a law this sampler cannot vouch for (too few effective samples, ...); [] if fine."""
        del info, law
        return []

    def refined(self, law: NeuronLaw, info: Any, model, data) -> "Sampler | None":
        """A sampler that resolves ``law`` better (the grid: axes that follow its marginals), or ``None`` (no adaptation)."""
        del law, info, model, data
        return None

    def describe(self, model, data) -> str:
        """This sampler in words (for the solver's ``actions``)."""
        del model, data
        return self.name

    def summary(self, model, data) -> dict:
        """This sampler as JSON: its name and settings."""
        del model, data
        return {"name": self.name, **dataclasses.asdict(self)}

    def escalated(self, info: Any) -> "Sampler | None":
        """A costlier sampler that would fix what ``warnings`` reports for ``info`` (more steps per update), or None.

        Its state must stay valid for the returned sampler (the solver goes on from it). The default: none."""
        del info
        return None


def info_dict(info: Any) -> dict:
    """A sampler's info record as a dict of Python floats (for JSON and ``Solution.diagnostics``)."""
    return {name: float(value) for name, value in info._asdict().items()}
