"""Every chapter of the book runs top to bottom as a notebook.

Each ``book/*.md`` chapter with code cells is converted with Jupytext from its Markdown source (the
source of truth, so a stale ``.ipynb`` never hides a broken chapter) to a temporary ``.ipynb`` in
``book/`` and executed there by nbmake, as a reader runs it: working directory ``book/``, kernel
``python3`` of this interpreter. A failure names the chapter, the cell, its line in the ``.md`` file,
its source and the traceback.

One chapter: ``pytest tests/test_chapters.py -k attention_viz``. nbmake also runs the notebooks that
``make notebooks`` writes directly: ``pytest --nbmake book/attention_viz.ipynb``.

Chapters run ``$CHAPTER_WORKERS`` at a time (default: two, or one on a one-core machine), each kernel
on one thread (``OMP_NUM_THREADS=1``): a chapter keeps about one core busy, so two of them share two
cores (all chapters: 500 s instead of 780 s on the 2-core machine of DESIGN.md), and torch on one
thread computes what the book's recipes are checked with. The number-translation models that several
chapters load are trained first, side by side, so that no chapter waits with its worker idle while
another trains the model it needs. Under pytest-xdist the file must go whole to one process
(``--dist loadfile``, as ``make test`` runs it); spread test by test, each chapter runs alone.

A chapter runs as the book's build runs it (with the offline chart renderer on), and the notebook it
executed goes into the build's execution cache (``_build/.jupyter_cache``, keyed by the chapter's code,
with ``_build/.src-hash`` marking the code of ``src`` it ran with): ``make book`` afterwards shows exactly
these outputs instead of running every chapter a second time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
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
WORKERS = int(os.environ.get("CHAPTER_WORKERS") or min(2, os.cpu_count() or 1))
# Models that more than one chapter loads and that take minutes to train (`cached_model`).
SHARED_MODELS = [
    "from src.recipes.numbers import numbers_translator; numbers_translator('fr')",
    "from src.recipes.numbers import numbers_translator; numbers_translator('de')",
]
_CACHE_LOCK = threading.Lock()  # jupyter-cache's database takes one writer at a time
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
        if result.error is None and md.parent == BOOK:  # a chapter of the book, not a test's own
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
    with _CACHE_LOCK:
        get_cache(str(cache_dir)).cache_notebook_file(str(tmp), uri=str(md), check_validity=False, overwrite=True)
        marker.write_text(src_hash + "\n")


def _train(code: str) -> None:
    """Run `code` (it trains and caches a model) in a fresh interpreter; a failure is left to the
    chapters that load the model, which train it again and report the cell.
    """
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        warnings.warn(f"training a shared model failed ({code}):\n{proc.stderr[-3000:]}", stacklevel=1)


def _whole_file_here(config: pytest.Config) -> bool:
    """Whether this process runs every selected test of this file: without pytest-xdist, or under
    it with `--dist loadfile` or `loadscope` (a worker sees only the command line it came from).
    """
    if not hasattr(config, "workerinput"):
        return True
    command = " ".join(config.workerinput.get("mainargv", []))
    return "loadfile" in command or "loadscope" in command


@pytest.fixture(scope="module")
def chapter_result(request: pytest.FixtureRequest) -> Iterator[Callable[[Path], str | None]]:
    """`run_chapter`'s report for a chapter. Every selected chapter is started at once on a pool of
    `WORKERS` threads, each driving its own kernel, unless pytest-xdist hands this process single
    tests of the file (then each chapter runs when its test comes).
    """
    if not _whole_file_here(request.config):
        yield run_chapter
        return
    selected = [item.callspec.params["chapter"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_chapter_runs"]
    with pytest.MonkeyPatch.context() as env, ThreadPoolExecutor(WORKERS, thread_name_prefix="chapter") as pool:
        env.setenv(OFFLINE_CHARTS_ENV, "1")  # os.environ, which the kernels inherit
        if WORKERS > 1:
            env.setenv("OMP_NUM_THREADS", "1")
        if WORKERS > 1 and len(selected) > 1:
            for code in SHARED_MODELS:
                pool.submit(_train, code)
        runs = {chapter: pool.submit(run_chapter, chapter) for chapter in selected}
        try:
            yield lambda chapter: runs[chapter].result()
        finally:
            for run in runs.values():
                run.cancel()  # those not started yet, after a failure with -x or an interrupt


@pytest.mark.slow
@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.stem)
def test_chapter_runs(chapter: Path, chapter_result: Callable[[Path], str | None]) -> None:
    report = chapter_result(chapter)
    if report is not None:
        pytest.fail(report, pytrace=False)
