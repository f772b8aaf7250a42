"""Every chapter of the book runs top to bottom as a notebook.

Each ``book/*.md`` chapter with code cells is converted with Jupytext from its Markdown source (the
source of truth, so a stale ``.ipynb`` never hides a broken chapter) to a temporary ``.ipynb`` in
``book/`` and executed there by nbmake, as a reader runs it: working directory ``book/``, kernel
``python3`` of this interpreter. A failure names the chapter, the cell, its line in the ``.md`` file,
its source and the traceback.

One chapter: ``pytest tests/test_chapters.py -k attention_viz``. nbmake also runs the notebooks that
``make notebooks`` writes directly: ``pytest --nbmake book/attention_viz.ipynb``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbmake.nb_run import NotebookRun

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
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
    try:
        nbformat.write(notebook, tmp)
        result = NotebookRun(tmp, CELL_TIMEOUT_S).execute()
    finally:
        tmp.unlink(missing_ok=True)
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


@pytest.mark.slow
@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.stem)
def test_chapter_runs(chapter: Path) -> None:
    report = run_chapter(chapter)
    if report is not None:
        pytest.fail(report, pytrace=False)
