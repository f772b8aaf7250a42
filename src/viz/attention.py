"""Attention heatmaps: one head, every head of a layer, and an interactive explorer of a
whole model.

Every chart puts queries (the positions that attend) on the y axis and keys (the
positions attended to) on the x axis, in sequence order. Token labels carry their
position ("03 seven"), so a token that occurs twice keeps two rows and the axes cannot
be re-sorted alphabetically by mistake.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd
import torch

KINDS = ("encoder self-attention", "decoder self-attention", "decoder source attention")
"""The three attentions of the model, in the order of the paper's figure 1."""

_AXIS_TITLES = {  # what labels the queries (rows) and the keys (columns) of each kind
    "encoder self-attention": ("source tokens", "source tokens"),
    "decoder self-attention": (
        "target tokens (decoder input)",
        "target tokens (decoder input)",
    ),
    "decoder source attention": ("target tokens (decoder input)", "source tokens"),
}
# one scale for every head: colours compare across charts
_COLOR = alt.Scale(scheme="viridis", domain=[0, 1])
_LEGEND = alt.Legend(title="Attention weight", format=".1f")
# or each head (or each row) on its own scale: the weight divided by the head's (the
# row's) largest weight, so that a diffuse head (weights 0.1 to 0.3) shows its pattern
SCALES = {
    "shared": "shared [0, 1]",
    "head": "this head's own max",
    "row": "each row's own max",
}
_SCALE_TEXT = {
    "shared": "colour: attention weight, one scale [0, 1] for every head",
    "head": "colour: share of this head's largest weight",
    "row": "colour: share of the row's largest weight",
}


def _check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    return scale


def _color(scale: str) -> alt.Color:
    """Colour by the weight on [0, 1], or by `share_of_max` (scales 'head', 'row')."""
    if _check_scale(scale) == "shared":
        return alt.Color("weight:Q", scale=_COLOR, legend=_LEGEND)
    legend = alt.Legend(title=f"Share of the {scale}'s largest weight", format=".0%")
    return alt.Color("share_of_max:Q", scale=_COLOR, legend=legend)


def position_labels(tokens: Sequence[object]) -> list[str]:
    """Prefix each token with its zero-padded position: ["<s>", "7", "7"] -> ["00 <s>",
    "01 7", "02 7"].
    """
    width = max(2, len(str(len(tokens) - 1)))
    return [f"{i:0{width}d} {t}" for i, t in enumerate(tokens)]


