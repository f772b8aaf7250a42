"""Benchmark charts of src/viz/benchmarks.py on synthetic rows: valid Vega-Lite, labelled, plotting the rows given."""

from __future__ import annotations

import html
import math

import altair as alt
import pandas as pd
import pytest
import vl_convert as vlc
from vega_helpers import described, units
from vega_helpers import inline_rows as data
from vega_helpers import rendered_marks as marks

from src.viz.benchmarks import (
    BOOK,
    CACHED,
    TIME_GROUPS,
    TORCH,
    UNCACHED,
    decoding_cost_chart,
    decoding_frame,
    decoding_step_chart,
    flops_chart,
    flops_frame,
    time_breakdown_chart,
    time_breakdown_frame,
    training_frame,
    training_throughput_chart,
)

LENGTHS = (16, 32, 64, 128)


def decoding_rows() -> list[dict]:
    """Rows shaped like `src.bench.bench_decoding`'s: cached cost linear in length, uncached quadratic."""
    rows = []
    for n in LENGTHS:
        cached, uncached = 2.0 * n, 0.05 * n * n + 2.0 * n
        rows.append({
            "tokens": n, "cached_ms": cached, "uncached_ms": uncached, "speedup": uncached / cached,
            "beam4_ms": 3 * cached, "beam4_over_greedy": 3.0,
            "cached_ms_per_token": cached / (n - 1), "uncached_ms_per_token": uncached / (n - 1),
        })
    return rows


def training_rows() -> list[dict]:
    """Rows shaped like `src.bench.bench_training`'s, with distinct values everywhere."""
    rows = []
    for size, book_ms, torch_ms, gflop, tokens, shares in (
        ("d512 N2 b80 L10", 440.0, 430.0, 60.0, 800, (0.6, 0.15, 0.05, 0.2)),
        ("d256 N3 b64 L32", 300.0, 320.0, 40.0, 2048, (0.45, 0.2, 0.02, 0.33)),
        ("base d512 N6 b16 L32", 610.0, 600.0, 110.0, 512, (0.55, 0.14, 0.06, 0.25)),
    ):
        rows.append({
            "size": size, "book_ms": book_ms, "torch_ms": torch_ms, "ratio": book_ms / torch_ms,
            "gflop_per_step": gflop, "book_gflops": gflop / book_ms * 1e3,
            "tokens_per_s_book": tokens / book_ms * 1e3, "tokens_per_s_torch": tokens / torch_ms * 1e3,
            **dict(zip(TIME_GROUPS, shares)), "matmul_gflops": gflop / (shares[0] * book_ms) * 1e3,
        })
    return rows


PEAK = 210.0

BUILDERS = {
    "decoding": lambda: decoding_cost_chart(decoding_rows()),
    "throughput": lambda: training_throughput_chart(training_rows()),
    "flops": lambda: flops_chart(training_rows(), PEAK),
    "time breakdown": lambda: time_breakdown_chart(training_rows()),
}


# --- every chart -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILDERS)
def test_chart_is_valid_and_renders_its_title_and_axes(name: str) -> None:
    chart = BUILDERS[name]()
    assert isinstance(chart, alt.TopLevelMixin)
    spec = chart.to_dict(validate=True)  # raises on a spec that breaks the Vega-Lite schema
    svg = html.unescape(vlc.vegalite_to_svg(spec))
    assert svg.lstrip().startswith("<svg")
    assert spec["title"] in svg
    assert 300 <= spec["width"] <= 650, "fits a book page"
    for unit in units(spec):
        enc = unit["encoding"]
        assert enc["y"]["title"] in svg
        if "x" in enc:
            assert enc["x"]["title"] in svg
        assert enc["tooltip"], "tooltip"
        assert enc["color"]["title"] in svg, "colour legend with a title"


# --- decoding --------------------------------------------------------------------------------------------


def test_decoding_frame_holds_both_decoders_per_length() -> None:
    rows = decoding_rows()
    df = decoding_frame(rows)
    assert len(df) == 2 * len(rows)
    for r in rows:
        at = df[df["tokens"] == r["tokens"]].set_index("decoder")
        assert at.loc[CACHED, "ms_per_token"] == r["cached_ms_per_token"]
        assert at.loc[UNCACHED, "ms_per_token"] == r["uncached_ms_per_token"]
        assert at.loc[CACHED, "total_ms"] == r["cached_ms"] and at.loc[UNCACHED, "total_ms"] == r["uncached_ms"]
        assert (at["speedup"] == r["speedup"]).all()


