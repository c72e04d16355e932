#!/usr/bin/env bash
# Non-blocking: does the newest jax on the package index still pass a handful of fast tests?
# Installs the newest jax, jaxlib and the other dependencies (unpinned) in a throwaway venv, runs a few fast test
# files against this checkout (PYTHONPATH, no install of mft_jax), prints one verdict line, and always exits 0.
# Guarded by `timeout`: at most NEWEST_JAX_SECONDS (default 170) in all.
set -u
cd "$(dirname "$0")/.."
seconds=${NEWEST_JAX_SECONDS:-170}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
tests=(tests/test_fixed_point.py tests/test_data_tasks.py tests/test_precision.py::test_round_mantissa_is_round_to_nearest_even
       tests/test_precision.py::test_emulation_rounds_only_below_highest_and_restores_the_rule
       tests/test_precision_audit.py::test_the_audit_catches_a_plain_matmul)
timeout "$seconds" bash -c '
  set -e
  python3 -m venv "$1/venv"
  "$1/venv/bin/pip" install -q --upgrade pip > "$1/install.log" 2>&1
  "$1/venv/bin/pip" install -q --upgrade jax jaxlib flax optax blackjax ott-jax numpy matplotlib tqdm scikit-learn pytest >> "$1/install.log" 2>&1
' _ "$scratch"
status=$?
if [ $status -ne 0 ]; then
  reason=$([ $status -eq 124 ] && echo "timed out after ${seconds} s" || echo "exit $status: $(tail -1 "$scratch/install.log" 2>/dev/null)")
  echo "newest-jax check: could not install the newest jax ($reason); no verdict (non-blocking)"
  exit 0
fi
version=$("$scratch/venv/bin/python" -c "import jax; print(jax.__version__)" 2>/dev/null || echo "?")
left=$((seconds - SECONDS))
if [ $left -lt 10 ]; then
  echo "newest-jax check: jax $version installed but no time left to test; no verdict (non-blocking)"
  exit 0
fi
out=$(PYTHONPATH=. timeout "$left" "$scratch/venv/bin/python" -m pytest -q -p no:cacheprovider "${tests[@]}" 2>&1)
status=$?
summary=$(echo "$out" | tail -1)
if [ $status -eq 0 ]; then
  echo "newest-jax check: jax $version PASSES the fast tests ($summary) (non-blocking)"
else
  echo "newest-jax check: jax $version FAILS the fast tests ($summary) (non-blocking); failures:"
  echo "$out" | grep -E "^(FAILED|ERROR)" | head -10
fi
exit 0
