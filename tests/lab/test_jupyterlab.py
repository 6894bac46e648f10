"""A reader's session in JupyterLab, driven through Debian's headless Chromium.

Starts JupyterLab on 127.0.0.1 with a token, on a copy of the RNN chapter,
runs all cells, changes two widget values, presses Train, and checks that the
loss plot in the panel is redrawn and that no error appears.  The server is
stopped and its port checked closed whatever happens; every wait is bounded.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = ROOT / "notebooks" / "06_rnn.ipynb"
SCREENSHOTS = ROOT / "_build" / "screenshots" / "jupyterlab"
sys.path.insert(0, str(ROOT / "tests"))
import chromium  # noqa: E402

RUN_ALL_SECONDS = 240  # the notebook takes under 120 s; live plots add a little
TRAIN_SECONDS = 120
SERVER_START_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on a copy of the chapter; yields its URL (with the token) and the copy."""
    (tmp_path / "notebooks").mkdir()
    shutil.copy(CHAPTER, tmp_path / "notebooks" / CHAPTER.name)  # Lab may autosave: not into git
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "LLM_BOOK_HEADLESS"}  # a watched notebook: live plots
    log = open(tmp_path / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("jupyter-lab")),
            "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
            # no calls home: no news feed, no update check, no PyPI extension search
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not _port_open(port):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start:\n{(tmp_path / 'jupyterlab.log').read_text()[-3000:]}")
            time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/lab/tree/notebooks/{CHAPTER.name}?token={token}"
        yield url, tmp_path / "notebooks" / CHAPTER.name
    finally:
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(server.pid, sig)  # the server and its kernels
            except ProcessLookupError:
                break
            try:
                server.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()
        assert not _port_open(port), "the JupyterLab server is still running"


ERRORS = """() => [...document.querySelectorAll('.jp-OutputArea-output')]
    .map(o => o.textContent).filter(t => /Traceback|Error:/.test(t)).map(t => t.slice(0, 500))"""


def _saved_problems(path: Path) -> list[str]:
    """Code cells of the saved notebook that did not run, or that raised."""
    problems = []
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] != "code":
            continue
        if cell.get("execution_count") is None:
            problems.append(f"cell {i} did not run")
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                problems.append(f"cell {i}: {out['ename']}: {out['evalue']}")
    return problems


def _wait(page, condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        page.wait_for_timeout(500)
    pytest.fail(f"timed out after {seconds} s waiting for {what}")


UNFINISHED = """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
    .filter(p => !/\\[\\d+\\]/.test(p.textContent)).length"""


def _save_and_check(page, notebook, seconds=60):
    """Save through the File menu (to the temporary copy) until the file shows every cell run.

    A keyboard shortcut can be lost when focus sits in a widget, so the menu is
    used, and the save is repeated until the file on disk catches up.
    """
    deadline = time.monotonic() + seconds
    problems = ["not saved yet"]
    while time.monotonic() < deadline:
        page.locator(".lm-MenuBar-itemLabel", has_text="File").first.click()
        page.locator(".lm-Menu-itemLabel").get_by_text("Save Notebook", exact=True).first.click()
        page.wait_for_timeout(2000)
        problems = _saved_problems(notebook)
        if not problems:
            return
    pytest.fail(f"the saved notebook still shows problems after {seconds} s: {problems[:5]}")


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_widget_panel_trains_in_jupyterlab(lab, attempt):
    url, notebook = lab
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = chromium.launch(playwright)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(60_000)
        blocked = chromium.block_other_hosts(context)
        page = context.new_page()
        try:
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            # Lab may ask which kernel to start; the notebook's own (Python 3) is preselected
            try:
                page.locator(".jp-Dialog button", has_text="Select").click(timeout=10_000)
            except PlaywrightTimeout:
                pass
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)

            # Run > Run All Cells, then wait for the whole queue to finish
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
            indicator = ".jp-Notebook-ExecutionIndicator[data-status='{}']"
            page.wait_for_selector(indicator.format("busy"), timeout=30_000)
            # every prompt shows its execution number ("[*]" while queued or running)
            _wait(page, lambda: page.evaluate(UNFINISHED) == 0, RUN_ALL_SECONDS, "every cell to run")
            page.wait_for_selector(indicator.format("idle"), timeout=60_000)
            _save_and_check(page, notebook)
            assert page.evaluate(ERRORS) == [], "an error is shown"

            panel = page.locator(".widget-vbox", has=page.locator("text=Character RNN on Shakespeare")).first
            panel.scroll_into_view_if_needed()
            plot = panel.locator(".widget-output img").first
            plot.wait_for(state="visible")
            before = plot.get_attribute("src")
            plot.scroll_into_view_if_needed()
            page.screenshot(path=str(SCREENSHOTS / f"before-train-{attempt}.png"))

            # change two values: train on 300,000 characters for one epoch
            chars = panel.locator(".widget-text", has_text="training characters").locator("input")
            chars.fill("300000")
            chars.press("Enter")
            epochs = panel.locator(".widget-slider", has_text="epochs").filter(has_not_text="steps").locator(".widget-readout")
            epochs.click()
            page.keyboard.press("Control+A")
            page.keyboard.type("1")
            page.keyboard.press("Enter")
            panel.locator("button", has_text="Train").click()

            # the panel's message line (after the button) reports the finished run
            message = panel.locator(".widget-button + .widget-html")
            _wait(
                page,
                lambda: "Completed 100 steps" in (message.text_content() or ""),
                TRAIN_SECONDS,
                "the panel's training run to finish",
            )
            assert "ROMEO:" in panel.locator(".widget-output").first.text_content(), "the sample is printed"
            plot.scroll_into_view_if_needed()
            page.screenshot(path=str(SCREENSHOTS / f"after-train-{attempt}.png"))
            after = plot.get_attribute("src")
            assert after and after != before, "the plot was not redrawn"
            assert "Please fix" not in panel.text_content(), "the panel reported a bad value"
            assert page.evaluate(ERRORS) == [], "an error appeared"
        finally:
            page.screenshot(path=str(SCREENSHOTS / f"last-{attempt}.png"))
            browser.close()
    assert blocked == [], f"JupyterLab tried to reach other hosts: {blocked}"
    guard_log = os.environ.get("NETGUARD_LOG")  # set by `make test-lab`
    if guard_log and Path(guard_log).exists():
        assert Path(guard_log).read_text() == "", "the server or kernel tried to reach the network"
