"""Chart builders of src/viz (masks, positional, schedules, smoothing): valid, labelled, plotting the formulas."""

from __future__ import annotations

import html
import math
import re

import altair as alt
import numpy as np
import pytest
import vl_convert as vlc
from hypothesis import given, settings
from hypothesis import strategies as st
from vega_helpers import described, rendered_marks, units
from vega_helpers import inline_rows as rows

from src.viz.masks import ALLOWED, MASKED, causal_mask_chart, causal_mask_frame
from src.viz.positional import positional_encoding_chart, positional_encoding_frame, positional_encoding_heatmap
from src.viz.schedules import lr_schedule_chart, lr_schedule_frame
from src.viz.smoothing import (
    label_smoothing_chart,
    label_smoothing_frame,
    smoothing_penalty_chart,
    smoothing_penalty_frame,
)

BUILDERS = {
    "causal_mask": lambda: causal_mask_chart(6),
    "positional_curves": lambda: positional_encoding_chart(d_model=16, max_len=30, dims=(0, 1, 6, 7)),
    "positional_heatmap": lambda: positional_encoding_heatmap(d_model=12, max_len=10),
    "lr_schedule": lambda: lr_schedule_chart(steps=3000, configs=[(512, 1, 400), (256, 2, 800)], points=50),
    "label_smoothing": lambda: label_smoothing_chart(),
    "smoothing_penalty": lambda: smoothing_penalty_chart(points=40),
}


# --- helpers: read what a spec plots and what Vega renders ---------------------------------------------


# --- every chart: valid Vega-Lite, renders, labelled -----------------------------------------------------


@pytest.mark.parametrize("name", BUILDERS)
def test_chart_renders_to_svg(name: str) -> None:
    chart = BUILDERS[name]()
    assert isinstance(chart, alt.TopLevelMixin)
    spec = chart.to_dict(validate=True)  # raises on a spec that breaks the Vega-Lite schema
    svg = html.unescape(vlc.vegalite_to_svg(spec))
    assert svg.lstrip().startswith("<svg")
    title = spec["title"]["text"] if isinstance(spec["title"], dict) else spec["title"]
    assert title.split()[0] in svg, "the title must be drawn"
    assert rendered_marks(spec), "the chart must draw marks"


@pytest.mark.parametrize("name", BUILDERS)
def test_chart_has_title_axis_titles_tooltips_legend(name: str) -> None:
    spec = BUILDERS[name]().to_dict()
    assert spec.get("title"), "chart title"
    assert 300 <= spec.get("width", 0) <= 650 or name == "label_smoothing", "fits a book page"
    for unit in units(spec):
        enc = {**spec.get("encoding", {}), **unit.get("encoding", {})}
        for channel in ("x", "y"):
            assert enc[channel].get("title"), f"{channel} axis title"
        assert enc.get("tooltip"), "tooltip"
    colours = [
        {**spec.get("encoding", {}), **u.get("encoding", {})}["color"]
        for u in units(spec)
        if "field" in {**spec.get("encoding", {}), **u.get("encoding", {})}.get("color", {})
    ]
    assert colours and all(c.get("title") for c in colours), "colour encodes a field, with a legend title"
    svg = vlc.vegalite_to_svg(spec)
    for unit in units(spec):
        enc = {**spec.get("encoding", {}), **unit.get("encoding", {})}
        for channel in ("x", "y"):
            assert enc[channel]["title"] in html.unescape(svg), f"{channel} axis title drawn"


# --- causal mask -----------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(size=st.integers(1, 30))
def test_causal_mask_frame_is_j_le_i(size: int) -> None:
    df = causal_mask_frame(size)
    assert len(df) == size * size
    assert set(zip(df["query"], df["key"], strict=True)) == {(i, j) for i in range(size) for j in range(size)}
    np.testing.assert_array_equal(df["allowed"], df["key"] <= df["query"])
    np.testing.assert_array_equal(df["mask"] == ALLOWED, df["allowed"])


