"""A chapter that raises fails the tests and the build, and both name the chapter and the cell."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_chapters import run_chapter

ROOT = Path(__file__).resolve().parents[1]
HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""
BROKEN = HEADER + """
# A broken chapter

```{code-cell}
x = 1 + 1
```

Some prose between the cells.

```{code-cell}
y = x * 2
raise RuntimeError("deliberate failure in the second cell")
```
"""


def test_the_chapter_test_names_the_chapter_cell_and_line(tmp_path: Path) -> None:
    chapter = tmp_path / "broken_chapter.md"
    chapter.write_text(BROKEN, encoding="utf-8")
    report = run_chapter(chapter)
    assert report is not None, "a raising chapter must fail"
    line = BROKEN.splitlines().index("y = x * 2") + 1
    assert "broken_chapter.md, code cell 2" in report
    assert f"line {line} of the .md" in report
    assert "RuntimeError" in report and "deliberate failure in the second cell" in report


def test_the_same_chapter_without_the_error_passes(tmp_path: Path) -> None:
    chapter = tmp_path / "fine_chapter.md"
    chapter.write_text(BROKEN.replace('raise RuntimeError("deliberate failure in the second cell")', "print(y)"),
                       encoding="utf-8")
    assert run_chapter(chapter) is None


@pytest.mark.slow
def test_the_build_fails_naming_the_chapter_and_the_cell(tmp_path: Path) -> None:
    """The book's own configuration and build command, on a two-page book whose second page raises."""
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "book").mkdir()
    shutil.copytree(ROOT / "book" / "_ext", tmp_path / "book" / "_ext",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "book" / "references.bib", tmp_path / "book" / "references.bib")
    shutil.copytree(ROOT / "book" / "_static", tmp_path / "book" / "_static")  # the favicon
    (tmp_path / "node_modules").symlink_to(ROOT / "node_modules")  # MathJax, which the site serves
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/broken\n")
    (tmp_path / "book" / "intro.md").write_text("# Intro\n\nA page without code.\n")
    (tmp_path / "book" / "broken.md").write_text(BROKEN, encoding="utf-8")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    run = subprocess.run(
        [str(jupyter_book), "build", str(tmp_path), "--path-output", str(tmp_path), "-W", "-n", "--keep-going"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,  # its execution cache too: _build/ in there
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0, "a chapter that raises must fail the build"
    assert "book/broken.md" in output, "the chapter's file"
    assert "deliberate failure in the second cell" in output
    assert 'raise RuntimeError("deliberate failure in the second cell")' in output, "the failing cell's source"
