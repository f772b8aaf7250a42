"""What each page offers to download: its notebook with the outputs of the build, its
Markdown source, and the whole book as one PDF.

sphinx-book-theme fills a page's download menu in ``html-page-context``
(``context["header_buttons"]``, priority 501); this extension runs after it and adds two
links to that menu:

- ``.ipynb``: the chapter as a notebook with the outputs this build shows, taken from
  the build's execution cache (where myst-nb keeps each executed chapter) and written
  next to the sources the site serves (``_sources/``). Its charts are the output that
  Altair gives in Jupyter, as if the reader had run the chapter; saved into a clone's
  ``book/`` folder, the notebook runs as the chapter does.
- ``book .pdf``: the whole book, ``make pdf`` (which ``make book`` runs), at the site's
  root.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import altair as alt
import jupytext
from jupyter_cache import get_cache
from sphinx.application import Sphinx

from src.viz.offline import payload_of

PDF_NAME = "annotated-transformer.pdf"  # print_pdf.PDF_NAME; a test checks they agree


def for_jupyter(notebook: dict[str, Any]) -> dict[str, Any]:
    """`notebook` with each chart that the site draws itself (``src.viz.offline``)
    turned back into the output of Altair's default renderer in Jupyter.
    """
    with alt.renderers.enable("default"):
        renderer = alt.renderers.get()
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            markup = output.get("data", {}).get("text/html")
            markup = "".join(markup) if isinstance(markup, list) else markup
            payload = payload_of(markup) if markup else None
            if payload is not None:
                bundle = renderer(payload["spec"], embed_options=payload["opt"])
                output["data"] = {**output["data"], **bundle}
    return notebook


def executed_notebook(app: Sphinx, docname: str) -> dict[str, Any] | None:
    """The chapter `docname` with the outputs of its cached execution; None for a page
    without code or without a record in the cache.
    """
    source = Path(app.env.doc2path(docname))
    if source.suffix != ".md" or "```{code-cell}" not in source.read_text("utf-8"):
        return None
    cache = get_cache(app.env.mystnb_config.execution_cache_path)
    try:
        _, merged = cache.merge_match_into_notebook(jupytext.read(source))
    except KeyError:
        return None
    return merged


def _add_downloads(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any
) -> None:
    buttons = context.get("header_buttons") or []
    group = next((b for b in buttons if b.get("label") == "download-buttons"), None)
    if group is None:
        return
    notebook = executed_notebook(app, pagename)
    if notebook is not None:
        target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(for_jupyter(notebook), indent=1, ensure_ascii=False)
        target.write_text(text + "\n", encoding="utf-8")
        link = context["pathto"]("_sources", 1) + f"/{pagename}.ipynb"
        group["buttons"].insert(0, {
            "type": "link",
            "url": link,
            "text": ".ipynb",
            "icon": "fas fa-code",
            "tooltip": "Download the notebook, with the outputs shown here",
            "label": "download-notebook-button",
        })  # fmt: skip
    group["buttons"].append({
        "type": "link",
        "url": context["pathto"](PDF_NAME, 1),
        "text": "book .pdf",
        "icon": "fas fa-book",
        "tooltip": "Download the whole book as one PDF",
        "label": "download-book-pdf-button",
    })  # fmt: skip


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("html-page-context", _add_downloads, priority=800)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
