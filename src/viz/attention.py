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


def _tooltip(with_kind: bool = False) -> list[alt.Tooltip]:
    tips = [
        alt.Tooltip("query_token:N", title="query"),
        alt.Tooltip("key_token:N", title="key"),
        alt.Tooltip("weight:Q", title="weight", format=".3f"),
        alt.Tooltip("layer:O", title="layer"),
        alt.Tooltip("head:O", title="head"),
    ]
    return ([alt.Tooltip("kind:N", title="attention")] if with_kind else []) + tips


def _heatmap(
    df: pd.DataFrame,
    row_labels: list[str],
    col_labels: list[str],
    title: str,
    size: int,
    query_title: str,
    key_title: str,
) -> alt.Chart:
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
            color=alt.Color("weight:Q", scale=_COLOR, legend=_LEGEND),
            tooltip=_tooltip(),
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
) -> alt.Chart:
    """Heatmap of one head: (queries, keys) weights, query tokens on the y axis, key
    tokens on the x axis.
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
) -> alt.ConcatChart:
    """Every head of one layer in a grid of `columns`. `attn`: (heads, queries, keys) or
    (1, heads, queries, keys).
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
    frame: pd.DataFrame, title: str = "Attention explorer", size: int = 320
) -> alt.Chart:
    """One heatmap with widgets: pick the attention kind, layer and head; works in a
    static page.

    `frame` is `model_attention(...)`'s output. The widgets are Vega-Lite parameters
    bound to a radio button and two sliders; a filter on them selects the rows of one
    head of the dataset.
    """
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
    # The title follows the widgets; its second line says which tokens label the rows
    # and the columns.
    sides = {
        k: "rows: {}, columns: {}".format(*_AXIS_TITLES.get(k, ("query", "key")))
        for k in kinds
    }
    sides_table = "{" + ", ".join(f"{k!r}: {v!r}" for k, v in sides.items()) + "}"
    title_expr = (
        f"[{title!r} + ': ' + kind + ', layer ' + layer + ', head ' + head, "
        f"{sides_table}[kind]]"
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
            color=alt.Color("weight:Q", scale=_COLOR, legend=_LEGEND),
            tooltip=_tooltip(with_kind=True),
        )
        .add_params(kind, layer, head)
        .transform_filter(
            (alt.datum.kind == kind)
            & (alt.datum.layer == layer)
            & (alt.datum.head == head)
        )
        .properties(
            width=size,
            height=size,
            title=alt.TitleParams(text=alt.expr(title_expr)),
        )
    )
