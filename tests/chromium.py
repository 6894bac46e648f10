"""Debian's Chromium, as the browser tests launch it."""

import contextlib
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = "/usr/bin/chromium"
#: Flags that keep Chromium from calling home (its background services
#: would otherwise try to reach Google's hosts at every start).
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def launch(playwright):
    """Start headless Chromium; fail with the install command if it is missing."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's browser with `apt-get install chromium`")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)


@contextlib.contextmanager
def browser():
    """Playwright driving one headless Chromium, closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        started = launch(playwright)
        try:
            yield started
        finally:
            started.close()


def block_other_hosts(context) -> list[str]:
    """Abort every request that leaves 127.0.0.1; return the list they are recorded in."""
    blocked: list[str] = []

    def route(r):
        if urlparse(r.request.url).hostname in LOCAL_HOSTS:
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    return blocked
