"""Modular addition, square activation, sextic Fourier prior: the paper's Fig. 3, the exact theory, networks.

Rubin, Seroussi & Ringel (ICLR 2024, section 3.2, appendix B) make the square network's single-neuron
law normalizable with the Fourier-mode sextic prior ``Gamma = sum_k P (gamma/6)(|w_k|^6 + |v_k|^6)`` and
reduce it to one two-variable action per Fourier mode (``mft_jax.theory.reduced.modular``, docs/theory.md section 9).
This script computes, with the library:

1. ``paper_fig3``: their Fig. 3 (P = 401, N = 1000, gamma = 1e-4) from the saddle-point equations with the
   paper's numbers taken literally (readout variance ``sigma_a^2/N`` with ``sigma_a^2 = 0.002/N``
   everywhere, correct factors of P): where GMFL-I and GMFL-II start and ``a`` there; plus the
   mixed reading (``0.002/N`` in ``u``, ``0.002`` in the GP eigenvalue) that reproduces their 0.227.
2. ``corrected``: the same from the equations as derived here, both readings of ``sigma_a^2``, saddle
   and the exact per-mode integral, with the paper's sign convention undone (``r = a y``, a > 0).
3. ``exact_theory``: the exact per-mode integral against the saddle at P in ``exact.moduli`` (the
   coexistence coupling ``g_c(P)`` and the GMFL-I onset move with P).
4. ``networks``: Langevin square networks with the same Fourier sextic prior (``mft_jax.priors``) on the
   full table, against the exact theory at the same ``(beta, sa2, gamma)``: the discrepancy coefficient
   ``a``, the fraction of (neuron, mode) pairs beyond the coexistence barrier, each neuron's top-mode share.
5. ``loss_timing``: the Fourier form of the loss (``mft_jax.theory.reduced.modular.fourier_loss``) against the direct loss.
6. ``width_sweep`` (``[width_sweep]``): the networks' ``a`` at one (P, beta) across widths, fitted as
   ``a_inf + c/N`` (and with a ``1/N^2`` term, and through the two largest widths) against the exact theory,
   plus two equilibration checks: a run ``long_factor`` times longer, and a run started in the theory's
   single-neuron law (``mft_jax.theory.reduced.modular.sample_neurons``), and a step-size check (``step_check``: smaller steps over
   the same time span).

Run: ``python -m experiments.modular_addition [--quick] [--config experiments/configs/modular_addition.toml]``.
Network points are cached in ``runs/modular_addition/`` (delete to recompute)."""

from experiments.modular_addition.config import ExactSection, NAME, NetworkSection, PAPER, PaperSection, ROOT, WidthSweepSection
from experiments.modular_addition.theory import _phase_boundaries, exact_theory, fig3, fig3_table, saddle_boundaries, sigma2_curve
from experiments.modular_addition.networks import _summary, fit_inverse_width, loss_timing, network_point, step_check, width_sweep
from experiments.modular_addition.figures import make_figures
from experiments.modular_addition.run import fig3_main, main
