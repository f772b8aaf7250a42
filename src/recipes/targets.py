"""What a recipe promises: it trains until held-out data says the model is there
(`UntilExact`), and a model that still misses its target raises `TargetMissed`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn

from src import checks
from src.shared.history import History


class TargetMissed(RuntimeError):
    """A trained model missed the target its recipe promises; the message names recipe,
    seed, score and a command.
    """


def reproduce_command(task: str, seed: int) -> str:
    """The command that trains one cell of `src.robustness` (task copy, fr or de) as
    this process would.
    """
    env = " ".join(
        f"{k}={os.environ[k]}"
        for k in ("ATEN_CPU_CAPABILITY", "MKL_CBWR")
        if os.environ.get(k)
    )
    cmd = (
        f"python -m src.robustness --tasks {task} --seeds {seed} --paths native "
        f"--threads {torch.get_num_threads()}"
    )
    return f"{env} {cmd}".strip()


class UntilExact:
    """The stopping rule: true once `patience` epochs in a row reach `target` exact
    match on held-out data.

    `score(model)` measures the exact match. Called by `train` after each epoch, the
    rule adds it to the epoch's history row as `valid_exact_match`. With
    `patience=None` it only measures, and training runs its full budget of epochs.
    """

    def __init__(
        self,
        score: Callable[[nn.Module], float],
        target: float,
        patience: int | None,
    ) -> None:
        self.score = score
        self.target = target
        self.patience = (
            None if patience is None else checks.positive_int("patience", patience)
        )

    def __call__(self, model: nn.Module, history: History) -> bool:
        history.epochs[-1]["valid_exact_match"] = self.score(model)
        if self.patience is None:
            return False
        return self.streak(history, self.target) >= self.patience

    @staticmethod
    def streak(history: History, target: float = 1.0) -> int:
        """Epochs in a row, up to the last, that reached `target` (a resumed run counts
        on: the rows come from its history).
        """
        n = 0
        for row in reversed(history.epochs):
            if row.get("valid_exact_match", -1.0) < target:
                break
            n += 1
        return n
