"""The built site in headless Chromium: every page loads nothing from another host, raises no error,
and draws every chart and every equation.

The site (``_build/html``, or ``$BOOK_HTML``) is served by a local HTTP server on a free port; every
request to any other host is blocked and counted. The fixture builds the site with ``make book``
when it is missing. The browser is Debian's ``chromium`` (``/usr/bin/chromium`` or ``$CHROMIUM``),
driven by Playwright; without it the tests are skipped, except in CI (``CI=true``), where they fail.
Set ``SITE_SCREENSHOTS=DIR`` to also save a full-page screenshot of every page into DIR.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
# The theme logs this once on file:// pages (no localStorage there); it is harmless.
KNOWN_CONSOLE_ERRORS = ("Got invalid theme mode",)
CHART_TIMEOUT_MS = 60_000
SETTLE_MS = 500


def _toc_pages() -> list[str]:
    """Every page of the table of contents, plus the pages Sphinx adds, as paths under the site."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))
            walk(entry.get("chapters", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    walk(toc.get("chapters", []))
    return ["index.html", *(f"{f}.html" for f in files), "genindex.html", "search.html"]


PAGES = _toc_pages()


# The fixtures `site`, `base_url` and `browser` are in tests/conftest.py: one browser and one
# server for every browser test of the session (Playwright's sync API starts once per thread).


@dataclass
class PageReport:
    url: str
    external: list[str] = field(default_factory=list)
    local_failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    charts: int = 0
    charts_drawn: int = 0
    chart_errors: list[str] = field(default_factory=list)
    missing_widgets: int = 0
    clipped: list[str] = field(default_factory=list)
    cdn_charts: int = 0
    math: int = 0
    math_typeset: int = 0
    listings: int = 0
    scrolled_listings: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        out = []
        if self.external:
            out.append(f"{len(self.external)} request(s) to other hosts: {self.external}")
        if self.local_failures:
            out.append(f"local files that failed to load: {self.local_failures}")
        if self.errors:
            out.append(f"page errors: {self.errors}")
        if self.charts_drawn != self.charts:
            out.append(f"{self.charts - self.charts_drawn} of {self.charts} chart(s) not drawn: {self.chart_errors}")
        if self.missing_widgets:
            out.append(f"{self.missing_widgets} chart(s) without the input widgets their parameters are bound to")
        if self.clipped:
            out.append(f"chart(s) wider than the page's text column, cut off or scrolled: {self.clipped}")
        if self.cdn_charts:
            out.append(f"{self.cdn_charts} Altair chart(s) left as CDN-loading HTML (rendered without the offline renderer of src.viz)")
        if self.scrolled_listings:
            out.append(f"code listing(s) that scroll sideways at 1280 px: {self.scrolled_listings}")
        if self.math_typeset != self.math:
            out.append(f"{self.math - self.math_typeset} of {self.math} equation(s) not typeset by MathJax")
        return out


CHART_STATE_JS = """() => {
  const containers = [...document.querySelectorAll('div.vegalite-offline')];
  const drawn = c => {
    const el = c.querySelector(':scope > .vegalite-offline-chart svg.marks, :scope > .vegalite-offline-chart canvas');
    if (!el) return false;
    const width = el.tagName.toLowerCase() === 'canvas' ? el.width : parseFloat(el.getAttribute('width'));
    return c.dataset.vegaliteStatus === 'rendered' && width > 0;
  };
  // Parameters bound to an input widget (alt.binding_select, binding_range, ...) in a spec.
  const widgets = spec => {
    const names = new Set();
    const walk = node => {
      if (Array.isArray(node)) { node.forEach(walk); return; }
      if (!node || typeof node !== 'object') return;
      if (node.name && node.bind && typeof node.bind === 'object' && node.bind.input) names.add(node.name);
      Object.values(node).forEach(walk);
    };
    walk(spec);
    return names.size;
  };
  const missingWidgets = containers.filter(c => {
    const spec = JSON.parse(c.querySelector(':scope > script.vegalite-offline-spec').textContent).spec;
    return c.querySelectorAll('.vega-bindings .vega-bind').length < widgets(spec);
  }).length;
  // A drawing wider than the text column it sits in is cut off (or needs scrolling) on the page.
  const clipped = containers.filter(drawn).filter(c => {
    const el = c.querySelector(':scope > .vegalite-offline-chart svg.marks, :scope > .vegalite-offline-chart canvas');
    return el.getBoundingClientRect().width > c.getBoundingClientRect().width + 1;  // c spans the column
  }).map(c => {
    const el = c.querySelector(':scope > .vegalite-offline-chart svg.marks, :scope > .vegalite-offline-chart canvas');
    const title = JSON.parse(c.querySelector(':scope > script.vegalite-offline-spec').textContent).spec.title;
    return `${JSON.stringify(title)}: ${Math.round(el.getBoundingClientRect().width)} px`;
  });
  return {
    clipped: clipped,
    charts: containers.length,
    drawn: containers.filter(drawn).length,
    errors: containers.filter(c => c.dataset.vegaliteStatus === 'error')
        .map(c => [...c.querySelectorAll('.vegalite-offline-error')].map(e => e.textContent).join(' ')),
    missingWidgets: missingWidgets,
    cdn: document.querySelectorAll('div[id^="altair-viz-"]').length,
  };
}"""

# A listing of `show_source` (src.listings) wider than its column: the reader has to scroll it.
LISTINGS_JS = """() => [...document.querySelectorAll('div.src-listing')].map(l => {
  const pre = l.querySelector('pre');
  const caption = l.querySelector('.src-listing-caption');
  return {caption: caption ? caption.textContent : '(no caption)',
          overflow: pre ? pre.scrollWidth - pre.clientWidth : 0};
})"""

CHARTS_SETTLED_JS = """() => [...document.querySelectorAll('div.vegalite-offline')]
  .every(c => c.dataset.vegaliteStatus === 'rendered' || c.dataset.vegaliteStatus === 'error')"""

MATH_STATE_JS = """async () => {
  const math = [...document.querySelectorAll('.math')];
  if (math.length && window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  return {math: math.length, typeset: math.filter(m => m.querySelector('mjx-container')
      || m.tagName.toLowerCase() === 'mjx-container').length};
}"""


def check_page(browser, base_url: str, path: str, screenshots: Path | None = None) -> PageReport:
    """Open one page with every request to another host blocked and report what went wrong."""
    report = PageReport(url=f"{base_url}/{path}")
    origin = urlsplit(base_url).netloc
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")

    def route(r) -> None:
        parts = urlsplit(r.request.url)
        if parts.scheme in ("data", "blob", "about") or parts.netloc == origin:
            r.continue_()
        else:
            report.external.append(r.request.url)
            r.abort("blockedbyclient")

    context.route("**/*", route)
    page = context.new_page()
    page.on("pageerror", lambda exc: report.errors.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda msg: (
            msg.type == "error"
            and not any(known in msg.text for known in KNOWN_CONSOLE_ERRORS)
            and report.errors.append(f"console.error: {msg.text}")
        ),
    )
    page.on("websocket", lambda ws: report.external.append(ws.url))
    page.on(
        "response",
        lambda resp: (
            resp.status >= 400
            and urlsplit(resp.url).netloc == origin
            and report.local_failures.append(f"{resp.status} {resp.url}")
        ),
    )
    try:
        page.goto(report.url, wait_until="load")
        page.wait_for_function(CHARTS_SETTLED_JS, timeout=CHART_TIMEOUT_MS)
        charts = page.evaluate(CHART_STATE_JS)
        report.charts, report.charts_drawn = charts["charts"], charts["drawn"]
        report.chart_errors, report.cdn_charts = charts["errors"], charts["cdn"]
        report.missing_widgets = charts["missingWidgets"]
        report.clipped = charts["clipped"]
        listings = page.evaluate(LISTINGS_JS)
        report.listings = len(listings)
        report.scrolled_listings = [f"{x['caption']}: {x['overflow']} px" for x in listings if x["overflow"] > 1]
        math = page.evaluate(MATH_STATE_JS)
        report.math, report.math_typeset = math["math"], math["typeset"]
        page.wait_for_timeout(SETTLE_MS)  # let late requests (fonts, lazy scripts) show up
        if screenshots is not None:
            screenshots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshots / (path.replace("/", "__") + ".png")), full_page=True)
    finally:
        context.close()
    return report