def _as_array(attn: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(attn, torch.Tensor):
        attn = attn.detach().to("cpu", torch.float64).numpy()
    return np.asarray(attn, dtype=np.float64)


def attention_frame(
    attn: torch.Tensor | np.ndarray,
    row_tokens: Sequence[object],
    col_tokens: Sequence[object],
) -> pd.DataFrame:
    """Attention weights as a tidy DataFrame, one row per (layer, head, query, key).

    `attn` is (queries, keys), (heads, queries, keys) or (layers, heads, queries, keys).
    `row_tokens` label the queries, `col_tokens` the keys. Columns: layer, head, query,
    key (indices), query_token, key_token (position-prefixed labels) and weight, with
    weight == attn[layer, head, query, key].
    """
    a = _as_array(attn)
    if a.ndim not in (2, 3, 4):
        raise ValueError(
            "attn must have shape (queries, keys), (heads, queries, keys) or (layers, "
            f"heads, queries, keys), got {a.shape}"
        )
    a = a.reshape((1,) * (4 - a.ndim) + a.shape)  # (layers, heads, queries, keys)
    layers, heads, queries, keys = a.shape
    if len(row_tokens) != queries:
        raise ValueError(
            f"row_tokens has {len(row_tokens)} labels but attn has {queries} queries "
            "(rows)"
        )
    if len(col_tokens) != keys:
        raise ValueError(
            f"col_tokens has {len(col_tokens)} labels but attn has {keys} keys "
            "(columns)"
        )
    # each (layers * heads * queries * keys,)
    layer, head, query, key = (i.ravel() for i in np.indices(a.shape))
    rows = np.array(position_labels(row_tokens), dtype=object)
    cols = np.array(position_labels(col_tokens), dtype=object)
    return pd.DataFrame(
        {
            "layer": layer,
            "head": head,
            "query": query,
            "key": key,
            "query_token": rows[query],
            "key_token": cols[key],
            "weight": a.ravel(),  # C order, the same order as np.indices
        }
    )


def _tooltip(with_kind: bool = False, extra=()) -> list[alt.Tooltip]:
    tips = [
        alt.Tooltip("query_token:N", title="query"),
        alt.Tooltip("key_token:N", title="key"),
        alt.Tooltip("weight:Q", title="weight", format=".3f"),
        alt.Tooltip("layer:O", title="layer"),
        alt.Tooltip("head:O", title="head"),
        *(
            alt.Tooltip(f"{field}:Q", title=title, format=".3f")
            for field, title in extra
        ),
    ]
    return ([alt.Tooltip("kind:N", title="attention")] if with_kind else []) + tips


def share_of_max(frame: pd.DataFrame, per: str = "head") -> pd.DataFrame:
    """`frame` (of `attention_frame`) with `scale_max`, the largest weight of the
    cell's head (`per` 'head') or of its query row ('row'), and `share_of_max` =
    weight / scale_max: 1 at the largest weight of each head (each row).
    """
    if per not in ("head", "row"):
        raise ValueError(f"per must be 'head' or 'row', got {per!r}")
    groups = [c for c in ("kind", "layer", "head") if c in frame.columns]
    groups += ["query"] if per == "row" else []
    out = frame.copy()
    out["scale_max"] = out.groupby(groups)["weight"].transform("max")
    out["share_of_max"] = out["weight"] / out["scale_max"]
    return out


def _heatmap(
    df: pd.DataFrame,
    row_labels: list[str],
    col_labels: list[str],
    title: str,
    size: int,
    query_title: str,
    key_title: str,
    scale: str = "shared",
) -> alt.Chart:
    extra = ()
    if _check_scale(scale) != "shared":
        df = share_of_max(df, per=scale)
        extra = [("scale_max", f"{scale}'s largest weight"), ("share_of_max", "share")]
        if scale == "head":
            most = df["scale_max"].max()
            title = alt.TitleParams(title, subtitle=f"its largest weight: {most:.2f}")
    return (
        alt.Chart(df, title=title)
        .mark_rect()
        .encode(
            x=alt.X(
                "key_token:O",
                sort=col_labels,
                title=key_title,
                axis=alt.Axis(labelAngle=-45),
            ),
            y=alt.Y("query_token:O", sort=row_labels, title=query_title),
            color=_color(scale),
            tooltip=_tooltip(extra=extra),
        )
        .properties(width=size, height=size)
    )


def attention_heatmap(
    attn_2d: torch.Tensor | np.ndarray,
    row_tokens: Sequence[object],
    col_tokens: Sequence[object],
    title: str = "Attention",
    *,
    size: int = 260,
    query_title: str = "Query",
    key_title: str = "Key",
    scale: str = "shared",
) -> alt.Chart:
    """Heatmap of one head: (queries, keys) weights, query tokens on the y axis, key
    tokens on the x axis. Colour scale: 'shared' [0, 1], or the 'head''s own max.
    """
    a = _as_array(attn_2d)
    if a.ndim != 2:
        raise ValueError(f"attn_2d must have shape (queries, keys), got {a.shape}")
    df = attention_frame(a, row_tokens, col_tokens)
    return _heatmap(
        df,
        position_labels(row_tokens),
        position_labels(col_tokens),
        title,
        size,
        query_title,
        key_title,
        scale,
    )


def layer_heatmaps(
    attn: torch.Tensor | np.ndarray,
    row_tokens: Sequence[object],
    col_tokens: Sequence[object],
    title: str = "Attention",
    *,
    columns: int = 2,
    size: int = 220,
    query_title: str = "Query",
    key_title: str = "Key",
    scale: str = "shared",
) -> alt.ConcatChart:
    """Every head of one layer in a grid of `columns`. `attn`: (heads, queries, keys) or
    (1, heads, queries, keys). Colour scale: 'shared' [0, 1], or each 'head''s own max.
    """
    a = _as_array(attn)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]  # (heads, queries, keys): the batch of the seed's `.attn`
    if a.ndim != 3:
        raise ValueError(
            "attn must have shape (heads, queries, keys) or (1, heads, queries, "
            f"keys), got {a.shape}"
        )
    charts = [
        attention_heatmap(
            a[h],
            row_tokens,
            col_tokens,
            f"Head {h}",
            size=size,
            query_title=query_title,
            key_title=key_title,
            scale=scale,
        )
        for h in range(a.shape[0])
    ]
    return alt.concat(*charts, columns=columns, title=title).resolve_scale(
        color="shared"
    )


