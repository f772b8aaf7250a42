"""The seed notebook's code cells run unmodified from book/ against `src`."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import altair as alt
import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED = Path(__file__).parent / "seed" / "attention_visualization.txt"


def seed_cells() -> list[str]:
    """Code cells of the seed: each starts after an `In [None]:` line and ends before a `## ` heading."""
    cells, current = [], None
    for line in SEED.read_text().splitlines():
        if line.strip() == "In [None]:":
            if current is not None:
                cells.append("\n".join(current))
            current = []
        elif re.match(r"^## ", line) and current is not None:
            cells.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    if current is not None:
        cells.append("\n".join(current))
    return [c.strip() for c in cells if c.strip()]


def test_seed_has_its_cells():
    cells = seed_cells()
    assert len(cells) == 15
    for cell in cells:
        ast.parse(cell)


def test_seed_cells_run_unmodified_from_book(monkeypatch):
    monkeypatch.chdir(ROOT / "book")
    namespace: dict = {"__name__": "__seed__"}
    charts = 0
    for cell in seed_cells():
        tree = ast.parse(cell)
        last = tree.body[-1] if tree.body else None
        if isinstance(last, ast.Expr):  # a notebook displays the value of the last expression
            exec(compile(ast.Module(tree.body[:-1], []), "<seed>", "exec"), namespace)
            value = eval(compile(ast.Expression(last.value), "<seed>", "eval"), namespace)
            if isinstance(value, alt.TopLevelMixin):
                spec = value.to_dict()  # validates against the Vega-Lite schema
                assert spec.get("$schema", "").startswith("https://vega.github.io/schema/vega-lite/")
                charts += 1
        else:
            exec(compile(tree, "<seed>", "exec"), namespace)
    assert charts == 10  # six attention layers, the mask, positional encoding, learning rate, label smoothing
    assert namespace["out"].shape == (1, 9, 128)
    assert os.getcwd() == str(ROOT / "book")


if __name__ == "__main__":
    pytest.main([__file__])
