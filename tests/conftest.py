"""Shared fixtures: deterministic seeds, a small model, and for the browser tests the built
site, a local HTTP server for it and one headless Chromium for the whole session.

The site is ``_build/html``, or ``$BOOK_HTML``; the ``site`` fixture builds it with ``make book``
when it is missing. The browser is Debian's ``chromium`` (``/usr/bin/chromium`` or ``$CHROMIUM``),
driven by Playwright; without it the browser tests are skipped, except in CI (``CI=true``), where
they fail.
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from src.transformer import make_model

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread for the test, then as many as before."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def small_model():
    """A small untrained model in eval mode (no dropout): vocabulary 11, N=2, d_model=32, h=4."""
    model = make_model(11, 11, N=2, d_model=32, d_ff=64, h=4, dropout=0.0)
    return model.eval()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser test must run)")
    pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each test process gets its share of the cores for torch (and for what it
    starts: OMP_NUM_THREADS). Two processes of two threads each on two cores make OpenMP's threads
    wait for each other: a one-second test takes ten.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if hasattr(config, "workerinput") and workers > 0:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The chapters first: they take longest, and under pytest-xdist (`make test`: `--dist loadfile
    --no-loadscope-reorder`) one process starts on them at once while the other takes the rest.
    """
    items.sort(key=lambda item: item.path.name != "test_chapters.py")  # stable: the rest keep their order


@pytest.fixture(scope="session")
def site() -> Path:
    """The built site; built with `make book` if it is not there (by one test process: the
    others wait for it).
    """
    (ROOT / "_build").mkdir(exist_ok=True)
    with FileLock(ROOT / "_build" / ".site.lock"):
        if not (SITE / "index.html").is_file():
            if "BOOK_HTML" in os.environ:
                pytest.fail(f"BOOK_HTML={SITE} has no index.html")
            proc = subprocess.run(["make", "book"], cwd=ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                pytest.fail(f"`make book` failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-6000:]}")
    return SITE


@pytest.fixture(scope="session")
def base_url(site: Path):
    """An HTTP server for the site on 127.0.0.1 and a free port."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.is_file():
        _unavailable(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()
