"""What a training run counts and records: `TrainState` (steps, tokens) and `History`
(loss per step and epoch).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainState:
    """Counts that survive across epochs."""

    step: int = 0  # optimizer steps
    accum_step: int = 0  # gradient accumulation steps
    samples: int = 0  # examples seen
    tokens: int = 0  # target tokens seen
    lr: float = 0.0  # learning rate of the last update


@dataclass
class History:
    """What `train` measured: one row per optimizer step and one per epoch."""

    steps: list[dict] = field(default_factory=list)  # step, epoch, loss, lr
    # epoch, train_loss, eval_loss, eval_accuracy, seconds
    epochs: list[dict] = field(default_factory=list)