def test_decoding_chart_plots_the_rows_per_token_on_log_scales() -> None:
    rows = decoding_rows()
    spec = decoding_cost_chart(rows).to_dict()
    plotted = {(d["decoder"], d["tokens"]): d["ms_per_token"] for d in data(spec)}
    expected = {(CACHED, r["tokens"]): r["cached_ms_per_token"] for r in rows}
    expected |= {(UNCACHED, r["tokens"]): r["uncached_ms_per_token"] for r in rows}
    assert plotted == expected
    assert spec["encoding"]["x"]["field"] == "tokens" and spec["encoding"]["y"]["field"] == "ms_per_token"
    assert spec["encoding"]["y"]["scale"]["type"] == "log" and spec["encoding"]["x"]["scale"]["type"] == "log"
    tips = {t["title"] for t in spec["encoding"]["tooltip"]}
    assert {"decoder", "tokens", "ms per token", "cached speed-up"} <= tips


def test_decoding_chart_draws_one_point_per_row_and_decoder_at_its_length() -> None:
    rows = decoding_rows()
    spec = decoding_cost_chart(rows).to_dict()
    points = marks(spec, "symbol")
    assert len(points) == 2 * len(rows)
    x_of = {}
    for p in points:
        d = described(p)
        assert d["decoder"] in (CACHED, UNCACHED)
        x_of.setdefault(int(d["tokens"]), set()).add(round(p["x"], 3))
    assert sorted(x_of) == list(LENGTHS)
    xs = [x_of[n].pop() for n in LENGTHS]
    steps = [b - a for a, b in zip(xs, xs[1:], strict=False)]
    assert all(s > 0 for s in steps) and max(steps) - min(steps) < 1e-2, "doublings are equally spaced on log x"
    # Vega draws y down: the recomputing decoder, dearer per token, sits above the cached one at every length.
    y = {(described(p)["decoder"], int(described(p)["tokens"])): p["y"] for p in points}
    assert all(y[(UNCACHED, n)] < y[(CACHED, n)] for n in LENGTHS)


def per_step_rows() -> pd.DataFrame:
    """Long-form rows as the chapter on fast decoding melts them: ms per step of each decoder and length."""
    rows = [{"tokens": n, "decoder": "cached ms / step", "ms per step": 0.5 + 0.001 * n} for n in LENGTHS]
    rows += [{"tokens": n, "decoder": "recomputing ms / step", "ms per step": 0.02 * n} for n in LENGTHS]
    return pd.DataFrame(rows)


def test_decoding_step_chart_plots_the_chapters_rows_on_log_scales() -> None:
    per_step = per_step_rows()
    spec = decoding_step_chart(per_step, title="Cost of one decoding step, batch of 16").to_dict(validate=True)
    assert data(spec) == per_step.to_dict("records")
    enc = spec["encoding"]
    assert (enc["x"]["field"], enc["y"]["field"], enc["color"]["field"]) == ("tokens", "ms per step", "decoder")
    assert enc["x"]["scale"] == {"type": "log", "base": 2} and enc["y"]["scale"] == {"type": "log"}
    assert (spec["width"], spec["height"]) == (470, 260)
    svg = html.unescape(vlc.vegalite_to_svg(spec))
    for text in ("Cost of one decoding step, batch of 16", "tokens generated", "milliseconds per step (log scale)",
                 "recomputing ms / step"):
        assert text in svg
    points = marks(spec, "symbol")
    assert len(points) == len(per_step)
    y = {(described(p)["decoder"], int(described(p)["tokens"])): p["y"] for p in points}
    assert y[("recomputing ms / step", LENGTHS[-1])] < y[("cached ms / step", LENGTHS[-1])], "dearer sits higher"


def test_decoding_step_chart_rejects_rows_without_its_columns() -> None:
    with pytest.raises(ValueError, match="ms per step"):
        decoding_step_chart(per_step_rows().drop(columns="ms per step"))


# --- training throughput ---------------------------------------------------------------------------------


def test_training_frame_holds_both_models_per_size() -> None:
    rows = training_rows()
    df = training_frame(rows)
    assert len(df) == 2 * len(rows)
    for r in rows:
        at = df[df["size"] == r["size"]].set_index("model")
        assert at.loc[BOOK, "tokens_per_s"] == r["tokens_per_s_book"]
        assert at.loc[TORCH, "tokens_per_s"] == r["tokens_per_s_torch"]
        assert at.loc[BOOK, "step_ms"] == r["book_ms"] and at.loc[TORCH, "step_ms"] == r["torch_ms"]
        assert (at["ratio"] == r["ratio"]).all()


