# `make demo` and `make test` set themselves up: they create .venv and install mft_jax into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export XLA_FLAGS ?= --xla_cpu_multi_thread_eigen=true
export PYTHONUNBUFFERED := 1

.PHONY: demo test test-slow figures benchmarks clean

$(STAMP): pyproject.toml constraints.txt
	@echo "setting up $(VENV) (pinned versions from constraints.txt; log in $(VENV)/install.log)"
	$(PYTHON) -m venv $(VENV)
	@( $(BIN)/pip install --upgrade pip && $(BIN)/pip install -c constraints.txt -e '.[test]' ) > $(VENV)/install.log 2>&1 \
	  || { tail -40 $(VENV)/install.log; echo "install failed: see $(VENV)/install.log"; exit 1; }
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python benchmarks/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

figures: $(STAMP)
	$(BIN)/python benchmarks/figures.py

benchmarks: $(STAMP)
	-$(BIN)/pip install -q torch==2.13.0 || echo "torch 2.13.0 not installable here: neuron_throughput skips the PyTorch comparison"
	$(BIN)/python benchmarks/solver_speed.py
	$(BIN)/python benchmarks/neuron_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache
