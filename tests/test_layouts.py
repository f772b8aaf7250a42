"""The site on a phone, in dark mode, and for readers of assistive technology (issue 15).

Every page of the table of contents is opened twice in headless Chromium (the fixtures `browser`,
`base_url` and `site` of tests/conftest.py), each time in a browser context of its own, with
everything a reader can open opened (hidden code cell outputs, the solutions of the exercises):

* at a phone's width (390 px), in dark mode (the theme follows the system's colour scheme): no
  page scrolls sideways; every chart is drawn and fits the text column (legends and every panel
  on screen, no swiping); display math fits the column or scrolls in a box of its own; chart text
  is readable where it is drawn. Then the page is switched to light mode and all of it is checked
  again: the charts must have been drawn again, in the new mode's colours;
* at a desktop width (1280 px), in light mode: every chart has a title (its accessible name) and a
  text description; axe-core (node_modules/axe-core, pinned in package-lock.json) finds no
  serious or critical violation; chart text is readable. Then the page is switched to dark mode:
  the charts are drawn again in its colours, and their text is readable.

Switching the mode sets ``data-theme`` on <html>, as the theme's switch does. Chart text (every
svg ``text`` of a drawing) is readable when its colour has a contrast of at least 4.5:1 (3:1 for
large text, WCAG 2) with what is drawn beneath it: the page's background, the chart's background
and the marks it sits on (heatmap cells), composited with their opacity.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.test_site import CHARTS_SETTLED_JS, CHART_TIMEOUT_MS, MATH_STATE_JS, PAGES, ROOT

sys.path.insert(0, str(ROOT / "book" / "_ext"))
from vegalite_offline import PAGE_FIXES  # noqa: E402

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"

# Violations axe reports in the theme's own markup that the book cannot reasonably change, as
# (rule, CSS selector of the element). Empty: every violation found so far was fixed.
AXE_EXCEPTIONS: set[tuple[str, str]] = set()

# The chart containers, their drawing (svg or canvas) and a name for messages.
CHARTS_JS = """() => {
window.__charts = () => [...document.querySelectorAll('div.vegalite-offline')].map(c => {
  const el = c.querySelector(':scope > .vegalite-offline-chart svg.marks, :scope > .vegalite-offline-chart canvas.marks');
  let title = null;
  try {
    title = JSON.parse(c.querySelector(':scope > script.vegalite-offline-spec').textContent).spec.title;
  } catch (e) { /* reported as not drawn */ }
  if (title && typeof title === 'object' && !Array.isArray(title)) title = title.text;
  if (Array.isArray(title)) title = title.join(' ');
  return {container: c, el: el, name: typeof title === 'string' ? title : '(chart without a title)'};
});
}"""

# At the phone's width: what scrolls sideways or does not fit its column.
FIT_JS = """() => {
  const problems = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth) {
    // The widest elements, to say what made the page scroll.
    const wide = [...document.body.querySelectorAll('*')]
      .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && e.getClientRects().length)
      .slice(0, 3).map(e => e.tagName.toLowerCase() + (e.className && typeof e.className === 'string'
        ? '.' + e.className.trim().split(/\\s+/).join('.') : ''));
    problems.push(`the page scrolls sideways: ${doc.scrollWidth} px wide in a ${window.innerWidth} px window (${wide.join(', ')})`);
  }
  window.__charts().forEach(({container, el, name}) => {
    if (container.dataset.vegaliteStatus !== 'rendered' || !el) {
      problems.push(`${name}: not drawn (${container.dataset.vegaliteStatus})`);
      return;
    }
    // The column is the article's content box; the chart's drawing must lie inside it, whole.
    const article = container.closest('article') || document.body;
    const a = article.getBoundingClientRect(), style = getComputedStyle(article);
    const left = a.left + parseFloat(style.paddingLeft), right = a.right - parseFloat(style.paddingRight);
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.left < left - 1 || r.right > right + 1) {
      problems.push(`${name}: drawn ${Math.round(r.left)}-${Math.round(r.right)} px, outside the column ${Math.round(left)}-${Math.round(right)} px`);
    }
  });
  // Display math: cut off nowhere. An equation wider than the column scrolls inside a box of its
  // own that fits the column, starting at its left end (the theme's layout once cut equation (3)
  // of the optimizer chapter off on the left, where it could not be scrolled to).
  document.querySelectorAll('mjx-container[display="true"]').forEach(m => {
    const article = m.closest('article') || document.body;
    const a = article.getBoundingClientRect(), style = getComputedStyle(article);
    const left = a.left + parseFloat(style.paddingLeft), right = a.right - parseFloat(style.paddingRight);
    const math = (m.querySelector('mjx-math') || m).getBoundingClientRect();
    const label = ((m.closest('.math') || m).id || m.textContent).slice(0, 40);
    if (math.left >= left - 1 && math.right <= right + 1) return;
    let box = m;
    while (box && box !== article && !(['auto', 'scroll'].includes(getComputedStyle(box).overflowX)
                                      && box.scrollWidth > box.clientWidth)) box = box.parentElement;
    if (!box || box === article) {
      problems.push(`equation ${label}: ${Math.round(math.left)}-${Math.round(math.right)} px, outside the column ${Math.round(left)}-${Math.round(right)} px, and nothing scrolls it`);
      return;
    }
    const b = box.getBoundingClientRect();
    if (b.left < left - 1 || b.right > right + 1) problems.push(`equation ${label}: its scrolling box is wider than the column`);
    else if (math.left < b.left - 1 - box.scrollLeft) problems.push(`equation ${label}: cut off on the left, where it cannot be scrolled to`);
  });
  return problems;
}"""

# Chart text and what lies beneath it: the page's background (the HTML elements around the chart)
# and, in painting order, every shape of the drawing that covers the text's centre (the chart's
# background, plot backgrounds, heatmap cells, ...). Colours are composited with their opacity.
CONTRAST_JS = """() => {
  const parse = s => {
    const m = /^rgba?\\(([^)]+)\\)$/.exec((s || '').trim());
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, alpha, bottom) => bottom.map((b, i) => top[i] * alpha + b * (1 - alpha));
  const lum = c => {
    const v = c.map(x => { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
  };
  const ratio = (a, b) => (Math.max(lum(a), lum(b)) + 0.05) / (Math.min(lum(a), lum(b)) + 0.05);
  const hex = c => '#' + c.map(x => ('0' + Math.round(x).toString(16)).slice(-2)).join('');
  // The opacity of an element of the drawing, with that of the groups it is in.
  const opacity = (el, svg) => {
    let o = 1;
    for (let e = el; e && e !== svg; e = e.parentElement) o *= parseFloat(getComputedStyle(e).opacity);
    return o;
  };
  const pageBackground = el => {
    const chain = [];
    for (let e = el; e; e = e.parentElement) chain.unshift(e);
    let bg = [255, 255, 255];
    chain.forEach(e => {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) bg = over(c, c[3], bg);
    });
    return bg;
  };
  const results = [];
  window.__charts().forEach(({container, el, name}) => {
    if (!el || el.tagName.toLowerCase() !== 'svg') return;
    const svg = el;
    // The filled shapes of the drawing, in painting order, with their screen boxes.
    const shapes = [...svg.querySelectorAll('path, rect, circle, ellipse, polygon')].map(s => {
      const st = getComputedStyle(s);
      const fill = parse(st.fill);
      if (!fill || st.display === 'none' || st.visibility === 'hidden') return null;
      const alpha = fill[3] * parseFloat(st.fillOpacity) * opacity(s, svg);
      if (alpha <= 0) return null;
      return {el: s, fill: fill, alpha: alpha, box: s.getBoundingClientRect()};
    }).filter(Boolean);
    const base = pageBackground(svg.parentElement);
    let checked = 0;
    const failures = [];
    svg.querySelectorAll('text').forEach(t => {
      const text = t.textContent.trim();
      const st = getComputedStyle(t);
      const r = t.getBoundingClientRect();
      if (!text || !r.width || st.display === 'none' || st.visibility === 'hidden') return;
      const fill = parse(st.fill);
      const alpha = fill ? fill[3] * parseFloat(st.fillOpacity) * opacity(t, svg) : 0;
      if (alpha < 0.05) return;  // not drawn
      const x = r.left + r.width / 2, y = r.top + r.height / 2;
      let bg = base;
      shapes.forEach(s => {
        const b = s.box;
        if (x < b.left || x > b.right || y < b.top || y > b.bottom) return;
        if (!(s.el.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_FOLLOWING)) return;  // drawn above
        const p = new DOMPoint(x, y).matrixTransform(s.el.getScreenCTM().inverse());
        if (s.el.isPointInFill && !s.el.isPointInFill(p)) return;
        bg = over(s.fill, s.alpha, bg);
      });
      const colour = over(fill, alpha, bg);
      const size = parseFloat(st.fontSize), bold = parseInt(st.fontWeight, 10) >= 700;
      const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
      const c = ratio(colour, bg);
      checked += 1;
      if (c < needed) failures.push(`"${text.slice(0, 30)}" ${hex(colour)} on ${hex(bg)}: ${c.toFixed(2)}:1`);
    });
    results.push({name: name, checked: checked, failures: failures,
                  fills: [...svg.querySelectorAll('text')].map(t => getComputedStyle(t).fill)});
  });
  return results;
}"""

# Every chart: a title (its accessible name) and a text description.
NAMES_JS = """() => window.__charts().map(({container, name}) => {
  const text = id => { const e = document.getElementById(id); return e ? e.textContent.trim() : ''; };
  const label = (container.getAttribute('aria-label') || '').trim()
    || (container.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean).map(text).join(' ');
  const described = (container.getAttribute('aria-describedby') || '').split(/\\s+/).filter(Boolean).map(text).join(' ');
  const img = container.getAttribute('role') === 'img' && label;
  return {name: name, label: label, description: described || (img ? label : '')};
})"""

AXE_JS = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary})),
  }));
}"""


