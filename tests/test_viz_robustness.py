"""Charts of src/viz/robustness.py: one run's stopping point, and the grid of `src.robustness`."""

from __future__ import annotations

import html

import pandas as pd
import pytest
import vl_convert as vlc
from vega_helpers import described, rendered_marks

from src.shared.training import History
from src.viz.robustness import robustness_chart, stopping_chart


def _history() -> History:
    matches = [0.0, 0.4, 1.0, 1.0, 0.62, 1.0]
    return History(epochs=[{"epoch": e, "step": 20 * (e + 1), "eval_loss": 2.0 / (e + 1), "valid_exact_match": m}
                           for e, m in enumerate(matches)])


def _cells() -> pd.DataFrame:
    rows = []
    for path, threads in [("native", 1), ("default", 1), ("native", 2)]:
        for seed in range(3):
            rows.append({"seed": seed, "path": path, "threads": threads, "epochs": 8 + seed + threads,
                         "exact_match": 1.0, "fixed_budget_exact_match": 1.0 - 0.1 * (seed == 2 and path == "default"),
                         "collapses": int(seed == 2)})
    return pd.DataFrame(rows)


def test_stopping_chart_draws_every_epoch_and_the_stopping_step():
    spec = stopping_chart(_history(), stop_step=80, title="Stop").to_dict(validate=True)
    svg = html.unescape(vlc.vegalite_to_svg(spec))
    assert "Stop" in svg and "Validation exact match" in svg and "the rule stops here" in svg
    points = [described(p) for p in rendered_marks(spec, "symbol") if "description" in p]
    matches = sorted({p["validation exact match"] for p in points})
    assert matches == ["0.0%", "100.0%", "40.0%", "62.0%"]
    rules = rendered_marks(spec, "rule")
    assert rules and len({round(r["x"]) for r in rules}) == 1, "one stopping step, drawn in both panels"


def test_stopping_chart_names_what_the_history_lacks():
    history = History(epochs=[{"epoch": 0, "step": 20, "eval_loss": 1.0}])
    with pytest.raises(ValueError, match="valid_exact_match"):
        stopping_chart(history, stop_step=20, title="t")


def test_robustness_chart_has_one_square_per_cell_with_its_stopping_epoch():
    cells = _cells()
    spec = robustness_chart(cells, title="Grid").to_dict(validate=True)
    squares = [described(r) for r in rendered_marks(spec, "rect")]
    assert len(squares) == len(cells)
    drawn = {(s["kernel path"], s["seed"]): s for s in squares}
    worst = drawn[("default, 1 thread(s)", "2")]
    assert worst["exact match after the fixed budget"] == "90.0%"
    assert worst["epochs until the rule stopped"] == "11"
    texts = sorted(int(t["text"]) for t in rendered_marks(spec, "text") if t.get("text", "").isdigit())
    assert texts == sorted(cells["epochs"])


def test_robustness_chart_names_missing_columns():
    with pytest.raises(ValueError, match="fixed_budget_exact_match"):
        robustness_chart(_cells().drop(columns="fixed_budget_exact_match"), title="t")
