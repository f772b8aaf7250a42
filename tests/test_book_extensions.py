"""The book's local Sphinx extensions (book/_ext): offline Vega-Lite charts and offline MathJax."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import altair as alt
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))

import offline_site  # noqa: E402
import vegalite_offline as vo  # noqa: E402


def _chart(title: str = "A chart") -> alt.Chart:
    df = pd.DataFrame({"x": [1, 2, 3], "label": ["a", "</script><!--", "})({"]})
    return alt.Chart(df, title=title).mark_point().encode(x="x:Q", y="label:N", tooltip=["x", "label"])


def _payload(markup: str) -> dict:
    body = re.search(r'<script type="application/json" class="vegalite-offline-spec">(.*?)</script>', markup, re.S)
    assert body is not None
    return json.loads(body.group(1))


def test_altair_default_renderer_is_html():
    """What the extension relies on: Altair's default output is HTML with the spec inlined."""
    bundle = _chart()._repr_mimebundle_()
    assert "text/html" in bundle


def test_spec_is_read_back_from_altair_html():
    chart = _chart()
    found = vo.altair_html_spec(chart._repr_mimebundle_()["text/html"])
    assert found is not None
    spec, options = found
    assert spec == chart.to_dict()
    assert options.get("mode") == "vega-lite"


def test_parameters_with_widgets_survive():
    k = alt.param(name="k", value=1, bind=alt.binding_select(options=[1, 2, 3], name="k "))
    chart = _chart().add_params(k)
    spec, _ = vo.altair_html_spec(chart._repr_mimebundle_()["text/html"])
    assert spec["params"][0]["bind"]["input"] == "select"


def test_other_html_is_left_alone():
    assert vo.altair_html_spec("<div><b>a table</b></div>") is None


def test_broken_altair_html_is_reported():
    broken = '<div id="altair-viz-0123abcd"></div><script>vegaEmbed(outputDiv, spec)</script>'
    with pytest.raises(vo.VegaLiteParseError):
        vo.altair_html_spec(broken)


def test_container_is_safe_html_and_round_trips():
    chart = _chart(title="Weights </script> & more")
    markup = vo.chart_html(chart.to_dict(), {"mode": "vega-lite"})
    script_body = markup.split('class="vegalite-offline-spec">', 1)[1].split("</script>", 1)[0]
    assert "<" not in script_body and ">" not in script_body
    payload = _payload(markup)
    assert payload["spec"] == chart.to_dict()
    assert payload["opt"]["actions"]["editor"] is False  # no link to another host
    assert 'aria-label="Weights &lt;/script&gt; &amp; more"' in markup


class _Data:
    def __init__(self, mime_type, content, output_metadata=None):
        self.mime_type, self.content = mime_type, content
        self.output_metadata = output_metadata or {}
        self.line = 1

    @property
    def string(self):
        return self.content


@pytest.mark.parametrize("mime", ["application/vnd.vegalite.v5+json", "application/vnd.vegalite.v6+json"])
def test_plugin_renders_vegalite_mime(mime):
    spec = _chart().to_dict()
    nodes = vo.VegaLiteMimeRenderPlugin.handle_mime(None, _Data(mime, spec), False)
    assert nodes is not None and len(nodes) == 1
    assert vo.OUTPUT_CLASS in nodes[0]["classes"]
    assert _payload(nodes[0].astext())["spec"] == spec


def test_plugin_renders_altair_html_and_skips_the_rest():
    html = _chart()._repr_mimebundle_()["text/html"]
    nodes = vo.VegaLiteMimeRenderPlugin.handle_mime(None, _Data("text/html", html), False)
    assert nodes is not None and "cdn.jsdelivr" not in nodes[0].astext()
    assert vo.VegaLiteMimeRenderPlugin.handle_mime(None, _Data("text/html", "<p>x</p>"), False) is None
    assert vo.VegaLiteMimeRenderPlugin.handle_mime(None, _Data("text/plain", "x"), False) is None


def test_plugin_is_registered_with_myst_nb():
    from myst_nb.core import render

    vo._install_plugin()
    vo._install_plugin()  # idempotent
    plugins = render.load_mime_renders()
    assert plugins.count(vo.VegaLiteMimeRenderPlugin) == 1
    priority = render.get_mime_priority("html", [])
    assert priority.index("application/vnd.vegalite.v5+json") < priority.index("text/html")


def test_bundle_is_scoped_and_cached(tmp_path):
    target = vo.write_bundle(tmp_path)
    text = target.read_text(encoding="utf-8")
    assert text.startswith("/* vegalite-offline:")
    assert "(function () {" in text and "window.vegaEmbed=" in text.replace(" ", "")
    assert "cdn.jsdelivr.net/npm/vega" not in text
    mtime = target.stat().st_mtime_ns
    vo.write_bundle(tmp_path)
    assert target.stat().st_mtime_ns == mtime  # not regenerated


def test_mathjax_ships_with_the_book(tmp_path):
    offline_site.copy_mathjax(tmp_path / "mathjax")
    assert (tmp_path / "mathjax" / "tex-chtml.js").is_file()
    assert any((tmp_path / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))


def test_thebe_assets_are_recognised():
    class Asset(str):
        def __new__(cls, filename, body=""):
            obj = super().__new__(cls, filename)
            obj.filename, obj.attributes = filename, {"body": body} if body else {}
            return obj

    assert offline_site._is_thebe_asset(Asset("sphinx-thebe.js"))
    assert offline_site._is_thebe_asset(Asset("", 'const THEBE_JS_URL = "https://unpkg.com/thebe"'))
    assert not offline_site._is_thebe_asset(Asset("mathjax/tex-chtml.js"))


def test_bibliography_labels_are_author_year():
    import author_year_labels
    from pybtex.database import parse_file

    bib = parse_file(str(Path(__file__).resolve().parents[1] / "book" / "references.bib"))
    labels = {key: author_year_labels.author_year_label(entry) for key, entry in bib.entries.items()}
    assert labels["vaswani2017attention"] == "Vaswani et al., 2017"
    assert labels["kingma2015adam"] == "Kingma and Ba, 2015"
    assert labels["popovic2015chrf"] == "Popović, 2015"
    assert labels["post2018call"] == "Post, 2018"
