"""The learning-rate schedule of equation (3) for several settings."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from src import checks
from src.shared.lr_scheduler import rate

DEFAULT_CONFIGS: tuple[tuple[int, float, int], ...] = (
    (512, 1, 4000),
    (512, 1, 8000),
    (256, 1, 4000),
)


def schedule_label(model_size: int, factor: float, warmup: int) -> str:
    """Legend label of one (d_model, factor, warmup) setting."""
    label = f"d_model={model_size}, warmup={warmup}"
    return label if factor == 1 else f"{label}, factor={factor:g}"


def lr_schedule_frame(
    configs: Sequence[tuple[int, float, int]] = DEFAULT_CONFIGS,
    steps: int = 20000,
    points: int = 200,
) -> pd.DataFrame:
    """`rate(step, d_model, factor, warmup)` at `points` steps in [1, steps] plus each
    warm-up step (the peak).

    Sampling keeps the page small; each warm-up step is included so the peak is drawn
    exactly.
    """
    steps = checks.positive_int("steps", steps)
    points = checks.positive_int("points", points)
    if not configs:
        raise ValueError(
            "configs must hold at least one (d_model, factor, warmup) setting"
        )
    warmups = [w for _, _, w in configs if w <= steps]
    grid = np.unique(
        np.concatenate([np.linspace(1, steps, points).round(), warmups]).astype(
            np.int64
        )
    )
    frames = [
        pd.DataFrame(
            {
                "step": grid,
                # `rate` is the scalar function the optimizer uses: the chart shows that
                # code, not a copy.
                "lr": np.fromiter(
                    (rate(int(s), d, f, w) for s in grid),
                    dtype=np.float64,
                    count=len(grid),
                ),
                "config": schedule_label(d, f, w),
                "peak": grid == w,
            }
        )
        for d, f, w in configs
    ]
    return pd.concat(frames, ignore_index=True)


def lr_schedule_chart(
    configs: Sequence[tuple[int, float, int]] = DEFAULT_CONFIGS,
    steps: int = 20000,
    points: int = 200,
) -> alt.LayerChart:
    """Learning rate against training step for each (d_model, factor, warmup): linear
    warm-up, then step^-0.5 decay.
    """
    df = lr_schedule_frame(configs, steps, points)
    order = list(dict.fromkeys(df["config"]))
    tooltip = [
        alt.Tooltip("config:N", title="setting"),
        alt.Tooltip("step:Q", title="step", format=","),
        alt.Tooltip("lr:Q", title="learning rate", format=".3e"),
    ]
    base = alt.Chart(df).encode(
        x=alt.X("step:Q", title="Training step"),
        y=alt.Y("lr:Q", title="Learning rate", axis=alt.Axis(format=".1e")),
        color=alt.Color(
            "config:N",
            title="Setting",
            sort=order,
            legend=alt.Legend(orient="top-right"),
        ),
        tooltip=tooltip,
    )
    line = base.mark_line()
    peaks = base.transform_filter(alt.datum.peak).mark_point(filled=True, size=60)
    return (line + peaks).properties(
        width=560,
        height=300,
        title="Learning-rate schedule, equation (3): peaks at step = warmup",
    )
