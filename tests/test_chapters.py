"""Every chapter of the book runs top to bottom as a notebook.

Each ``book/*.md`` chapter with code cells is converted with Jupytext from its Markdown source (the
source of truth, so a stale ``.ipynb`` never hides a broken chapter) to a temporary ``.ipynb`` in
``book/`` and executed there by nbmake, as a reader runs it: working directory ``book/``, kernel
``python3`` of this interpreter. A failure names the chapter, the cell, its line in the ``.md`` file,
its source and the traceback.

One chapter: ``pytest tests/test_chapters.py -k attention_viz``. nbmake also runs the notebooks that
``make notebooks`` writes directly: ``pytest --nbmake book/attention_viz.ipynb``.

A chapter runs as the book's build runs it (with the offline chart renderer on), and the notebook it
executed goes into the build's execution cache (``_build/.jupyter_cache``, keyed by the chapter's code,
with ``_build/.src-hash`` marking the code of ``src`` it ran with): ``make book`` afterwards shows exactly
these outputs instead of running every chapter a second time.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupyter_cache import get_cache
from nbmake.nb_run import NotebookRun

from src.shared.fingerprint import fingerprint
from src.viz.offline import OFFLINE_CHARTS_ENV

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
BUILD = ROOT / "_build"
CELL_TIMEOUT_S = int(os.environ.get("CHAPTER_CELL_TIMEOUT", "600"))
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def chapters() -> list[Path]:
    """The chapters that have code: every book/*.md with a code cell."""
    return sorted(p for p in BOOK.glob("*.md") if "```{code-cell}" in p.read_text(encoding="utf-8"))


def _source_line(markdown: str, cell_source: str) -> int | None:
    """1-based line of a cell's first line in the Markdown file, if it can be found."""
    first = next((line for line in cell_source.splitlines() if line.strip()), None)
    if first is None:
        return None
    at = markdown.find(first)
    return markdown.count("\n", 0, at) + 1 if at >= 0 else None


def run_chapter(md: Path) -> str | None:
    """Execute one chapter; None if it ran, else a report of the failing cell."""
    notebook = jupytext.read(md)
    tmp = md.with_name(f".{md.stem}.test-chapters.ipynb")  # in book/: nbmake runs in the notebook's folder
    renderer = os.environ.get(OFFLINE_CHARTS_ENV)
    os.environ[OFFLINE_CHARTS_ENV] = "1"  # the kernel draws charts as the book's build does
    try:
        nbformat.write(notebook, tmp)
        result = NotebookRun(tmp, CELL_TIMEOUT_S).execute()
        if result.error is None:
            _cache_for_the_build(result.nb, tmp, md)
    finally:
        tmp.unlink(missing_ok=True)
        if renderer is None:
            os.environ.pop(OFFLINE_CHARTS_ENV, None)
        else:
            os.environ[OFFLINE_CHARTS_ENV] = renderer
    if result.error is None:
        return None
    error = result.error
    where = str(md.relative_to(ROOT)) if md.is_relative_to(ROOT) else str(md)
    index = error.failing_cell_index
    if 0 <= index < len(result.nb.cells):
        cell = result.nb.cells[index]
        code_number = sum(1 for c in result.nb.cells[: index + 1] if c.cell_type == "code")
        line = _source_line(md.read_text(encoding="utf-8"), cell.source)
        where += f", code cell {code_number} (notebook cell {index}" + (f", line {line} of the .md)" if line else ")")
    # nbmake's trace is the cell's source followed by the traceback
    return f"{where} failed: {_ANSI.sub('', error.summary)}\n{_ANSI.sub('', error.trace)}"


def _cache_for_the_build(executed: nbformat.NotebookNode, tmp: Path, md: Path) -> None:
    """Put a chapter's executed notebook into the build's execution cache (see the module's docstring)."""
    src_hash = fingerprint()[:16]
    marker = BUILD / ".src-hash"
    cache_dir = BUILD / ".jupyter_cache"
    if cache_dir.exists() and not (marker.is_file() and marker.read_text().strip() == src_hash):
        return  # the cache holds outputs of other code of src: `make book` will clear it
    for cell in executed.cells:
        cell.metadata.pop("execution", None)  # timings: the cache keys a notebook by its cells' metadata too
    nbformat.write(executed, tmp)
    get_cache(str(cache_dir)).cache_notebook_file(str(tmp), uri=str(md), check_validity=False, overwrite=True)
    marker.write_text(src_hash + "\n")


@pytest.mark.slow
@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.stem)
def test_chapter_runs(chapter: Path) -> None:
    report = run_chapter(chapter)
    if report is not None:
        pytest.fail(report, pytrace=False)
