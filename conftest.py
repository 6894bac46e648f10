"""Time every notebook that nbval runs, print a table, and enforce the budget.

A notebook's time runs from the start of its first cell's test (when nbval
starts a clean kernel) to the end of its last, so it includes the kernel
start-up, as a reader would experience it.
"""

import statistics
import time

#: Budgets from the book plan, for a clean kernel on a 2-core CPU.
MAX_SECONDS = 120
MAX_MEDIAN_SECONDS = 60

_spans: dict[str, list[float]] = {}


def _notebook(nodeid: str) -> str | None:
    path = nodeid.split("::")[0]
    return path if path.endswith(".ipynb") else None


def pytest_runtest_logstart(nodeid, location):
    name = _notebook(nodeid)
    if name:
        _spans.setdefault(name, [time.perf_counter(), 0.0])


def pytest_runtest_logfinish(nodeid, location):
    name = _notebook(nodeid)
    if name:
        _spans[name][1] = time.perf_counter()


def _times() -> dict[str, float]:
    return {name: end - start for name, (start, end) in _spans.items() if end}


def pytest_terminal_summary(terminalreporter):
    times = _times()
    if not times:
        return
    write = terminalreporter.write_line
    terminalreporter.section("notebook times (clean kernel)")
    for name, seconds in sorted(times.items()):
        flag = "  OVER BUDGET" if seconds > MAX_SECONDS else ""
        write(f"{seconds:7.1f} s  {name}{flag}")
    median = statistics.median(times.values())
    write(f"median {median:.1f} s (budget {MAX_MEDIAN_SECONDS} s); maximum {max(times.values()):.1f} s (budget {MAX_SECONDS} s)")


def pytest_sessionfinish(session, exitstatus):
    times = _times()
    if times and (max(times.values()) > MAX_SECONDS or statistics.median(times.values()) > MAX_MEDIAN_SECONDS):
        session.exitstatus = 1
