"""Altair renderer "offline": a chart as a container the built site draws by itself.

Altair's default renderer writes HTML that loads vega, vega-lite and vega-embed from a
CDN, which stays blank on a site that reaches no other host. This renderer writes the
chart's spec and its vega-embed options as JSON into a container instead::

    <div class="vegalite-offline" role="figure" aria-label="TITLE">
    <script type="application/json" class="vegalite-offline-spec">JSON</script>
    <div class="vegalite-offline-chart"></div>
    </div>

where JSON is ``{"spec": ..., "opt": ...}``, escaped so that it cannot end the
``<script>``. The book's Sphinx extension (``book/_ext/vegalite_offline``) adds to every
page holding such a container a Vega bundle served by the site and a script that draws
the chart.

Importing this module registers the renderer with Altair (``alt.renderers``);
``src.viz`` enables it when the environment variable ``OFFLINE_CHARTS_ENV`` is "1",
which the book build sets for the kernels that run the chapters. A reader running a
chapter in JupyterLab keeps Altair's default renderer.
"""

from __future__ import annotations

import html
import json
from typing import Any

import altair as alt

OFFLINE_CHARTS_ENV = "ANNOTATED_TRANSFORMER_OFFLINE_CHARTS"
RENDERER_NAME = "offline"
CONTAINER_CLASS = "vegalite-offline"
SPEC_CLASS = "vegalite-offline-spec"
CHART_CLASS = "vegalite-offline-chart"

# What a chart gets unless it sets its own embed options: an export menu (SVG/PNG, made
# in the browser), no source view and never a link to the Vega editor (another host).
DEFAULT_ACTIONS: dict[str, bool] = {
    "export": True,
    "source": False,
    "compiled": False,
    "editor": False,
}
DEFAULT_EMBED_OPTIONS: dict[str, Any] = {"actions": DEFAULT_ACTIONS}


def _json_for_script(obj: Any) -> str:
    """JSON that is safe inside a <script> element (no `</script>`, no `<!--`)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _title(spec: dict[str, Any]) -> str | None:
    """The chart's title as one line of text, or None."""
    title = spec.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    if isinstance(title, list):
        title = " ".join(map(str, title))
    return str(title) if title else None


def embed_options(options: dict[str, Any] | None = None) -> dict[str, Any]:
    """``DEFAULT_EMBED_OPTIONS`` updated with ``options``; the editor link stays off.

    An ``actions`` dict is merged into the default one (vega-embed shows every action
    a dict leaves out), ``actions=True`` means every action but the editor, and locale
    names (``formatLocale="de-DE"``) become the objects vega-embed needs.
    """
    opt = {**DEFAULT_EMBED_OPTIONS, **(options or {})}
    actions = opt["actions"]
    if actions is True:
        actions = dict.fromkeys(DEFAULT_ACTIONS, True)
    if isinstance(actions, dict):
        opt["actions"] = {**DEFAULT_ACTIONS, **actions, "editor": False}
    for key, convert in (
        ("formatLocale", "get_format_locale"),
        ("timeFormatLocale", "get_time_format_locale"),
    ):
        if isinstance(opt.get(key), str):
            import vl_convert

            opt[key] = getattr(vl_convert, convert)(opt[key])
    return opt


def chart_html(
    spec: dict[str, Any], options: dict[str, Any] | None = None, mode: str = "vega-lite"
) -> str:
    """The offline container of one chart: ``spec`` with its vega-embed options."""
    opt = embed_options(options)
    opt.setdefault("mode", mode)
    payload = _json_for_script({"spec": spec, "opt": opt})
    title = _title(spec)
    label = f' role="figure" aria-label="{html.escape(title)}"' if title else ""
    return (
        f'<div class="{CONTAINER_CLASS}"{label}>\n'
        f'<script type="application/json" class="{SPEC_CLASS}">{payload}</script>\n'
        f'<div class="{CHART_CLASS}"></div>\n'
        "</div>\n"
    )


def payload_of(markup: str) -> dict[str, Any] | None:
    """``{"spec": ..., "opt": ...}`` of a container that ``chart_html`` wrote; None for
    any other markup.
    """
    opening = f'<script type="application/json" class="{SPEC_CLASS}">'
    container = f'<div class="{CONTAINER_CLASS}"'
    if not markup.startswith(container) or opening not in markup:
        return None
    return json.loads(markup.split(opening, 1)[1].split("</script>", 1)[0])


def offline_renderer(spec: dict[str, Any], **metadata: Any) -> dict[str, str]:
    """Altair renderer: the chart's offline container as ``text/html``.

    Altair calls it as ``renderer(chart.to_dict())``, with the registry's options as
    keywords: ``embed_options`` from ``alt.renderers.enable("offline",
    embed_options=...)``, ``alt.renderers.set_embed_options(...)`` or
    ``chart.display(...)``. Other options are ignored. (Altair's "vegafusion" data
    transformer is not supported: the book does not use it.)
    """
    title = _title(spec)
    return {
        "text/html": chart_html(spec, metadata.get("embed_options")),
        "text/plain": f"<Altair chart: {title}>" if title else "<Altair chart>",
    }


alt.renderers.register(RENDERER_NAME, offline_renderer)
