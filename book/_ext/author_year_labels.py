"""Label the bibliography the way the text cites: "Vaswani et al., 2017", not "[VSP+17]".

The chapters cite author-year (``bibtex_reference_style: author_year``); pybtex's default styles
label the entries of the bibliography with alpha codes or numbers. This registers the pybtex style
``authoryear`` (the ``unsrt`` formatting, sorted by author and year, labelled "Post, 2018",
"Kingma and Ba, 2015", "Vaswani et al., 2017"); ``_config.yml`` selects it with
``bibtex_default_style: authoryear``.
"""

from __future__ import annotations

from typing import Any

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx.application import Sphinx


def _last_names(entry: Any) -> list[str]:
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    return [Text.from_latex(" ".join(p.prelast_names + p.last_names)).render_as("text") for p in persons]


def author_year_label(entry: Any) -> str:
    names = _last_names(entry)
    year = entry.fields.get("year", "n.d.")
    if not names:
        who = entry.fields.get("title", entry.key)
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {year}"


class AuthorYearLabelStyle(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        for entry in sorted_entries:
            yield author_year_label(entry)


class AuthorYearStyle(UnsrtStyle):
    default_label_style = "authoryear"
    default_sorting_style = "author_year_title"


register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabelStyle, force=True)
register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle, force=True)


def setup(app: Sphinx) -> dict[str, Any]:
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
