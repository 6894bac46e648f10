"""The notebook budget's load detection (``conftest.py``)."""

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

# The repository's conftest.py, by file: `import conftest` finds tests/unit's.
_spec = importlib.util.spec_from_file_location("root_conftest", Path(__file__).parents[2] / "conftest.py")
conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conftest)

BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


@pytest.mark.timeout(60)
def test_a_short_job_of_another_program_counts_as_load():
    # Started through a shell that exits at once, the job is re-parented to
    # init: it is not part of this test run, and it ends before the second
    # reading, so only the machine-wide count can see it.
    before = conftest._other_cpu_seconds()
    subprocess.run(["sh", "-c", f"{sys.executable} -c '{BURN.format(seconds=1.5)}' & "], check=True)
    time.sleep(3)
    assert conftest._other_cpu_seconds() - before >= 1.2


@pytest.mark.timeout(60)
def test_our_own_children_are_not_load():
    tree = conftest._tree_cpu_seconds()
    subprocess.run([sys.executable, "-c", BURN.format(seconds=1.0)], check=True)  # reaped by us
    assert conftest._tree_cpu_seconds() - tree >= 0.9
