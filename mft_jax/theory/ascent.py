"""Newton ascent on the concave free energy: the fixed point where iterating ``G`` cycles (docs/theory.md 3.5).

For a deterministic sampler (fixed grid nodes or fixed importance draws) the free energy per neuron

    I(r) = beta sum_mu q_mu (r_mu . y_mu - |r_mu|^2 / 2) - log E_prior[exp(c |S_r(w)|^2)]

is strictly concave in the residual ``r`` (a concave quadratic minus a log-mean-exp of convex
functions), and its gradient vanishes exactly at the fixed point:

    grad_r I = beta Q [(y - r) - beta sa2 K Q r] = beta Q (I + beta sa2 K Q) (G(r) - r).

So ``G(r) - r`` is an ascent direction preconditioned by ``(I + A)^(-1)`` that ignores the last term
of the Hessian, and where that term dominates (a law concentrated on a few lobes at large beta) the
iteration cycles. Newton's method on ``I`` does not: in ``s = Q^(1/2) r``

    -Hess_s I = beta 1 + 2 c Q^(1/2) K Q^(1/2) + 4 c^2 Cov_rho(Q^(1/2) phi S)

is positive definite, the step ``d = (-Hess)^(-1) grad`` solves by conjugate gradients on Hessian-vector
products (``jax.jvp`` of ``jax.grad``: never a P x P matrix), and a backtracking (Armijo) line search
on ``I`` makes every step an ascent: the iteration converges from any start to the unique maximiser.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.theory.background import data_term
from mft_jax.theory.fixed_point import Step

CG_MAX_ITER = 200  # conjugate-gradient iterations per Newton step (the curvature has low effective rank)
CG_TOL = 1e-4  # relative residual of the Newton system
ARMIJO = 1e-4  # sufficient ascent: I(r + t d) >= I(r) + ARMIJO t grad . d
HALVINGS = 30  # backtracking halvings before a step is declared lost to rounding


class AscentStep(NamedTuple):
    """One Newton step's pieces at ``r``: the free energy, the direction in ``r``, the decrement ``grad . d``."""

    free_energy: jax.Array
    direction: jax.Array  # (P, C)
    decrement: jax.Array  # grad_r I . direction >= 0 (the predicted ascent is half of it)
    cg_iterations: jax.Array


def _free_energy(sampler, model, data, state, residual):
    _, new_state = sampler.update(state, model, data, residual)
    return data_term(model.beta, data.q, data.y, residual) - new_state.info.log_partition


@functools.partial(jax.jit, static_argnames=("sampler",))
def free_energy_at(sampler, model, data, state: Any, residual: jax.Array) -> jax.Array:
    """``I(r)`` by the sampler's quadrature (its ``log_partition``), for the line search."""
    return _free_energy(sampler, model, data, state, residual)


@functools.partial(jax.jit, static_argnames=("sampler",))
def newton_step(sampler, model, data, state: Any, residual: jax.Array) -> AscentStep:
    """The Newton direction of ``I`` at ``r``: CG on ``-Hess_s I d_s = grad_s I`` in ``s = Q^(1/2) r``."""
    root_q = jnp.sqrt(data.q)[:, None]
    inverse = jnp.where(root_q > 0, 1 / jnp.where(root_q > 0, root_q, 1), 0)  # points of weight 0 (underflow) drop out

    def energy_of_s(s):
        return _free_energy(sampler, model, data, state, s * inverse)

    s = residual * root_q
    value, grad = jax.value_and_grad(energy_of_s)(s)

    def curvature(v):  # -Hess_s I v
        return -jax.jvp(jax.grad(energy_of_s), (s,), (v,))[1]

    def cg(carry):
        x, res, p, rr, k = carry
        hp = curvature(p)
        alpha = rr / jnp.vdot(p, hp)
        x, res = x + alpha * p, res - alpha * hp
        rr_new = jnp.vdot(res, res)
        return x, res, res + (rr_new / rr) * p, rr_new, k + 1

    norm0 = jnp.vdot(grad, grad)

    def going(carry):
        return (carry[3] > CG_TOL**2 * norm0) & (carry[4] < CG_MAX_ITER)

    zero = jnp.zeros_like(grad)
    x, _, _, _, k = jax.lax.while_loop(going, cg, (zero, grad, grad, norm0, jnp.asarray(0)))
    x = jnp.where(jnp.vdot(x, grad) > 0, x, grad)  # CG in float rounding: fall back to the gradient
    return AscentStep(value, x * inverse, jnp.vdot(x, grad), k)


@dataclasses.dataclass(frozen=True)
class Ascent:
    """The two-layer solver object ``solve(..., solver=Ascent(damping))``: Newton ascent on the concave free energy
    ``I(r)`` from the start of every stage (``FreeEnergyAscent``), for deterministic samplers with a ``log_partition``
    (grid, importance); elsewhere the solve iterates ``G`` by ``Anderson(5, damping)``. ``damping`` serves the
    damped steps of a stochastic sampler and the continuation retries (``Continuation.retries``)."""

    damping: float = 0.5


@dataclasses.dataclass(frozen=True)
class FreeEnergyAscent:
    """A ``mft_jax.theory.fixed_point`` solver: one Newton step on ``I`` (``newton_step``) with Armijo backtracking,
    ``I(r + t d) >= I(r) + ARMIJO t grad . d``, blind to rounding (a gain below ``100 eps |I|`` is taken
    whole, a loss below ``10 eps |I|`` forgiven), each trial kept normalizable; then ``G`` at the new point.
    ``None`` (no progress) when no halving ascends. The problem's ``aux`` is ``(law, sampler state)``."""

    sampler: Any
    model: Any
    data: Any

    def init(self, problem, it):
        return None

    def step(self, problem, state, it):
        dtype = self.data.y.dtype
        sampler_state = it.evaluation.aux[1]
        r = np.asarray(it.x, dtype=float)
        eps = float(jnp.finfo(dtype).eps)
        found = newton_step(self.sampler, self.model, self.data, sampler_state, jnp.asarray(r, dtype))
        value, decrement = float(found.free_energy), float(found.decrement)
        direction = np.asarray(found.direction, dtype=float)
        t, scale = 1.0, max(abs(value), 1.0)
        for _ in range(HALVINGS):
            candidate = r + t * direction
            if problem.allows(candidate) and (
                decrement <= 100 * eps * scale
                or float(free_energy_at(self.sampler, self.model, self.data, sampler_state, jnp.asarray(candidate, dtype)))
                >= value + ARMIJO * t * decrement - 10 * eps * scale
            ):
                return Step(candidate, problem.evaluate(candidate), "newton", state)
            t /= 2
        return None  # no ascent left that rounding can see
