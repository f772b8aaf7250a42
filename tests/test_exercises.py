"""Every numbered chapter ends with exercises whose solutions open on a click and whose code runs.

A chapter's last section is ``## Exercises``: two or three exercises, each written with the gated
directives of sphinx-exercise and followed by its solution::

    ```{exercise-start}
    :label: optimizer-peak
    ```
    The question.
    ```{exercise-end}
    ```

    ```{solution-start} optimizer-peak
    :class: dropdown
    ```
    The answer, and code cells that check it with asserts.
    ```{solution-end}
    ```

``:class: dropdown`` hides the solution until the reader opens it. Between the gates, a solution's
code is made of ordinary ``{code-cell}`` cells of the Jupytext notebook, so tests/test_chapters.py
executes them with the rest of the chapter (nbmake), and the build shows their outputs inside the
dropdown. This test reads each chapter as Jupytext does and checks that structure: gates that open
and close in order, a label per exercise (unique in the book, starting with the chapter's name), a
hidden solution right after each exercise, every code cell of the section inside a solution, no
solution code written as a literal block (which nothing would run) or marked to be skipped, and an
assert in every solution that has code. The chapters that must have exercises are those of the
numbered parts of ``_toc.yml``; any other page with an Exercises section is checked the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import pytest
import yaml

from tests.test_chapters import chapters as executed_chapters

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
HEADING = "## Exercises"
MIN_EXERCISES, MAX_EXERCISES = 2, 3
GATES = ("exercise-start", "exercise-end", "solution-start", "solution-end")
# tags that would keep a solution's cell from running, or its output from the dropdown
FORBIDDEN_TAGS = ("skip-execution", "raises-exception", "remove-cell", "remove-output")
CODE_LANGUAGES = ("", "python", "python3", "py", "ipython", "ipython3", "pycon")
_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,}|:{3,})\s*(?P<info>.*?)\s*$")
_DIRECTIVE = re.compile(r"^\{(?P<name>[\w:-]+)\}\s*(?P<arg>.*)$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")


def numbered_chapters() -> list[Path]:
    """The chapters of the numbered parts of the table of contents: each must have exercises."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [c["file"] for part in toc.get("parts", []) if part.get("numbered")
             for c in part.get("chapters", [])]
    return [ROOT / f"{file}.md" for file in files]


@dataclass
class Event:
    """One thing of a chapter, in reading order: a heading, a directive, a literal block, code."""

    kind: str  # "heading", "directive", "literal", "code", "text"
    name: str = ""  # heading text, directive name, literal block's language
    arg: str = ""  # directive argument
    options: dict[str, str] = field(default_factory=dict)
    cell: object = None  # the notebook cell of a code event
    level: int = 0  # heading level


def events(markdown: str) -> list[Event]:
    """The chapter `markdown` as Jupytext reads it, flattened into events."""
    notebook = jupytext.reads(markdown, fmt="md:myst")
    found: list[Event] = []
    for cell in notebook.cells:
        if cell.cell_type == "code":
            found.append(Event("code", cell=cell))
        elif cell.cell_type == "markdown":
            found.extend(_markdown_events(cell.source))
    return found


def _markdown_events(source: str) -> list[Event]:
    lines, found, i = source.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        opening = _FENCE.match(line)
        if opening:
            fence = opening["fence"]
            end = next((j for j in range(i + 1, len(lines))
                        if lines[j].strip().startswith(fence[0] * len(fence))
                        and not lines[j].strip().strip(fence[0])), len(lines))
            body, info = lines[i + 1:end], opening["info"]
            directive = _DIRECTIVE.match(info)
            if directive:
                options = {}
                for option in body:
                    m = re.match(r"^:([\w-]+):\s*(.*)$", option)
                    if not m:
                        break
                    options[m[1]] = m[2]
                found.append(Event("directive", directive["name"], directive["arg"].strip(), options))
            else:
                found.append(Event("literal", info.split()[0].lower() if info else ""))
            i = end + 1
            continue
        heading = _HEADING.match(line)
        if heading:
            found.append(Event("heading", heading[2], level=len(heading[1])))
        elif line.strip():
            found.append(Event("text", line.strip()))
        i += 1
    return found


@dataclass
class Exercises:
    """What `check` found in one chapter."""

    labels: list[str] = field(default_factory=list)
    solved: dict[str, int] = field(default_factory=dict)  # label -> code cells in its solution
    problems: list[str] = field(default_factory=list)


