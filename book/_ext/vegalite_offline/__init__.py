"""Draw Altair / Vega-Lite charts in the built book with no network.

Altair's default renderer writes a chart as HTML that loads vega, vega-lite and
vega-embed from a CDN: blank on a site that reaches no other host. The book's charts
come from ``src.viz``, which registers an Altair renderer of its own
(``src.viz.offline``) and enables it when the environment variable
``OFFLINE_CHARTS_ENV`` is "1". That renderer writes each chart as a container::

    <div class="vegalite-offline" role="figure" aria-label="TITLE">
    <script type="application/json" class="vegalite-offline-spec">{"spec": ..., "opt": ...}</script>
    <div class="vegalite-offline-chart"></div>
    </div>

This extension

* sets ``OFFLINE_CHARTS_ENV`` to "1" in ``setup``. myst-nb executes the chapters
  through nbclient, which starts each kernel with jupyter_client without an ``env``
  argument; jupyter_client's provisioner then gives the kernel a copy of
  ``os.environ`` as it is at that moment. Every chapter that imports ``src.viz``
  therefore writes offline containers, whichever execution mode is set;
* writes ``vegalite-bundle.js`` into the output's ``_static`` at ``builder-inited``
  (vega + vega-lite + vega-embed from ``vl_convert.javascript_bundle()``, wrapped in a
  function scope so that its top-level names cannot collide with the theme's, and
  exporting ``window.vegaEmbed``; regenerated only when vl-convert or the Vega-Lite
  version changes, never into the source tree), with ``vegalite-offline.js`` and
  ``vegalite-offline.css`` and ``book-page.css``;
* adds those scripts (deferred) and the stylesheet to every page whose doctree holds a
  raw HTML node with a container. ``vegalite-offline.js`` calls ``vegaEmbed`` on every
  container and records the outcome in ``data-vegalite-status`` ("rendered" or
  "error");
* adds ``book-page.css`` to every page: what the theme's layout needs on a phone
  besides charts (display math that scrolls in its own box, long inline code that
  wraps), so that no page scrolls sideways at 390 px; and ``book-page.js``, names for
  the theme's header buttons that match what they show (see ``fix_page_markup`` for
  the markup of the page's body);
* warns (type ``altair``, subtype ``vegalite_offline``, at the document) about every
  raw HTML node that holds Altair's CDN output (an ``altair-viz-`` element): a chart
  made in a chapter that does not import ``src.viz``, or an output taken from an
  execution cache filled before the chapter did.
"""

from __future__ import annotations

import os
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

from src.viz.offline import CONTAINER_CLASS, OFFLINE_CHARTS_ENV

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
BUNDLE_NAME = "vegalite-bundle.js"
RUNTIME_NAME = "vegalite-offline.js"
CSS_NAME = "vegalite-offline.css"
PAGE_CSS_NAME = "book-page.css"
PAGE_JS_NAME = "book-page.js"
# Markup of other extensions that readers of assistive technology cannot use as it is (found by
# axe-core in tests/test_layouts.py), and what it becomes:
PAGE_FIXES = (
    # myst-nb's "Show code cell outputs" toggle is named "Toggle hidden content", which is not
    # what it shows (WCAG 2.5.3); without the aria-label its name is the line it shows.
    ('<summary aria-label="Toggle hidden content">', "<summary>"),
    # The bibliography is a role="list" of role="doc-biblioentry" entries, a role ARIA 1.2 no
    # longer allows in a list (so the list has no items, and its links become its children).
    ('role="doc-biblioentry"', 'role="listitem"'),
)
# What a raw HTML node holds when it is an offline chart, and when it is Altair's CDN one.
CONTAINER_MARK = f'class="{CONTAINER_CLASS}"'
CDN_MARK = "altair-viz-"


def _raw_html(doctree: nodes.Node | None) -> list[nodes.raw]:
    """The raw HTML nodes of a doctree."""
    if doctree is None:
        return []
    return [
        node
        for node in doctree.findall(nodes.raw)
        if "html" in node.get("format", "").split()
    ]


