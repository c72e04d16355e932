# `make demo` and `make test` set themselves up: they create .venv and install mft_jax into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export XLA_FLAGS ?= --xla_cpu_multi_thread_eigen=true
export PYTHONUNBUFFERED := 1

.PHONY: demo test test-slow figures benchmarks clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python benchmarks/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

figures: $(STAMP)
	$(BIN)/python benchmarks/figures.py

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/solver_speed.py
	$(BIN)/python benchmarks/neuron_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache
