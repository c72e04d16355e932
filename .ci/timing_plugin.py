"""Log each test's wall and CPU seconds (and the load average) as it finishes: survives a timeout kill."""
import os, resource, time

_start = {}
_LOG = os.environ.get("TIMING_LOG", "/tmp/slow_timing.tsv")


def _cpu():
    self_, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return self_.ru_utime + self_.ru_stime + children.ru_utime + children.ru_stime


def pytest_runtest_setup(item):
    _start[item.nodeid] = (time.time(), _cpu())


def pytest_runtest_logreport(report):
    if report.when != "teardown":
        return
    wall0, cpu0 = _start.pop(report.nodeid, (None, None))
    if wall0 is None:
        return
    with open(_LOG, "a") as f:
        f.write(f"{report.nodeid}\t{time.time() - wall0:.1f}\t{_cpu() - cpu0:.1f}\t{os.getloadavg()[0]:.1f}\n")
