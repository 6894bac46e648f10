"""Fetch the book's browser-side JavaScript from the npm registry, once.

A default Jupyter Book page loads MathJax, require.js and the ipywidgets
HTML manager from CDNs; with no network the maths and the widgets break.
This script takes them from pinned npm packages (checked against the
registry's SHA-512 integrity) and unpacks them into a folder that
``_config.yml`` lists in ``html_static_path``, so every page is served from
the book itself.

Usage:  python tools/vendor_assets.py _build/vendor
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# npm spec, SHA-512 integrity, folder inside the tarball, destination
PACKAGES = [
    (
        "mathjax@3.2.2",
        "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        "package/es5",
        "mathjax",
    ),
    (
        "requirejs@2.3.7",
        "sha512-DouTG8T1WanGok6Qjg2SXuCMzszOo0eHeH9hDZ5Y4x8Je+9JB38HdTLT4/VA8OaUhBa0JPVHJ0pyBkM1z+pDsw==",
        "package/require.js",
        "require.js",
    ),
    (
        # the release that matches ipywidgets 8.1.x
        "@jupyter-widgets/html-manager@1.0.15",
        "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        "package/dist",
        "html-manager",
    ),
]
STAMP = ".complete"
#: Our own script, served beside the vendored ones (see its comments).
REQUIRE_CONFIG = Path(__file__).with_name("widgets-require-config.js")


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def _npm_pack(spec: str, folder: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("npm is not installed; it fetches MathJax for the offline book. "
                 "Install Node.js and npm (Debian: apt-get install -y npm).")
    out = subprocess.run(
        [npm, "pack", spec, "--json", "--silent", "--pack-destination", str(folder)],
        check=True, capture_output=True, text=True,
    ).stdout
    return folder / json.loads(out)[0]["filename"]


def vendor(target: Path) -> None:
    expected = {spec: integrity for spec, integrity, _, _ in PACKAGES}
    expected[REQUIRE_CONFIG.name] = _integrity(REQUIRE_CONFIG)
    stamp = target / STAMP
    if stamp.exists() and json.loads(stamp.read_text()) == expected:
        return
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for spec, integrity, inner, dest in PACKAGES:
            tarball = _npm_pack(spec, tmp)
            if _integrity(tarball) != integrity:
                sys.exit(f"{spec}: the tarball's SHA-512 does not match the pinned integrity")
            unpack = tmp / dest.replace("/", "_")
            with tarfile.open(tarball) as archive:
                archive.extractall(unpack, filter="data")
            source = unpack / inner
            if source.is_dir():
                shutil.copytree(source, target / dest, ignore=shutil.ignore_patterns("*.map"))
            else:
                shutil.copy2(source, target / dest)
            print(f"vendored {spec} → {target / dest}")
    shutil.copy2(REQUIRE_CONFIG, target / REQUIRE_CONFIG.name)
    stamp.write_text(json.dumps(expected, indent=1))


if __name__ == "__main__":
    vendor(Path(sys.argv[1] if len(sys.argv) > 1 else "_build/vendor"))
