"""The background: the kernel a neuron law makes and the residual it imposes (docs/theory.md section 3).

    K(x, x') = E_rho[phi(w.x) phi(w.x')]                         B: rho -> K
    r        = (I + beta sa2 K Q)^(-1) y                         residual on the data, Q = diag(q)
    f(x)     = beta sa2 sum_nu K(x, x_nu) q_nu r_nu
             = beta sa2 E_rho[phi(w.x) S(w)]                     prediction anywhere

The law is a ``NeuronLaw`` of M weighted particles, so ``K = Phi^T diag(weight) Phi`` with
features ``Phi`` (M, P). Nothing here needs the P x P matrix: ``kernel_matvec`` and ``predict``
stream over particle chunks (memory O(chunk * P)), and ``solve_residual`` uses conjugate
gradients on the symmetric form

    (I + beta sa2 Q^1/2 K Q^1/2) g = Q^1/2 y,    r = y - beta sa2 K Q^1/2 g

(no division by ``q``: quadrature weights may underflow to 0). Small P gets the dense
Cholesky solve of the same system. Transposed products are written as ``einsum`` over the
particle axis (XLA:CPU would otherwise copy the M x P transpose: ~10x slower).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings

import jax
import jax.numpy as jnp

from mft_jax.data import Dataset
from mft_jax.model import TwoLayer
from mft_jax.neurons import NeuronLaw
from mft_jax.precision import uses_precision

DENSE_LIMIT = 512  # P up to which `solve_residual(method="auto")` forms the P x P matrix (O(M P^2) vs CG's O(iters M P C))
CHUNK = 1024  # particles per streamed chunk: memory O(CHUNK * P)
FEATURE_CACHE = 2**25  # CG keeps the M x P features in memory up to this many entries (128 MiB float32)


def _chunked(law: NeuronLaw, chunk: int):
    """Particles (n, chunk, d) and normalised weights (n, chunk), zero-weight padded."""
    weight = law.weights()
    num = law.w.shape[0]
    chunk = min(chunk, num)
    count = -(-num // chunk)
    pad = count * chunk - num
    w = jnp.pad(law.w, ((0, pad), (0, 0)))
    weight = jnp.pad(weight, (0, pad))
    return w.reshape(count, chunk, -1), weight.reshape(count, chunk)


@uses_precision
@functools.partial(jax.jit, static_argnames=("chunk",))
def kernel(model: TwoLayer, law: NeuronLaw, x: jax.Array, x2: jax.Array | None = None, *, chunk: int = CHUNK) -> jax.Array:
    """Dense ``K(x_i, x2_j) = E_rho[phi(w.x_i) phi(w.x2_j)]``: (P, P2). For small P only."""
    x2 = x if x2 is None else x2
    w, weight = _chunked(law, chunk)

    def add_chunk(total, particles):
        w_c, weight_c = particles
        return total + jnp.einsum("mp,mq->pq", model.features(w_c, x), weight_c[:, None] * model.features(w_c, x2)), None

    total, _ = jax.lax.scan(add_chunk, jnp.zeros((x.shape[0], x2.shape[0]), w.dtype), (w, weight))
    return total


@uses_precision
@functools.partial(jax.jit, static_argnames=("chunk",))
def kernel_matvec(model: TwoLayer, law: NeuronLaw, x: jax.Array, v: jax.Array, *, chunk: int = CHUNK) -> jax.Array:
    """``K v = Phi^T (weight * (Phi v))`` for ``v`` (P, C), streamed over particle chunks."""
    w, weight = _chunked(law, chunk)

    def add_chunk(total, particles):
        w_c, weight_c = particles
        features = model.features(w_c, x)
        return total + jnp.einsum("mp,mc->pc", features, weight_c[:, None] * (features @ v)), None

    total, _ = jax.lax.scan(add_chunk, jnp.zeros_like(v), (w, weight))
    return total


@uses_precision
@functools.partial(jax.jit, static_argnames=("chunk",))
def predict(model: TwoLayer, law: NeuronLaw, data: Dataset, residual: jax.Array, x_new: jax.Array, *, chunk: int = CHUNK) -> jax.Array:
    """``f(x) = beta sa2 E_rho[phi(w.x) S(w)]`` at ``x_new`` (n, d): (n, C), matrix-free."""
    w, weight = _chunked(law, chunk)

    def add_chunk(total, particles):
        w_c, weight_c = particles
        overlap = model.overlap(w_c, data, residual)
        return total + jnp.einsum("mp,mc->pc", model.features(w_c, x_new), weight_c[:, None] * overlap), None

    total, _ = jax.lax.scan(add_chunk, jnp.zeros((x_new.shape[0], residual.shape[1]), w.dtype), (w, weight))
    return model.gain * total


@uses_precision
@functools.partial(jax.jit, static_argnames=("method", "chunk", "max_iter", "feature_cache"))
def solve_residual(
    model: TwoLayer,
    law: NeuronLaw,
    data: Dataset,
    *,
    method: str = "auto",
    chunk: int = CHUNK,
    tol: float | None = None,
    max_iter: int = 1000,
    feature_cache: int = FEATURE_CACHE,
) -> jax.Array:
    """The residual ``r = (I + beta sa2 K Q)^(-1) y`` the law imposes on the data: (P, C).

    ``method``: ``"dense"`` (Cholesky of the P x P symmetric form), ``"cg"`` (conjugate
    gradients, relative tolerance ``tol``, default 10 x machine epsilon; features kept in memory
    when M P <= ``feature_cache``, else streamed in chunks), or
    ``"auto"`` (dense for P <= ``DENSE_LIMIT``).
    """
    if method == "auto":
        method = "dense" if data.num_points <= DENSE_LIMIT else "cg"
    gain = model.gain
    root_q = jnp.sqrt(data.q)[:, None]
    rhs = root_q * data.y
    if method == "dense":
        return residual_from_kernel(model, data, kernel(model, law, data.x, chunk=chunk))
    if method == "cg":
        tol = 10 * jnp.finfo(rhs.dtype).eps if tol is None else tol
        if law.w.shape[0] * data.num_points <= feature_cache:
            weighted = jnp.sqrt(law.weights())[:, None] * model.features(law.w, data.x)  # K = weighted^T weighted

            def matvec(v):
                return jnp.einsum("mp,mc->pc", weighted, weighted @ v)
        else:
            matvec = functools.partial(kernel_matvec, model, law, data.x, chunk=chunk)

        def system(g):
            return g + gain * root_q * matvec(root_q * g)

        g, _ = jax.scipy.sparse.linalg.cg(system, rhs, tol=tol, maxiter=max_iter)
    else:
        raise ValueError(f"method must be 'auto', 'dense' or 'cg', got {method!r}")
    return data.y - gain * matvec(root_q * g)


@uses_precision
@jax.jit
def residual_from_kernel(model: TwoLayer, data: Dataset, gram: jax.Array) -> jax.Array:
    """``r = (I + beta sa2 K Q)^(-1) y`` for a dense kernel ``K`` (P, P) on the data (Cholesky of the symmetric form)."""
    gain = model.gain
    root_q = jnp.sqrt(data.q)[:, None]
    system = jnp.eye(data.num_points, dtype=gram.dtype) + gain * root_q * gram * root_q.T
    g = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(system, lower=True), root_q * data.y)
    return data.y - gain * gram @ (root_q * g)


@uses_precision
def predict_from_kernel(model, data: Dataset, residual: jax.Array, cross: jax.Array) -> jax.Array:
    """``f(x) = beta sa2 sum_nu K(x, x_nu) q_nu r_nu`` from the cross kernel ``K(x_new, X)`` (M, P): (M, C)."""
    return model.gain * cross @ (data.q[:, None] * residual)


def loss(data: Dataset, residual: jax.Array) -> jax.Array:
    """``L = 1/2 sum_mu q_mu |r_mu|^2``."""
    return 0.5 * jnp.sum(data.q[:, None] * residual * residual)


def data_term(beta, q, y, residual, xp=jnp):
    """``beta sum_mu q_mu (r_mu . y_mu - |r_mu|^2 / 2)``: the data part of the free energy ``I(r)`` (docs/theory.md
    section 5; ``I = data_term - log E_prior[exp(c |S(w)|^2)]``). ``xp=numpy`` on float64 arrays for reporting,
    ``jax.numpy`` (default) inside traced code such as the ascent's Newton step."""
    return beta * xp.sum(q[:, None] * (residual * y - 0.5 * residual * residual))


