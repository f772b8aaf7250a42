"""Charts of the chapter "Why self-attention": time and memory of one forward pass of
a self-attention, a recurrent and a convolutional layer against the sequence length n,
one panel per width d, with the crossover n = d of Table 1 marked.

The rows are those of `src.layer_comparison.measure`: one per layer and n, with the
columns "layer", "n", "d", "ms", "flops" and "saved_bytes".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import altair as alt
import pandas as pd

COLUMNS = ["layer", "n", "d", "ms", "flops", "saved_bytes"]
# One colour per layer, in the order the rows name them: attention first, then the two
# recurrent layers in two shades of one colour, then the convolution.
PALETTE = ["#08519c", "#e6550d", "#fdae6b", "#31a354", "#756bb1"]


def complexity_frame(rows: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """The rows as a DataFrame, with the memory in MB and the achieved GFLOP/s."""
    df = pd.DataFrame(list(rows))
    if df.empty:
        raise ValueError("no rows: run src.layer_comparison.measure first")
    missing = [c for c in COLUMNS if c not in df]
    if missing:
        raise ValueError(f"the rows lack the columns {missing}")
    df = df[COLUMNS].copy()
    df["saved_mb"] = df["saved_bytes"] / 1e6
    df["gflops"] = df["flops"] / (df["ms"] / 1e3) / 1e9
    return df


def _panel(
    df: pd.DataFrame,
    d: int,
    y: str,
    y_title: str,
    crossing: float | None,
    width: int,
) -> alt.LayerChart:
    """One width d: a line per layer against n (log-log), a dashed rule at n = d and,
    if given, a solid one where the measured curves cross.
    """
    order = list(dict.fromkeys(df["layer"]))
    ns = sorted(df["n"].unique().tolist())
    x = alt.X(
        "n:Q",
        title="sequence length n (log scale)",
        scale=alt.Scale(type="log", base=2, domain=[ns[0], ns[-1]]),
        axis=alt.Axis(values=ns, format="d"),
    )
    lines = (
        alt.Chart(df)
        .mark_line(point=alt.OverlayMarkDef(size=45, filled=True), opacity=0.85)
        .encode(
            x=x,
            y=alt.Y(f"{y}:Q", title=y_title, scale=alt.Scale(type="log")),
            color=alt.Color(
                "layer:N",
                title="Layer",
                sort=order,
                scale=alt.Scale(domain=order, range=PALETTE[: len(order)]),
                legend=alt.Legend(orient="top", columns=2, labelLimit=0),
            ),
            # a marker per layer too: where two layers' lines overlap, both show
            shape=alt.Shape("layer:N", sort=order, scale=alt.Scale(domain=order)),
            tooltip=[
                alt.Tooltip("layer:N", title="layer"),
                alt.Tooltip("n:Q", title="n"),
                alt.Tooltip("d:Q", title="d"),
                alt.Tooltip("ms:Q", title="ms per forward pass", format=".3g"),
                alt.Tooltip("flops:Q", title="floating-point operations", format=".3s"),
                alt.Tooltip("gflops:Q", title="GFLOP/s", format=".2f"),
                alt.Tooltip("saved_mb:Q", title="MB saved for backward", format=".3g"),
            ],
        )
    )
    marks = [{"n": float(d), "what": f"n = d = {d} (Table 1)", "dash": "theory"}]
    if crossing is not None:
        what = f"measured crossing, n ≈ {crossing:.0f}"
        marks.append({"n": crossing, "what": what, "dash": "run"})
    rules = alt.Chart(pd.DataFrame(marks)).encode(
        x=x, tooltip=[alt.Tooltip("what:N", title="marks")]
    )
    rule = rules.mark_rule(color="#636363", strokeWidth=1.5).encode(
        strokeDash=alt.StrokeDash(
            "dash:N",
            scale=alt.Scale(domain=["theory", "run"], range=[[6, 4], [1, 0]]),
            legend=None,
        )
    )
    middle = (ns[0] * ns[-1]) ** 0.5  # the middle of the log-scale axis
    labels = [  # one above the other at the top, on the side of the rule with room
        rules.transform_filter(alt.datum.dash == mark["dash"])
        .mark_text(
            align="left" if mark["n"] <= middle else "right",
            dx=3 if mark["n"] <= middle else -3,
            baseline="top",
            color="#636363",
            fontSize=10,
        )
        .encode(text="what:N", y=alt.value(2 + 14 * i))
        for i, mark in enumerate(marks)
    ]
    return alt.layer(lines, rule, *labels).properties(
        width=width, height=260, title=f"d = {d}"
    )


def _panels(
    rows: Iterable[Mapping[str, object]],
    y: str,
    y_title: str,
    title: str,
    crossings: Mapping[int, float | None],
    width: int,
) -> alt.HConcatChart:
    df = complexity_frame(rows)
    panels = [
        _panel(df[df["d"] == d], int(d), y, y_title, crossings.get(int(d)), width)
        for d in sorted(df["d"].unique())
    ]
    return alt.hconcat(*panels).properties(title=title)


def time_chart(
    rows: Iterable[Mapping[str, object]],
    crossings: Mapping[int, float | None] | None = None,
    width: int = 250,
) -> alt.HConcatChart:
    """Milliseconds of one forward pass against n, one panel per d (log-log), with
    n = d dashed and the measured crossing of self-attention and the recurrent layer
    (`crossings`, {d: n}) solid.
    """
    return _panels(
        rows,
        "ms",
        "ms per forward pass (log scale)",
        "Time of one layer's forward pass against sequence length",
        crossings or {},
        width,
    )


def memory_chart(
    rows: Iterable[Mapping[str, object]], width: int = 250
) -> alt.HConcatChart:
    """MB of activations saved for the backward pass against n, one panel per d
    (log-log), with n = d dashed.
    """
    return _panels(
        rows,
        "saved_mb",
        "MB kept for backward (log scale)",
        "Activations one layer keeps for the backward pass",
        {},
        width,
    )
