"""Build the book from what the tests executed: each notebook runs once.

nbval runs every cell of a notebook and checks it; this plugin keeps what
each cell printed and drew, and when a whole notebook has passed, stores it
as an executed notebook in the book's execution cache (jupyter-cache, the
folder that ``_config.yml`` names).  ``make book`` then finds every notebook
in the cache and executes nothing.  A notebook that failed is not stored,
so the build runs it again and fails with its traceback.

Two things nbval does not keep are added here: execution counts (the cells
ran in order, so they are 1, 2, …) and the widgets' state, which the book
needs to draw the panels.  The state is read from the kernel after the last
cell, with a silent request that leaves no trace in the notebook's history.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The execution cache of the book build (``execute.cache`` in _config.yml).
CACHE = ROOT / "_build" / ".jupyter_cache"

# ipywidgets' own serialisation of every live widget, as nbclient stores it.
WIDGET_STATE = (
    "__import__('json').dumps(__import__('ipywidgets').Widget.get_manager_state(drop_defaults=True)) "
    "if 'ipywidgets' in __import__('sys').modules else 'null'"
)
WIDGET_MIME = "application/vnd.jupyter.widget-state+json"


class _Run:
    """One notebook's outputs, gathered cell by cell."""

    def __init__(self, notebook):
        self.notebook = notebook  # nbval's IPyNbFile
        self.outputs: dict[int, list] = {}
        self.failed = False
        self.start = time.perf_counter()


_runs: dict[str, _Run] = {}


def _is_cell(item) -> bool:
    return type(item).__name__ == "IPyNbCell"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if not _is_cell(item):
        return
    run = _runs.setdefault(item.parent.nodeid, _Run(item.parent))
    report = outcome.get_result()
    if report.failed or report.skipped and call.when == "call":
        run.failed = True
    if call.when == "call" and report.passed:
        run.outputs[item.cell_num] = copy.deepcopy(getattr(item, "test_outputs", []))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    """After a notebook's last cell, while its kernel still runs, store it."""
    # only runs like the book build's: headless, and the precision not forced
    as_built = os.environ.get("LLM_BOOK_HEADLESS") == "1" and not os.environ.get("LLM_BOOK_PRECISION")
    if as_built and _is_cell(item) and (nextitem is None or nextitem.parent is not item.parent):
        run = _runs.pop(item.parent.nodeid, None)
        if run is not None and not run.failed:
            try:
                _store(run)
            except Exception as err:  # the build will execute the notebook itself
                item.config.get_terminal_writer().line(f"not stored for the book: {item.parent.nodeid}: {err}")
    yield


def _widget_state(kernel) -> dict | None:
    msg_id = kernel.kc.execute("", silent=True, store_history=False, user_expressions={"state": WIDGET_STATE})
    reply = kernel.get_message(stream="shell", timeout=60)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kernel.get_message(stream="shell", timeout=60)
    value = reply["content"]["user_expressions"]["state"]
    if value.get("status") != "ok":
        raise RuntimeError(f"reading the widget state failed: {value.get('ename')}: {value.get('evalue')}")
    return json.loads(ast.literal_eval(value["data"]["text/plain"]))


def _store(run: _Run) -> None:
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    file = run.notebook
    nb = copy.deepcopy(file.nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    if len(run.outputs) != len(code):
        return  # some cell did not run (deselected, say): nothing to store
    for number, cell in enumerate(code, start=1):
        cell.execution_count = number
        cell.outputs = [_output(out, number) for out in run.outputs[number - 1]]
    state = _widget_state(file.kernel)
    if state and state.get("state"):
        nb.metadata["widgets"] = {WIDGET_MIME: state}
    seconds = round(time.perf_counter() - run.start, 2)
    get_cache(str(CACHE)).cache_notebook_bundle(
        CacheBundleIn(nb, str(Path(str(file.fspath)).resolve()), data={"execution_seconds": seconds}),
        check_validity=True,
        overwrite=True,
    )


def _output(out, number: int):
    """nbval's record of one output → an nbformat output."""
    kind = out["output_type"]
    if kind == "stream":
        return nbformat.v4.new_output("stream", name=out["name"], text=out["text"])
    if kind == "error":
        return nbformat.v4.new_output("error", ename=out["ename"], evalue=out["evalue"], traceback=out["traceback"])
    if kind == "execute_result":
        return nbformat.v4.new_output(kind, data=out["data"], metadata=out.get("metadata", {}), execution_count=number)
    return nbformat.v4.new_output("display_data", data=out["data"], metadata=out.get("metadata", {}))