def _screenshots() -> Path | None:
    where = os.environ.get("SITE_SCREENSHOTS")
    return Path(where) if where else None


@pytest.mark.parametrize("path", PAGES)
def test_page_is_offline_and_draws_everything(browser, base_url: str, site: Path, path: str) -> None:
    if not (site / path).is_file():
        pytest.fail(f"{path} is in the table of contents but was not built")
    report = check_page(browser, base_url, path, _screenshots())
    assert not report.problems(), f"{path}:\n  " + "\n  ".join(report.problems())


def test_pages_outside_the_toc(browser, base_url: str, site: Path) -> None:
    """Any other HTML page the build wrote (not theme templates under _static) passes the same checks."""
    built = (p.relative_to(site) for p in site.rglob("*.html"))
    others = sorted(
        str(p) for p in built if p.parts[0] not in ("_static", "_sources", "_images") and str(p) not in PAGES
    )
    failures = {}
    for path in others:
        problems = check_page(browser, base_url, path, _screenshots()).problems()
        if problems:
            failures[path] = problems
    assert not failures, failures


def test_charts_are_found_by_the_check(site: Path) -> None:
    """The check counts charts: the book has some, so a site where none was found is a broken check."""
    total = 0
    for path in PAGES:
        if (site / path).is_file() and "vegalite-offline" in (site / path).read_text(encoding="utf-8"):
            total += 1
    assert total > 0, "no page of the site has an offline chart container: did vegalite_offline run?"