def test_throughput_chart_draws_grouped_bars_in_proportion_with_the_ratio_in_tooltips() -> None:
    rows = training_rows()
    spec = training_throughput_chart(rows).to_dict()
    plotted = {(d["size"], d["model"]): d["tokens_per_s"] for d in data(spec)}
    expected = {(r["size"], BOOK): r["tokens_per_s_book"] for r in rows}
    expected |= {(r["size"], TORCH): r["tokens_per_s_torch"] for r in rows}
    assert plotted == expected
    assert spec["encoding"]["xOffset"]["field"] == "model", "bars grouped by size, side by side per model"
    assert "ratio" in {t["field"] for t in spec["encoding"]["tooltip"]}

    bars = marks(spec, "rect")
    assert len(bars) == 2 * len(rows)
    height = {(described(b)["size"], described(b)["model"]): b["height"] for b in bars}
    unit = height[(rows[0]["size"], BOOK)] / rows[0]["tokens_per_s_book"]
    for key, value in expected.items():
        assert height[key] == pytest.approx(unit * value, rel=1e-6), "bar height proportional to tokens/s"
    for b in bars:
        d = described(b)
        row = next(r for r in rows if r["size"] == d["size"])
        assert float(d["step time, book / torch"]) == pytest.approx(row["ratio"], abs=5e-4)
    # Within each size group the book's bar is left of PyTorch's, and groups keep the rows' order.
    x = {(described(b)["size"], described(b)["model"]): b["x"] for b in bars}
    assert all(x[(r["size"], BOOK)] < x[(r["size"], TORCH)] for r in rows)
    assert [x[(r["size"], BOOK)] for r in rows] == sorted(x[(r["size"], BOOK)] for r in rows)


# --- GFLOP/s ---------------------------------------------------------------------------------------------


def test_flops_frame_and_chart_against_the_peak() -> None:
    rows = training_rows()
    df = flops_frame(rows, PEAK)
    assert list(df["book_gflops"]) == [r["book_gflops"] for r in rows]
    assert list(df["share_of_peak"]) == pytest.approx([r["book_gflops"] / PEAK for r in rows])

    spec = flops_chart(rows, PEAK).to_dict()
    assert {d["size"]: d["book_gflops"] for d in data(spec)} == {r["size"]: r["book_gflops"] for r in rows}
    bars = marks(spec, "rect")
    assert len(bars) == len(rows)
    rules = marks(spec, "rule")
    assert rules, "a rule at the matmul peak"
    # The bar reaching GFLOP/s g has its top where the rule at PEAK would be scaled to g.
    rule_y = rules[0]["y"]
    base = bars[0]["y"] + bars[0]["height"]  # the zero line
    for b in bars:
        g = next(r["book_gflops"] for r in rows if r["size"] == described(b)["size"])
        assert (base - b["y"]) / (base - rule_y) == pytest.approx(g / PEAK, rel=1e-6)


def test_time_breakdown_stacks_each_size_to_its_shares_in_order() -> None:
    rows = training_rows()
    df = time_breakdown_frame(rows)
    assert len(df) == len(rows) * len(TIME_GROUPS)
    assert set(df["operations"]) == set(TIME_GROUPS.values())
    bars = marks(time_breakdown_chart(rows).to_dict(), "rect")
    assert len(bars) == len(rows) * len(TIME_GROUPS)
    full_width = 480
    for row in rows:
        mine = sorted((b for b in bars if described(b)["size"] == row["size"]), key=lambda b: b["x"])
        # Left to right in the order of TIME_GROUPS, each as wide as its share of the step.
        assert [described(b)["operations"] for b in mine] == list(TIME_GROUPS.values())
        assert [b["width"] / full_width for b in mine] == pytest.approx([row[c] for c in TIME_GROUPS], abs=1e-3)
        assert mine[0]["x"] == pytest.approx(0) and mine[-1]["x"] + mine[-1]["width"] == pytest.approx(full_width)


# --- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: decoding_cost_chart([]),
        lambda: training_throughput_chart([]),
        lambda: decoding_cost_chart([{"tokens": 16}]),
        lambda: training_throughput_chart([{"size": "x", "book_ms": 1.0}]),
        lambda: flops_chart(training_rows(), 0.0),
        lambda: time_breakdown_chart([{"size": "x", "book_ms": 1.0, "matmul_gflops": 1.0}]),
        lambda: flops_chart(training_rows(), -math.inf),
    ],
)
def test_bad_rows_raise_value_error(build) -> None:
    with pytest.raises(ValueError):
        build()
