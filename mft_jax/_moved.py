"""Old import paths of modules that moved in 0.2 (``mft_jax.solver`` -> ``mft_jax.theory.two_layer``, ...).

Importing an old path gives the module at its new path (the same object, so monkeypatching either name
patches both) with a ``DeprecationWarning`` naming the new path. Kept for one release; see CHANGELOG.md.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "mft_jax.fixed_point": "mft_jax.theory.fixed_point",
    "mft_jax.background": "mft_jax.theory.background",
    "mft_jax.gp": "mft_jax.theory.gp",
    "mft_jax.ascent": "mft_jax.theory.ascent",
    "mft_jax.normalizability": "mft_jax.theory.normalizability",
    "mft_jax.solver": "mft_jax.theory.two_layer",
    "mft_jax.deep": "mft_jax.theory.deep",
    "mft_jax.layers": "mft_jax.theory.samplers.layers",
    "mft_jax.foreground": "mft_jax.theory.samplers",
    "mft_jax.foreground.grid": "mft_jax.theory.samplers.grid",
    "mft_jax.foreground.importance": "mft_jax.theory.samplers.importance",
    "mft_jax.foreground.mcmc": "mft_jax.theory.samplers.mcmc",
    "mft_jax.foreground.pooled": "mft_jax.theory.samplers.pooled",
    "mft_jax.foreground.tempered": "mft_jax.theory.samplers.tempered",
    "mft_jax.single_index": "mft_jax.theory.reduced.single_index",
    "mft_jax.modular": "mft_jax.theory.reduced.modular",
    "mft_jax.rubin": "mft_jax.theory.reduced.rubin",
    "mft_jax.compare": "mft_jax.analysis.compare",
    "mft_jax.plots": "mft_jax.analysis.plots",
    "mft_jax.config": "mft_jax.cli.config",
    "mft_jax.jobs": "mft_jax.cli",
    "mft_jax.jobs.solve": "mft_jax.cli.solve",
    "mft_jax.jobs.train": "mft_jax.cli.train",
    "mft_jax.jobs.foreground": "mft_jax.cli.foreground",
    "mft_jax.jobs.compare": "mft_jax.cli.compare",
    # 0.2: one-line forwards removed; loss, residual, network_law live in mft_jax.train.joint
    "mft_jax.train.network": "mft_jax.train._network_forwards",
    "mft_jax.train.deep_network": "mft_jax.train._network_forwards",
}
REPLACEMENT = {
    "mft_jax.train.network": "model.init_params / model.apply, and loss, residual, network_law from mft_jax.train.joint",
    "mft_jax.train.deep_network": "the Deep model's methods (apply, preactivations, feature_kernels)",
}


class _Alias(importlib.abc.Loader):
    def create_module(self, spec):
        target = REPLACEMENT.get(spec.name, MOVED[spec.name])
        warnings.warn(f"{spec.name} moved to {target}; the old path goes in the next release", DeprecationWarning, stacklevel=2)
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):
        del module  # already executed at its new path


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, _Alias())
        return None


def install() -> None:
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())