# Everything a reader can open: hidden code cell outputs (<details>) and the solutions of the
# exercises (sphinx-togglebutton hides them with the class toggle-hidden until its button is used).
REVEAL_JS = """async () => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
  // Two frames: the charts' ResizeObserver has seen any column that changed width.
  await new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)));
}"""


def _settle(page) -> None:
    """Two frames for the observers to see a change, then every chart drawn again (or failed)."""
    page.evaluate("() => new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)))")
    page.wait_for_function(CHARTS_SETTLED_JS, timeout=CHART_TIMEOUT_MS)


def _switch(page, theme: str) -> None:
    """Switch the page to the theme's light or dark mode and wait until every chart is drawn again."""
    page.evaluate("theme => { document.documentElement.dataset.theme = theme; }", theme)
    _settle(page)


def _open(browser, base_url: str, path: str, viewport: dict, scheme: str):
    """The page in a context of its own (the system's colour scheme `scheme`, every request to
    another host blocked), with everything hidden opened and every chart and equation drawn."""
    origin = urlsplit(base_url).netloc
    context = browser.new_context(viewport=viewport, color_scheme=scheme, service_workers="block")
    context.route(
        "**/*",
        lambda r: r.continue_()
        if urlsplit(r.request.url).scheme in ("data", "blob", "about") or urlsplit(r.request.url).netloc == origin
        else r.abort("blockedbyclient"),
    )
    page = context.new_page()
    page.goto(f"{base_url}/{path}", wait_until="load")
    page.wait_for_function(CHARTS_SETTLED_JS, timeout=CHART_TIMEOUT_MS)
    page.evaluate(MATH_STATE_JS)  # MathJax has typeset the page
    page.evaluate(REVEAL_JS)
    _settle(page)
    page.evaluate(CHARTS_JS)
    theme = page.evaluate("() => document.documentElement.dataset.theme")
    assert theme == scheme, f"{page.url}: the page opened in {theme!r} mode, not the system's {scheme!r}"
    return context, page


