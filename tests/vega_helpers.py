"""Read what a Vega-Lite spec plots and what Vega draws from it: shared by the chart tests."""

from __future__ import annotations

import vl_convert as vlc


def inline_rows(spec: dict) -> list[dict]:
    """The one inline dataset of a chart spec (Altair consolidates data under `datasets`)."""
    datasets = spec["datasets"]
    assert len(datasets) == 1, f"expected one dataset, got {list(datasets)}"
    return next(iter(datasets.values()))


def units(spec: dict) -> list[dict]:
    """The single-view specs of a chart: itself, or each layer of a layered chart."""
    return spec["layer"] if "layer" in spec else [spec]


def rendered_marks(spec: dict, marktype: str | None = None) -> list[dict]:
    """Every mark item Vega draws for the spec (of one mark type if given), from its scenegraph."""
    found: list[dict] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("role") == "mark" and marktype in (None, node.get("marktype")):
                found.extend(dict(item, marktype=node["marktype"]) for item in node["items"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(vlc.vegalite_to_scenegraph(spec))
    return found


def described(item: dict) -> dict[str, str]:
    """The tooltip fields Vega attaches to a drawn mark, e.g. {'query i': '3', 'key j': '1', ...}."""
    return dict(part.split(": ", 1) for part in item["description"].split("; "))
