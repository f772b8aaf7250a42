"""Keep the site offline: MathJax served from the site itself, and no thebe.

**MathJax.** Sphinx loads MathJax from a CDN unless ``mathjax_path`` names a local file. ``_config.yml`` sets
``mathjax_path: mathjax/tex-chtml.js`` and this extension copies that file, the CHTML web fonts and
the components MathJax may load on demand (TeX extensions, the menu, accessibility) from the
``django-static-mathjax`` wheel (MathJax 3.2.2, Apache-2.0, no dependencies; its importable package
is called ``mathjax``) into ``_build/html/_static/mathjax`` at build time. Nothing is written into
the source tree.

**Search.** From ``file://`` the search page shows its results without the summaries that
it would fetch from each page (a fetch Chromium refuses there).

**Thebe.** Jupyter Book always loads ``sphinx_thebe``, which puts on every page an inline script
declaring ``const THEBE_JS_URL`` (an address on another host) twice, a page error, and an async
``sphinx-thebe.js``. The book has no thebe (no kernel behind the static site), so the pages leave
these assets out.
"""

from __future__ import annotations

import importlib.util
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

# Relative to MathJax's es5/ folder: what tex-chtml.js needs at run time.
PARTS = ("tex-chtml.js", "output/chtml", "input/tex/extensions", "ui", "a11y", "adaptors")
STAMP = ".mathjax-offline"


def mathjax_es5() -> Path:
    """MathJax's es5/ folder inside the installed ``mathjax`` package."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionError(
            "mathjax_offline: MathJax is not installed; `pip install django-static-mathjax==3.2.2.1` "
            "(it ships MathJax 3 as the package `mathjax`)"
        )
    es5 = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").is_file():
        raise ExtensionError(f"mathjax_offline: {es5 / 'tex-chtml.js'} not found")
    return es5


def copy_mathjax(target: Path) -> None:
    """Copy MathJax into ``target`` unless the same version is already there."""
    source = mathjax_es5()
    version = metadata.version("django-static-mathjax")
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