def _unreadable(page, mode: str) -> tuple[list[str], list[list[str]]]:
    """Chart text too faint on what it is drawn on, and the colours of every chart's text."""
    problems = []
    charts = page.evaluate(CONTRAST_JS)
    for chart in charts:
        if chart["checked"] == 0:
            problems.append(f"{mode}: {chart['name']}: no text found in the drawing")
        problems += [f"{mode}: {chart['name']}: {f}" for f in chart["failures"][:5]]
    return problems, [chart["fills"] for chart in charts]


def _redrawn(before: list[list[str]], after: list[list[str]], mode: str) -> list[str]:
    """The charts must have been drawn again in the new mode's colours: their text changed colour."""
    return [
        f"{mode}: chart {i + 1} kept its text colours after the switch to {mode} mode"
        for i, (b, a) in enumerate(zip(before, after))
        if b == a
    ]


def _redirect(site: Path, path: str) -> str | None:
    """Where a page that only redirects (index.html) sends the reader, or None."""
    match = re.search(r'http-equiv="Refresh" content="0; url=([^"]+)"', (site / path).read_text(encoding="utf-8"))
    return (Path(path).parent / match.group(1)).as_posix() if match else None


@pytest.mark.parametrize("path", PAGES)
def test_phone_width_in_dark_and_light_mode(browser, base_url: str, site: Path, path: str) -> None:
    if target := _redirect(site, path):
        assert target in PAGES, f"{path} redirects to {target}, which is not checked"
        return
    context, page = _open(browser, base_url, path, PHONE, "dark")
    try:
        problems = [f"dark: {p}" for p in page.evaluate(FIT_JS)]
        unreadable, before = _unreadable(page, "dark")
        _switch(page, "light")
        problems += unreadable + [f"light: {p}" for p in page.evaluate(FIT_JS)]
        unreadable, after = _unreadable(page, "light")
        problems += unreadable + _redrawn(before, after, "light")
    finally:
        context.close()
    assert not problems, f"{path} at {PHONE['width']} px:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", PAGES)
