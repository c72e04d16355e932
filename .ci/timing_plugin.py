"""A pytest plugin for .ci/time_tests.sh: one line per test as it finishes (so a run cut by a timeout keeps what it
measured): node id, wall seconds and CPU seconds (this process and its reaped children, all threads) from setup to
teardown, the 1-minute load average, and the outcome (passed / failed / skipped)."""
import os
import resource
import time

import pytest

_start = {}
_outcome = {}
_LOG = os.environ.get("TIMING_LOG", "test_times.tsv")


def _cpu():
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _start[item.nodeid] = (time.time(), _cpu())


def pytest_runtest_logreport(report):
    rank = {"passed": 0, "skipped": 1, "failed": 2}  # the worst phase (setup, call, teardown) is the test's outcome
    if rank[report.outcome] >= rank[_outcome.get(report.nodeid, "passed")]:
        _outcome[report.nodeid] = report.outcome
    if report.when != "teardown" or report.nodeid not in _start:
        return
    wall0, cpu0 = _start.pop(report.nodeid)
    with open(_LOG, "a") as f:
        f.write(f"{report.nodeid}\t{time.time() - wall0:.1f}\t{_cpu() - cpu0:.1f}\t{os.getloadavg()[0]:.1f}\t"
                f"{_outcome.pop(report.nodeid, 'unknown')}\n")
