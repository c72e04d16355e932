# `make demo` and `make test` set themselves up: they create .venv and install mft_jax into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export XLA_FLAGS ?= --xla_cpu_multi_thread_eigen=true
export PYTHONUNBUFFERED := 1

.PHONY: demo test test-isa test-slow test-ci-slow figures benchmarks docs docs-tables device-check clean

$(STAMP): pyproject.toml constraints.txt
	@echo "setting up $(VENV) (pinned versions from constraints.txt; log in $(VENV)/install.log)"
	$(PYTHON) -m venv $(VENV)
	@( $(BIN)/pip install --upgrade pip && $(BIN)/pip install -c constraints.txt -e '.[test]' ) > $(VENV)/install.log 2>&1 \
	  || { tail -40 $(VENV)/install.log; echo "install failed: see $(VENV)/install.log"; exit 1; }
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m experiments.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The physics and statistical tests once more under another XLA CPU instruction set: float reordering
# changes as on another machine, and every verdict must stay the same (CI runs this after `make test`).
ISA_TESTS := tests/test_solver.py tests/test_ascent.py tests/test_fixed_point.py tests/test_solver_power.py tests/test_sampler_agreement.py tests/test_mcmc.py \
	tests/test_foreground.py tests/test_joint.py tests/test_langevin.py tests/test_background.py tests/test_gp.py \
	tests/test_compare.py tests/test_model_config.py tests/test_deep.py tests/test_deep_foreground.py tests/test_modular.py \
	tests/test_deep_mcmc.py tests/test_tempered.py tests/test_gibbs.py tests/test_stats.py tests/test_vouch.py \
	tests/test_dynamics.py tests/test_partial_table.py tests/test_modular_fig3.py tests/test_dynamics_minibatch.py
test-isa: $(STAMP)
	XLA_FLAGS="$(XLA_FLAGS) --xla_cpu_max_isa=AVX" $(BIN)/python -m pytest -q $(wildcard $(ISA_TESTS))

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# The slow tests that fit CI's budget (.ci/slow_tests.txt, one node id a line; CI runs this after test-isa).
# docs/guide/testing.md lists them with their measured times, and the slow tests left to `make test-slow`.
test-ci-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow $$(grep -v '^\s*\(#\|$$\)' .ci/slow_tests.txt)

figures: $(STAMP)
	$(BIN)/python -m experiments.figures

# every generated table and number of README.md and docs/results/*.md, from results/**/*.json
docs-tables: $(STAMP)
	$(BIN)/python -m experiments.report

# The docs site (mkdocs.yml): fails on a stale generated table, a results file without a command, a broken
# link or API reference (warnings are errors).
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	@( $(BIN)/pip install -c constraints.txt -e '.[docs]' ) >> $(VENV)/install.log 2>&1 \
	  || { tail -40 $(VENV)/install.log; echo "docs install failed: see $(VENV)/install.log"; exit 1; }
	@touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/python -m experiments.report --check
	$(BIN)/mkdocs build --strict

benchmarks: $(STAMP)
	-$(BIN)/pip install -q torch==2.13.0 || echo "torch 2.13.0 not installable here: neuron_throughput skips the PyTorch comparison"
	$(BIN)/python -m benchmarks.solver_speed
	$(BIN)/python -m benchmarks.neuron_throughput

# One command on a machine with an accelerator (at most ~8 minutes): results/device_check/main.json (benchmarks/device_check.py).
device-check: $(STAMP)
	$(BIN)/python -m benchmarks.device_check

clean:
	rm -rf $(VENV) .pytest_cache site
