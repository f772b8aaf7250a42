"""A build that warned is not trusted: the next build reads every document again.

`make book` treats warnings as errors (``-W --keep-going``), but Sphinx only reports the warnings of
the documents it reads or writes in this run. Without this extension a second `make book` after a
failed one finds nothing changed and succeeds although nothing was fixed. A marker file in the
doctree folder remembers that the last build warned or failed; the next build then re-reads every
document (chapters are not executed again: their outputs come from the execution cache), so every
remaining warning shows up again.

The warnings are counted by a ``logging.Handler`` that ``setup`` attaches to the ``sphinx`` logger,
the stdlib logger under which ``sphinx.util.logging`` logs every extension's and document's
messages. It counts each record of level WARNING or above once, except those that
``suppress_warnings`` hides: every warning and error logged after this extension is set up,
of every document (with ``--keep-going`` the warnings that ``-W`` turns into errors are logged as
warnings, and Sphinx fails the build at the end; without it the first one raises, and the build
ends with that exception). A record that Sphinx holds back and logs again later
(``pending_warnings`` while writing) counts once, and so does a record a parallel worker hands
back to the main process.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging as sphinx_logging

logger = sphinx_logging.getLogger(__name__)
MARKER = "last-build-warned"
_COUNTED = "strict_build_counted"  # attribute set on each record this module counted


class WarningCounter(logging.Handler):
    """Counts the warnings and errors that reach the ``sphinx`` logger, each once."""

    def __init__(self, app: Sphinx) -> None:
        super().__init__(level=logging.WARNING)
        self.app = app
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, _COUNTED, False):
            return
        setattr(record, _COUNTED, True)
        try:
            suppressed = self.app.config.suppress_warnings
        except AttributeError:  # before the configuration is read
            suppressed = []
        kind, subtype = getattr(record, "type", None), getattr(record, "subtype", None)
        if not sphinx_logging.is_suppressed_warning(kind, subtype, suppressed):
            self.count += 1


def _marker(app: Sphinx) -> Path:
    return Path(app.doctreedir) / MARKER


def _outdated(app: Sphinx, env: Any, added: set, changed: set, removed: set) -> list[str]:
    if _marker(app).exists():
        logger.info("strict_build: the last build had warnings or errors; reading every document again")
        return sorted(env.found_docs)
    return []


def _finished(app: Sphinx, exc: Exception | None, counter: WarningCounter) -> None:
    marker = _marker(app)
    if exc is None and counter.count == 0:
        marker.unlink(missing_ok=True)
    else:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"warnings: {counter.count}, error: {exc!r}\n")


def setup(app: Sphinx) -> dict[str, Any]:
    # Sphinx(...) has set up the `sphinx` logger (dropping any earlier handlers) before
    # it loads the extensions.
    counter = WarningCounter(app)
    logging.getLogger(sphinx_logging.NAMESPACE).addHandler(counter)
    app.connect("env-get-outdated", _outdated)
    app.connect("build-finished", partial(_finished, counter=counter))
    return {"version": "1.1", "parallel_read_safe": True, "parallel_write_safe": True}
