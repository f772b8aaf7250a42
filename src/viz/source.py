"""Show the code of `src` in a chapter, so the book never pastes a copy that could
drift.
"""

from __future__ import annotations

import inspect

from IPython.display import Code


def show_source(obj: object) -> Code:
    """The source of a function, class or module of `src`, syntax-highlighted in
    notebooks and the site.
    """
    return Code(inspect.getsource(obj), language="python")