def test_causal_mask_chart_plots_j_le_i_with_queries_as_rows() -> None:
    size = 7
    spec = causal_mask_chart(size).to_dict()
    data = rows(spec)
    assert len(data) == size * size
    assert all(r["allowed"] == (r["key"] <= r["query"]) for r in data)
    assert spec["encoding"]["x"]["field"] == "key" and spec["encoding"]["x"]["type"] == "ordinal"
    assert spec["encoding"]["y"]["field"] == "query" and spec["encoding"]["y"]["type"] == "ordinal"
    # What is drawn: cell (query i, key j) sits in row i, column j, coloured "may attend" iff j <= i.
    cells = [m for m in rendered_marks(spec) if m["marktype"] == "rect"]
    assert len(cells) == size * size
    allowed_fill = {described(c)["mask"]: c["fill"] for c in cells}
    assert set(allowed_fill) == {ALLOWED, MASKED} and allowed_fill[ALLOWED] != allowed_fill[MASKED]
    width = cells[0]["width"]
    for c in cells:
        d = described(c)
        i, j = int(d["query i"]), int(d["key j"])
        assert (round(c["x"] / width), round(c["y"] / c["height"])) == (j, i)
        assert c["fill"] == allowed_fill[ALLOWED if j <= i else MASKED]


def test_causal_mask_rejects_bad_size() -> None:
    with pytest.raises(ValueError):
        causal_mask_chart(0)
    with pytest.raises(TypeError):
        causal_mask_chart(2.5)


# --- positional encoding ---------------------------------------------------------------------------------


