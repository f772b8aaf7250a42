"""Draw Altair / Vega-Lite charts in the built book with no network.

A chapter leaves an Altair chart as the last expression of a cell. The kernel records it as one of

* ``text/html`` from Altair's default renderer: a ``<div>`` and a script that loads vega,
  vega-lite and vega-embed from a CDN (blank offline), with the spec inlined as JSON;
* ``application/vnd.vegalite.v*+json`` (or the Vega equivalents), the native MIME type that
  JupyterLab draws and myst-nb does not render at all. (Altair 6's ``mimetype`` renderer writes the
  key ``application/vnd.vegalite.v6.json``, without "+": nbformat rejects a JSON object under such a
  key, so the notebook fails validation before it reaches the book; chapters keep Altair's default
  renderer.)

This extension registers a myst-nb MIME render plugin that turns both into the same offline
container::

    <div class="vegalite-offline">
      <script type="application/json" class="vegalite-offline-spec">{"spec": ..., "opt": ...}</script>
      <div class="vegalite-offline-chart"></div>
    </div>

and, on every page that has such a container, adds two deferred scripts from ``_static``:
``vegalite-bundle.js`` (vega + vega-lite + vega-embed from ``vl_convert.javascript_bundle()``,
wrapped in a function scope so that its top-level names cannot collide with the theme's, and
exporting ``window.vegaEmbed``) and ``vegalite-offline.js``, which calls ``vegaEmbed`` on every
container and records the outcome in ``data-vegalite-status`` ("rendered" or "error").

The bundle is generated at build time into the output's ``_static`` (never into the source tree)
and regenerated only when vl-convert or the Vega-Lite version changes.

myst-nb 1.4 discovers MIME render plugins only through the ``myst_nb.mime_renderers`` entry-point
group; a local extension has no package metadata, so ``setup`` appends the plugin to the list that
``myst_nb.core.render.load_mime_renders`` returns (the function ``render_mime_type`` and
``get_mime_priority`` call).
"""

from __future__ import annotations

import html
import json
import re
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
BUNDLE_NAME = "vegalite-bundle.js"
RUNTIME_NAME = "vegalite-offline.js"
CSS_NAME = "vegalite-offline.css"
CONTAINER_CLASS = "vegalite-offline"
# Class of the docutils raw node (HTML writers wrap a raw node that has classes in a <div>).
OUTPUT_CLASS = "vegalite-offline-output"

# Native JSON MIME types (Altair 5 writes "+json", Altair 6 writes ".json") and their vega-embed mode.
JSON_MIME_MODES: dict[str, str] = {}
for _v in (3, 4, 5, 6):
    JSON_MIME_MODES[f"application/vnd.vegalite.v{_v}+json"] = "vega-lite"
    JSON_MIME_MODES[f"application/vnd.vegalite.v{_v}.json"] = "vega-lite"
for _v in (5, 6):
    JSON_MIME_MODES[f"application/vnd.vega.v{_v}+json"] = "vega"
    JSON_MIME_MODES[f"application/vnd.vega.v{_v}.json"] = "vega"

# What the book's charts get unless the chart sets its own embed options: an export menu (SVG/PNG,
# done in the browser), no "open in the Vega editor" link (another host) and no source view.
DEFAULT_EMBED_OPTIONS: dict[str, Any] = {
    "actions": {"export": True, "source": False, "compiled": False, "editor": False},
}

# Altair's HTML template wraps its code in `(function(spec, embedOpt){ ... })(SPEC, EMBED_OPTIONS);`:
# the first `})(` after that opener is the call (the function body holds no data).
_ALTAIR_MARKER = re.compile(r'<div id="(altair-viz-[0-9a-f]+)"')
_ALTAIR_OPENER = re.compile(r"\(function\s*\(\s*spec\s*,\s*embedOpt\s*\)\s*\{")
_ALTAIR_CALL = re.compile(r"\}\)\(\s*(?=\{)")


class VegaLiteParseError(ValueError):
    """An output looked like an Altair chart but its spec could not be read."""


