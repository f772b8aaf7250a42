"""A build that warned is not trusted: the next build reads every document again.

`make book` treats warnings as errors (``-W --keep-going``), but Sphinx only reports the warnings of
the documents it reads or writes in this run. Without this extension a second `make book` after a
failed one finds nothing changed and succeeds although nothing was fixed. A marker file in the
doctree folder remembers that the last build warned or failed; the next build then re-reads every
document (chapters are not executed again: their outputs come from the execution cache), so every
remaining warning shows up again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)
MARKER = "last-build-warned"


def _marker(app: Sphinx) -> Path:
    return Path(app.doctreedir) / MARKER


def _outdated(app: Sphinx, env: Any, added: set, changed: set, removed: set) -> list[str]:
    if _marker(app).exists():
        logger.info("strict_build: the last build had warnings or errors; reading every document again")
        return sorted(env.found_docs)
    return []


def _finished(app: Sphinx, exc: Exception | None) -> None:
    marker = _marker(app)
    warnings = getattr(app, "_warncount", 0)
    if exc is None and warnings == 0:
        marker.unlink(missing_ok=True)
    else:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"warnings: {warnings}, error: {exc!r}\n")


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("env-get-outdated", _outdated)
    app.connect("build-finished", _finished)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
