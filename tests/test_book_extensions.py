"""The book's local Sphinx extensions (book/_ext) and the Altair renderer they rely on: offline
Vega-Lite charts (src/viz/offline.py, vegalite_offline), strict builds, offline MathJax, thebe,
bibliography labels."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import altair as alt
import pandas as pd
import pytest
from docutils import nodes
from docutils.frontend import get_default_settings
from docutils.parsers.rst import Parser
from docutils.utils import new_document
from sphinx.errors import ExtensionError
from sphinx.util import logging as sphinx_logging

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import offline_site  # noqa: E402
import strict_build  # noqa: E402
import vegalite_offline as vo  # noqa: E402

from src.viz import offline  # noqa: E402

SPEC_OPEN = '<script type="application/json" class="vegalite-offline-spec">'


def _chart(title: str = "A chart") -> alt.Chart:
    df = pd.DataFrame({"x": [1, 2, 3], "label": ["a", "</script><!--", "})({"]})
    return alt.Chart(df, title=title).mark_point().encode(x="x:Q", y="label:N", tooltip=["x", "label"])


def _split(markup: str) -> tuple[str, str, str]:
    """(opening tag of the container, JSON text of the spec script, what follows the script)."""
    opening, rest = markup.split("\n", 1)
    assert rest.startswith(SPEC_OPEN), markup[:200]
    body, after = rest[len(SPEC_OPEN):].split("</script>", 1)
    return opening, body, after


def _payload(markup: str) -> dict:
    return json.loads(_split(markup)[1])


# --- src/viz/offline.py: the renderer ------------------------------------------------------------------


def test_renderer_writes_exactly_the_container_the_runtime_reads():
    chart = _chart()
    bundle = offline.offline_renderer(chart.to_dict())
    assert set(bundle) == {"text/html", "text/plain"} and "A chart" in bundle["text/plain"]
    opening, _, after = _split(bundle["text/html"])
    assert opening == '<div class="vegalite-offline" role="figure" aria-label="A chart">'
    assert after == '\n<div class="vegalite-offline-chart"></div>\n</div>\n'
    payload = _payload(bundle["text/html"])
    assert payload["spec"] == chart.to_dict()
    assert payload["opt"] == {**offline.DEFAULT_EMBED_OPTIONS, "mode": "vega-lite"}


def test_renderer_is_registered_and_round_trips_the_spec_through_altair():
    chart = _chart()
    assert "offline" in alt.renderers.names()
    with alt.renderers.enable("offline"):
        bundle = chart._repr_mimebundle_()
    assert "altair-viz-" not in bundle["text/html"] and "cdn.jsdelivr" not in bundle["text/html"]
    assert _payload(bundle["text/html"])["spec"] == chart.to_dict()


def test_parameters_with_widgets_survive():
    k = alt.param(name="k", value=1, bind=alt.binding_select(options=[1, 2, 3], name="k "))
    chart = _chart().add_params(k)
    with alt.renderers.enable("offline"):
        spec = _payload(chart._repr_mimebundle_()["text/html"])["spec"]
    assert spec == chart.to_dict()
    assert spec["params"][0]["bind"] == {"input": "select", "options": [1, 2, 3], "name": "k "}


def test_container_is_safe_html():
    chart = _chart(title="Weights </script><!-- & more")
    markup = offline.offline_renderer(chart.to_dict())["text/html"]
    opening, body, _ = _split(markup)
    assert "<" not in body and ">" not in body and "&" not in body
    assert markup.count("</script>") == 1 and "<!--" not in markup
    assert opening == '<div class="vegalite-offline" role="figure" aria-label="Weights &lt;/script&gt;&lt;!-- &amp; more">'
    payload = json.loads(body)
    assert payload["spec"] == chart.to_dict()  # the data and title come back unchanged
    assert "</script><!--" in json.dumps(payload["spec"]["datasets"])


def test_title_forms_and_untitled_chart():
    spec = _chart().to_dict()
    for title, label in (({"text": ["Two", "lines"], "subtitle": "s"}, "Two lines"), ("", None)):
        markup = offline.offline_renderer({**spec, "title": title})["text/html"]
        opening = _split(markup)[0]
        if label is None:
            assert opening == '<div class="vegalite-offline">'
        else:
            assert f'aria-label="{label}"' in opening


def test_embed_options_are_merged_and_never_enable_the_editor():
    chart = _chart()
    with alt.renderers.enable("offline", embed_options={"renderer": "svg", "actions": {"source": True}}):
        opt = _payload(chart._repr_mimebundle_()["text/html"])["opt"]
    assert opt["renderer"] == "svg" and opt["mode"] == "vega-lite"
    assert opt["actions"] == {"export": True, "source": True, "compiled": False, "editor": False}
    with alt.renderers.enable("offline"), alt.renderers.set_embed_options(actions={"editor": True}, padding=3):
        opt = _payload(chart._repr_mimebundle_()["text/html"])["opt"]
    assert opt["padding"] == 3 and opt["actions"]["editor"] is False and opt["actions"]["export"] is True
    with alt.renderers.enable("offline"), alt.renderers.set_embed_options(actions=True, format_locale="de-DE"):
        opt = _payload(chart._repr_mimebundle_()["text/html"])["opt"]
    assert opt["actions"] == {"export": True, "source": True, "compiled": True, "editor": False}
    assert opt["formatLocale"]["decimal"] == ","  # a locale name becomes the object vega-embed needs
    assert offline.embed_options({"actions": False})["actions"] is False
    assert alt.renderers.active != "offline", "the context managers restored the renderer"


_PROBE = """
import json, altair as alt, src.viz
chart = alt.Chart(alt.Data(values=[{"x": 1}]), title="probe").mark_point().encode(x="x:Q")
print(json.dumps({"active": alt.renderers.active, "bundle": chart._repr_mimebundle_(),
                  "spec": chart.to_dict()}))
