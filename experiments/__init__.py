"""The physics reproductions: one module (or package) per experiment, run as ``python -m experiments.NAME``.

Each writes ``results/NAME/RUN.json`` (with the exact command in ``meta``) and its figures; ``docs/results/NAME.md``
holds its tables, generated from those files by ``python -m experiments.report``. Speed measurements live in
``benchmarks/``, not here.
"""
