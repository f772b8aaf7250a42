"""`make pdf`: the built site as one PDF, printed by the headless Chromium the tests use.

Jupyter Book's own PDF builders need LaTeX or download a browser; this prints the pages
that `make book` built, in the order of the table of contents. Each page is opened from
``_build/html`` with every request to another host refused, its charts drawn (the
explorers as the view they open with), its math typeset, its hidden outputs and
solutions opened, and printed with the theme's print style (no navigation). A contents
page with page numbers comes first, every later page carries its number, and the PDF's
outline links each chapter.

    python book/_ext/print_pdf.py [SITE] [OUT]   # _build/html, _build/html/<PDF_NAME>
"""

from __future__ import annotations

import asyncio
import html
import io
import os
import sys
from pathlib import Path

import yaml
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from pypdf import PdfReader, PdfWriter

ROOT = Path(__file__).resolve().parents[2]
PDF_NAME = "annotated-transformer.pdf"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
MARGIN = {"top": "16mm", "bottom": "18mm", "left": "15mm", "right": "15mm"}
WIDTH_PX = 760  # the layout width the pages are printed at: A4 less the margins, at 96 dpi
PRINTERS = min(2, os.cpu_count() or 1)  # pages printed at once, each in a browser context of its own

# The print view: listings wrap instead of running off the page, open toggles show no
# button, charts never exceed the column, each chapter starts on a new page.
PRINT_CSS = """
@media print {
  pre, pre span { white-space: pre-wrap !important; overflow-wrap: anywhere; }
  div.highlight, div.cell_output, .output { overflow: visible !important; }
  .vega-embed, .vega-embed svg, .vega-embed canvas { max-width: 100% !important;
    height: auto !important; }
  .vega-bindings, .vega-actions { display: none !important; }
  details > summary, button.toggle-button { display: none !important; }
  a[href] { text-decoration: none; }
  h1, h2, h3, p.src-listing-caption { break-after: avoid; }
  figure, .vegalite-offline, table { break-inside: avoid; }
}
"""

# Everything the reader would click open: hidden cell inputs and outputs, solutions,
# dropdowns.
OPEN_ALL_JS = """() => {
  document.querySelectorAll('details:not(.vega-embed details)')
    .forEach(d => { d.open = true; });
  document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
  document.querySelectorAll('.toggle-details__container, .toggle-details')
    .forEach(e => { e.style.display = ''; });
}"""

DRAWN_JS = """() => [...document.querySelectorAll('div.vegalite-offline')]
  .every(c => ['rendered', 'error'].includes(c.dataset.vegaliteStatus))"""

MATH_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
}"""


def toc_pages(root: Path = ROOT) -> list[str]:
    """The documents of `_toc.yml`, in reading order (names without suffix)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    docs = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                docs.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    walk(toc.get("chapters", []))
    return [str(Path(d).with_suffix("")) for d in docs]


async def print_page(page: Page, url: str) -> tuple[str, bytes]:
    """Open `url`, wait until it is drawn, open every toggle; its title and PDF bytes."""
    await page.goto(url, wait_until="load")
    await page.wait_for_function(DRAWN_JS, timeout=120_000)
    await page.evaluate(MATH_JS)
    await page.evaluate(OPEN_ALL_JS)
    await page.add_style_tag(content=PRINT_CSS)
    await page.wait_for_timeout(300)  # let the opened outputs lay out
    title = await page.evaluate("() => document.querySelector('main h1')?.innerText ?? ''")
    pdf = await page.pdf(format="A4", margin=MARGIN, print_background=True)
    return title.strip().rstrip("#").strip(), pdf


async def offline_page(browser: Browser) -> tuple[BrowserContext, Page]:
    """A page in a context of its own (a renderer process of its own) that loads only local files."""
    context = await browser.new_context(viewport={"width": WIDTH_PX, "height": 1100})
    await context.route(
        "**/*",
        lambda r: r.continue_()
        if r.request.url.startswith(("file:", "data:", "blob:", "about:"))
        else r.abort("blockedbyclient"),
    )
    return context, await context.new_page()