@dataclasses.dataclass(frozen=True)
class Background:
    """The kernel of a neuron law on a dataset, as a dense matrix on demand or as an operator.

    ``Background(model, law, data)``; the NNGP (Gaussian-process) background is the one whose
    law is the prior, e.g. a grid or importance law at residual 0 (``mft_jax.theory.two_layer.gp_background``).
    """

    model: TwoLayer
    law: NeuronLaw
    data: Dataset

    @uses_precision
    def kernel(self, x: jax.Array | None = None, x2: jax.Array | None = None) -> jax.Array:
        """Dense ``K(x, x2)`` (default: on the data points). Forms a P x P2 matrix."""
        x = self.data.x if x is None else x
        return kernel(self.model, self.law, x, x2)

    @uses_precision
    def matvec(self, v: jax.Array) -> jax.Array:
        """``K v`` on the data points for ``v`` (P, C), without the P x P matrix."""
        return kernel_matvec(self.model, self.law, self.data.x, v)

    @uses_precision
    def imposed_residual(self, method: str = "auto") -> jax.Array:
        """``G = (I + beta sa2 K Q)^(-1) y``: the residual this kernel imposes (at a fixed point, the solution's ``r``)."""
        return solve_residual(self.model, self.law, self.data, method=method)

    def residual(self, method: str = "auto") -> jax.Array:
        """Deprecated name of ``imposed_residual`` (``residual`` names the iterate ``r`` of a solution)."""
        warnings.warn("Background.residual() is now Background.imposed_residual(); the old name goes in the next release",
                      DeprecationWarning, stacklevel=2)
        return self.imposed_residual(method)

    @uses_precision
    def predict(self, x_new: jax.Array, residual: jax.Array | None = None) -> jax.Array:
        """``f(x_new) = beta sa2 sum_nu K(x_new, x_nu) q_nu r_nu`` (``r`` defaults to this background's)."""
        residual = self.imposed_residual() if residual is None else residual
        return predict(self.model, self.law, self.data, residual, x_new)
