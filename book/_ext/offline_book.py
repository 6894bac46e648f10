"""Sphinx extension: keep the rendered book free of requests to other hosts.

* It fails the build early, with the fix in the message, when the vendored
  JavaScript (MathJax, require.js, the ipywidgets HTML manager) is missing.
* It drops sphinx-thebe's scripts.  Jupyter Book always loads that extension;
  its script points at a CDN and is included twice, which is a console error
  ("Identifier 'THEBE_JS_URL' has already been declared").  The book has no
  thebe buttons, so nothing is lost.
"""

from pathlib import Path

from sphinx.errors import ExtensionError


def _check_vendored(app):
    static = [Path(app.confdir, p) for p in app.config.html_static_path]
    mathjax = app.config.mathjax_path
    if not any((folder / mathjax).exists() for folder in static):
        raise ExtensionError(
            f"{mathjax} is not in html_static_path {app.config.html_static_path}; "
            "run `make book` (it runs tools/vendor_assets.py) instead of jupyter-book directly"
        )


def _drop_thebe(app, pagename, templatename, context, doctree):
    def keep(asset):
        body = getattr(asset, "attributes", {}).get("body", "")
        return "thebe" not in (getattr(asset, "filename", None) or "") and "THEBE_JS_URL" not in body

    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [asset for asset in context[key] if keep(asset)]


def setup(app):
    app.connect("builder-inited", _check_vendored)
    app.connect("html-page-context", _drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
