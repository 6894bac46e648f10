"""Every link inside the built book leads somewhere: the page exists, and so
does the heading or element its ``#fragment`` names.

Sphinx checks links between documents, but a fragment pointing at a notebook
heading that was renamed would otherwise go unnoticed until a reader clicked.
"""

import posixpath
import re
from urllib.parse import unquote, urlsplit

import pytest

from conftest import HTML, PAGES

HREF = re.compile(r'href="([^"]+)"')
ID = re.compile(r'\sid="([^"]+)"')


def _ids(page: str) -> set[str]:
    return set(ID.findall((HTML / page).read_text(encoding="utf-8")))


@pytest.mark.parametrize("page", PAGES)
def test_internal_links_resolve(page):
    broken = []
    for href in HREF.findall((HTML / page).read_text(encoding="utf-8")):
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
            continue  # external links are checked by the offline browser test
        target = posixpath.normpath(posixpath.join(posixpath.dirname(page), unquote(parts.path))) if parts.path else page
        if target.endswith("/") or not target.endswith(".html"):
            continue  # folders, downloads and static files
        if not (HTML / target).exists():
            broken.append(f"{href} (no page {target})")
        elif parts.fragment and unquote(parts.fragment) not in _ids(target):
            broken.append(f"{href} (no #{parts.fragment} in {target})")
    assert broken == [], f"broken links on {page}: {broken}"


def test_the_checker_sees_links():
    faq = (HTML / "book" / "faq.html").read_text(encoding="utf-8")
    assert len(HREF.findall(faq)) > 20 and "04_neural_basics.html#" in faq
