"""Attention and training charts: valid Vega-Lite, the right labels on the right axes, the right values."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest
import torch
import vl_convert as vlc

from src.shared.training import History
from src.transformer import subsequent_mask
from src.viz.attention import (
    KINDS,
    SCALES,
    attention_explorer,
    attention_frame,
    attention_heatmap,
    layer_heatmaps,
    model_attention,
    position_labels,
    share_of_max,
)
from src.viz.training import runs_loss_chart, training_curves_chart
from tests.vega_helpers import described, rendered_marks

ROWS = ["<s>", "seven", "seven", "two"]  # a repeated token: labels must keep both rows apart
COLS = ["a", "b", "a", "c", "d"]


def matrix(q: int = 4, k: int = 5) -> np.ndarray:
    """A (q, k) matrix whose every entry is distinct and tells its own place: 0.qk."""
    return np.arange(q)[:, None] * 0.1 + np.arange(k)[None, :] * 0.01 + 0.001


# --- rendering helpers: read back what Vega actually drew ---------------------------------------

RECT = re.compile(
    r'<path aria-label="([^"]*)" role="graphics-symbol" aria-roledescription="rect mark" d="M([-\d.e]+),([-\d.e]+)'
)


def rendered_cells(spec: dict) -> list[dict]:
    """Each rect of the rendered SVG: its tooltip fields and its x, y position."""
    svg = vlc.vegalite_to_svg(spec)
    cells = []
    for label, x, y in RECT.findall(svg):
        fields = dict(part.split(": ", 1) for part in html.unescape(label).split("; "))
        cells.append({"query": fields["query"], "key": fields["key"], "x": float(x), "y": float(y)})
    return cells


def axis_values(spec: dict, axis: str) -> str:
    """The aria description of an axis: its title and its first values, in drawn order."""
    svg = html.unescape(vlc.vegalite_to_svg(spec))
    match = re.search(rf'aria-label="{axis}-axis titled ([^"]*)"', svg)
    assert match, f"no {axis} axis in the rendered chart"
    return match.group(1)


def title_text(spec: dict) -> str:
    svg = html.unescape(vlc.vegalite_to_svg(spec))
    return " | ".join(re.findall(r"aria-label=\"Title text '([^']*)'\"", svg))


# --- attention_frame --------------------------------------------------------------------------

def test_position_labels_keep_repeated_tokens_apart_and_ordered():
    assert position_labels(["<s>", "7", "7"]) == ["00 <s>", "01 7", "02 7"]
    labels = position_labels([str(i) for i in range(120)])
    assert labels[5] == "005 5" and labels == sorted(labels)


def test_attention_frame_values_sit_at_their_query_and_key():
    a = matrix()
    df = attention_frame(torch.tensor(a), ROWS, COLS)
    assert len(df) == a.size
    assert np.allclose(df["weight"], a[df["query"], df["key"]])
    for _, r in df.sample(8, random_state=0).iterrows():
        assert r.query_token == f"{r.query:02d} {ROWS[r.query]}"
        assert r.key_token == f"{r.key:02d} {COLS[r.key]}"
    assert (df["layer"] == 0).all() and (df["head"] == 0).all()


@pytest.mark.parametrize("keys", [COLS, ROWS])  # square self-attention too: a transpose must not pass
def test_attention_frame_layers_and_heads(keys):
    a = np.random.default_rng(0).random((2, 3, 4, len(keys)))  # (layers, heads, queries, keys)
    df = attention_frame(a, ROWS, keys)
    assert np.allclose(df["weight"], a[df["layer"], df["head"], df["query"], df["key"]])
    assert df.groupby(["layer", "head"]).size().unique().tolist() == [4 * len(keys)]


def test_attention_frame_rejects_wrong_label_counts():
    with pytest.raises(ValueError, match="row_tokens"):
        attention_frame(matrix(), ROWS[:3], COLS)
    with pytest.raises(ValueError, match="col_tokens"):
        attention_frame(matrix(), ROWS, COLS + ["e"])
    with pytest.raises(ValueError, match="shape"):
        attention_frame(np.zeros(3), ROWS, COLS)


# --- one head -------------------------------------------------------------------------------------

def test_heatmap_encodes_queries_on_y_and_keys_on_x_in_sequence_order():
    spec = attention_heatmap(matrix(), ROWS, COLS, "One head").to_dict()
    enc = spec["encoding"]
    assert enc["y"]["field"] == "query_token" and enc["x"]["field"] == "key_token"
    assert enc["y"]["sort"] == position_labels(ROWS) and enc["x"]["sort"] == position_labels(COLS)
    assert enc["color"]["scale"]["scheme"] == "viridis" and "legend" in enc["color"]
    assert {t["field"] for t in enc["tooltip"]} >= {"query_token", "key_token", "weight"}
    assert spec["title"] == "One head"


def test_heatmap_data_equal_the_matrix():
    a = matrix()
    chart = attention_heatmap(a, ROWS, COLS, "One head")
    df = chart.data
    expected = {(f"{q:02d} {ROWS[q]}", f"{k:02d} {COLS[k]}"): a[q, k] for q in range(4) for k in range(5)}
    got = dict(zip(zip(df["query_token"], df["key_token"]), df["weight"]))
    assert got == pytest.approx(expected)


def test_rendered_heatmap_draws_each_cell_at_its_query_row_and_key_column():
    spec = attention_heatmap(matrix(), ROWS, COLS, "One head").to_dict()
    cells = rendered_cells(spec)
    assert len(cells) == 20
    rows, cols = position_labels(ROWS), position_labels(COLS)
    ys = {c["query"]: c["y"] for c in cells}
    xs = {c["key"]: c["x"] for c in cells}
    assert sorted(ys, key=ys.get) == rows  # top to bottom: query positions in order
    assert sorted(xs, key=xs.get) == cols  # left to right: key positions in order
    y_axis, x_axis = axis_values(spec, "Y"), axis_values(spec, "X")
    assert y_axis.startswith("'Query'") and "00 <s>, 01 seven, 02 seven, 03 two" in y_axis
    assert x_axis.startswith("'Key'") and "00 a, 01 b, 02 a, 03 c" in x_axis


def test_non_square_attention_is_not_transposed():
    a = np.random.default_rng(1).random((3, 6))
    spec = attention_heatmap(a, ["x", "y", "z"], list("abcdef"), "3 queries, 6 keys").to_dict()
    cells = rendered_cells(spec)
    assert {c["query"] for c in cells} == set(position_labels(["x", "y", "z"]))
    assert {c["key"] for c in cells} == set(position_labels(list("abcdef")))


# --- every head of a layer -------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 4, 5), (1, 3, 4, 5)])
def test_layer_heatmaps_one_panel_per_head(shape):
    a = np.random.default_rng(2).random(shape)
    chart = layer_heatmaps(torch.tensor(a), ROWS, COLS, "Layer 0")
    spec = chart.to_dict()
    assert spec["title"] == "Layer 0" and len(spec["concat"]) == 3
    heads = a.reshape(3, 4, 5)
    for h, panel in enumerate(chart.concat):
        assert panel.title == f"Head {h}"
        df = panel.data
        assert np.allclose(df["weight"], heads[h][df["query"], df["key"]])
    assert "Head 2" in title_text(spec)


def test_layer_heatmaps_rejects_a_batch_of_two():
    with pytest.raises(ValueError, match="heads"):
        layer_heatmaps(np.zeros((2, 3, 4, 5)), ROWS, COLS)


# --- a model's attention and the explorer ----------------------------------------------------------

@pytest.fixture
def attended(small_model):
    src = torch.tensor([[1, 3, 4, 4, 5, 6]])
    tgt = torch.tensor([[1, 3, 4, 4]])
    small_model(src, tgt, torch.ones(1, 1, 6), subsequent_mask(4))
    names = {1: "<s>"}
    return small_model, [names.get(i, str(i)) for i in src[0].tolist()], [names.get(i, str(i)) for i in tgt[0].tolist()]


def test_model_attention_collects_every_kind_layer_and_head(attended):
    model, src_tokens, tgt_tokens = attended
    frame = model_attention(model, src_tokens, tgt_tokens)
    assert list(frame["kind"].unique()) == list(KINDS)
    sizes = frame.groupby("kind").size()
    assert sizes["encoder self-attention"] == 2 * 4 * 6 * 6
    assert sizes["decoder self-attention"] == 2 * 4 * 4 * 4
    assert sizes["decoder source attention"] == 2 * 4 * 4 * 6
    src_attn = frame[(frame.kind == "decoder source attention") & (frame.layer == 1)]
    expected = model.decoder.layers[1].src_attn.attn[0].detach().numpy()  # (heads, queries, keys)
    assert np.allclose(src_attn["weight"], expected[src_attn["head"], src_attn["query"], src_attn["key"]])
    assert set(src_attn["query_token"]) == set(position_labels(tgt_tokens))
    assert set(src_attn["key_token"]) == set(position_labels(src_tokens))
    causal = frame[(frame["kind"] == "decoder self-attention") & (frame["key"] > frame["query"])]
    assert (causal["weight"] == 0).all()  # the decoder never looks ahead


def test_model_attention_needs_the_weights_of_a_forward_pass(small_model):
    with pytest.raises(ValueError, match="forward pass"):
        model_attention(small_model, ["<s>"], ["<s>"])


def test_explorer_has_bound_parameters_and_filters_one_dataset(attended):
    frame = model_attention(*attended)
    spec = attention_explorer(frame).to_dict()
    params = {p["name"]: p for p in spec["params"]}
    assert params["kind"]["bind"]["input"] == "radio" and params["kind"]["bind"]["options"] == list(KINDS)
    assert params["layer"]["bind"] == {"input": "range", "min": 0, "max": 1, "step": 1, "name": "Layer: "}
    assert params["head"]["bind"]["input"] == "range" and params["head"]["bind"]["max"] == 3
    (flt,) = [t["filter"] for t in spec["transform"] if "filter" in t]
    assert all(name in str(flt) for name in ("kind", "layer", "head"))
    assert len(spec["datasets"]) == 1 and len(next(iter(spec["datasets"].values()))) == len(frame)


@pytest.mark.parametrize(
    ("kind", "layer", "head"), [("decoder source attention", 1, 2), ("encoder self-attention", 0, 3)]
)
def test_explorer_renders_the_chosen_head(attended, kind, layer, head):
    model, src_tokens, tgt_tokens = attended
    spec = attention_explorer(model_attention(model, src_tokens, tgt_tokens)).to_dict()
    for p in spec["params"]:  # what moving the widgets does
        p["value"] = {"kind": kind, "layer": layer, "head": head, "colour_scale": "shared"}[p["name"]]
    rows = tgt_tokens if kind.startswith("decoder") else src_tokens
    cells = rendered_cells(spec)
    assert len(cells) == len(rows) * len(src_tokens)
    ys = {c["query"]: c["y"] for c in cells}
    xs = {c["key"]: c["x"] for c in cells}
    assert sorted(ys, key=ys.get) == position_labels(rows)
    assert sorted(xs, key=xs.get) == position_labels(src_tokens)
    assert f"{kind}, layer {layer}, head {head}" in title_text(spec)


def test_explorer_rejects_a_frame_without_kinds():
    with pytest.raises(ValueError, match="model_attention"):
        attention_explorer(attention_frame(matrix(), ROWS, COLS))


# --- colour scales: shared [0, 1], each head's own max, each row's own max --------------------------

def weak_heads() -> np.ndarray:
    """(2, 4, 5): head 0 diffuse (weights up to 0.3), head 1 sharp (a weight of 0.9)."""
    a = np.full((2, 4, 5), 0.05)
    a[0] += np.random.default_rng(3).random((4, 5)) * 0.25
    a[1, 2, 3] = 0.9
    return a


def test_share_of_max_reaches_one_at_each_heads_and_rows_maximum():
    frame = attention_frame(weak_heads(), ROWS, COLS)
    by_head = share_of_max(frame, per="head")
    for head, rows in by_head.groupby("head"):
        assert rows["share_of_max"].max() == 1
        assert np.allclose(rows["share_of_max"], rows["weight"] / weak_heads()[head].max())
    by_row = share_of_max(frame, per="row")
    assert (by_row.groupby(["head", "query"])["share_of_max"].max() == 1).all()
    assert by_head.loc[by_head["head"] == 0, "scale_max"].iloc[0] < 0.31
    with pytest.raises(ValueError, match="per"):
        share_of_max(frame, per="layer")


def test_static_heatmap_scales_colour_by_the_heads_max_and_says_so():
    a = weak_heads()[0]
    shared = attention_heatmap(a, ROWS, COLS, "Weak").to_dict()
    assert shared["encoding"]["color"]["field"] == "weight"
    assert shared["encoding"]["color"]["scale"]["domain"] == [0, 1]  # the shared scale stays [0, 1]
    chart = attention_heatmap(a, ROWS, COLS, "Weak", scale="head")
    spec = chart.to_dict()
    assert spec["encoding"]["color"]["field"] == "share_of_max"
    assert spec["encoding"]["color"]["scale"]["domain"] == [0, 1]
    assert spec["encoding"]["color"]["legend"]["title"] == "Share of the head's largest weight"
    assert spec["title"]["subtitle"] == f"its largest weight: {a.max():.2f}"
    assert chart.data["share_of_max"].max() == 1
    assert np.allclose(chart.data["share_of_max"], chart.data["weight"] / a.max())
    svg = html.unescape(vlc.vegalite_to_svg(spec))
    assert "Share of the head's largest weight" in svg and "100%" in svg
    row = attention_heatmap(a, ROWS, COLS, "Weak", scale="row")
    assert (row.data.groupby("query")["share_of_max"].max() == 1).all()
    with pytest.raises(ValueError, match="scale"):
        attention_heatmap(a, ROWS, COLS, scale="global")


def test_layer_heatmaps_on_each_heads_scale_reach_one_in_every_panel():
    chart = layer_heatmaps(weak_heads(), ROWS, COLS, "Layer 0", scale="head")
    for h, panel in enumerate(chart.concat):
        assert panel.data["share_of_max"].max() == 1
        assert panel.data["scale_max"].iloc[0] == pytest.approx(weak_heads()[h].max())
    vlc.vegalite_to_svg(chart.to_dict())


def explorer_cells(frame: pd.DataFrame, scale: str, head: int) -> pd.DataFrame:
    """The cells Vega draws for the explorer set to one head and colour scale, with their tooltips."""
    spec = attention_explorer(frame, scale=scale).to_dict()
    for p in spec["params"]:
        p["value"] = {"kind": "encoder self-attention", "layer": 0, "head": head}.get(p["name"], p["value"])
    cells = [described(item) for item in rendered_marks(spec, "rect")]
    return pd.DataFrame(cells).astype({"weight": float, "colour value": float,
                                       "head's largest weight": float, "row's largest weight": float})


def weak_frame() -> pd.DataFrame:
    frame = attention_frame(weak_heads()[None], ROWS, COLS)  # (1 layer, 2 heads, 4, 5)
    frame.insert(0, "kind", "encoder self-attention")
    return frame


def test_explorer_has_a_colour_scale_widget():
    spec = attention_explorer(weak_frame(), scale="head").to_dict()
    params = {p["name"]: p for p in spec["params"]}
    bind = params["colour_scale"]["bind"]
    assert bind["input"] == "radio" and bind["options"] == list(SCALES)
    assert bind["labels"] == ["shared [0, 1]", "this head's own max", "each row's own max"]
    assert params["colour_scale"]["value"] == "head"
    assert spec["encoding"]["color"]["scale"]["domain"] == [0, 1]
    with pytest.raises(ValueError, match="scale"):
        attention_explorer(weak_frame(), scale="log")


@pytest.mark.parametrize("head", [0, 1])
def test_explorer_colours_by_the_weight_or_its_share_of_the_heads_or_rows_max(head):
    a = weak_heads()[head]
    shared = explorer_cells(weak_frame(), "shared", head)
    assert len(shared) == a.size
    assert np.allclose(shared["colour value"], shared["weight"], atol=1e-3)
    own = explorer_cells(weak_frame(), "head", head)
    assert own["colour value"].max() == pytest.approx(1, abs=1e-3)  # 1 at the head's maximum
    assert np.allclose(own["head's largest weight"], a.max(), atol=1e-3)
    # the tooltip rounds to 3 decimals: the weight's rounding, divided by a max near 0.3
    assert np.allclose(own["colour value"], own["weight"] / a.max(), atol=3e-3)
    rows = explorer_cells(weak_frame(), "row", head)
    assert np.allclose(rows.groupby("query")["colour value"].max(), 1, atol=1e-3)
    assert np.allclose(rows["row's largest weight"], rows["query"].map(
        {q: a[i].max() for i, q in enumerate(position_labels(ROWS))}), atol=1e-3)


def test_explorer_legend_and_title_say_which_scale_is_shown():
    spec = attention_explorer(weak_frame(), scale="head").to_dict()
    svg = html.unescape(vlc.vegalite_to_svg(spec))
    assert "100% of head max" in svg and "share of this head's largest weight" in svg
    spec["params"] = [dict(p, value="row") if p["name"] == "colour_scale" else p for p in spec["params"]]
    assert "100% of row max" in html.unescape(vlc.vegalite_to_svg(spec))
    spec["params"] = [dict(p, value="shared") if p["name"] == "colour_scale" else p for p in spec["params"]]
    svg = html.unescape(vlc.vegalite_to_svg(spec))
    assert "of head max" not in svg and "1.0" in svg
    assert "one scale [0, 1] for every head" in svg


# --- training curves --------------------------------------------------------------------------------

def history() -> History:
    h = History()
    h.steps = [{"step": s, "epoch": (s - 1) // 3, "loss": 3.0 / s, "lr": 1e-3 * s} for s in range(1, 7)]
    h.epochs = [
        {"epoch": 0, "step": 3, "train_loss": 2.0, "eval_loss": 1.5, "eval_accuracy": 0.25, "seconds": 1.0},
        {"epoch": 1, "step": 6, "train_loss": 0.7, "eval_loss": 0.6, "eval_accuracy": 0.75, "seconds": 1.0},
    ]
    return h


def test_training_chart_contains_the_history():
    chart = training_curves_chart(history())
    spec = chart.to_dict()
    vlc.vegalite_to_svg(spec)  # valid Vega-Lite
    data = [pd.DataFrame(v) for v in spec["datasets"].values()]
    everything = pd.concat(data, ignore_index=True)
    per_step = everything[everything.series == "train loss (per step)"].sort_values("step")
    assert per_step["loss"].tolist() == [3.0 / s for s in range(1, 7)]
    lr = everything[everything.series == "learning rate"].sort_values("step")
    assert lr["lr"].tolist() == pytest.approx([1e-3 * s for s in range(1, 7)])
    eval_loss = everything[everything.series == "eval loss (per epoch)"].sort_values("step")
    assert eval_loss[["step", "loss"]].values.tolist() == [[3, 1.5], [6, 0.6]]
    acc = everything[everything.series == "eval token accuracy"].sort_values("step")
    assert acc["eval_accuracy"].tolist() == [0.25, 0.75]
    svg = html.unescape(vlc.vegalite_to_svg(spec))
    for text in ("Optimizer step", "Learning rate", "Token accuracy", "Series", "eval loss (per epoch)"):
        assert text in svg


def test_training_chart_without_eval_has_no_eval_panels():
    h = history()
    h.epochs = [{k: v for k, v in row.items() if not k.startswith("eval")} for row in h.epochs]
    spec = training_curves_chart(h).to_dict()
    assert len(spec["vconcat"]) == 2
    assert "eval" not in str([d for d in spec["datasets"].values()])
    vlc.vegalite_to_svg(spec)


def test_runs_loss_chart_draws_each_run_at_every_step():
    runs = {"1 process": [3.0 / s for s in range(1, 6)], "2 processes (torchrun)": [3.1 / s for s in range(1, 6)]}
    steps = pd.concat([pd.DataFrame({"step": range(1, 6), "epoch": 0, "loss": losses}).assign(run=name)
                       for name, losses in runs.items()])
    title = "Copy task: one process and two, the same loss at every step"
    spec = runs_loss_chart(steps, title=title).to_dict(validate=True)
    (rows,) = spec["datasets"].values()
    assert rows == steps.to_dict("records")
    enc = spec["encoding"]
    assert enc["color"] == {"field": "run", "title": None, "type": "nominal"} and enc["strokeDash"]["field"] == "run"
    assert enc["y"]["scale"] == {"type": "log"} and spec["mark"]["point"] == {"size": 18}
    svg = html.unescape(vlc.vegalite_to_svg(spec))
    for text in (title, "optimizer step", "training loss per token (log scale)", "2 processes (torchrun)"):
        assert text in svg
    with pytest.raises(ValueError, match="run"):
        runs_loss_chart(steps.drop(columns="run"))


def test_training_chart_rejects_an_empty_history():
    with pytest.raises(ValueError, match="empty"):
        training_curves_chart(History())
