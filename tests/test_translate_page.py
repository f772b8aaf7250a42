"""The page that translates in the browser (book/translate_in_browser.md), in headless Chromium.

The page is opened from disk (``file://``), every request that is not a file of the site is
blocked and counted. Held-out test numbers are typed into its text box one by one, and the tokens
the page writes must be exactly those of PyTorch's ``greedy_decode`` for the same sentence; the
median time the model took in the page must stay under ``LATENCY_BUDGET_MS``. The site is the one
tests/test_site.py uses (``_build/html`` or ``$BOOK_HTML``, built with ``make book`` when
missing). Set ``TRANSLATE_REPORT=FILE`` to write the timings and sizes as JSON, and
``TRANSLATE_SCREENSHOTS=DIR`` to save screenshots of the page.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from src.data.numbers import NumbersTask
from src.data.tokenizer import BOS, EOS, PAD
from src.recipes.numbers import numbers_translator
from src.transformer.decoding import greedy_decode
from tests.test_layouts import PHONE

pytestmark = pytest.mark.browser

PAGE = "book/translate_in_browser.html"
ASSETS = "_static/translate"
N_TYPED = 60  # held-out numbers typed into the page
LATENCY_BUDGET_MS = 100.0  # median time of the model per translation, in the page
SIZE_BUDGET_MB = 15.0  # runtime + model + vocabularies added to the site
READY_TIMEOUT_MS = 120_000
DESKTOP = {"width": 1280, "height": 1000}
ROOT = "div.translate-demo"
OUTPUT = f"{ROOT} .translate-demo-output"


@pytest.fixture(scope="module")
def translator():
    return numbers_translator("fr", progress=False)


@pytest.fixture(scope="module")
def held_out() -> list[str]:
    """N_TYPED English sentences of the test split, drawn with a fixed seed."""
    english = [en for en, _ in NumbersTask(lang="fr").pairs("test")]
    return random.Random(0).sample(english, N_TYPED)


def pytorch_greedy(translator, sentence: str) -> tuple[list[int], float]:
    """greedy_decode's ids for one sentence (batch 1, as the page), up to </s>, and its ms."""
    src = translator.encode_sources([sentence])  # (1, src_len), ends with </s>
    start = time.perf_counter()
    ys = greedy_decode(translator.model.eval(), src, (src != PAD).unsqueeze(-2), 2 * src.size(1) + 10, BOS, EOS, PAD)
    ms = 1000 * (time.perf_counter() - start)
    ids = ys[0].tolist()
    return (ids[: ids.index(EOS) + 1] if EOS in ids else ids), ms


class Visit:
    """A page opened with every request outside the site blocked, its errors recorded."""

    def __init__(self, chromium, url: str, init_script: str | None = None, viewport: dict | None = None) -> None:
        self.external: list[str] = []
        self.errors: list[str] = []
        self.context = chromium.new_context(viewport=viewport or DESKTOP, service_workers="block")
        origin = urlsplit(url).netloc

        def route(r) -> None:
            parts = urlsplit(r.request.url)
            if parts.scheme in ("file", "data", "blob", "about") or (parts.netloc == origin and origin):
                r.continue_()
            else:
                self.external.append(r.request.url)
                r.abort("blockedbyclient")

        self.context.route("**/*", route)
        if init_script:
            self.context.add_init_script(init_script)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on(
            "console",
            lambda msg: msg.type == "error" and "Got invalid theme mode" not in msg.text
            and self.errors.append(f"console.error: {msg.text}"),
        )
        self.page.on("websocket", lambda ws: self.external.append(ws.url))
        self.page.goto(url, wait_until="load")

    def close(self) -> None:
        self.context.close()

    def wait_until_done(self) -> None:
        self.page.wait_for_function(
            f"() => ['done'].includes(document.querySelector('{ROOT}').dataset.state)", timeout=READY_TIMEOUT_MS
        )

    def translate(self, sentence: str) -> dict:
        """Type `sentence`, press Translate, wait for the last token; what the page wrote."""
        page = self.page
        page.evaluate(f"() => {{ delete document.querySelector('{OUTPUT}').dataset.input; }}")
        page.fill(f"{ROOT} .translate-demo-input", sentence)
        page.click(f"{ROOT} .translate-demo-go")
        page.wait_for_function(
            f"""s => {{ const out = document.querySelector('{OUTPUT}');
                 return out.dataset.input === s && out.closest('{ROOT}').dataset.state === 'done'; }}""",
            arg=sentence,
            timeout=30_000,
        )
        return page.evaluate(
            f"""() => {{ const out = document.querySelector('{OUTPUT}');
                 return {{ids: out.dataset.ids.split(' ').map(Number), ms: Number(out.dataset.ms),
                          text: out.textContent}}; }}"""
        )


