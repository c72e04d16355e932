"""Infinite width: the background map B, the single-neuron samplers F and the fixed point ``b = B(F(b))``.

- ``fixed_point``: the engine (problems, solver objects, stop rules, result codes);
- ``two_layer``: ``solve`` and ``Solution`` for two-layer networks (the residual ``r`` on the data);
- ``deep``: ``solve_deep`` and ``DeepSolution`` (a kernel at every layer);
- ``background``, ``gp``, ``ascent``, ``normalizability``: the kernel from a law, the NNGP, the free energy,
  when a law exists;
- ``samplers``: the maps F (grid, importance, MCMC, tempered, pooled; ``layers`` for deep networks);
- ``reduced``: symmetry reductions and paper-specific saddle-point equations.
"""
