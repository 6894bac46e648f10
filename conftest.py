"""Time every notebook that nbval runs, print a table, enforce the budget,
and bound each notebook so that a hang fails fast.

A notebook's time runs from the start of its first cell's test (when nbval
starts a clean kernel) to the end of its last, so it includes the kernel
start-up, as a reader would experience it.

The bound: every cell of a notebook must finish before the notebook's
deadline, ``NOTEBOOK_TIMEOUT_SECONDS`` after its first cell started.  nbval
enforces it cell by cell (its cell timeout is set to the time left), and on
a timeout interrupts the kernel, so the failure shows the kernel's own
traceback: where the notebook was stuck.  pytest-timeout stands behind it
with a little more time, in case nbval itself stops answering.
"""

import statistics
import time
from pathlib import Path

import pytest

# Each notebook that passes under nbval goes into the book's execution cache.
pytest_plugins = ["tests.nbval_to_book"]

#: Budgets from the book plan, for a clean kernel on a 2-core CPU.
MAX_SECONDS = 120
MAX_MEDIAN_SECONDS = 60
#: A notebook still running after this is failed (twice the budget: a hang, not a slow machine).
NOTEBOOK_TIMEOUT_SECONDS = 240

_spans: dict[str, list[float]] = {}
_deadlines: dict[str, float] = {}


def _notebook(nodeid: str) -> str | None:
    path = nodeid.split("::")[0]
    return path if path.endswith(".ipynb") else None


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """Give each cell the time its notebook has left (before pytest-timeout reads its marker)."""
    name = _notebook(item.nodeid)
    if name and hasattr(item.config.option, "nbval_cell_timeout"):
        deadline = _deadlines.setdefault(name, time.monotonic() + NOTEBOOK_TIMEOUT_SECONDS)
        left = max(1.0, deadline - time.monotonic())
        item.config.option.nbval_cell_timeout = left
        item.add_marker(pytest.mark.timeout(left + 60))
    yield


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


def _whole_book(times: dict[str, float]) -> bool:
    """The median budget is the book's: it applies only when every chapter ran."""
    chapters = {f"notebooks/{path.name}" for path in Path(__file__).parent.glob("notebooks/*.ipynb")}
    return bool(chapters) and chapters <= set(times)


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
    scope = f"budget {MAX_MEDIAN_SECONDS} s" if _whole_book(times) else "a part of the book ran: not checked"
    write(f"median {median:.1f} s ({scope}); maximum {max(times.values()):.1f} s (budget {MAX_SECONDS} s)")


def pytest_sessionfinish(session, exitstatus):
    times = _times()
    if not times:
        return
    over_median = _whole_book(times) and statistics.median(times.values()) > MAX_MEDIAN_SECONDS
    if max(times.values()) > MAX_SECONDS or over_median:
        session.exitstatus = 1
