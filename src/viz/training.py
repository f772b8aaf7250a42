"""Training curves of a `History`: loss per step and per epoch, the learning rate, eval
accuracy; and the loss per step of several runs side by side.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

_SERIES = [
    "train loss (per step)",
    "train loss (epoch mean)",
    "eval loss (per epoch)",
    "learning rate",
    "eval token accuracy",
]
_COLOR = alt.Scale(
    domain=_SERIES, range=["#9ecae1", "#08519c", "#e6550d", "#31a354", "#756bb1"]
)


def history_frames(history: object) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(steps, epochs) DataFrames of a History (anything with `.steps` and `.epochs`
    lists of dicts).
    """
    steps = pd.DataFrame(list(history.steps), columns=["step", "epoch", "loss", "lr"])
    epochs = pd.DataFrame(list(history.epochs))
    if steps.empty and epochs.empty:
        raise ValueError("history is empty: train for at least one step first")
    return steps, epochs


def log_or_symlog(values: pd.Series) -> alt.Scale:
    """Log scale for losses (they span orders of magnitude); symlog if a value is zero
    or negative.
    """
    return alt.Scale(type="log") if (values > 0).all() else alt.Scale(type="symlog")


def training_curves_chart(
    history: object, title: str = "Training curves", width: int = 470
) -> alt.VConcatChart:
    """Three panels over the optimizer step: loss (train per step, eval per epoch),
    learning rate, eval accuracy.

    Epoch rows are drawn at the step the epoch ended. Panels without data (no eval
    batches) are left out.
    """
    steps, epochs = history_frames(history)
    legend = alt.Legend(title="Series", orient="top", columns=3, labelLimit=0)
    color = alt.Color("series:N", scale=_COLOR, legend=legend)
    x = alt.X("step:Q", title="Optimizer step")

    loss_parts = []
    if not steps.empty:
        s = steps.assign(series=_SERIES[0])
        loss_parts.append(
            alt.Chart(s)
            .mark_line(strokeWidth=1)
            .encode(
                x=x,
                y=alt.Y(
                    "loss:Q",
                    title="Loss per target token (log scale)",
                    scale=log_or_symlog(s["loss"]),
                ),
                color=color,
                tooltip=[
                    alt.Tooltip("step:Q"),
                    alt.Tooltip("epoch:Q"),
                    alt.Tooltip("loss:Q", format=".4g"),
                    alt.Tooltip("series:N"),
                ],
            )
        )
    epoch_loss = [
        c
        for c, name in (("train_loss", _SERIES[1]), ("eval_loss", _SERIES[2]))
        if c in epochs
    ]
    if epoch_loss:
        e = epochs.melt(
            id_vars=["epoch", "step"],
            value_vars=epoch_loss,
            var_name="column",
            value_name="loss",
        )
        e["series"] = e["column"].map(
            {"train_loss": _SERIES[1], "eval_loss": _SERIES[2]}
        )
        loss_parts.append(
            alt.Chart(e)
            .mark_line(point=True)
            .encode(
                x=x,
                y=alt.Y(
                    "loss:Q",
                    title="Loss per target token (log scale)",
                    scale=log_or_symlog(e["loss"]),
                ),
                color=color,
                tooltip=[
                    alt.Tooltip("epoch:Q"),
                    alt.Tooltip("step:Q"),
                    alt.Tooltip("loss:Q", format=".4g"),
                    alt.Tooltip("series:N"),
                ],
            )
        )
    panels = [alt.layer(*loss_parts).properties(width=width, height=220, title="Loss")]

    if not steps.empty:
        panels.append(
            alt.Chart(steps.assign(series=_SERIES[3]))
            .mark_line()
            .encode(
                x=x,
                y=alt.Y("lr:Q", title="Learning rate", axis=alt.Axis(format=".1e")),
                color=color,
                tooltip=[
                    alt.Tooltip("step:Q"),
                    alt.Tooltip("lr:Q", title="learning rate", format=".3e"),
                ],
            )
            .properties(width=width, height=110, title="Learning rate, equation (3)")
        )
    if "eval_accuracy" in epochs:
        panels.append(
            alt.Chart(epochs.assign(series=_SERIES[4]))
            .mark_line(point=True)
            .encode(
                x=x,
                y=alt.Y(
                    "eval_accuracy:Q",
                    title="Token accuracy",
                    scale=alt.Scale(domain=[0, 1]),
                    axis=alt.Axis(format="%"),
                ),
                color=color,
                tooltip=[
                    alt.Tooltip("epoch:Q"),
                    alt.Tooltip("step:Q"),
                    alt.Tooltip(
                        "eval_accuracy:Q", title="eval token accuracy", format=".2%"
                    ),
                ],
            )
            .properties(
                width=width, height=110, title="Eval token accuracy (teacher forced)"
            )
        )
    return alt.vconcat(*panels, title=title).resolve_scale(color="shared", x="shared")


def runs_loss_chart(steps: pd.DataFrame, title: str = "Training loss") -> alt.Chart:
    """The loss at every optimizer step of several training runs, one line (and dash)
    per run, on a log scale, from rows with the columns "run", "step" and "loss" (the
    comparison of one process and two in the chapter on scaling out).
    """
    missing = [c for c in ("run", "step", "loss") if c not in steps]
    if missing:
        raise ValueError(f"step rows lack the columns {missing}")
    return (
        alt.Chart(steps)
        .mark_line(point=alt.OverlayMarkDef(size=18))
        .encode(
            x=alt.X("step:Q", title="optimizer step"),
            y=alt.Y(
                "loss:Q",
                scale=alt.Scale(type="log"),
                title="training loss per token (log scale)",
            ),
            color=alt.Color("run:N", title=None),
            strokeDash=alt.StrokeDash("run:N", title=None),
            tooltip=["run", "step", alt.Tooltip("loss:Q", format=".6f")],
        )
        .properties(width=470, height=260, title=title)
    )