def check(markdown: str, stem: str, required: bool = True) -> Exercises:
    """Check the Exercises section of one chapter (its Markdown text; `stem` names it)."""
    found = Exercises()
    problem = found.problems.append
    flat = events(markdown)
    starts = [i for i, e in enumerate(flat) if e.kind == "heading" and e.level == 2 and e.name == "Exercises"]
    gated_before = [e.name for e in flat[: starts[0] if starts else len(flat)]
                    if e.kind == "directive" and e.name in GATES + ("exercise", "solution")]
    if not starts:
        if required:
            problem(f"no '{HEADING}' section")
        if gated_before:
            problem(f"exercise directives outside an '{HEADING}' section: {gated_before}")
        return found
    if len(starts) > 1:
        problem(f"{len(starts)} '{HEADING}' sections, expected one")
    if gated_before:
        problem(f"exercise directives before the '{HEADING}' section: {gated_before}")
    state, current, solving, has_assert = "out", None, None, False
    for e in flat[starts[-1] + 1:]:
        if e.kind == "heading":
            problem(f"heading '{e.name}' after '{HEADING}': the exercises end the chapter")
        elif e.kind == "directive" and e.name in ("exercise", "solution"):
            problem(f"'{{{e.name}}}' without gates: use {e.name}-start and {e.name}-end")
        elif e.kind == "directive" and e.name == "exercise-start":
            label = e.options.get("label", "")
            if state != "out":
                problem(f"exercise-start inside an open {state}")
            if not label:
                problem("an exercise without a :label:")
            elif not label.startswith(f"{stem}-"):
                problem(f"exercise label '{label}' does not start with '{stem}-'")
            if label in found.labels:
                problem(f"exercise label '{label}' used twice")
            if current is not None and current not in found.solved:
                problem(f"exercise '{current}' has no solution")
            found.labels.append(label)
            state, current = "exercise", label
        elif e.kind == "directive" and e.name == "exercise-end":
            if state != "exercise":
                problem(f"exercise-end without an open exercise (state: {state})")
            state = "out"
        elif e.kind == "directive" and e.name == "solution-start":
            if state != "out":
                problem(f"solution-start inside an open {state}")
            if e.arg not in found.labels:
                problem(f"solution of '{e.arg}', which is no exercise of this chapter")
            elif e.arg != current or current in found.solved:
                problem(f"solution of '{e.arg}' does not follow its exercise")
            if "dropdown" not in e.options.get("class", "").split():
                problem(f"solution of '{e.arg}' is not hidden (':class: dropdown' missing)")
            if "hidden" in e.options:
                problem(f"solution of '{e.arg}' is :hidden: (left out of the book)")
            found.solved.setdefault(e.arg, 0)
            state, solving, has_assert = "solution", e.arg, False
        elif e.kind == "directive" and e.name == "solution-end":
            if state != "solution":
                problem(f"solution-end without an open solution (state: {state})")
            elif found.solved[solving] and not has_assert:
                problem(f"solution of '{solving}' runs code but asserts nothing")
            state = "out"
        elif e.kind == "code":
            tags = e.cell.metadata.get("tags", [])
            first = e.cell.source.strip().splitlines()[0] if e.cell.source.strip() else ""
            if state != "solution":
                problem(f"code cell outside a solution ({state}): {first!r}")
                continue
            found.solved[solving] += 1
            has_assert |= bool(re.search(r"^\s*assert\b", e.cell.source, re.M))
            for tag in FORBIDDEN_TAGS:
                if tag in tags:
                    problem(f"code cell of the solution of '{solving}' is tagged {tag}: {first!r}")
        elif e.kind == "literal" and state == "solution" and e.name in CODE_LANGUAGES:
            problem(f"literal code block in the solution of '{solving}': nothing runs it "
                    "(make it a {code-cell})")
        elif e.kind == "directive" and state == "solution" and e.name in ("code-block", "code", "sourcecode"):
            problem(f"{{{e.name}}} in the solution of '{solving}': nothing runs it (make it a {{code-cell}})")
    if state != "out":
        problem(f"the chapter ends inside an open {state}")
    unsolved = [label for label in found.labels if label not in found.solved]
    if unsolved:
        problem(f"exercises without a solution: {unsolved}")
    if not MIN_EXERCISES <= len(found.labels) <= MAX_EXERCISES:
        problem(f"{len(found.labels)} exercises, expected {MIN_EXERCISES} to {MAX_EXERCISES}")
    return found


def pages() -> list[Path]:
    """The chapters that must have exercises, and every other page that has some."""
    required = numbered_chapters()
    others = [p for p in sorted(BOOK.glob("*.md"))
              if p not in required and HEADING in p.read_text(encoding="utf-8")]
    return required + others


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.stem)
def test_chapter_ends_with_exercises(page: Path) -> None:
    assert page.is_file(), f"{page.name}: in _toc.yml but missing"
    markdown = page.read_text(encoding="utf-8")
    found = check(markdown, page.stem, required=page in numbered_chapters())
    assert not found.problems, f"{page.name}: " + "; ".join(found.problems)
    if any(found.solved.values()):  # solution code runs only if test_chapters executes the chapter
        assert page in executed_chapters(), f"{page.name}: not executed by tests/test_chapters.py"
    metadata = jupytext.reads(markdown, fmt="md:myst").metadata
    assert not metadata.get("execution", {}).get("allow_errors"), f"{page.name}: allow_errors hides failing solutions"


def test_labels_are_unique_in_the_book() -> None:
    labels = [label for page in pages() for label in check(page.read_text(encoding="utf-8"), page.stem,
                                                           required=False).labels]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    assert not repeated, f"exercise labels used twice: {repeated}"


