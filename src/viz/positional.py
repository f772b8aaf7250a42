"""Charts of the sinusoidal positional encoding (paper, section 3.5)."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd
import torch

from src import checks
from src.transformer.embeddings import PositionalEncoding


def positional_encoding_table(d_model: int = 64, max_len: int = 100) -> np.ndarray:
    """What `PositionalEncoding` adds to an all-zero input: the (max_len, d_model) table
    PE(pos, dim).
    """
    pe = PositionalEncoding(d_model, dropout=0.0, max_len=max_len).eval()
    with torch.no_grad():
        return pe(torch.zeros(1, max_len, d_model))[0].numpy()  # (max_len, d_model)


def positional_encoding_frame(
    d_model: int = 64, max_len: int = 100, dims: Sequence[int] = (4, 5, 6, 7)
) -> pd.DataFrame:
    """Long table of PE(pos, dim) for the chosen dimensions: columns position, dim,
    dimension, value.
    """
    dims = [checks.non_negative_int("dim", d) for d in dims]
    if not dims:
        raise ValueError("dims must name at least one dimension")
    if max(dims) >= d_model:
        raise ValueError(
            f"dims must be in [0, {d_model - 1}] for d_model={d_model}, got {max(dims)}"
        )
    table = positional_encoding_table(d_model, max_len)[:, dims]  # (max_len, len(dims))
    dim = np.tile(dims, max_len)
    # one label per dimension
    labels = np.array([f"dim {d} ({'sin' if d % 2 == 0 else 'cos'})" for d in dims])
    return pd.DataFrame(
        {
            "position": np.repeat(np.arange(max_len), len(dims)),
            "dim": dim,
            "dimension": np.tile(labels, max_len),
            "value": table.ravel(),
        }
    )


def positional_encoding_chart(
    d_model: int = 64, max_len: int = 100, dims: Sequence[int] = (4, 5, 6, 7)
) -> alt.Chart:
    """PE(pos, dim) against position for a few dimensions: sines (even) and cosines
    (odd) of falling frequency.
    """
    df = positional_encoding_frame(d_model, max_len, dims)
    order = list(dict.fromkeys(df["dimension"]))
    pick = alt.selection_point(fields=["dimension"], bind="legend")
    return (
        alt.Chart(df)
        .mark_line()
        .encode(
            x=alt.X("position:Q", title="Position pos"),
            y=alt.Y("value:Q", title="PE(pos, dim)", scale=alt.Scale(domain=[-1, 1])),
            color=alt.Color("dimension:N", title="Dimension", sort=order),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.15)),
            tooltip=[
                alt.Tooltip("position:Q", title="position"),
                alt.Tooltip("dimension:N", title="dimension"),
                alt.Tooltip("value:Q", title="PE", format=".4f"),
            ],
        )
        .add_params(pick)
        .properties(
            width=420,
            height=260,
            title=f"Positional encoding, d_model = {d_model} (click the legend)",
        )
    )


def positional_encoding_heatmap(d_model: int = 64, max_len: int = 100) -> alt.Chart:
    """Every PE(pos, dim) as a heatmap: positions across, dimensions down.

    The data is kept wide (one row per position) and folded to long form by Vega-Lite,
    so the page carries max_len rows rather than max_len * d_model.
    """
    # (max_len, d_model)
    table = positional_encoding_table(d_model, max_len).astype(np.float64).round(5)
    columns = [str(d) for d in range(d_model)]
    df = pd.DataFrame(table, columns=columns)
    df.insert(0, "position", np.arange(max_len))
    every = max(1, max_len // 10)
    return (
        alt.Chart(df)
        .transform_fold(columns, as_=["dim_name", "value"])
        .transform_calculate(dim="toNumber(datum.dim_name)")
        .mark_rect()
        .encode(
            x=alt.X(
                "position:O",
                title="Position pos",
                axis=alt.Axis(
                    labelAngle=0,
                    ticks=False,
                    labelExpr=f"datum.value % {every} === 0 ? datum.label : ''",
                ),
            ),
            y=alt.Y(
                "dim:O",
                title="Dimension",
                axis=alt.Axis(
                    ticks=False, labelExpr="datum.value % 8 === 0 ? datum.label : ''"
                ),
            ),
            color=alt.Color(
                "value:Q",
                title="PE value",
                scale=alt.Scale(scheme="blueorange", domain=[-1, 1]),
            ),
            tooltip=[
                alt.Tooltip("position:O", title="position"),
                alt.Tooltip("dim:O", title="dimension"),
                alt.Tooltip("value:Q", title="PE", format=".4f"),
            ],
        )
        .properties(
            width=560,
            height=320,
            title=f"Positional encoding table, d_model = {d_model}",
        )
    )
