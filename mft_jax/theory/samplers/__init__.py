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
for a law it cannot vouch for: the solver then does not report the solve converged) and ``escalated(info)``
(a costlier sampler that would fix it, which the solver tries first). The solver never asks for a sampler's name.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax

from mft_jax.neurons import NeuronLaw


class Sampler:
    """Base class of the samplers F: subclass as a frozen dataclass of settings and fill in the three methods."""

    name: ClassVar[str] = "sampler"
    stochastic: ClassVar[bool] = False

    def init(self, key: jax.Array, model, data) -> Any:
        raise NotImplementedError

    def update(self, state: Any, model, data, residual: jax.Array) -> tuple[NeuronLaw, Any]:
        raise NotImplementedError

    def warnings(self, info: Any, law: NeuronLaw) -> list[str]:
        """Words for a law this sampler cannot vouch for (too few effective samples, ...); [] if fine."""
        del info, law
        return []

    def escalated(self, info: Any) -> "Sampler | None":
        """A costlier sampler that would fix what ``warnings`` reports for ``info`` (more steps per update), or None.

        Its state must stay valid for the returned sampler (the solver goes on from it). The default: none."""
        del info
        return None


def info_dict(info: Any) -> dict:
    """A sampler's info record as a dict of Python floats (for JSON and ``Solution.diagnostics``)."""
    return {name: float(value) for name, value in info._asdict().items()}
