"""Single-neuron samplers: the map F from a background (residual ``r``) to the law ``rho(w)``.

A sampler is a pair of pure functions, optax-style:

    state = sampler.init(key, model, data)
    law, state = sampler.update(state, model, data, residual)

``update`` returns the ``NeuronLaw`` of ``rho(w) ~ exp(-|w|^2/(2 sw2) + c |S(w)|^2)`` for the
given residual. ``state`` carries what must persist between fixed-point iterations (the
grid, fixed proposal draws, MCMC chain positions) and a ``diagnostics`` dict of scalars
(e.g. effective sample size, acceptance rate) the solver reports.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple


class Sampler(NamedTuple):
    """``init(key, model, data) -> state`` and ``update(state, model, data, residual) -> (law, state)``."""

    name: str
    init: Callable[..., Any]
    update: Callable[..., Any]
