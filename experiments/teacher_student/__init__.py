"""Rubin, Seroussi & Ringel (ICLR 2024) erf teacher-student at the paper's own scales: their Fig. 2 and transition.

Task: ``x ~ N(0, I_d)``, ``y = H1(w*.x) + eps H3(w*.x)``, ``|w*| = 1``, ``eps = -0.3``; their alpha = beta = 1 values
``N = 700, n = 3000, d = 150, sigma_w^2 = 0.5, sigma_a^2 = 8/N``, scaled by their eq. 11 to alpha = beta = s
(``mft_jax.theory.reduced.rubin.paper_setting``). Map onto docs/theory.md (section 8): ``sa2 = N sigma_a^2``,
``sw2 = sigma_w^2/d``, ``beta = n/(sigma^2 N)`` (so ``beta N L`` is their likelihood), ``c = u d / 2``.

Three theories and the networks, per scale and sigma^2:

1. ``paper``: their eq. 13 + App. A.3 (``mft_jax.theory.reduced.rubin``), at d -> inf (saddle point: u_c, sigma^2_c,
   spinodal, the mixed phase) and at the scale's own d (the q-integrals by quadrature).
2. ``population``: our exact infinite-width theory at the scale's d on the population with effective data
   n/sigma^2 (``mft_jax.theory.reduced.single_index``: the (q, rho) law on a grid, (z, s) quadrature), from the GP start
   and from the feature start (``solve_branches``), both free energies.
3. ``networks``: Langevin networks (``mft_jax.train.joint``, float32, seeds vmapped), data draws x init
   seeds, from the prior and from neurons placed at ``w.w* = +-1``; the mean output over the kept samples
   projected on H1 and H3 over fresh test points; the law of ``w.w*`` over all neurons, seeds and samples.
   Step size and length: each run reports the integrated autocorrelation time of the cubic component
   (``tau_f3_records``). That time is the fast collective mode's and does not set the run length: at scale 1/8,
   sigma^2 = 0.18, 4000 steps leave f1 0.08 and f3 15% short of what 16000 steps reach, and at sigma^2 = 0.10 f3 is
   still drifting after 64000 (``--steps``; results/teacher_student_equilibration*.json; the slow variables are the
   readouts, relaxing over ~``beta sa2`` time units). ``--readout-gibbs K`` removes that mode: an exact draw of the
   readouts from their Gaussian conditional law before every K-th step (``mft_jax.train.gibbs``; the same posterior),
   kept as ``networks_gibbs`` (and ``width_sweep_gibbs``) next to the plain-Langevin ``networks``, and paired by draw
   with the training-set theory (``attach_gibbs_versus_theory``); ``f3_eighths`` (f3 over each eighth of the run)
   shows whether a run still drifts.
4. ``training_set_theory`` (``--training-set-theory``): the exact infinite-width theory (``mft_jax.theory.two_layer.solve``,
   the full ``TwoLayer`` in d dimensions, the networks' model) on each network training set itself (finite n,
   infinite N): MCMC from an importance-sampling start (``theory_on_training_set``), ``--theory-keys`` independent
   solves (their spread is the error); its mean predictor projected on H1, H3 on the networks' test points, next to
   the networks of the same draw (prior start) and the population theory; the NNGP on the same set for reference.
   With ``--no-networks`` and no checkpointed run of a draw (networks run elsewhere, e.g. on a GPU, and merged with
   ``--merge-into``), the comparison is with the scale's networks pooled over the same draws (``attach_networks``).
5. ``width_sweep`` (``--widths 88 176 352``): networks of width N' with the *same* ``TwoLayer`` model (sa2, sw2,
   beta: in the paper's units sigma_a^2 and sigma^2 scale as 1/N') on one draw (``--width-draw``) at
   ``--width-sigma2``, with a fit ``f = f_inf + A/N'`` (weighted least squares) next to the training-set theory.
6. ``population_extra`` (``--population-sigma2 0.19 0.21``): the population theory at extra sigma^2; with the scales'
   population points it feeds ``transition.exact_population_d_to_inf`` (``large_d_limit``: per sigma^2 the line
   f3 = f3_inf + B/d over the scales with d >= 100, and where f3_inf vanishes).
7. ``sample_check`` (``--sample-check 1500``): the training-set solve on a fresh sample of that many points at the same
   model; it must approach the population theory (a check of the MCMC route where the exact reduced solver applies).

Run: ``python -m experiments.teacher_student [--quick] [--scales 1/8 1/2] [--sigma2 0.15 0.2] [--seeds 4]
[--draws 2] [--steps 20000] [--no-networks] [--no-population] [--training-set-theory] [--widths 88 176 352
--width-sigma2 0.10 0.18] [--sample-check 1500] [--readout-gibbs 10] [--population-sigma2 0.19 0.21]``. Network runs are checkpointed under ``runs/teacher_student``
(one JSON per (scale, sigma^2, start, draw)); a rerun skips finished ones."""

from experiments.teacher_student.config import FULL, NAME, PAPER, QUICK, Q_BINS, ROOT, SETTING_NAMES, network_key, parse, run_settings
from experiments.teacher_student.measure import PREDICTIONS, _eighths, _mean_se, _paired_difference, _projected, _seed_stats, _versus, hermite_projector, network_test_inputs, theory_model
from experiments.teacher_student.networks import matmul_peak, network_run, network_transition, networks, step_flops
from experiments.teacher_student.theory import _THEORY_CACHE, _fit_inverse_width, paper_theory, population_theory, population_transition, sample_check, theory_on_training_set, training_set_theory, width_sweep
from experiments.teacher_student.summary import LARGE_D_MIN, attach_gibbs_versus_theory, attach_networks, attach_population, large_d_limit, print_table, transition_summary
from experiments.teacher_student.merge import _merge_points, _mixing_refused, _settings_differ, check_merge_target, merge_scale, settings_entries
from experiments.teacher_student.figures import finite_n_figure, make_figures
from experiments.teacher_student.run import main
