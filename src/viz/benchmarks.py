"""Charts of `src.bench`: decoding cost per token, training throughput against
PyTorch's, GFLOP/s against peak, and where a training step's time goes; and the cost
of one decoding step that the chapter on fast decoding measures."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import altair as alt
import pandas as pd

CACHED = "cached keys and values"
UNCACHED = "recomputing the prefix"
BOOK = "book's model"
TORCH = "torch.nn.Transformer"

_DECODER_COLOR = alt.Scale(domain=[CACHED, UNCACHED], range=["#08519c", "#e6550d"])
_MODEL_COLOR = alt.Scale(domain=[BOOK, TORCH], range=["#08519c", "#bdbdbd"])


def _frame(
    rows: Iterable[Mapping[str, object]], columns: list[str], what: str
) -> pd.DataFrame:
    """The rows as a DataFrame, with a clear error when there are none or a column is
    missing.
    """
    df = pd.DataFrame(list(rows))
    if df.empty:
        raise ValueError(f"{what} rows are empty: run the benchmark first")
    missing = [c for c in columns if c not in df]
    if missing:
        raise ValueError(
            f"{what} rows lack the columns {missing}; they come from src.bench"
        )
    return df[columns]


def decoding_frame(decoding_rows: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """One row per (length, decoder): milliseconds per generated token and for the whole
    sequence.
    """
    df = _frame(
        decoding_rows,
        [
            "tokens",
            "cached_ms",
            "uncached_ms",
            "speedup",
            "cached_ms_per_token",
            "uncached_ms_per_token",
        ],
        "decoding",
    )
    parts = [
        pd.DataFrame(
            {
                "tokens": df["tokens"],
                "decoder": name,
                "ms_per_token": df[f"{key}_ms_per_token"],
                "total_ms": df[f"{key}_ms"],
                "speedup": df["speedup"],
            }
        )
        for key, name in (("cached", CACHED), ("uncached", UNCACHED))
    ]
    return pd.concat(parts, ignore_index=True)


def decoding_cost_chart(
    decoding_rows: Iterable[Mapping[str, object]], width: int = 560
) -> alt.Chart:
    """Milliseconds per generated token against sequence length, cached against
    recomputing decoding (log-log).
    """
    df = decoding_frame(decoding_rows)
    return (
        alt.Chart(df)
        .mark_line(point=alt.OverlayMarkDef(size=70, filled=True))
        .encode(
            x=alt.X(
                "tokens:Q",
                title="Generated sequence length (tokens, log scale)",
                scale=alt.Scale(type="log", base=2),
                axis=alt.Axis(values=sorted(df["tokens"].unique().tolist())),
            ),
            y=alt.Y(
                "ms_per_token:Q",
                title="Milliseconds per generated token (log scale)",
                scale=alt.Scale(type="log"),
            ),
            color=alt.Color(
                "decoder:N",
                title="Greedy decoder",
                scale=_DECODER_COLOR,
                legend=alt.Legend(orient="top"),
            ),
            tooltip=[
                alt.Tooltip("decoder:N", title="decoder"),
                alt.Tooltip("tokens:Q", title="tokens"),
                alt.Tooltip("ms_per_token:Q", title="ms per token", format=".3g"),
                alt.Tooltip("total_ms:Q", title="ms for the sequence", format=".4g"),
                alt.Tooltip("speedup:Q", title="cached speed-up", format=".2f"),
            ],
        )
        .properties(
            width=width,
            height=300,
            title="Cost of one decoding step against sequence length",
        )
    )


def decoding_step_chart(
    per_step: pd.DataFrame, title: str = "Cost of one decoding step"
) -> alt.Chart:
    """Milliseconds per decoding step against the number of tokens generated, one line
    per decoder (log-log), from long-form rows with the columns "tokens", "decoder" and
    "ms per step" (the measurement of the chapter on fast decoding).
    """
    missing = [c for c in ("tokens", "decoder", "ms per step") if c not in per_step]
    if missing:
        raise ValueError(f"per-step rows lack the columns {missing}")
    return (
        alt.Chart(per_step)
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "tokens:Q",
                scale=alt.Scale(type="log", base=2),
                title="tokens generated",
            ),
            y=alt.Y(
                "ms per step:Q",
                scale=alt.Scale(type="log"),
                title="milliseconds per step (log scale)",
            ),
            color=alt.Color("decoder:N", title=None),
            tooltip=["tokens", "decoder", alt.Tooltip("ms per step:Q", format=".2f")],
        )
        .properties(width=470, height=260, title=title)
    )


def training_frame(training_rows: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """One row per (size, model): tokens per second, step time and the book-over-torch
    step-time ratio.
    """
    df = _frame(
        training_rows,
        [
            "size",
            "book_ms",
            "torch_ms",
            "ratio",
            "tokens_per_s_book",
            "tokens_per_s_torch",
        ],
        "training",
    )
    parts = [
        pd.DataFrame(
            {
                "size": df["size"],
                "model": name,
                "tokens_per_s": df[f"tokens_per_s_{key}"],
                "step_ms": df[f"{key}_ms"],
                "ratio": df["ratio"],
            }
        )
        for key, name in (("book", BOOK), ("torch", TORCH))
    ]
    return pd.concat(parts, ignore_index=True)


def training_throughput_chart(
    training_rows: Iterable[Mapping[str, object]], width: int = 560
) -> alt.Chart:
    """Grouped bars: training tokens per second of the book's model and of
    `torch.nn.Transformer`, per size.
    """
    df = training_frame(training_rows)
    order = list(dict.fromkeys(df["size"]))
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X(
                "size:N",
                title="Model size (d_model, layers N, batch, length)",
                sort=order,
                axis=alt.Axis(labelAngle=0),
            ),
            xOffset=alt.XOffset("model:N", sort=[BOOK, TORCH]),
            y=alt.Y(
                "tokens_per_s:Q",
                title="Training tokens per second (forward, backward, Adam)",
            ),
            color=alt.Color(
                "model:N",
                title="Model",
                scale=_MODEL_COLOR,
                legend=alt.Legend(orient="top"),
            ),
            tooltip=[
                alt.Tooltip("size:N", title="size"),
                alt.Tooltip("model:N", title="model"),
                alt.Tooltip("tokens_per_s:Q", title="tokens per second", format=",.0f"),
                alt.Tooltip("step_ms:Q", title="ms per step", format=".4g"),
                alt.Tooltip("ratio:Q", title="step time, book / torch", format=".3f"),
            ],
        )
        .properties(
            width=width,
            height=300,
            title="Training throughput: the book's model against PyTorch's",
        )
    )


def flops_frame(
    training_rows: Iterable[Mapping[str, object]], peak_gflops: float
) -> pd.DataFrame:
    """One row per size: achieved GFLOP/s of the book's training step, its share of the
    matmul peak.
    """
    if not peak_gflops > 0:
        raise ValueError(f"peak_gflops must be positive, got {peak_gflops!r}")
    df = _frame(
        training_rows, ["size", "book_gflops", "gflop_per_step", "book_ms"], "training"
    ).copy()
    df["peak_gflops"] = float(peak_gflops)
    df["share_of_peak"] = df["book_gflops"] / peak_gflops
    return df


def flops_chart(
    training_rows: Iterable[Mapping[str, object]], peak_gflops: float, width: int = 560
) -> alt.LayerChart:
    """Bars of the achieved GFLOP/s of each training step, a rule at the measured fp32
    matmul peak.
    """
    df = flops_frame(training_rows, peak_gflops)
    order = list(dict.fromkeys(df["size"]))
    kind = alt.Color(
        "series:N",
        title="Measure",
        legend=alt.Legend(orient="top"),
        scale=alt.Scale(
            domain=["training step", "fp32 matmul peak"], range=["#08519c", "#e6550d"]
        ),
    )
    bars = (
        alt.Chart(df)
        .transform_calculate(series="'training step'")
        .mark_bar(width={"band": 0.6})
        .encode(
            x=alt.X(
                "size:N",
                title="Model size (d_model, layers N, batch, length)",
                sort=order,
                axis=alt.Axis(labelAngle=0),
            ),
            y=alt.Y("book_gflops:Q", title="GFLOP/s (float32)"),
            color=kind,
            tooltip=[
                alt.Tooltip("size:N", title="size"),
                alt.Tooltip("book_gflops:Q", title="achieved GFLOP/s", format=".1f"),
                alt.Tooltip(
                    "share_of_peak:Q", title="share of matmul peak", format=".0%"
                ),
                alt.Tooltip("gflop_per_step:Q", title="GFLOP per step", format=".3g"),
                alt.Tooltip("book_ms:Q", title="ms per step", format=".4g"),
            ],
        )
    )
    peak = (
        alt.Chart(df)
        .transform_calculate(series="'fp32 matmul peak'")
        .mark_rule(strokeWidth=2, strokeDash=[6, 4])
        .encode(
            y=alt.Y("peak_gflops:Q", title="GFLOP/s (float32)"),
            color=kind,
            tooltip=[
                alt.Tooltip(
                    "peak_gflops:Q", title="fp32 matmul peak, GFLOP/s", format=".1f"
                )
            ],
        )
    )
    return (bars + peak).properties(
        width=width,
        height=300,
        title="Achieved GFLOP/s of a training step against the matmul peak",
    )


# The groups of `src.bench.OpTimes`, in the order they are stacked, with their labels.
TIME_GROUPS = {
    "time_share_matmul": "matrix products",
    "time_share_dropout_rng": "dropout's random numbers",
    "time_share_adam": "Adam update",
    "time_share_other": "everything else",
}


def time_breakdown_frame(training_rows: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """Long form: one row per size and group of operations, with its share of the step
    time.
    """
    df = _frame(
        training_rows, ["size", "book_ms", "matmul_gflops", *TIME_GROUPS], "training"
    )
    long = df.melt(
        id_vars=["size", "book_ms", "matmul_gflops"],
        value_vars=list(TIME_GROUPS),
        var_name="column",
        value_name="share",
    )
    long["operations"] = long["column"].map(TIME_GROUPS)
    long["order"] = long["column"].map({c: i for i, c in enumerate(TIME_GROUPS)})
    long["ms"] = long["share"] * long["book_ms"]
    return long.drop(columns="column")


def time_breakdown_chart(
    training_rows: Iterable[Mapping[str, object]], width: int = 480
) -> alt.Chart:
    """Stacked bars: the share of a training step's time in each group of operations,
    one bar per size.
    """
    df = time_breakdown_frame(training_rows)
    order = list(dict.fromkeys(df["size"]))
    return (
        alt.Chart(df)
        .mark_bar(height={"band": 0.6})
        .encode(
            y=alt.Y("size:N", title="Model size", sort=order),
            x=alt.X(
                "share:Q",
                title="Share of the training step's time",
                stack="zero",
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
            color=alt.Color(
                "operations:N",
                title="Operations",
                sort=list(TIME_GROUPS.values()),
                scale=alt.Scale(
                    domain=list(TIME_GROUPS.values()),
                    range=["#08519c", "#e6550d", "#756bb1", "#bdbdbd"],
                ),
                legend=alt.Legend(orient="top", columns=2, labelLimit=0),
            ),
            order=alt.Order("order:Q"),
            tooltip=[
                alt.Tooltip("size:N", title="size"),
                alt.Tooltip("operations:N", title="operations"),
                alt.Tooltip("share:Q", title="share of the step", format=".1%"),
                alt.Tooltip("ms:Q", title="ms per step", format=".4g"),
                alt.Tooltip(
                    "matmul_gflops:Q",
                    title="GFLOP/s of the matrix products alone",
                    format=".1f",
                ),
            ],
        )
        .properties(
            width=width,
            height=60 * len(order),
            title="Where a training step's time goes",
        )
    )
