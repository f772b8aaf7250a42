"""Show the code of `src` in a chapter; the book never pastes a copy that drifts."""

from __future__ import annotations

import ast
import html
import inspect
from dataclasses import dataclass
from pathlib import Path

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

ROOT = (
    Path(__file__).resolve().parents[1]
)  # the repository: captions name files from it


@dataclass(frozen=True)
class Listing:
    """The source of an object of `src` and where it is: its file and lines."""

    code: str
    path: str
    first: int
    last: int
    paper: str | None = None  # what of the paper it implements: "section 3.2.1"

    @property
    def caption(self) -> str:
        where = f"{self.path}, lines {self.first}\u2013{self.last}"
        return f"{where} \u00b7 the paper, {self.paper}" if self.paper else where

    def _repr_html_(self) -> str:
        # pygments' classes: the site's CSS colours the code as it colours code cells
        code = highlight(self.code, PythonLexer(), HtmlFormatter())
        paper = f" \u00b7 the paper, {html.escape(self.paper)}" if self.paper else ""
        return (
            # 0.85em: 88 columns of code fit the page's text column at 1280 pixels
            '<div class="src-listing" style="font-size: 0.85em">'
            '<p class="src-listing-caption" style="opacity: 0.8; margin-bottom: 0.3em">'
            f"<code>{html.escape(self.path)}</code>, "
            f"lines {self.first}\u2013{self.last}{paper}</p>{code}</div>"
        )

    def __repr__(self) -> str:
        return f"# {self.caption}\n{self.code}"


def show_source(obj: object, *names: str, paper: str | None = None) -> Listing:
    """The source of a function, class or module of `src`, with its file and lines, and
    `paper`, the part of the paper it implements ("section 3.2.1, equation (1)").

    With `names`, `obj` is a module and the listing is its top-level assignments to
    those names, from the comment above the first to the end of the last.
    """
    obj = inspect.unwrap(obj)  # a decorated function: its own file, not the decorator's
    lines, first = inspect.getsourcelines(obj)
    path = Path(inspect.getsourcefile(obj)).resolve().relative_to(ROOT).as_posix()
    first = max(first, 1)  # a module starts at line 0
    if names:
        start, end = _assignments(lines, names)
        lines, first = lines[start:end], start + 1
    return Listing("".join(lines), path, first, first + len(lines) - 1, paper)


def _assignments(lines: list[str], names: tuple[str, ...]) -> tuple[int, int]:
    """The line span (0-based, end exclusive) of the assignments to `names`, with the
    comment lines right above the first.
    """
    spans = [
        (node.lineno - 1, node.end_lineno)
        for node in ast.parse("".join(lines)).body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id in names for t in node.targets)
    ]
    if len(spans) != len(names):
        raise ValueError(f"not all of {names} are assigned at the top of the module")
    start = min(a for a, _ in spans)
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    return start, max(b for _, b in spans)
