"""The seed's clover experiment: theory vs jointly trained networks vs foreground neurons.

Task ``continuous_xor`` (x ~ N(0, I_2), y = x1 x2) on a Gauss-Hermite quadrature, ``ramp``
activation, ``sa2 = sw2 = 1``, ``beta = 50`` (``configs/clover.toml``). Four stages:

1. theory: the mean-field fixed point (grid sampler) -> ``rho(w)`` and the fixed-point loss;
2. networks: Langevin training of whole networks at T = 1/beta on the same quadrature data,
   at several widths N; their neurons' empirical law against ``rho`` (sliced W2, debiased
   Sinkhorn, energy distance) next to the noise floor, and the measured vs predicted loss;
   the exponent of distance vs N (log-log fit with its standard error);
3. foreground: M independent neurons trained (Langevin, same T) against the largest network's
   background ``r = y - f_net`` -> distance to that network's own neurons (M of them, drawn
   without replacement, so both clouds have size M and share one floor) and to theory.
   The background is ``y - f_net`` averaged over ``snapshots`` times in the network's last
   ``average_steps`` steps (``background = "average"``), not one frozen snapshot: at finite N
   the network function fluctuates by O(N^-1/2), and the single-neuron law
   ``exp(c |S(w)|^2)`` with ``c = beta^2 sa2 / 2 = 1250`` amplifies a frozen fluctuation into a
   visible reweighting of the four leaves (``background = "snapshot"`` shows it);
4. the wrong background: M neurons trained against the GP (NNGP kernel ridge) residual ->
   distance to the GP background's neurons (the prior) and to theory.

Distances and noise floors (the comparison the spec asks for): every empirical cloud of n
neurons is compared with ``theory_draws`` independent size-n samples of the theory law (mean
reported), and the noise floor is the distance between two independent size-n samples of the
same law (``mft_jax.analysis.compare.noise_floor``, mean and spread over ``repeats``): both are
two-sample statistics at the same n, so "at the floor" means "indistinguishable at this n".
For the energy distance the squared floor adds to the squared distance between the laws
(exactly, for the V-statistic), so ``excess = sqrt(max(d^2 - floor^2, 0))`` estimates the
distance between the network's law and the theory law itself.

``make_figures`` redraws every figure from the JSON alone (``make figures``)."""

from experiments.clover.config import BACKGROUNDS, BenchmarkConfig, CONFIG, CompareConfig, ForegroundConfig, METRICS, METRIC_LABELS, NetworksConfig, QUICK_CONFIG, SECTIONS, StageError, _positive_ints, load_config, stage
from experiments.clover.measure import Distances, SUMMARY_MOMENTS, _cloud, _entry, _law_from_density, _theory_density, exponent_fits, subsample, summary_moments, width_summary
from experiments.clover.figures import make_figures
from experiments.clover.run import _fmt, main, run_benchmark, solve_theory, table, train_with_snapshots
