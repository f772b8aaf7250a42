"""Label smoothing (paper, section 5.4): the smoothed target distribution and its
penalty on over-confidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from src import checks
from src.shared.loss import LabelSmoothing


def label_smoothing_frame(
    vocab_size: int = 5,
    smoothing: float = 0.4,
    targets: Sequence[int] = (2, 1, 0, 3, 3),
    padding_idx: int = 0,
) -> pd.DataFrame:
    """`LabelSmoothing.true_dist` for each target, one row per (example, token): the
    distribution trained towards.
    """
    crit = LabelSmoothing(vocab_size, padding_idx=padding_idx, smoothing=smoothing)
    target = torch.as_tensor(list(targets), dtype=torch.long)  # (examples,)
    if target.dim() != 1 or target.numel() == 0:
        raise ValueError(
            f"targets must be a non-empty sequence of token ids, got {targets!r}"
        )
    # the prediction does not matter
    uniform = torch.full((target.numel(), vocab_size), -math.log(vocab_size))
    crit(uniform, target)
    dist = crit.true_dist.numpy()  # (examples, vocab_size)
    example, token = np.indices(dist.shape)
    tgt = target.numpy()[example.ravel()]
    return pd.DataFrame(
        {
            "example": example.ravel(),
            "target": tgt,
            "row": np.char.add(
                np.char.add(example.ravel().astype(str), ": target "),
                np.where(tgt == padding_idx, "pad", tgt.astype(str)),
            ),
            "token": token.ravel(),
            "probability": dist.ravel(),
        }
    )


def label_smoothing_chart(
    vocab_size: int = 5,
    smoothing: float = 0.4,
    targets: Sequence[int] = (2, 1, 0, 3, 3),
    padding_idx: int = 0,
) -> alt.LayerChart:
    """Heatmap of the smoothed targets: 1 - smoothing on the true token, the rest
    spread, nothing on padding.
    """
    df = label_smoothing_frame(vocab_size, smoothing, targets, padding_idx)
    order = list(dict.fromkeys(df["row"]))
    base = alt.Chart(df).encode(
        x=alt.X("token:O", title="Vocabulary index", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("row:O", title="Example (its target token)", sort=order),
        tooltip=[
            alt.Tooltip("example:O", title="example"),
            alt.Tooltip("target:O", title="target token"),
            alt.Tooltip("token:O", title="vocabulary index"),
            alt.Tooltip("probability:Q", title="target probability", format=".3f"),
        ],
    )
    cells = base.mark_rect(stroke="white", strokeWidth=1).encode(
        color=alt.Color(
            "probability:Q",
            title="Target probability",
            scale=alt.Scale(scheme="viridis", domain=[0, 1]),
        )
    )
    text = base.mark_text(fontSize=12).encode(
        text=alt.Text("probability:Q", format=".2f"),
        color=alt.condition(
            alt.datum.probability > 0.5, alt.value("black"), alt.value("white")
        ),
    )
    cell = 60 if vocab_size <= 8 else 24
    return (cells + text).properties(
        width=min(cell * vocab_size, 560),
        height=min(cell * len(order), 400),
        title=(
            f"Label smoothing targets, smoothing = {smoothing:g}, padding index "
            f"{padding_idx}"
        ),
    )


def smoothing_penalty_frame(
    vocab_size: int = 5,
    smoothings: Sequence[float] = (0.0, 0.1, 0.3),
    points: int = 200,
) -> pd.DataFrame:
    """Loss of one token whose true id is 1 (padding 0) when the model puts probability
    p on it.

    The model spreads 1 - p evenly over the other vocab_size - 1 tokens. The loss per
    example is the `LabelSmoothing` criterion's KL divergence, computed for all p at
    once.
    """
    vocab_size = checks.positive_int("vocab_size", vocab_size)
    if vocab_size < 3:
        raise ValueError(
            "vocab_size must be >= 3 (padding, the true token and another), got "
            f"{vocab_size}"
        )
    points = checks.positive_int("points", points)
    if not smoothings:
        raise ValueError("smoothings must hold at least one value")
    grid = np.linspace(0.01, 0.99, points)
    # include each minimum
    p = np.unique(np.concatenate([grid, [1 - s for s in smoothings if 0 < s < 1]]))
    conf = torch.as_tensor(p, dtype=torch.float64)  # (points,)
    # (points, vocab_size)
    probs = ((1 - conf) / (vocab_size - 1)).unsqueeze(1).repeat(1, vocab_size)
    probs[:, 1] = conf
    log_probs = probs.log()
    target = torch.ones(len(p), dtype=torch.long)  # (points,)
    frames = []
    # one criterion per smoothing value, each applied to every p at once
    for s in smoothings:
        crit = LabelSmoothing(vocab_size, padding_idx=0, smoothing=s)
        crit(log_probs, target)  # fills crit.true_dist, (points, vocab_size)
        # (points,) the criterion's terms
        loss = F.kl_div(log_probs, crit.true_dist, reduction="none").sum(dim=1)
        frames.append(
            pd.DataFrame(
                {
                    "confidence": p,
                    "loss": loss.numpy(),
                    "smoothing": f"{s:g}",
                    "minimum": np.isclose(p, 1 - s),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def smoothing_penalty_chart(
    vocab_size: int = 5,
    smoothings: Sequence[float] = (0.0, 0.1, 0.3),
    points: int = 200,
) -> alt.LayerChart:
    """Loss against the model's confidence in the true token: with smoothing,
    over-confidence costs loss again.
    """
    df = smoothing_penalty_frame(vocab_size, smoothings, points)
    order = list(dict.fromkeys(df["smoothing"]))
    base = alt.Chart(df).encode(
        x=alt.X(
            "confidence:Q",
            title="Model's probability of the true token",
            scale=alt.Scale(domain=[0, 1]),
        ),
        y=alt.Y("loss:Q", title="Loss (KL divergence to the target)"),
        color=alt.Color("smoothing:N", title="Smoothing ε", sort=order),
        tooltip=[
            alt.Tooltip("smoothing:N", title="smoothing ε"),
            alt.Tooltip("confidence:Q", title="p(true token)", format=".3f"),
            alt.Tooltip("loss:Q", title="loss", format=".4f"),
        ],
    )
    lines = base.mark_line()
    minima = base.transform_filter(alt.datum.minimum).mark_point(filled=True, size=60)
    return (lines + minima).properties(
        width=480,
        height=300,
        title=(
            "Label smoothing penalises over-confidence: the loss is least at p = 1 - ε"
        ),
    )