def model_attention(
    model: torch.nn.Module,
    src_tokens: Sequence[object],
    tgt_tokens: Sequence[object],
    batch_index: int = 0,
) -> pd.DataFrame:
    """Every attention weight of the model's last forward pass, as one tidy DataFrame
    with a `kind` column.

    Reads `.attn` (batch, heads, queries, keys) of each layer's encoder self-attention,
    decoder self-attention and decoder source attention, for the example `batch_index`
    of the batch.
    `src_tokens` label the source positions, `tgt_tokens` the decoder input positions.
    """
    getters = {
        "encoder self-attention": (
            lambda layer: layer.self_attn.attn,
            model.encoder.layers,
            src_tokens,
            src_tokens,
        ),
        "decoder self-attention": (
            lambda layer: layer.self_attn.attn,
            model.decoder.layers,
            tgt_tokens,
            tgt_tokens,
        ),
        "decoder source attention": (
            lambda layer: layer.src_attn.attn,
            model.decoder.layers,
            tgt_tokens,
            src_tokens,
        ),
    }
    frames = []
    for kind, (get, layers, rows, cols) in getters.items():
        weights = [get(layer) for layer in layers]
        if any(w is None for w in weights):
            raise ValueError(
                f"{kind}: a layer has no attention weights (.attn is None). Run a "
                "forward pass with fused attention off "
                "(model.set_fused_attention(False)) first."
            )
        # (layers, heads, queries, keys)
        stacked = torch.stack([w[batch_index] for w in weights])
        frame = attention_frame(stacked, rows, cols)
        frame.insert(0, "kind", kind)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def attention_explorer(
    frame: pd.DataFrame,
    title: str = "Attention explorer",
    size: int = 320,
    *,
    scale: str = "shared",
) -> alt.Chart:
    """One heatmap with widgets: pick the attention kind, layer and head, and the colour
    scale; works in a static page.

    `frame` is `model_attention(...)`'s output. The widgets are Vega-Lite parameters
    bound to radio buttons and two sliders; a filter on them selects the rows of one
    head of the dataset. `scale` is the colour scale shown first: 'shared' [0, 1], the
    'head''s own max or each 'row''s own max (the weight divided by the largest weight
    of the head, or of the row).
    """
    _check_scale(scale)
    missing = {
        "kind",
        "layer",
        "head",
        "query",
        "key",
        "query_token",
        "key_token",
        "weight",
    } - set(frame.columns)
    if missing:
        raise ValueError(
            f"frame lacks the columns {sorted(missing)}: pass the output of "
            "model_attention"
        )
    kinds = [k for k in KINDS if k in set(frame["kind"])] + sorted(
        set(frame["kind"]) - set(KINDS)
    )
    n_layers, n_heads = int(frame["layer"].max()) + 1, int(frame["head"].max()) + 1
    kind = alt.param(
        name="kind",
        value=kinds[0],
        bind=alt.binding_radio(options=kinds, name="Attention: "),
    )
    layer = alt.param(
        name="layer",
        value=0,
        bind=alt.binding_range(min=0, max=n_layers - 1, step=1, name="Layer: "),
    )
    head = alt.param(
        name="head",
        value=0,
        bind=alt.binding_range(min=0, max=n_heads - 1, step=1, name="Head: "),
    )
    colour_scale = alt.param(
        name="colour_scale",
        value=scale,
        bind=alt.binding_radio(
            options=list(SCALES), labels=list(SCALES.values()), name="Colour scale: "
        ),
    )
    # The title follows the widgets; its second line says which tokens label the rows
    # and the columns.
    sides = {
        k: "rows: {}, columns: {}".format(*_AXIS_TITLES.get(k, ("query", "key")))
        for k in kinds
    }
    sides_table = "{" + ", ".join(f"{k!r}: {v!r}" for k, v in sides.items()) + "}"
    scale_table = "{" + ", ".join(f"{k!r}: {v!r}" for k, v in _SCALE_TEXT.items()) + "}"
    title_expr = (
        f"[{title!r} + ': ' + kind + ', layer ' + layer + ', head ' + head, "
        f"{sides_table}[kind], {scale_table}[colour_scale]]"
    )
    # the legend's labels say what the colour is: a weight, or a share of a maximum
    labels = (
        "colour_scale == 'shared' ? datum.label : "
        "format(datum.value, '.0%') + ' of ' + colour_scale + ' max'"
    )

    return (
        alt.Chart(frame)
        .mark_rect()
        .encode(
            x=alt.X(
                "key_token:O",
                sort=alt.EncodingSortField("key", op="min", order="ascending"),
                title="Key (position and token)",
                axis=alt.Axis(labelAngle=-45),
            ),
            y=alt.Y(
                "query_token:O",
                sort=alt.EncodingSortField("query", op="min", order="ascending"),
                title="Query (position and token)",
            ),
            color=alt.Color(
                "shown:Q",
                scale=_COLOR,
                legend=alt.Legend(
                    title="Attention weight", format=".1f", labelExpr=labels
                ),
            ),
            tooltip=_tooltip(
                with_kind=True,
                extra=[
                    ("head_max", "head's largest weight"),
                    ("row_max", "row's largest weight"),
                    ("shown", "colour value"),
                ],
            ),
        )
        .add_params(kind, layer, head, colour_scale)
        .transform_filter(
            (alt.datum.kind == kind)
            & (alt.datum.layer == layer)
            & (alt.datum.head == head)
        )
        .transform_joinaggregate(head_max="max(weight)")  # over the one head left
        .transform_joinaggregate(row_max="max(weight)", groupby=["query"])
        .transform_calculate(  # the weight, or its share of the head's or row's max
            shown=alt.expr.if_(
                colour_scale == "shared",
                alt.datum.weight,
                alt.datum.weight
                / alt.expr.if_(
                    colour_scale == "head", alt.datum.head_max, alt.datum.row_max
                ),
            ),
        )
        .properties(
            width=size,
            height=size,
            title=alt.TitleParams(text=alt.expr(title_expr)),
        )
    )
