"""Charts of the ablation lab (`src.ablations`): loss curves of each ablation against
the baseline, and held-out scores with each seed's point.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from src.viz.training import log_or_symlog

BASELINE_COLOR, ABLATION_COLOR = "#969696", "#d62728"


def loss_frame(cells: Sequence[dict], window: int = 10) -> pd.DataFrame:
    """Long table of the loss curves of result cells: `curve` 'train' (the mean of
    each `window` steps, drawn at the window's last step) and 'held-out' (its rows).
    """
    if window < 1:
        raise ValueError(f"window must be a positive integer, got {window}")
    rows = []
    for c in cells:
        steps = c["steps"]
        for end in range(window, len(steps) + 1, window):
            mean = sum(steps[end - window : end]) / window
            rows.append((c["config"], c["seed"], "train", end, mean))
        rows += [
            (c["config"], c["seed"], "held-out", r["step"], r["valid_nll"])
            for r in c["held_out"]
        ]
    return pd.DataFrame(rows, columns=["config", "seed", "curve", "step", "loss"])


def loss_curves_chart(
    cells: Sequence[dict],
    curve: str,
    baseline: str,
    title: str,
    columns: int = 3,
    width: int = 190,
) -> alt.FacetChart:
    """One panel per ablation: its runs (one line a seed) over the baseline's (grey).

    `curve` is 'train' (the training loss, a mean over windows of steps) or 'held-out'
    (cross-entropy on the validation pairs).
    """
    if curve not in ("train", "held-out"):
        raise ValueError(f"curve must be 'train' or 'held-out', got {curve!r}")
    frame = loss_frame(cells)
    frame = frame[frame["curve"] == curve]
    configs = [c for c in dict.fromkeys(frame["config"]) if c != baseline]
    if baseline not in set(frame["config"]) or not configs:
        raise ValueError(f"cells need the {baseline!r} runs and at least one other")
    base = frame[frame["config"] == baseline]
    panels = pd.concat(
        [base.assign(panel=c, run=baseline) for c in configs]
        + [frame[frame["config"] == c].assign(panel=c, run="ablation") for c in configs]
    )
    y_title = (
        "Training loss (log scale)"
        if curve == "train"
        else "Held-out cross-entropy (log scale)"
    )
    color = alt.Color(
        "run:N",
        title="Run",
        scale=alt.Scale(
            domain=[baseline, "ablation"], range=[BASELINE_COLOR, ABLATION_COLOR]
        ),
        legend=alt.Legend(orient="top"),
    )
    lines = (
        alt.Chart(panels)
        .mark_line(strokeWidth=1.2, opacity=0.8)
        .encode(
            x=alt.X(  # three labels fit the narrowest panel
                "step:Q", title="Optimizer step", axis=alt.Axis(tickCount=3)
            ),
            y=alt.Y("loss:Q", title=y_title, scale=log_or_symlog(panels["loss"])),
            color=color,
            detail="seed:N",
            tooltip=[
                alt.Tooltip("config:N"),
                alt.Tooltip("seed:N"),
                alt.Tooltip("step:Q"),
                alt.Tooltip("loss:Q", format=".4g"),
            ],
        )
        .properties(width=width, height=130)
    )
    return lines.facet(
        facet=alt.Facet("panel:N", title=None, sort=configs), columns=columns
    ).properties(title=alt.Title(title, subtitle="One line per seed."))


def seed_points_chart(
    points: pd.DataFrame,
    x: str,
    x_title: str,
    title: str,
    order: Sequence[str],
    fmt: str = ".3f",
    width: int = 380,
) -> alt.LayerChart:
    """Each seed's value of `x` (a point) and their mean (a tick) per config (a row)
    and `variant` (a colour).

    `points` has the columns config, seed, variant and `x`.
    """
    missing = {"config", "seed", "variant", x} - set(points)
    if missing:
        raise ValueError(f"points lack the columns {sorted(missing)}")
    variants = list(dict.fromkeys(points["variant"]))
    color = alt.Color(
        "variant:N",
        title=None,
        sort=variants,
        legend=alt.Legend(orient="top", labelLimit=0),
    )
    y = alt.Y("config:N", title=None, sort=list(order))
    offset = alt.YOffset("variant:N", sort=variants)
    tooltip = [
        alt.Tooltip("config:N"),
        alt.Tooltip("variant:N"),
        alt.Tooltip("seed:N"),
        alt.Tooltip(f"{x}:Q", title=x_title, format=fmt),
    ]
    scale = alt.Scale(zero=False, nice=False, padding=8)
    dots = (
        alt.Chart(points)
        .mark_point(filled=True, size=45, opacity=0.75)
        .encode(
            x=alt.X(f"{x}:Q", title=x_title, scale=scale),
            y=y,
            yOffset=offset,
            color=color,
            tooltip=tooltip,
        )
    )
    means = (
        alt.Chart(points)
        .mark_tick(thickness=2, size=14)
        .encode(
            x=alt.X(f"mean({x}):Q", title=x_title, scale=scale),
            y=y,
            yOffset=offset,
            color=color,
            tooltip=[
                alt.Tooltip("config:N"),
                alt.Tooltip("variant:N"),
                alt.Tooltip(f"mean({x}):Q", title=f"mean {x_title}", format=fmt),
            ],
        )
    )
    rows = points["config"].nunique() * max(len(variants), 1)
    return alt.layer(dots, means).properties(
        width=width,
        height=max(60, 14 * rows),
        title=alt.Title(title, subtitle="A point per seed, a tick at their mean."),
    )


def score_points(
    cells: Sequence[dict], metric: str, variants: dict[str, str]
) -> pd.DataFrame:
    """Rows (config, seed, variant, `metric`) of result cells: `variants` maps a label
    to the key of a cell's scores ('test', 'beam', 'averaged', 'attention', ...).
    """
    rows = [
        {
            "config": c["config"],
            "seed": c["seed"],
            "variant": label,
            metric: c[k][metric],
        }
        for c in cells
        for label, k in variants.items()
    ]
    return pd.DataFrame(rows, columns=["config", "seed", "variant", metric])


def ablation_chart(
    cells: Sequence[dict], config: str, baseline: str, title: str
) -> alt.HConcatChart:
    """One ablation against the baseline: held-out loss curves (a line a seed) beside
    each seed's test exact match, of the last checkpoint and of the averaged one.
    """
    pair = [c for c in cells if c["config"] in (baseline, config)]
    curves = loss_curves_chart(pair, "held-out", baseline, title="", width=260)
    points = score_points(
        pair,
        "exact_match",
        {"last checkpoint": "test", "average of the last checkpoints": "averaged"},
    )
    scores = seed_points_chart(
        points,
        "exact_match",
        "Test exact match (greedy)",
        "",
        order=[baseline, config],
        width=260,
    )
    return alt.hconcat(curves, scores, title=title).resolve_scale(color="independent")