def _page(site_dir: Path) -> Path:
    page = site_dir / PAGE
    if not page.is_file():
        pytest.fail(f"{PAGE} was not built (is book/translate_in_browser in _toc.yml?)")
    return page


def _screenshot(visit: Visit, name: str) -> None:
    where = os.environ.get("TRANSLATE_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        visit.page.locator(ROOT).screenshot(path=str(Path(where) / f"{name}.png"))


def _asset_sizes(site_dir: Path) -> dict[str, int]:
    files = sorted((site_dir / ASSETS).iterdir())
    return {p.name: p.stat().st_size for p in files if p.is_file() and not p.name.startswith(".")}


def test_typed_held_out_numbers_come_out_as_pytorch_writes_them(browser, site, translator, held_out, one_thread) -> None:
    expected = {s: pytorch_greedy(translator, s) for s in held_out}
    visit = Visit(browser, _page(site).as_uri())
    try:
        visit.wait_until_done()  # the page translates its first example once the model is loaded
        root = visit.page.locator(ROOT)
        assert root.get_attribute("data-runtime") == "wasm", visit.page.inner_text(ROOT)
        visit.page.evaluate("() => { window.translateDemo.stepDelayMs = 0; }")
        got = {s: visit.translate(s) for s in held_out}
        _screenshot(visit, "translated")
    finally:
        visit.close()
    wrong = {s: (got[s]["ids"], expected[s][0]) for s in held_out if got[s]["ids"] != expected[s][0]}
    assert not wrong, f"{len(wrong)} of {len(held_out)} typed numbers differ from greedy_decode: {wrong}"
    for s in held_out:
        assert got[s]["text"] == translator.tgt_tok.decode(expected[s][0])
    assert not visit.external, f"requests to other hosts: {visit.external}"
    assert not visit.errors, visit.errors
    page_ms = statistics.median(got[s]["ms"] for s in held_out)
    torch_ms = statistics.median(expected[s][1] for s in held_out)
    sizes = _asset_sizes(site)
    report = {
        "sentences": len(held_out),
        "median_ms_in_page": page_ms,
        "median_ms_pytorch": torch_ms,
        "asset_bytes": sizes,
        "asset_mb_total": sum(sizes.values()) / 1e6,
    }
    if os.environ.get("TRANSLATE_REPORT"):
        Path(os.environ["TRANSLATE_REPORT"]).write_text(json.dumps(report, indent=1) + "\n")
    assert page_ms < LATENCY_BUDGET_MS, report


def test_the_chart_draws_the_chosen_layer_and_head(browser, site, translator) -> None:
    sentence = NumbersTask(lang="fr").pairs("test")[3][0]
    ids, _ = pytorch_greedy(translator, sentence)
    n_src = len(translator.src_tok.encode(sentence)) + 1
    visit = Visit(browser, _page(site).as_uri())
    try:
        visit.wait_until_done()
        visit.page.evaluate("() => { window.translateDemo.stepDelayMs = 0; }")
        assert visit.translate(sentence)["ids"] == ids
        chart = visit.page.locator(f"{ROOT} .translate-demo-chart svg")
        cells = visit.page.locator(f"{ROOT} .translate-demo-chart g.mark-rect.role-mark path")
        # one cell per (decoder input, source token): every position but the last output
        assert cells.count() == (len(ids) - 1) * n_src
        assert "layer 1, head 1" in chart.evaluate("svg => svg.textContent")
        visit.page.select_option(f"{ROOT} .translate-demo-layer", "2")
        visit.page.select_option(f"{ROOT} .translate-demo-head", "3")
        visit.page.wait_for_function(
            f"() => document.querySelector('{ROOT} .translate-demo-chart svg').textContent.includes('layer 2, head 3')"
        )
        _screenshot(visit, "layer2_head3")
    finally:
        visit.close()
    assert not visit.external and not visit.errors, (visit.external, visit.errors)


# The chart's drawing and the width of the box it is drawn in.
CHART_FIT_JS = f"""() => {{ const box = document.querySelector('{ROOT} .translate-demo-chart');
  return [box.querySelector('svg').getBoundingClientRect().width, box.clientWidth]; }}"""


def test_on_a_phone_the_chart_fits_its_column_and_is_drawn_again_when_it_widens(browser, site, translator) -> None:
    """The longest held-out number's heatmap fits a 390 px column (no swiping inside the chart's
    box); turned to a wider window, the chart is drawn again with wider cells."""
    english = [en for en, _ in NumbersTask(lang="fr").pairs("test")]
    sentence = max(english, key=lambda en: len(translator.src_tok.encode(en)))
    visit = Visit(browser, _page(site).as_uri(), viewport=PHONE)
    try:
        visit.wait_until_done()
        visit.page.evaluate("() => { window.translateDemo.stepDelayMs = 0; }")
        visit.translate(sentence)
        narrow, column = visit.page.evaluate(CHART_FIT_JS)
        visit.page.set_viewport_size(DESKTOP)
        visit.page.wait_for_function(f"() => ({CHART_FIT_JS})()[0] > {narrow + 20}", timeout=10_000)
    finally:
        visit.close()
    assert 0 < narrow <= column + 0.5, f"{sentence!r}: the chart is {narrow:.0f} px wide in a {column} px box"
    assert not visit.external and not visit.errors, (visit.external, visit.errors)


def test_served_over_http_it_translates_too(browser, base_url, site, translator) -> None:
    sentence = NumbersTask(lang="fr").pairs("test")[0][0]
    visit = Visit(browser, f"{base_url}/{PAGE}")
    try:
        visit.wait_until_done()
        assert visit.page.locator(ROOT).get_attribute("data-runtime") == "wasm"
        assert visit.translate(sentence)["ids"] == pytorch_greedy(translator, sentence)[0]
    finally:
        visit.close()
    assert not visit.external and not visit.errors, (visit.external, visit.errors)


def test_without_webassembly_the_page_says_so_and_shows_build_time_translations(browser, site, translator) -> None:
    sentence = NumbersTask(lang="fr").pairs("test")[1][0]
    visit = Visit(browser, _page(site).as_uri(), init_script="delete globalThis.WebAssembly;")
    try:
        visit.wait_until_done()
        root = visit.page.locator(ROOT)
        assert root.get_attribute("data-runtime") == "none"
        assert "no WebAssembly" in visit.page.inner_text(f"{ROOT} .translate-demo-status")
        got = visit.translate(sentence)
        _screenshot(visit, "no_webassembly")
    finally:
        visit.close()
    ids, _ = pytorch_greedy(translator, sentence)
    assert got["ids"] == ids and got["text"] == translator.tgt_tok.decode(ids)
    assert not visit.external and not visit.errors, (visit.external, visit.errors)


def test_runtime_and_model_fit_the_budget_and_load_only_on_that_page(site: Path) -> None:
    _page(site)
    sizes = _asset_sizes(site)
    assert {"ort.wasm.min.js", "ort-wasm.js", "model.js", "translate.js"} <= set(sizes), sizes
    assert sum(sizes.values()) / 1e6 <= SIZE_BUDGET_MB, sizes
    others = [
        str(p.relative_to(site))
        for p in site.rglob("*.html")
        if p != site / PAGE and f"{ASSETS}/" in p.read_text(encoding="utf-8", errors="replace")
    ]
    assert not others, f"pages other than {PAGE} load the translation's files: {others}"
