"""What the teacher-student experiment measures: the model at a setting, the test inputs, the projections of a
predictor on H1 and H3, and statistics over seeds and draws."""

from __future__ import annotations

import math
import jax
import jax.numpy as jnp
import numpy as np

from mft_jax.analysis.stats import mean_se
from mft_jax.theory.reduced import rubin
from mft_jax.model import TwoLayer
from mft_jax.theory.reduced.single_index import SingleIndex


def theory_model(setting: rubin.PaperSetting, sigma2: float, reduced=True):
    """Their hyperparameters in our conventions (module docstring)."""
    kw = dict(activation="erf", sa2=setting.N * setting.sigma_a2, sw2=setting.sigma_w2 / setting.d,
              beta=setting.n / (sigma2 * setting.N))
    return SingleIndex(**kw, dim=setting.d, angle_nodes=12) if reduced else TwoLayer(**kw)


def hermite_projector(z) -> jax.Array:
    """Least-squares coefficients of ``(H1, H3, H5)(z)`` on the test points: (3, P). A plain ``mean(f H3)/6``
    leaks ``f1 mean(z H3)/6`` (about 0.014 at 3000 points) from the large linear part into the cubic one."""
    z = np.asarray(z, dtype=float)
    basis = np.stack([z, z**3 - 3 * z, z**5 - 10 * z**3 + 15 * z], axis=1)
    return jnp.asarray(np.linalg.pinv(basis), jnp.float32)


# ------------------------------------------------------------------------------------------ finite n vs finite N
def _eighths(traces) -> list[float]:
    """Means of the recorded f3 (averaged over runs) over the eight consecutive eighths of the run: flat means relaxed."""
    trace = np.mean([np.asarray(t, float) for t in traces], axis=0)
    return [float(part.mean()) for part in np.array_split(trace, 8)]


def _mean_se(values) -> tuple[float, float]:
    return mean_se(values, finite_only=True)


def _seed_stats(run) -> dict:
    """``{f1, f1_se, f3, f3_se}``: mean and s.e. over the seeds of ``run["f1_seeds"]``, ``run["f3_seeds"]``."""
    out = {}
    for name in ("f1", "f3"):
        out[name], out[name + "_se"] = _mean_se(run[name + "_seeds"])
    return out


# The theory's two predictions on the networks' test points (``theory_on_training_set``): the law's own at the iterate
# (``f1``, ``f3``) and kernel regression with the law's kernel (``*_kernel_regression``; absent from older runs). Each is
# compared with the networks' f1, f3 (theory name -> the networks' component it predicts).
PREDICTIONS = {"f1": "f1", "f3": "f3", "f1_kernel_regression": "f1", "f3_kernel_regression": "f3"}


def _paired_difference(pairs, name, theory_name=None) -> tuple[float, float]:
    """Networks' ``name`` minus the theory's ``theory_name`` (default: the same) on the same training set, averaged over
    the (networks, theory) pairs of draws; error: the networks' s.e. over seeds and the theory's sampler error (none
    from a single solve), in quadrature."""
    th_name = name if theory_name is None else theory_name
    gap = float(np.mean([net[name] - th[th_name] for net, th in pairs]))
    se = math.sqrt(sum(net[name + "_se"] ** 2 + np.nan_to_num(th[th_name + "_se"]) ** 2 for net, th in pairs)) / len(pairs)
    return gap, se


def network_test_inputs(setting, args) -> jax.Array:
    """The networks' test points (``networks``): the Hermite components of every predictor are taken on these."""
    return jax.random.normal(jax.random.key(424242), (args.test_points, setting.d))


def _projected(projector, f) -> tuple[float, float]:
    f1, f3, _ = (float(v) for v in np.asarray(projector @ f[:, 0]))
    return f1, f3


def _versus(a, a_se, b, b_se) -> float:
    """``(a - b)`` in combined standard errors (nan-safe: a missing error counts as 0)."""
    se = math.sqrt(np.nan_to_num(a_se) ** 2 + np.nan_to_num(b_se) ** 2)
    return float((a - b) / se) if se > 0 else float("nan")
