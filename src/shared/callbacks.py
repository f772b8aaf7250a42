"""What `train` lets other code see and do: the `Run` it trains, and `Callback` hooks.

Resuming (`src.shared.resume.Checkpointing`), progress bars (`ProgressBar`) and stopping
rules attach to the loop here, so `train` itself stays the paper's recipe.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm  # a text bar: tqdm.auto warns in a kernel without ipywidgets

from src.shared.batch import Batch
from src.shared.history import History, TrainState


@dataclass
class Run:
    """A training run as callbacks see it: what trains, and where it stands."""

    model: nn.Module  # the model `train` got: under DDP, the wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    batches: Iterable[Batch] | Callable[[], Iterable[Batch]]
    epochs: int
    state: TrainState = field(default_factory=TrainState)
    history: History = field(default_factory=History)
    epoch: int = 0  # the epoch under way, from 0
    # where the epoch starts: batches already done, their summed loss and tokens
    start: tuple[int, float, int] = (0, 0.0, 0)

    def record_step(self, loss: float) -> None:
        """Add the row of the optimizer step just taken, with its loss per token."""
        s = self.state
        row = {"step": s.step, "epoch": self.epoch, "loss": loss, "lr": s.lr}
        self.history.steps.append(row)

    @property
    def core(self) -> nn.Module:
        """The model itself, unwrapped from DDP."""
        return getattr(self.model, "module", self.model)


class Callback:
    """Hooks into `train`, called in this order; each does nothing unless overridden."""

    def on_train_start(self, run: Run) -> None:
        """Before the first epoch (a resumed run: the state to go on from is loaded)."""

    def on_epoch_start(self, run: Run) -> None:
        """After the epoch's batches are drawn, before the first of them trains."""

    def on_update(self, run: Run, done: int, totals: tuple[float, int]) -> None:
        """After each optimizer step: `done` batches of the epoch, and their totals."""

    def on_epoch_end(self, run: Run) -> None:
        """After the epoch's row is in `run.history.epochs`; `run.epoch` is the next."""

    def on_train_end(self, run: Run) -> None:
        """After the last epoch, or when training stops on an error."""


NO_CALLBACKS = Callback()  # hooks that do nothing


class Callbacks(Callback):
    """Several callbacks, called in their order."""

    def __init__(self, callbacks: Sequence[Callback | None]) -> None:
        self.callbacks = [c for c in callbacks if c is not None]

    def on_train_start(self, run: Run) -> None:
        for c in self.callbacks:
            c.on_train_start(run)

    def on_epoch_start(self, run: Run) -> None:
        for c in self.callbacks:
            c.on_epoch_start(run)

    def on_update(self, run: Run, done: int, totals: tuple[float, int]) -> None:
        for c in self.callbacks:
            c.on_update(run, done, totals)

    def on_epoch_end(self, run: Run) -> None:
        for c in self.callbacks:
            c.on_epoch_end(run)

    def on_train_end(self, run: Run) -> None:
        for c in self.callbacks:
            c.on_train_end(run)


class FusedAttention(Callback):
    """Train with PyTorch's `scaled_dot_product_attention` (`fused=True`), which keeps
    no weights (and, where a fused kernel applies, never materialises them); afterwards
    `.attn` is kept again for the charts.
    """

    def __init__(self, fused: bool = True) -> None:
        self.fused = fused

    def on_train_start(self, run: Run) -> None:
        run.core.set_fused_attention(self.fused)

    def on_train_end(self, run: Run) -> None:
        run.core.set_fused_attention(False)


class ProgressBar(Callback):
    """A bar of epochs, with the last epoch's losses and accuracy."""

    def on_train_start(self, run: Run) -> None:
        self.bar = tqdm(desc="epochs", initial=run.epoch, total=run.epochs)

    def on_epoch_end(self, run: Run) -> None:
        row = run.history.epochs[-1]
        self.bar.update(1)
        shown = {k: v for k, v in row.items() if k.endswith(("loss", "accuracy"))}
        self.bar.set_postfix({k: round(v, 4) for k, v in shown.items()})

    def on_train_end(self, run: Run) -> None:
        if hasattr(self, "bar"):
            self.bar.close()


def progress_bar(show: bool | None) -> ProgressBar | None:
    """A `ProgressBar` if `show`, or with `show=None` when stderr is a terminal."""
    return ProgressBar() if (sys.stderr.isatty() if show is None else show) else None
