"""The causal (subsequent) mask of the decoder's self-attention as a heatmap."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from src.transformer.attention import subsequent_mask

ALLOWED, MASKED = "may attend", "masked"


def causal_mask_frame(size: int = 20) -> pd.DataFrame:
    """One row per (query, key) pair of `subsequent_mask(size)`, with `allowed` True
    where key <= query.
    """
    mask = subsequent_mask(size)[0].numpy()  # (size, size), rows are queries
    query, key = np.indices(mask.shape)
    allowed = mask.ravel()
    return pd.DataFrame(
        {
            "query": query.ravel(),
            "key": key.ravel(),
            "allowed": allowed,
            "mask": np.where(allowed, ALLOWED, MASKED),
        }
    )


def causal_mask_chart(size: int = 20) -> alt.Chart:
    """Heatmap of the causal mask: query position i (rows) may attend to key position j
    (columns) iff j <= i.
    """
    df = causal_mask_frame(size)
    return (
        alt.Chart(df)
        .mark_rect(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("key:O", title="Key position j", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("query:O", title="Query position i"),
            color=alt.Color(
                "mask:N",
                title="Mask",
                scale=alt.Scale(domain=[ALLOWED, MASKED], range=["#31688e", "#e5e5e5"]),
            ),
            tooltip=[
                alt.Tooltip("query:O", title="query i"),
                alt.Tooltip("key:O", title="key j"),
                alt.Tooltip("mask:N", title="mask"),
            ],
        )
        .properties(
            width=450, height=450, title=f"Causal mask: subsequent_mask({size})"
        )
    )
