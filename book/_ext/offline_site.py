"""Keep the site offline: MathJax served from the site itself, and no thebe.

**MathJax.** Sphinx loads MathJax from a CDN unless ``mathjax_path`` names a local file. ``_config.yml`` sets
``mathjax_path: mathjax/tex-chtml.js`` and this extension copies that file, the CHTML web fonts and
the components MathJax may load on demand (TeX extensions, the menu, accessibility) from MathJax's
own npm package (``mathjax`` 3.2.2, Apache-2.0, no dependencies, pinned in package-lock.json and
installed into ``node_modules`` by ``make install``) into ``_build/html/_static/mathjax`` at build
time. Nothing is written into the source tree.

**Search.** From ``file://`` the search page shows its results without the summaries that
it would fetch from each page (a fetch Chromium refuses there).

**Thebe.** Jupyter Book always loads ``sphinx_thebe``, which puts on every page an inline script
declaring ``const THEBE_JS_URL`` (an address on another host) twice, a page error, and an async
``sphinx-thebe.js``. The book has no thebe (no kernel behind the static site), so the pages leave
these assets out.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

ROOT = Path(__file__).resolve().parents[2]
# Relative to MathJax's es5/ folder: what tex-chtml.js needs at run time.
PARTS = ("tex-chtml.js", "output/chtml", "input/tex/extensions", "ui", "a11y", "adaptors")
STAMP = ".mathjax-offline"


def mathjax_package(root: Path = ROOT) -> Path:
    """MathJax's npm package in ``node_modules``, checked to hold ``es5/tex-chtml.js``."""
    package = root / "node_modules" / "mathjax"
    if not (package / "es5" / "tex-chtml.js").is_file():
        raise ExtensionError(
            f"offline_site: MathJax is not installed ({package / 'es5' / 'tex-chtml.js'} is "
            "missing); run `make install` (npm ci, from package-lock.json)"
        )
    return package


def copy_mathjax(target: Path, root: Path = ROOT) -> None:
    """Copy MathJax into ``target`` unless the same version is already there."""
    package = mathjax_package(root)
    source = package / "es5"
    version = json.loads((package / "package.json").read_text(encoding="utf-8"))["version"]
    stamp = target / STAMP
    if stamp.is_file() and stamp.read_text().strip() == version:
        return
    if target.exists():
        shutil.rmtree(target)
    for part in PARTS:
        src = source / part
        if src.is_dir():
            shutil.copytree(src, target / part)
        elif src.is_file():
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target / part)
    stamp.write_text(version + "\n")


def _builder_inited(app: Sphinx) -> None:
    if app.builder.format != "html":
        return
    path = app.config.mathjax_path
    if "://" in path or not path.startswith("mathjax/"):
        return  # someone pointed mathjax_path elsewhere on purpose
    copy_mathjax(Path(app.outdir) / "_static" / "mathjax")


def _is_thebe_asset(asset: Any) -> bool:
    name = getattr(asset, "filename", "") or ""
    body = (getattr(asset, "attributes", None) or {}).get("body", "")
    return "thebe" in name or "THEBE_JS_URL" in body


def _drop_thebe(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    for key in ("script_files", "css_files"):
        assets = context.get(key)
        if isinstance(assets, list):
            assets[:] = [asset for asset in assets if not _is_thebe_asset(asset)]


# Search works from file:// (the index is a script), but the summary under each result is
# fetched from the page, which Chromium refuses for file:// URLs: there, results come
# without summaries.
SEARCH_FROM_FILES_JS = (
    'if (location.protocol === "file:" && typeof DOCUMENTATION_OPTIONS === "object") '
    "{ DOCUMENTATION_OPTIONS.SHOW_SEARCH_SUMMARY = false; }"
)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_js_file(None, body=SEARCH_FROM_FILES_JS)
    app.connect("builder-inited", _builder_inited)
    app.connect("html-page-context", _drop_thebe, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
