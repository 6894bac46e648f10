"""Open every page of the built book as a reader would, with the network cut off.

Only requests to the local server pass; anything else is aborted and
recorded.  Each page must then load with no console error and no failed
request, show every image, and have its mathematics typeset by MathJax.
"""

import time

import chromium
import pytest

from conftest import PAGES


def test_every_page_was_found():
    assert {"book/intro.html", "book/errata.html", "book/faq.html", "notebooks/06_rnn.html"} <= set(PAGES)
    assert len([p for p in PAGES if p.startswith("notebooks/")]) >= 6


def _wait_for_mathjax(page, timeout=20.0):
    """Wait until MathJax has typeset the page (or there is no maths)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = page.evaluate(
            """() => !document.querySelector('.math') ||
                    (window.MathJax && MathJax.startup && MathJax.startup.promise &&
                     document.querySelectorAll('mjx-container').length > 0)"""
        )
        if done:
            page.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise : null")
            return
        time.sleep(0.2)


@pytest.mark.parametrize("path", PAGES)
def test_page_works_offline(browser, book_url, screenshots, path):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    blocked = chromium.block_other_hosts(context)
    failed, errors = [], []
    page.on("requestfailed", lambda req: failed.append(f"{req.url} ({req.failure})"))
    page.on("response", lambda res: res.status >= 400 and failed.append(f"{res.url} (HTTP {res.status})"))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{book_url}/{path}", wait_until="load")
    page.wait_for_load_state("networkidle")
    _wait_for_mathjax(page)

    maths = page.locator(".math").count()
    typeset = page.locator("mjx-container").count()
    mathjax_errors = page.locator("mjx-merror").count()
    images = page.evaluate(
        "() => [...document.images].map(i => [i.currentSrc || i.src, i.complete && i.naturalWidth > 0])"
    )
    page.screenshot(path=str(screenshots / (path.replace("/", "__").removesuffix(".html") + ".png")), full_page=True)
    context.close()

    assert blocked == [], f"the page tried to reach other hosts: {blocked}"
    assert failed == [], f"failed requests: {failed}"
    assert errors == [], f"console errors: {errors}"
    assert typeset >= maths, f"{maths} formulas but only {typeset} typeset by MathJax"
    assert mathjax_errors == 0, "MathJax could not parse a formula"
    broken = [src for src, ok in images if not ok]
    assert broken == [], f"images that did not load: {broken}"


CHAPTERS = [p for p in PAGES if p.startswith("notebooks/")]


@pytest.mark.parametrize("path", CHAPTERS)
def test_chapter_shows_figures_maths_and_widgets(browser, book_url, path):
    page = browser.new_page()
    page.goto(f"{book_url}/{path}", wait_until="networkidle")
    _wait_for_mathjax(page)
    assert page.locator("mjx-container").count() >= 3, "the chapter's formulas"
    assert page.locator("img[src*='_images']").count() >= 1, "the chapter's figures"
    # the saved widget state is rendered by the local ipywidgets HTML manager
    page.wait_for_selector(".widget-slider, .jupyter-widgets .widget-hslider, .widget-button", timeout=15000)
    assert page.locator(".widget-button").count() >= 1, "the panel's button"
    # exercises: solutions hidden behind a toggle until the reader opens one
    solutions = page.locator("details.hide", has_text="Show solution")
    assert solutions.count() >= 3, "hidden solutions"
    assert not solutions.first.evaluate("d => d.open"), "solutions start hidden"
    page.close()