def test_listings_are_found_by_the_check(site: Path) -> None:
    """Every chapter that calls show_source has captioned listings on its built page."""
    missing = []
    for path in PAGES:
        source = ROOT / Path(path).with_suffix(".md")
        if source.is_file() and "show_source(" in source.read_text(encoding="utf-8"):
            if 'class="src-listing"' not in (site / path).read_text(encoding="utf-8"):
                missing.append(path)
    assert not missing, f"pages whose chapter calls show_source but that show no listing: {missing}"


def test_the_listing_check_sees_a_listing_that_scrolls(browser) -> None:
    """The scroll check can fail: a listing wider than its column is reported."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.set_content(
            '<div style="width: 600px"><div class="src-listing"><p class="src-listing-caption">'
            'src/x.py, lines 1\u20131</p><div class="highlight"><pre style="overflow: auto">'
            + "x = 1  # " + "y" * 200 + "</pre></div></div></div>"
        )
        listings = page.evaluate(LISTINGS_JS)
    finally:
        page.close()
    assert len(listings) == 1 and listings[0]["overflow"] > 1, listings


@pytest.mark.parametrize("scheme", ["file", "http"])
def test_search_finds_a_chapter(browser, base_url: str, site: Path, scheme: str) -> None:
    """The search page works opened from the files and served (`make serve`), without errors."""
    root = site.resolve().as_uri() if scheme == "file" else base_url
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: msg.type == "error"
        and not any(known in msg.text for known in KNOWN_CONSOLE_ERRORS)
        and errors.append(msg.text),
    )
    try:
        page.goto(f"{root}/search.html?q=label+smoothing", wait_until="load")
        page.wait_for_function("() => /Search finished/.test(document.body.innerText)", timeout=30_000)
        links = page.eval_on_selector_all("ul.search li a", "els => els.map(e => e.getAttribute('href'))")
        page.wait_for_timeout(SETTLE_MS)
    finally:
        page.close()
    # the chapter is among the first results (the ablation lab has a section of that title too)
    assert any(link.startswith("book/label_smoothing.html") for link in links[:3]), links
    assert not errors, errors
