"""What the site offers to download: each chapter's notebook with its outputs, and the whole
book as one PDF (`make pdf`, run by `make book`), with a contents page whose numbers are right.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

from src.viz.offline import payload_of
from tests.test_site import PAGES, ROOT

sys.path.insert(0, str(ROOT / "book" / "_ext"))
import downloads  # noqa: E402
import print_pdf  # noqa: E402

pytestmark = pytest.mark.browser

SOURCES = [p for p in PAGES if (ROOT / p).with_suffix(".md").is_file()]  # not index, search
CHAPTERS = [p for p in SOURCES if "```{code-cell}" in (ROOT / p).with_suffix(".md").read_text("utf-8")]


def _downloaded(site: Path, page: str) -> dict:
    html = (site / page).read_text(encoding="utf-8")
    link = f"_sources/{Path(page).with_suffix('.ipynb')}"
    assert link in html, f"{page}: the download menu has no .ipynb link"
    return json.loads((site / link).read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_offers_its_notebook_with_outputs(site: Path, page: str) -> None:
    notebook = _downloaded(site, page)
    nbformat.validate(nbformat.from_dict(notebook))
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    source = jupytext.read(ROOT / Path(page).with_suffix(".md"))
    assert [c["source"] for c in code] == [c.source for c in source.cells if c.cell_type == "code"]
    shown = [c for c in source.cells if c.cell_type == "code" and "remove-cell" not in c.metadata.get("tags", [])]
    if shown:  # a chapter whose only code is a hidden check (departures) may print nothing
        assert sum(len(c["outputs"]) for c in code) > 0, f"{page}: a notebook without outputs"
    for cell in code:
        for output in cell["outputs"]:
            html = output.get("data", {}).get("text/html")
            html = "".join(html) if isinstance(html, list) else html
            assert not html or payload_of(html) is None, f"{page}: a chart only the site can draw"


def test_the_offline_charts_become_altair_output_jupyter_draws() -> None:
    notebook = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "display_data", "data": {
        "text/html": '<div class="vegalite-offline">\n<script type="application/json" '
        'class="vegalite-offline-spec">{"spec": {"mark": "point"}, "opt": {}}</script>\n</div>\n',
        "text/plain": "<Altair chart>"}}]}]}  # fmt: skip
    html = downloads.for_jupyter(notebook)["cells"][0]["outputs"][0]["data"]["text/html"]
    assert payload_of(html) is None and "vegaEmbed" in html and '"mark": "point"' in html


@pytest.mark.slow
def test_a_downloaded_notebook_runs_from_the_book_folder(site: Path, tmp_path: Path) -> None:
    """The notebook of the shortest chapter, saved into book/ as a reader would, runs."""
    page = "book/label_smoothing.html"
    notebook = nbformat.from_dict(_downloaded(site, page))
    target = ROOT / "book" / f"_downloaded_{tmp_path.name}.ipynb"
    try:
        target.write_text(nbformat.writes(notebook), encoding="utf-8")
        client = NotebookClient(nbformat.read(target, as_version=4), timeout=600,
                                resources={"metadata": {"path": str(ROOT / "book")}})  # fmt: skip
        client.execute()
    finally:
        target.unlink(missing_ok=True)


def test_the_pdf_has_every_chapter_with_right_page_numbers(site: Path) -> None:
    from pypdf import PdfReader

    assert downloads.PDF_NAME == print_pdf.PDF_NAME
    pdf = site / print_pdf.PDF_NAME
    assert pdf.is_file(), f"no {pdf}: `make book` prints it (make pdf)"
    for page in SOURCES:  # the pages with a download menu
        assert print_pdf.PDF_NAME in (site / page).read_text("utf-8"), f"{page}: no link to the PDF"
    reader = PdfReader(io.BytesIO(pdf.read_bytes()))
    outline = [(item.title, reader.get_destination_page_number(item)) for item in reader.outline]
    assert len(outline) == len(print_pdf.toc_pages())  # every page of the table of contents
    contents = reader.pages[0].extract_text()
    for title, index in outline:
        # the contents page gives the printed number, which is the page's place in the PDF
        assert f"{title} {index + 1}" in " ".join(contents.split()), (title, index)
        text = " ".join(reader.pages[index].extract_text().split())
        assert title.split()[0] in text, f"page {index + 1} does not start chapter {title!r}"
        assert text.rstrip().endswith(str(index + 1)) or f" {index + 1} " in f" {text} ", (
            f"page {index + 1} does not show its number"
        )
    assert outline == sorted(outline, key=lambda x: x[1]) and outline[0][1] >= 1


def test_the_pdf_printer_fails_on_a_site_without_pages(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="make book"):
        print_pdf.build_pdf(tmp_path, tmp_path / "x.pdf")
