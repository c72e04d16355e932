#!/usr/bin/env bash
# Time tests one by one: wall and CPU seconds of each (setup to teardown) and the 1-minute load average when it
# finished, one line per test as it finishes (so a run cut by a timeout keeps what it measured).
# usage: .ci/time_tests.sh OUT.tsv [pytest arguments...]   e.g. .ci/time_tests.sh results/test_times/slow.tsv -m slow
# CPU seconds (all threads) estimate the time on an idle 2-core machine better than wall seconds on a shared one.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$1"; shift
mkdir -p "$(dirname "$out")"
{
  echo "# command: .ci/time_tests.sh $out $*"
  echo "# date: $(date -u +%Y-%m-%dT%H:%MZ)  host cores: $(nproc)  commit: $(git rev-parse --short HEAD)"
  echo -e "# test\twall_s\tcpu_s\tload_1min\toutcome"
} > "$out"
PYTHONPATH=.ci TIMING_LOG="$out" .venv/bin/python -m pytest -q -p timing_plugin "$@"