def altair_html_spec(text: str) -> tuple[dict, dict] | None:
    """(spec, embed options) of an Altair ``text/html`` chart output; None if the HTML is not one."""
    if not _ALTAIR_MARKER.search(text) or "vegaEmbed" not in text:
        return None
    opener = _ALTAIR_OPENER.search(text)
    call = _ALTAIR_CALL.search(text, opener.end()) if opener else None
    if call is None:
        raise VegaLiteParseError("no `(function(spec, embedOpt){...})(spec, options)` call found")
    decoder = json.JSONDecoder()
    pos = call.end()
    try:
        spec, pos = decoder.raw_decode(text, pos)
        match = re.compile(r"\s*,\s*").match(text, pos)
        options: dict = {}
        if match:
            options, _ = decoder.raw_decode(text, match.end())
    except json.JSONDecodeError as err:
        raise VegaLiteParseError(f"spec is not JSON: {err}") from err
    if not isinstance(spec, dict) or not isinstance(options, dict):
        raise VegaLiteParseError("spec or options is not a JSON object")
    return spec, options


def _json_for_script(obj: Any) -> str:
    """JSON that is safe inside a <script> element (no `</script>`, no `<!--`)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def chart_html(spec: dict, options: dict | None = None, mode: str = "vega-lite") -> str:
    """The offline container for one chart."""
    opt = {**DEFAULT_EMBED_OPTIONS, **(options or {})}
    opt.setdefault("mode", mode)
    payload = _json_for_script({"spec": spec, "opt": opt})
    title = spec.get("title") if isinstance(spec, dict) else None
    if isinstance(title, dict):
        title = title.get("text")
    if isinstance(title, list):
        title = " ".join(map(str, title))
    label = f' role="figure" aria-label="{html.escape(str(title))}"' if title else ""
    return (
        f'<div class="{CONTAINER_CLASS}"{label}>\n'
        f'<script type="application/json" class="vegalite-offline-spec">{payload}</script>\n'
        '<div class="vegalite-offline-chart"></div>\n'
        "</div>\n"
    )


def _raw_node(markup: str) -> nodes.raw:
    return nodes.raw("", markup, format="html", classes=["output", "text_html", OUTPUT_CLASS])


class VegaLiteMimeRenderPlugin:
    """myst-nb MIME render plugin (see ``myst_nb.core.render.MimeRenderPlugin``)."""

    # Prefer a Vega-Lite JSON output over any HTML in the same bundle, in every HTML builder.
    mime_priority_overrides = [
        (builder, mime, 5)
        for builder in ("html", "dirhtml", "singlehtml", "readthedocs", "readthedocsdirhtml", "readthedocssinglehtml")
        for mime in JSON_MIME_MODES
    ]

    @staticmethod
    def handle_mime(renderer: Any, data: Any, inline: bool) -> list[nodes.Element] | None:
        mime = data.mime_type
        if mime in JSON_MIME_MODES:
            spec = data.content
            if isinstance(spec, (str, bytes)):
                spec = json.loads(spec)
            embed = (data.output_metadata or {}).get(mime, {}).get("embed_options", {})
            return [_raw_node(chart_html(spec, embed, JSON_MIME_MODES[mime]))]
        if mime == "text/html":
            try:
                found = altair_html_spec(data.string)
            except VegaLiteParseError as err:
                renderer.logger.warning(
                    f"Altair HTML output could not be converted for offline rendering ({err}); "
                    "it would load Vega from a CDN",
                    subtype="vegalite_offline",
                    line=data.line,
                )
                return None
            if found is None:
                return None
            spec, options = found
            return [_raw_node(chart_html(spec, options, options.get("mode", "vega-lite")))]
        return None


def _install_plugin() -> None:
    from myst_nb.core import render

    if getattr(render.load_mime_renders, "_vegalite_offline", False):
        return
    original = render.load_mime_renders

    def load_mime_renders() -> list:
        return [*original(), VegaLiteMimeRenderPlugin]

    load_mime_renders._vegalite_offline = True  # type: ignore[attr-defined]
    render.load_mime_renders = load_mime_renders


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
    for name in (RUNTIME_NAME, CSS_NAME):
        shutil.copyfile(STATIC / name, static_dir / name)


def _has_charts(doctree: nodes.document | None) -> bool:
    if doctree is None:
        return False
    return any(OUTPUT_CLASS in node.get("classes", []) for node in doctree.findall(nodes.raw))


def _html_page_context(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    if app.registry.html_assets_policy == "always" or _has_charts(doctree):
        app.add_js_file(BUNDLE_NAME, priority=600, loading_method="defer")
        app.add_js_file(RUNTIME_NAME, priority=601, loading_method="defer")
        app.add_css_file(CSS_NAME)


def setup(app: Sphinx) -> dict[str, Any]:
    _install_plugin()
    app.connect("builder-inited", _builder_inited)
    app.connect("html-page-context", _html_page_context)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
