"""Modular addition from part of the table: test loss and accuracy vs training fraction (networks, GP).

Issue 9 item 5. The setting of ``experiments/modular_addition.py`` (square activation, two-hot inputs of
``Z_P``, prior ``exp(-|w|^2/2 - Gamma)`` with ``Gamma = fourier_sextic(gamma)``), trained on a random
fraction of the ``P^2`` pairs (``mft_jax.tasks.make_split``: the training set of ``make_data(n_train=k,
seed=s)`` and the held-out rest, nested in k for one s). The noise is per example: ``beta(n) = beta n/P^2``
at fixed ``sa2 = kappa/beta`` (the posterior ``exp(-sum_mu |r_mu|^2/(2 T_1) - prior)`` of a fixed noise ``T_1``;
``beta`` and ``kappa`` are the full-table values). For each P and fraction, over ``num_seeds`` splits:

1. ``networks``: Langevin square networks with the same prior (``mft_jax.train.joint``); the prediction on the
   held-out pairs is the network output averaged over the recorded steps after the burn-in (the posterior mean).
2. ``gp``: the Gaussian process with the same prior (``mft_jax.theory.reduced.modular.prior_gp_predict``: the exact NNGP kernel
   ``E[(w.x)^2 (w.x')^2]`` under the sextic prior).
3. ``theory`` (``[theory]``, per P of ``moduli``): the exact infinite-width theory on the same training sets
   (``mft_jax.theory.two_layer.solve``, the full 2P-dimensional single-neuron law). Plain MALA chains (``mcmc_sampler``) do not
   serve: the kernel of a few hundred particles biases ``G(r) = (I + beta sa2 K Q)^-1 y`` where the gain on the target
   is large, and its noise floor sits above the solver's ceiling. The sampler is replica-exchange MALA
   (``tempered_sampler``: crosses the barrier between the zero and the learned wells) pooled over the last updates
   (``pooled_sampler``); the map is steep (a slope of order -27 along the target at P = 11), so the damping is small
   (0.03) and the relative change ``|G(r) - r|/|G(r)|`` stays of order 0.5 however close ``r`` is: the slope amplifies
   the sampler's noise. The noise-floor rule would call that "stalled", so the solve runs a fixed ``max_iter``
   iterations (``stochastic=False``; it reports not converged, in words) and the route is validated where the answer is
   known: first the same solve on the full table against the exact per-mode ``a`` (``full_table_check``), and the map at
   the exact fixed point with single and pooled laws (``pool_check``). The prediction on held-out pairs is kernel
   regression with the final law's kernel, ``beta sa2 K(x, X) G(r)`` (``theory_point``): the law's own
   ``beta sa2 K(x, X) r`` amplifies the iterate's distance from ``G(r)``, by a relative loss of ~17 on the full table.

4. ``full_table_networks`` (``[full_table_networks]``): networks on the full table at the same coupling, where the
   exact per-mode theory is known, from the prior and from the theory's own single-neuron law, at two widths and run
   lengths: how far from the theory's state the networks are where they are trained, and whether that is run length
   (barrier crossing) or width.

5. ``theory_start`` (``[theory_start]``): networks on the theory's training sets started in the full-table theory's
   single-neuron law (modes learned) at a step size that holds that basin: the networks in the theory's basin
   against the exact theory on the same set.

Test loss ``1/2 mean_test |f - y|^2`` (relative: over that of f = 0, ``(P-1)/(2P)``) and test accuracy
(``argmax_p f_p = (n + m) mod P``). The transition fraction is where the relative test loss of a split
first falls below 1/2 (linear interpolation on the fraction grid), mean and s.e. over the splits that cross; likewise
where it falls below 1 (better than f = 0) and where the accuracy rises above 1/2.

6. ``branches`` (a subcommand): both branches of the theory on a partial table (restricted ensembles), the kernel
   check (does the generalising branch's kernel generalise?) and networks from two starts; ``summary``: the crossing
   fraction, spinodals and hysteresis from those runs (``results/modular_grokking/critical_fraction.json``).

7. ``critical`` (a subcommand): the theory's grokking fraction f_c(P) from the annealed per-mode theory
   (``mft_jax.theory.reduced.partial_table``; the infinite-width fixed point on a training set is unique, so there is no
   free-energy crossing of two branches), its quenched check on actual training sets and the per-mode kinetics at the
   networks' transition (``results/modular_grokking/annealed.json``; ``summary --annealed`` makes it the ``theory``).

Run: ``python -m experiments.modular_grokking [--quick] [--config experiments/configs/modular_grokking.toml]``;
``python -m experiments.modular_grokking branches --help``; ``python -m experiments.modular_grokking summary RUN.json ...``.
Network points are cached in ``runs/modular_grokking/`` (delete to recompute)."""

from experiments.modular_grokking.config import CheckSection, FullTableSection, GrokkingSection, NAME, ROOT, TheorySection, TheoryStartSection, WidthTrendSection
from experiments.modular_grokking.networks import full_table_networks, gp_point, model_at, network_point, split_points, summarise, test_metrics, transition, width_trend
from experiments.modular_grokking.theory import check_theory_moduli, discrepancy, pool_check, theory_at, theory_point, theory_sampler, theory_section, theory_start
from experiments.modular_grokking.figures import _colour, make_figures
from experiments.modular_grokking.branches import branch_point, critical_fraction, kernel_check, two_starts
from experiments.modular_grokking.run import main