def paper_pe(pos: np.ndarray, dim: np.ndarray, d_model: int) -> np.ndarray:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model))."""
    two_i = dim - dim % 2
    angle = pos / 10000.0 ** (two_i / d_model)
    return np.where(dim % 2 == 0, np.sin(angle), np.cos(angle))


@settings(max_examples=25, deadline=None)
@given(
    d_model=st.integers(2, 64),
    max_len=st.integers(1, 120),
    data=st.data(),
)
def test_positional_frame_equals_paper_formula(d_model: int, max_len: int, data: st.DataObject) -> None:
    dims = data.draw(st.lists(st.integers(0, d_model - 1), min_size=1, max_size=4, unique=True))
    df = positional_encoding_frame(d_model, max_len, dims)
    assert len(df) == max_len * len(dims)
    expected = paper_pe(df["position"].to_numpy(), df["dim"].to_numpy(), d_model)
    np.testing.assert_allclose(df["value"], expected, atol=2e-6)
    assert all(("sin" if d % 2 == 0 else "cos") in label for d, label in zip(df["dim"], df["dimension"], strict=True))


def test_positional_chart_at_chosen_points() -> None:
    d_model = 64
    data = rows(positional_encoding_chart(d_model=d_model, max_len=100, dims=(4, 5, 6, 7)).to_dict())
    assert len(data) == 400
    value = {(r["position"], r["dim"]): r["value"] for r in data}
    # dims 4 and 5 share 2i = 4, dims 6 and 7 share 2i = 6
    assert value[(0, 4)] == pytest.approx(0.0, abs=1e-7)
    assert value[(0, 5)] == pytest.approx(1.0, abs=1e-7)
    assert value[(10, 4)] == pytest.approx(math.sin(10 / 10000 ** (4 / 64)), abs=1e-6)
    assert value[(10, 5)] == pytest.approx(math.cos(10 / 10000 ** (4 / 64)), abs=1e-6)
    assert value[(57, 6)] == pytest.approx(math.sin(57 / 10000 ** (6 / 64)), abs=1e-6)
    assert value[(99, 7)] == pytest.approx(math.cos(99 / 10000 ** (6 / 64)), abs=1e-6)


def test_positional_heatmap_draws_every_cell_of_the_formula() -> None:
    d_model, max_len = 10, 12
    spec = positional_encoding_heatmap(d_model=d_model, max_len=max_len).to_dict()
    wide = rows(spec)
    assert len(wide) == max_len, "the page carries one row per position"
    assert spec["encoding"]["x"]["type"] == spec["encoding"]["y"]["type"] == "ordinal"
    cells = [m for m in rendered_marks(spec) if m["marktype"] == "rect"]
    assert len(cells) == d_model * max_len
    seen = set()
    for c in cells:
        d = described(c)
        pos, dim = int(d["position"]), int(d["dimension"])
        seen.add((pos, dim))
        assert float(d["PE"].replace("\u2212", "-")) == pytest.approx(
            paper_pe(np.array(pos), np.array(dim), d_model), abs=1e-4
        )
        assert round(c["x"] / c["width"]) == pos and round(c["y"] / c["height"]) == dim
    assert seen == {(p, k) for p in range(max_len) for k in range(d_model)}


def test_positional_rejects_bad_dims() -> None:
    with pytest.raises(ValueError):
        positional_encoding_chart(d_model=8, dims=(8,))
    with pytest.raises(ValueError):
        positional_encoding_chart(d_model=8, dims=())
    with pytest.raises(ValueError):
        positional_encoding_chart(d_model=8, dims=(-1,))


# --- learning-rate schedule ------------------------------------------------------------------------------


def equation_3(step: np.ndarray, d_model: int, factor: float, warmup: int) -> np.ndarray:
    """lrate = factor * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)."""
    step = step.astype(np.float64)
    return factor * d_model**-0.5 * np.minimum(step**-0.5, step * warmup**-1.5)


def test_lr_chart_equals_equation_3_everywhere() -> None:
    configs = [(512, 1, 4000), (512, 1, 8000), (256, 1, 4000)]
    data = rows(lr_schedule_chart(configs=configs, steps=20000).to_dict())
    labels = ["d_model=512, warmup=4000", "d_model=512, warmup=8000", "d_model=256, warmup=4000"]
    for (d_model, factor, warmup), label in zip(configs, labels, strict=True):
        mine = [r for r in data if r["config"] == label]
        steps = np.array([r["step"] for r in mine])
        lr = np.array([r["lr"] for r in mine])
        assert steps.min() == 1 and steps.max() == 20000 and len(mine) >= 200
        np.testing.assert_allclose(lr, equation_3(steps, d_model, factor, warmup), rtol=1e-12)
        peak = [r for r in mine if r["peak"]]
        assert [r["step"] for r in peak] == [warmup]
        assert peak[0]["lr"] == pytest.approx(max(lr)) == pytest.approx(d_model**-0.5 * warmup**-0.5)


def test_lr_chart_at_chosen_steps() -> None:
    df = lr_schedule_frame(configs=[(512, 2, 4000)], steps=10000, points=10001)  # every step
    lr = dict(zip(df["step"], df["lr"], strict=True))
    assert lr[1] == pytest.approx(2 * 512**-0.5 * 4000**-1.5)
    assert lr[2000] == pytest.approx(2 * 512**-0.5 * 2000 * 4000**-1.5)
    assert lr[4000] == pytest.approx(2 * 512**-0.5 * 4000**-0.5)
    assert lr[9000] == pytest.approx(2 * 512**-0.5 * 9000**-0.5)
    assert set(df["config"]) == {"d_model=512, warmup=4000, factor=2"}


def test_lr_chart_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        lr_schedule_chart(configs=[])
    with pytest.raises(ValueError):
        lr_schedule_chart(steps=0)
    with pytest.raises(ValueError):
        lr_schedule_chart(configs=[(512, 1, 0)])


# --- label smoothing -------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    vocab_size=st.integers(3, 12),
    smoothing=st.floats(0.0, 0.9),
    data=st.data(),
)
def test_label_smoothing_frame_matches_definition(vocab_size: int, smoothing: float, data: st.DataObject) -> None:
    targets = data.draw(st.lists(st.integers(0, vocab_size - 1), min_size=1, max_size=6))
    df = label_smoothing_frame(vocab_size, smoothing, targets, padding_idx=0)
    assert len(df) == vocab_size * len(targets)
    dist = df.pivot(index="example", columns="token", values="probability").to_numpy()  # (examples, vocab)
    for row, target in zip(dist, targets, strict=True):
        if target == 0:
            np.testing.assert_allclose(row, 0.0)
            continue
        assert row.sum() == pytest.approx(1.0, abs=1e-6)
        expected = np.full(vocab_size, smoothing / (vocab_size - 2))
        expected[0] = 0.0
        expected[target] = 1 - smoothing
        np.testing.assert_allclose(row, expected, atol=1e-6)


def test_label_smoothing_chart_data_and_cells() -> None:
    spec = label_smoothing_chart(vocab_size=5, smoothing=0.4).to_dict()
    data = rows(spec)
    sums: dict[int, float] = {}
    for r in data:
        sums[r["example"]] = sums.get(r["example"], 0.0) + r["probability"]
    targets = {r["example"]: r["target"] for r in data}
    assert targets == {0: 2, 1: 1, 2: 0, 3: 3, 4: 3}
    for example, total in sums.items():
        assert total == pytest.approx(0.0 if targets[example] == 0 else 1.0, abs=1e-6)
    assert all(r["probability"] == pytest.approx(0.6) for r in data if r["token"] == r["target"] != 0)
    assert all(r["probability"] == 0 for r in data if r["token"] == 0)
    marks = rendered_marks(spec)
    assert sum(m["marktype"] == "rect" for m in marks) == 25
    texts = sorted(m["text"] for m in marks if m["marktype"] == "text" and "description" in m)
    assert texts.count("0.60") == 4 and texts.count("0.13") == 12 and texts.count("0.00") == 9


def penalty_closed_form(p: np.ndarray, eps: float, vocab: int) -> np.ndarray:
    """KL(target || model): target 1-eps on the true token, eps/(vocab-2) on the others but padding; model
    p on the true token and (1-p)/(vocab-1) on every other token."""
    other = (1 - p) / (vocab - 1)
    true_term = (1 - eps) * np.log((1 - eps) / p)
    rest = eps * np.log((eps / (vocab - 2)) / other) if eps > 0 else 0.0
    return true_term + rest


def test_smoothing_penalty_equals_kl_and_penalises_over_confidence() -> None:
    smoothings = (0.0, 0.1, 0.3)
    data = rows(smoothing_penalty_chart(vocab_size=5, smoothings=smoothings, points=300).to_dict())
    for eps in smoothings:
        mine = sorted((r for r in data if r["smoothing"] == f"{eps:g}"), key=lambda r: r["confidence"])
        p = np.array([r["confidence"] for r in mine])
        loss = np.array([r["loss"] for r in mine])
        np.testing.assert_allclose(loss, penalty_closed_form(p, eps, 5), rtol=1e-9, atol=1e-12)
        if eps == 0:
            assert np.all(np.diff(loss) < 0), "without smoothing, more confidence is always better"
            assert not any(r["minimum"] for r in mine)
        else:
            best = p[np.argmin(loss)]
            assert best == pytest.approx(1 - eps), "the loss is least at p = 1 - eps"
            assert loss[-1] > loss.min() + 0.05, "over-confidence raises the loss again"
            assert [r["confidence"] for r in mine if r["minimum"]] == [pytest.approx(1 - eps)]


def test_smoothing_penalty_is_the_criterion_loss() -> None:
    import torch

    from src.shared.loss import LabelSmoothing

    df = smoothing_penalty_frame(vocab_size=6, smoothings=(0.2,), points=5)
    p = torch.tensor(df["confidence"].to_numpy())
    probs = ((1 - p) / 5).unsqueeze(1).repeat(1, 6)
    probs[:, 1] = p
    crit = LabelSmoothing(6, padding_idx=0, smoothing=0.2)
    for k in range(len(p)):  # one row at a time, through the criterion itself
        total = crit(probs[k : k + 1].log(), torch.tensor([1]))
        assert float(total) == pytest.approx(df["loss"].iloc[k], rel=1e-9)


def test_smoothing_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        label_smoothing_chart(smoothing=1.0)
    with pytest.raises(ValueError):
        label_smoothing_chart(vocab_size=5, targets=(7,))
    with pytest.raises(ValueError):
        smoothing_penalty_chart(vocab_size=2)


def test_description_parser_sees_tooltip_titles() -> None:
    # guard for the helpers above: a rendered rect describes its tooltip fields by their titles
    spec = causal_mask_chart(2).to_dict()
    first = next(m for m in rendered_marks(spec) if m["marktype"] == "rect")
    assert re.search(r"query i: \d", first["description"])