async def print_pages(browser: Browser, urls: list[str]) -> list[tuple[str, bytes]]:
    """`print_page` of every url, `PRINTERS` at a time, in the order given."""
    printed: list[tuple[str, bytes] | None] = [None] * len(urls)
    todo = iter(range(len(urls)))

    async def printer() -> None:
        context, page = await offline_page(browser)
        for i in todo:  # one shared iterator: each index is taken once
            printed[i] = await print_page(page, urls[i])
        await context.close()

    await asyncio.gather(*(printer() for _ in range(PRINTERS)))
    return printed


def contents_html(entries: list[tuple[str, int]], title: str) -> str:
    """The contents page: each chapter's title and first page number."""
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td class=n>{number}</td></tr>"
        for name, number in entries
    )
    return f"""<!doctype html><meta charset=utf-8><style>
body {{ font: 12pt sans-serif; }} h1 {{ font-size: 22pt; margin-bottom: 18pt; }}
table {{ width: 100%; border-collapse: collapse; }}
td {{ padding: 4pt 0; border-bottom: 1px dotted #999; }} td.n {{ text-align: right; }}
</style><h1>{html.escape(title)}</h1><h2>Contents</h2><table>{rows}</table>"""


def numbers_html(count: int, first: int) -> str:
    """`count` blank pages with a page number at the foot of each, from `first`."""
    pages = "".join(
        f"<div class=p><span>{first + i}</span></div>" for i in range(count)
    )
    return f"""<!doctype html><meta charset=utf-8><style>
@page {{ size: A4; margin: 0; }} body {{ margin: 0; }}
.p {{ height: 297mm; position: relative; break-after: page; }}
.p span {{ position: absolute; bottom: 8mm; width: 100%; text-align: center;
  font: 9pt sans-serif; color: #555; }}
</style>{pages}"""


async def html_pdf(page: Page, document: str) -> bytes:
    await page.set_content(document)
    return await page.pdf(format="A4", margin=MARGIN, print_background=True)


async def print_book(site: Path, docs: list[str], title: str) -> PdfWriter:
    """The book: a contents page, then every page of `docs`, numbered and with an outline."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        printed = await print_pages(browser, [(site / f"{doc}.html").resolve().as_uri() for doc in docs])
        chapters = []
        for doc, (name, pdf) in zip(docs, printed, strict=True):
            chapters.append((name or doc, PdfReader(io.BytesIO(pdf))))
            print(f"{doc}: {len(chapters[-1][1].pages)} pages", flush=True)
        _, page = await offline_page(browser)
        # the contents page's own length shifts every number after it
        front = 1
        while True:
            starts, n = [], front
            for name, reader in chapters:
                starts.append((name, n + 1))
                n += len(reader.pages)
            contents = PdfReader(io.BytesIO(await html_pdf(page, contents_html(starts, title))))
            if len(contents.pages) == front:
                break
            front = len(contents.pages)
        numbers = PdfReader(io.BytesIO(await html_pdf(page, numbers_html(n - front, front + 1))))
        await browser.close()

    writer = PdfWriter()
    writer.append(contents)
    for (name, reader), (_, start) in zip(chapters, starts, strict=True):
        writer.append(reader)
        writer.add_outline_item(title=name, page_number=start - 1)
    for i, number in enumerate(numbers.pages):
        writer.pages[front + i].merge_page(number)
    writer.add_metadata({"/Title": title})
    return writer


def build_pdf(site: Path, out: Path, title: str = "The Annotated Transformer") -> int:
    """Print every page of the table of contents into `out`; returns its page count."""
    docs = [d for d in toc_pages() if (site / f"{d}.html").is_file()]
    missing = set(toc_pages()) - set(docs)
    if missing:
        raise SystemExit(f"pages missing in {site}: {sorted(missing)}; run `make book`")
    if not CHROMIUM.is_file():
        raise SystemExit(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    writer = asyncio.run(print_book(site, docs, title))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        writer.write(f)
    tmp.replace(out)  # a half-written PDF never replaces a good one
    return len(writer.pages)


if __name__ == "__main__":
    site = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "_build" / "html"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else site / PDF_NAME
    pages = build_pdf(site, out)
    print(f"{out}: {pages} pages, {out.stat().st_size / 1e6:.1f} MB")