def has_charts(doctree: nodes.Node | None) -> bool:
    """Whether the doctree holds an offline chart container."""
    return any(CONTAINER_MARK in node.astext() for node in _raw_html(doctree))


def cdn_charts(doctree: nodes.Node | None) -> list[nodes.raw]:
    """The raw HTML nodes that hold a chart of Altair's default (CDN) renderer."""
    return [node for node in _raw_html(doctree) if CDN_MARK in node.astext()]


def _vegalite_version() -> str | None:
    """The Vega-Lite minor version Altair writes specs for (e.g. "6.4"), so the bundle compiles them."""
    try:
        import altair
    except ImportError:  # pragma: no cover - altair is a dependency of the book
        return None
    return ".".join(altair.VEGALITE_VERSION.split(".")[:2])


def write_bundle(static_dir: Path) -> Path:
    """Write the Vega bundle into ``static_dir`` unless an up-to-date one is there; its path."""
    vl_version = _vegalite_version()
    header = (
        f"/* vegalite-offline: vl-convert-python {metadata.version('vl-convert-python')}, "
        f"vega-lite {vl_version or 'latest'} */"
    )
    static_dir.mkdir(parents=True, exist_ok=True)
    target = static_dir / BUNDLE_NAME
    if target.exists():
        with target.open(encoding="utf-8") as f:
            if f.readline().rstrip("\n") == header:
                return target
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=vl_version)
    # A classic script's top-level `const`s would clash with the theme's globals: scope them.
    # The bundle ends by assigning window.vegaEmbed, window.vega and window.vegaLite.
    text = f"{header}\n(function () {{\n{bundle}\n}})();\n"
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target


def _builder_inited(app: Sphinx) -> None:
    if app.builder.format != "html":
        return
    static_dir = Path(app.outdir) / "_static"
    write_bundle(static_dir)
    for name in (RUNTIME_NAME, CSS_NAME, PAGE_CSS_NAME, PAGE_JS_NAME):
        shutil.copyfile(STATIC / name, static_dir / name)


def _doctree_resolved(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Warn about every chart left to Altair's default renderer."""
    if app.builder.format != "html":
        return
    for node in cdn_charts(doctree):
        logger.warning(
            "an Altair chart was rendered by Altair's default renderer, which loads "
            "Vega from a CDN (blank offline); make the chart in a chapter that imports "
            "src.viz (a src.viz chart builder, or `import src.viz`), which enables the "
            "offline renderer in the book build. If the chapter does, its output comes "
            "from an older execution cache: clear it (_build/.jupyter_cache)",
            type="altair",
            subtype="vegalite_offline",
            location=(docname, node.line),
        )


def fix_page_markup(html: str) -> str:
    """The HTML of a page's body with the markup of ``PAGE_FIXES`` replaced."""
    for old, new in PAGE_FIXES:
        html = html.replace(old, new)
    return html


def _html_page_context(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any
) -> None:
    if isinstance(context.get("body"), str):
        context["body"] = fix_page_markup(context["body"])
    if app.registry.html_assets_policy == "always" or has_charts(doctree):
        app.add_js_file(BUNDLE_NAME, priority=600, loading_method="defer")
        app.add_js_file(RUNTIME_NAME, priority=601, loading_method="defer")
        app.add_css_file(CSS_NAME)


def setup(app: Sphinx) -> dict[str, Any]:
    # Inherited by the kernels that execute the chapters (see the module docstring).
    os.environ[OFFLINE_CHARTS_ENV] = "1"
    # On every page: display math and inline code that fit a phone's column (no chart needed).
    app.add_css_file(PAGE_CSS_NAME)
    app.add_js_file(PAGE_JS_NAME, loading_method="defer")
    app.connect("builder-inited", _builder_inited)
    app.connect("doctree-resolved", _doctree_resolved)
    app.connect("html-page-context", _html_page_context)
    return {"version": "2.0", "parallel_read_safe": True, "parallel_write_safe": True}
