"""Checkpoint averaging (paper, section 6.1): the model the paper evaluates is the mean
of the weights of its last checkpoints, written at regular intervals.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import torch

from src import checks
from src.shared.callbacks import Callback, Run


def average_weights(
    states: Sequence[dict[str, torch.Tensor]],
) -> dict[str, torch.Tensor]:
    """The element-wise mean of the floating-point tensors of several state dicts of one
    model; other tensors (integer buffers) are taken from the last.
    """
    if not states:
        raise ValueError("states must hold at least one state dict, got none")
    keys = set(states[0])
    if any(set(s) != keys for s in states):
        raise ValueError("states must all come from one model: their keys differ")
    averaged = {}
    for name, last in states[-1].items():
        if last.is_floating_point():
            stacked = torch.stack([s[name].double() for s in states])  # (k, *shape)
            averaged[name] = stacked.mean(dim=0).to(last.dtype)
        else:
            averaged[name] = last.clone()
    return averaged


class KeepLast(Callback):
    """Keeps the weights after every `every`-th optimizer step, the last `k` of them
    (copies on the CPU), for `average_weights`.
    """

    def __init__(self, k: int = 5, every: int = 100) -> None:
        self.k = checks.positive_int("k", k)
        self.every = checks.positive_int("every", every)
        self.states: deque[dict[str, torch.Tensor]] = deque(maxlen=self.k)
        self.steps: deque[int] = deque(maxlen=self.k)

    def on_update(self, run: Run, done: int, totals: tuple[float, int]) -> None:
        if run.state.step % self.every == 0:
            weights = run.core.state_dict()
            self.states.append(
                {n: t.detach().cpu().clone() for n, t in weights.items()}
            )
            self.steps.append(run.state.step)

    def averaged(self) -> dict[str, torch.Tensor]:
        """The mean of the weights kept (at most the last `k` checkpoints)."""
        return average_weights(list(self.states))