def test_desktop_accessibility_in_light_and_dark_mode(browser, base_url: str, site: Path, path: str) -> None:
    if not AXE.is_file():
        pytest.fail(f"{AXE.relative_to(ROOT)} is missing: run `npm ci` (axe-core is pinned in package-lock.json)")
    if target := _redirect(site, path):
        assert target in PAGES, f"{path} redirects to {target}, which is not checked"
        return
    context, page = _open(browser, base_url, path, DESKTOP, "light")
    try:
        problems = []
        for chart in page.evaluate(NAMES_JS):
            if not chart["label"]:
                problems.append(f"{chart['name']}: no title (an aria-label naming the chart)")
            if not chart["description"]:
                problems.append(f"{chart['name']}: no text description (aria-describedby)")
        page.wait_for_timeout(300)  # book-page.js gives revealed boxes that scroll a tab stop (100 ms)
        page.add_script_tag(path=str(AXE))
        for v in page.evaluate(AXE_JS):
            nodes = [n for n in v["nodes"] if (v["id"], n["target"]) not in AXE_EXCEPTIONS]
            problems += [f"axe {v['impact']} {v['id']} ({v['help']}): {n['target']}: {n['summary']}" for n in nodes[:5]]
        unreadable, before = _unreadable(page, "light")
        _switch(page, "dark")
        problems += unreadable
        unreadable, after = _unreadable(page, "dark")
        problems += unreadable + _redrawn(before, after, "dark")
    finally:
        context.close()
    assert not problems, f"{path} at {DESKTOP['width']} px:\n  " + "\n  ".join(problems)


def test_charts_fit_again_when_the_window_narrows(browser, base_url: str, site: Path) -> None:
    """A phone turned from landscape to portrait: the charts drawn for a wide column (the 2x2 grids
    of attention heads side by side) are laid out again for the narrow one (ResizeObserver)."""
    context, page = _open(browser, base_url, "book/attention_viz.html", DESKTOP, "light")
    try:
        assert not page.evaluate(FIT_JS)
        page.set_viewport_size(PHONE)
        _settle(page)
        problems = page.evaluate(FIT_JS)
    finally:
        context.close()
    assert not problems, "after narrowing the window to 390 px:\n  " + "\n  ".join(problems)


# Counts the searches (querySelectorAll) that Font Awesome's code makes once `__count` is set.
COUNT_ICON_SEARCHES_JS = """(() => {
  window.__iconSearches = 0;
  for (const proto of [Element.prototype, Document.prototype, DocumentFragment.prototype]) {
    const search = proto.querySelectorAll;
    proto.querySelectorAll = function (...args) {
      if (window.__count && (new Error().stack || '').includes('fontawesome')) window.__iconSearches += 1;
      return search.apply(this, args);
    };
  }
})();"""


def test_icons_are_not_searched_for_in_a_chart_being_drawn(browser, base_url: str) -> None:
    """Font Awesome searches the page again for every node added to it, unless it is told to look
    away: a chart drawn again (here in dark mode) adds thousands of nodes (the positional-encoding
    heatmap), which made the switch take seconds. After the draw it watches again: an icon added
    to the page is still drawn."""
    context = browser.new_context(viewport=DESKTOP, color_scheme="light")
    context.add_init_script(COUNT_ICON_SEARCHES_JS)
    page = context.new_page()
    try:
        page.goto(f"{base_url}/book/embeddings.html", wait_until="load")
        page.wait_for_function(CHARTS_SETTLED_JS, timeout=CHART_TIMEOUT_MS)
        page.evaluate("() => { window.__count = true; }")
        _switch(page, "dark")
        page.evaluate("() => new Promise(resolve => setTimeout(resolve, 50))")  # icons watched again
        searches, nodes = page.evaluate(
            "() => [window.__iconSearches, document.querySelectorAll('div.vegalite-offline svg.marks *').length]")
        page.evaluate("""() => { const i = document.createElement('i'); i.id = 'probe';
                                 i.className = 'fa-solid fa-moon'; document.querySelector('main').prepend(i); }""")
        page.wait_for_selector("svg#probe.svg-inline--fa", timeout=5_000)
    finally:
        context.close()
    assert nodes > 1000, f"the page's charts drew {nodes} nodes: not the heavy page this test needs"
    assert searches <= 10, f"Font Awesome searched the page {searches} times while {nodes} chart nodes were drawn"


@pytest.mark.parametrize("path", PAGES)
def test_page_markup_fixes_are_in_the_built_page(site: Path, path: str) -> None:
    """What the vegalite_offline extension adds to every page for phones and assistive technology:
    book-page.css and book-page.js linked, and the markup of PAGE_FIXES replaced."""
    if _redirect(site, path):
        return
    html = (site / path).read_text(encoding="utf-8")
    assert "_static/book-page.css" in html and "_static/book-page.js" in html, f"{path}: book-page.css/js not linked"
    for old, _new in PAGE_FIXES:
        assert old not in html, f"{path} still holds {old!r}"
