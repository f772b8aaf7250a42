"""Charts of when to stop training: one run's validation exact match, and the grid of
`src.robustness`.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from src.viz.training import history_frames, log_or_symlog


def stopping_chart(
    history: object, stop_step: int, title: str, width: int = 470
) -> alt.VConcatChart:
    """Eval loss and validation exact match per epoch of a run, with a rule at
    `stop_step`.

    `history` needs `eval_loss` and `valid_exact_match` in its epoch rows (`UntilCopied`
    adds the second).
    """
    _, epochs = history_frames(history)
    missing = {"step", "eval_loss", "valid_exact_match"} - set(epochs)
    if missing:
        raise ValueError(
            f"history epochs lack {sorted(missing)}: train with eval batches and "
            "UntilCopied"
        )
    x = alt.X(
        "step:Q",
        title="Optimizer step",
        scale=alt.Scale(domain=[0, int(epochs["step"].max())]),
    )
    tooltip = [
        alt.Tooltip("epoch:Q", title="epoch (from 0)"),
        alt.Tooltip("step:Q"),
        alt.Tooltip("eval_loss:Q", title="eval loss", format=".3g"),
        alt.Tooltip(
            "valid_exact_match:Q", title="validation exact match", format=".1%"
        ),
    ]
    base = alt.Chart(epochs).encode(x=x, tooltip=tooltip)
    rule = alt.Chart(
        pd.DataFrame({"step": [stop_step], "label": ["the rule stops here"]})
    ).encode(x="step:Q")
    marks = [
        rule.mark_rule(color="#d62728", strokeDash=[4, 3]),
        rule.mark_text(align="left", dx=4, dy=-4, color="#d62728").encode(
            text="label:N", y=alt.value(0)
        ),
    ]
    loss = base.mark_line(point=True, color="#e6550d").encode(
        y=alt.Y(
            "eval_loss:Q",
            title="Eval loss (log scale)",
            scale=log_or_symlog(epochs["eval_loss"]),
        )
    )
    match = base.mark_line(point=True, color="#08519c").encode(
        y=alt.Y(
            "valid_exact_match:Q",
            title="Validation exact match",
            axis=alt.Axis(format="%"),
            scale=alt.Scale(domain=[0, 1]),
        )
    )
    return alt.vconcat(
        alt.layer(loss, *marks).properties(
            width=width, height=170, title="Loss on the evaluation batches"
        ),
        alt.layer(match, *marks).properties(
            width=width,
            height=170,
            title="Share of the validation sequences copied exactly",
        ),
        title=title,
    )


def robustness_chart(
    cells: pd.DataFrame, title: str, width: int = 360
) -> alt.LayerChart:
    """One square per copy-task cell of `src.robustness`: seed across, kernel path and
    threads down.

    The colour is the held-out exact match after the fixed budget of epochs, the number
    in the square the epochs after which the stopping rule ended training (its model
    copied every held-out sequence).
    """
    need = {
        "seed",
        "path",
        "threads",
        "epochs",
        "exact_match",
        "fixed_budget_exact_match",
    }
    if need - set(cells):
        raise ValueError(
            f"cells lack the columns {sorted(need - set(cells))}: pass src.robustness "
            "results"
        )
    c = cells.assign(
        run=cells["path"] + ", " + cells["threads"].astype(str) + " thread(s)"
    )
    order = list(dict.fromkeys(c.sort_values(["threads"], kind="stable")["run"]))
    x = alt.X("seed:O", title="Seed", axis=alt.Axis(labelAngle=0))
    y = alt.Y("run:N", title="Kernel path, threads", sort=order)
    tooltip = [
        alt.Tooltip("run:N", title="kernel path"),
        alt.Tooltip("seed:O"),
        alt.Tooltip("epochs:Q", title="epochs until the rule stopped"),
        alt.Tooltip("exact_match:Q", title="exact match there", format=".1%"),
        alt.Tooltip(
            "fixed_budget_exact_match:Q",
            title="exact match after the fixed budget",
            format=".1%",
        ),
        alt.Tooltip("collapses:Q", title="falls from 100% (validation)"),
    ]
    low = min(float(c["fixed_budget_exact_match"].min()), 0.9)
    squares = (
        alt.Chart(c)
        .mark_rect(stroke="white")
        .encode(
            x=x,
            y=y,
            tooltip=tooltip,
            color=alt.Color(
                "fixed_budget_exact_match:Q",
                title="Exact match, fixed budget",
                scale=alt.Scale(scheme="redyellowblue", domain=[low, 1]),
                legend=alt.Legend(
                    format="%", orient="bottom", gradientLength=width // 2
                ),
            ),
        )
    )
    # the deep blue end of the scale
    dark = alt.datum.fixed_budget_exact_match > low + 0.8 * (1 - low)
    text = (
        alt.Chart(c)
        .mark_text(fontSize=11)
        .encode(
            x=x,
            y=y,
            text="epochs:Q",
            tooltip=tooltip,
            color=alt.condition(dark, alt.value("white"), alt.value("black")),
        )
    )
    subtitle = [
        "Number: epochs until the stopping rule ended training.",
        "Colour: exact match after the fixed budget of epochs.",
    ]
    return alt.layer(squares, text).properties(
        width=width,
        height=22 * c["run"].nunique(),
        title=alt.Title(title, subtitle=subtitle),
    )