def test_the_numbered_chapters_are_the_ones_expected() -> None:
    # a table of contents the check cannot read would require nothing
    stems = {p.stem for p in numbered_chapters()}
    assert {"attention", "optimizer", "translation", "why_self_attention"} <= stems


# What the check catches: a correct chapter, and copies of it broken one way each.

GOOD = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A chapter

```{code-cell} ipython3
x = 3
```

## Exercises

```{exercise-start}
:label: demo-square
```

What is the square of `x`?

```{exercise-end}
```

```{solution-start} demo-square
:class: dropdown
```

Nine:

```{code-cell} ipython3
assert x**2 == 9
```

```{solution-end}
```

```{exercise-start}
:label: demo-words
```

Say it in words.

```{exercise-end}
```

```{solution-start} demo-words
:class: dropdown
```

Three squared is nine.

```{solution-end}
```
"""


def test_a_correct_chapter_passes() -> None:
    found = check(GOOD, "demo")
    assert found.problems == []
    assert found.labels == ["demo-square", "demo-words"]
    assert found.solved == {"demo-square": 1, "demo-words": 0}


SOLUTION_CODE = "```{code-cell} ipython3\nassert x**2 == 9\n```\n"
SECOND = GOOD[GOOD.index("```{exercise-start}\n:label: demo-words"):]

BROKEN = {
    "no section": (lambda t: t.replace("## Exercises", "## Questions"), "no '## Exercises'"),
    "not hidden": (lambda t: t.replace(":class: dropdown\n```\n\nNine", "```\n\nNine", 1), "not hidden"),
    "hidden entirely": (lambda t: t.replace(":class: dropdown\n", ":class: dropdown\n:hidden:\n", 1), ":hidden:"),
    "code outside the solution": (lambda t: t.replace("```{solution-end}\n```\n", "```{solution-end}\n```\n\n"
                                                      + SOLUTION_CODE, 1), "code cell outside a solution"),
    "code in the exercise": (lambda t: t.replace("What is the square of `x`?", SOLUTION_CODE), "outside a solution"),
    "literal code": (lambda t: t.replace(SOLUTION_CODE, "```python\nassert x**2 == 9\n```\n"),
                     "literal code block"),
    "skipped cell": (lambda t: t.replace(SOLUTION_CODE, "```{code-cell} ipython3\n:tags: [skip-execution]\n\n"
                                                        "assert x**2 == 9\n```\n"), "skip-execution"),
    "no assert": (lambda t: t.replace("assert x**2 == 9", "print(x**2)"), "asserts nothing"),
    "unknown exercise": (lambda t: t.replace("{solution-start} demo-square", "{solution-start} demo-cube"),
                         "no exercise of this chapter"),
    "no solution": (lambda t: t[: t.index("```{solution-start} demo-words")], "without a solution"),
    "label twice": (lambda t: t.replace(":label: demo-words", ":label: demo-square")
                    .replace("{solution-start} demo-words", "{solution-start} demo-square"), "used twice"),
    "foreign label": (lambda t: t.replace("demo-words", "other-words"), "does not start with 'demo-'"),
    "one exercise": (lambda t: t[: t.index("```{exercise-start}\n:label: demo-words")], "1 exercises"),
    "four exercises": (lambda t: t + "\n" + SECOND.replace("demo-words", "demo-a") + "\n"
                       + SECOND.replace("demo-words", "demo-b"), "4 exercises"),
    "unclosed solution": (lambda t: t.rsplit("```{solution-end}\n```", 1)[0], "ends inside an open solution"),
    "section after": (lambda t: t + "\n## More\n\nText.\n", "heading 'More' after"),
    "ungated": (lambda t: t + "\n```{exercise}\n:label: demo-x\n\nQ.\n```\n", "without gates"),
    "solution before its exercise": (lambda t: t.replace("```{solution-start} demo-words", "```{solution-start} "
                                                         "demo-square"), "does not follow its exercise"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_a_broken_chapter_fails(name: str) -> None:
    mutate, expected = BROKEN[name]
    broken = mutate(GOOD)
    assert broken != GOOD, "the mutation changed nothing"
    problems = check(broken, "demo").problems
    assert any(expected in p for p in problems), problems


def test_a_real_chapter_broken_fails() -> None:
    """The same checks on a chapter of the book: moving a solution's code out of it is caught."""
    page = numbered_chapters()[0]
    markdown = page.read_text(encoding="utf-8")
    assert not check(markdown, page.stem).problems
    cut = markdown.rindex("```{solution-end}\n```")
    broken = markdown[:cut] + "```{solution-end}\n```\n\n```{code-cell} ipython3\nassert True\n```\n" + markdown[cut:]
    assert any("outside a solution" in p for p in check(broken, page.stem).problems)
    undone = markdown.replace(":class: dropdown", ":class: note")
    assert any("not hidden" in p for p in check(undone, page.stem).problems)
