"""Prose never types a figure that a run produces: it glues it from the cell that computed it.

The rule, applied to the Markdown text of every chapter (code, inline code, math, roles and links
removed): a *measured-looking* figure, that is a number with a decimal point, a percentage, a
speed-up ("6.0x", "three times faster") or a duration ("12 s", "3 minutes"), may appear only where
the paragraph cites its source ({cite}`...`: the paper's own numbers and other published ones), or
as one of the paper's hyperparameters listed in `PAPER`. Everything a run of this book measures
comes through `{glue:text}` or a computed Markdown cell, which this test does not see.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"

# The paper's settings, which the prose states as the paper's (Vaswani et al., 2017, sections 3-6)
PAPER = {"0.1", "0.9", "0.98", "0.6", "0.5", "1.0"}

NUMBER_WORDS = r"(?:two|three|four|five|six|seven|eight|nine|ten|twenty|a hundred|hundred)"
MEASURED = re.compile(
    r"(?<![\w.])(?<!section )(?<!sections )(?<!Section )(?<!Python )(?<!version )(?<!Table )(?:"
    r"\d[\d,]*\.\d+(?:\s*(?:%|x|×))?"  # a decimal: 0.018, 6.0x, 99.5 %
    r"|\d[\d,]*\s*(?:%|x\b|×)"  # 99 %, 6x
    r"|\d[\d,]*(?:\s*(?:to|-|–)\s*\d[\d,]*)?\s*(?:ms|s|seconds?|minutes?|min|hours?|h)\b"  # 12 s
    r"|\d[\d, ]*\d\s+(?:steps|epochs|errors|mistakes|parameters|G?FLOP)\b"  # 1 252 steps
    r"|\d\s+(?:steps|epochs|errors|mistakes|parameters)\b"
    rf"|{NUMBER_WORDS}(?:\s+to\s+{NUMBER_WORDS})?\s+times\s+(?:faster|slower|as|more|less)"
    r")",
    re.IGNORECASE,
)


def prose_paragraphs(text: str) -> list[tuple[int, str]]:
    """(line, paragraph) of the Markdown prose of a chapter, without code, math and roles."""
    text = re.sub(r"^---\n.*?\n---\n", lambda m: "\n" * m.group(0).count("\n"), text, count=1,
                  flags=re.S)  # front matter
    text = re.sub(r"^(```|~~~|:::).*?^\1\s*$", lambda m: "\n" * m.group(0).count("\n"), text,
                  flags=re.S | re.M)  # code cells, directives
    text = re.sub(r"\$\$.*?\$\$", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"<!--.*?-->", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    paragraphs, start, lines = [], 1, []
    for number, line in enumerate(text.splitlines() + [""], 1):
        if line.strip():
            if not lines:
                start = number
            lines.append(line)
        elif lines:
            paragraphs.append((start, " ".join(lines)))
            lines = []
    return paragraphs


def measured_figures(paragraph: str) -> list[str]:
    """The measured-looking figures that `paragraph` types itself."""
    if "{cite}" in paragraph or "{cite:" in paragraph:
        return []
    text = re.sub(r"`[^`]*`", " ", paragraph)  # inline code and roles' targets
    text = re.sub(r"\$[^$]*\$", " ", text)  # inline math
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    text = re.sub(r"^#+ .*", " ", text)  # headings
    return [m.group(0) for m in MEASURED.finditer(text) if m.group(0) not in PAPER]


CHAPTERS = sorted(BOOK.glob("*.md"))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_prose_types_no_measured_figure(chapter: Path) -> None:
    found = [(line, fig) for line, p in prose_paragraphs(chapter.read_text()) for fig in measured_figures(p)]
    assert not found, f"{chapter.name}: figures typed in prose (glue them from the cell that computes them): {found}"


@pytest.mark.parametrize("typed", [
    "on the CPUs this book was written on it made the optimizer step three to four times faster",
    "The product reached 113 % of the peak.",
    "600 steps with a factor of 2 peak at about 0.018.",
    "One epoch takes 12 s on this machine.",
    "fused Adam was 6.0x faster",
])
def test_the_rule_catches_typed_figures(typed: str) -> None:
    assert measured_figures(typed)


@pytest.mark.parametrize("fine", [
    "The paper trained the base model for 12 hours on eight P100 GPUs {cite}`vaswani2017attention`.",
    "Dropout of 0.1 on every sublayer, as in the paper.",
    "The model has $d_{\\text{model}} = 64$ and `factor=0.5`.",
    "Two layers, four heads and 11 ids.",
])
def test_the_rule_leaves_cited_and_configured_numbers_alone(fine: str) -> None:
    assert not measured_figures(fine)