"""


@pytest.mark.parametrize("value", ["1", None])
def test_src_viz_enables_the_renderer_only_when_the_build_asks(value):
    env = {k: v for k, v in os.environ.items() if k != offline.OFFLINE_CHARTS_ENV}
    if value is not None:
        env[offline.OFFLINE_CHARTS_ENV] = value
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120, check=True)
    out = json.loads(result.stdout)
    html = out["bundle"]["text/html"]
    if value == "1":
        assert out["active"] == "offline"
        assert html.startswith('<div class="vegalite-offline" role="figure" aria-label="probe">')
        assert _payload(html)["spec"] == out["spec"]
    else:
        assert out["active"] == "default"
        assert 'class="vegalite-offline"' not in html
        assert "altair-viz-" in html and "vegaEmbed" in html  # Altair's own HTML, as in JupyterLab


# --- book/_ext/vegalite_offline: pages with charts, charts left to the CDN ------------------------------


def _doctree(*raws: tuple[str, str]) -> nodes.document:
    doc = new_document("<test>", get_default_settings(Parser))
    doc += nodes.paragraph(text='class="vegalite-offline" altair-viz-0 (text, not HTML)')
    for fmt, text in raws:
        doc += nodes.raw("", text, format=fmt)
    return doc


def test_pages_with_charts_are_found_by_their_raw_html():
    container = offline.offline_renderer(_chart().to_dict())["text/html"]
    cdn = _chart()._repr_mimebundle_()["text/html"]  # Altair's default renderer
    assert vo.has_charts(_doctree(("html", container)))
    assert vo.has_charts(_doctree(("html", "<p>x</p>"), ("html", f'<div class="output">{container}</div>')))
    assert not vo.has_charts(_doctree())
    assert not vo.has_charts(_doctree(("html", cdn), ("html", '<div class="vegalite-offline-chart"></div>')))
    assert not vo.has_charts(_doctree(("latex", container)))
    assert not vo.has_charts(None)


def test_charts_left_to_altairs_default_renderer_are_found():
    container = offline.offline_renderer(_chart().to_dict())["text/html"]
    cdn = _chart()._repr_mimebundle_()["text/html"]
    doc = _doctree(("html", container), ("html", cdn), ("html", "<p>x</p>"), ("latex", cdn))
    found = vo.cdn_charts(doc)
    assert [n.astext() for n in found] == [cdn]
    assert vo.cdn_charts(_doctree(("html", container))) == []


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    """A _static folder holding the Vega bundle (written once: vl-convert takes seconds)."""
    static = tmp_path_factory.mktemp("static")
    vo.write_bundle(static)
    return static


def test_bundle_is_scoped_and_cached(bundle_dir):
    target = vo.write_bundle(bundle_dir)
    text = target.read_text(encoding="utf-8")
    assert text.startswith("/* vegalite-offline:")
    assert "(function () {" in text and "window.vegaEmbed=" in text.replace(" ", "")
    assert "cdn.jsdelivr.net/npm/vega" not in text
    mtime = target.stat().st_mtime_ns
    vo.write_bundle(bundle_dir)
    assert target.stat().st_mtime_ns == mtime  # not regenerated


def _raw_page(title: str, markup: str = "") -> str:
    body = f".. raw:: html\n\n{textwrap.indent(markup, '   ')}\n" if markup else "Text only.\n"
    return f"{title}\n{'=' * len(title)}\n\n{body}"


def _build(src: Path, out: Path, read: list[str] | None = None) -> tuple[object, str]:
    """Build src into out/html as `make book` does (-W --keep-going); the app and its warnings."""
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace

    warnings = io.StringIO()
    with docutils_namespace():  # each app registers its nodes afresh, as in a process of its own
        app = Sphinx(src, src, out / "html", out / "doctrees", "html", status=None, warning=warnings,
                     warningiserror=True, keep_going=True, freshenv=False)
        if read is not None:
            app.connect("doctree-read", lambda app, doctree: read.append(app.env.docname))
        app.build()
    return app, warnings.getvalue()


def test_sphinx_build_adds_the_runtime_warns_about_cdn_charts_and_strict_build_remembers(
    tmp_path, bundle_dir, monkeypatch
):
    monkeypatch.delenv(offline.OFFLINE_CHARTS_ENV, raising=False)  # restored after the test
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    (src / "conf.py").write_text('extensions = ["vegalite_offline", "strict_build"]\n')
    (src / "index.rst").write_text("Book\n====\n\n.. toctree::\n\n   chart\n   cdn\n   plain\n")
    (src / "chart.rst").write_text(_raw_page("Chart", offline.offline_renderer(_chart().to_dict())["text/html"]))
    (src / "cdn.rst").write_text(_raw_page("CDN", _chart()._repr_mimebundle_()["text/html"]))
    (src / "plain.rst").write_text(_raw_page("Plain"))
    shutil.copytree(bundle_dir, out / "html" / "_static")  # an up-to-date bundle: not regenerated

    app, warnings = _build(src, out)
    assert os.environ[offline.OFFLINE_CHARTS_ENV] == "1", "setup sets it for the kernels"
    lines = [line for line in warnings.splitlines() if "WARNING" in line]
    assert len(lines) == 1 and "cdn.rst" in lines[0], warnings
    assert "Altair's default renderer" in lines[0] and "src.viz" in lines[0]
    assert app.statuscode == 1  # -W --keep-going: the build fails
    page = (out / "html" / "chart.html").read_text(encoding="utf-8")
    assert "_static/vegalite-bundle.js" in page and "_static/vegalite-offline.js" in page
    assert 'class="vegalite-offline"' in page
    for name in ("plain.html", "cdn.html", "index.html"):
        assert "vegalite-bundle.js" not in (out / "html" / name).read_text(encoding="utf-8"), name
    marker = out / "doctrees" / strict_build.MARKER
    assert marker.read_text().startswith("warnings: 1, error: None")

    # Fixed: the next build reads every page again (not only cdn.rst), finds no warning, drops the marker.
    (src / "cdn.rst").write_text(_raw_page("CDN", offline.offline_renderer(_chart().to_dict())["text/html"]))
    read: list[str] = []
    app, warnings = _build(src, out, read)
    assert "WARNING" not in warnings and app.statuscode == 0
    assert sorted(read) == ["cdn", "chart", "index", "plain"]
    assert not marker.exists()


# --- book/_ext/strict_build: the warning count --------------------------------------------------------


def test_strict_build_counts_each_warning_once_and_skips_suppressed_ones():
    app = types.SimpleNamespace(config=types.SimpleNamespace(suppress_warnings=["quiet.kind"]))
    counter = strict_build.WarningCounter(app)
    root = logging.getLogger(sphinx_logging.NAMESPACE)
    saved = root.handlers[:], root.propagate, root.level
    root.handlers[:] = [counter]
    root.propagate, root.level = False, logging.DEBUG
    try:
        log = sphinx_logging.getLogger("test_strict_build")
        log.info("not a warning")
        log.warning("one", type="some", subtype="kind", location=("page", 3))
        log.warning("suppressed", type="quiet", subtype="kind")
        log.error("an error counts too")
        assert counter.count == 2
        with sphinx_logging.pending_warnings():  # Sphinx holds warnings back while writing, then logs them
            log.warning("held back")
        assert counter.count == 3
    finally:
        root.handlers[:], root.propagate, root.level = saved


def test_mathjax_ships_with_the_book(tmp_path):
    offline_site.copy_mathjax(tmp_path / "mathjax")
    assert (tmp_path / "mathjax" / "tex-chtml.js").is_file()
    assert any((tmp_path / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    lock = json.loads((ROOT / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/mathjax"]["version"]
    assert (tmp_path / "mathjax" / offline_site.STAMP).read_text().strip() == pinned


def test_mathjax_missing_says_how_to_install_it(tmp_path):
    with pytest.raises(ExtensionError, match="make install"):
        offline_site.copy_mathjax(tmp_path / "mathjax", root=tmp_path)


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
