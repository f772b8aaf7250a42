"""Label smoothing (paper, section 5.4) and the loss computation of a training step."""

from __future__ import annotations

import torch
from torch import nn

from src import checks


class LabelSmoothing(nn.Module):
    """KL divergence to a smoothed target: 1 - smoothing on the true token, the rest
    spread evenly.

    The smoothing mass is shared by the `size - 2` tokens that are neither the true one
    nor padding; padding gets no mass, and rows whose target is padding count for
    nothing.
    After each call `.true_dist` holds the target distribution, shape (tokens, size).
    """

    def __init__(
        self, size: int, padding_idx: int | None, smoothing: float = 0.0
    ) -> None:
        super().__init__()
        checks.label_smoothing(size, padding_idx, smoothing)
        self.size, self.padding_idx, self.smoothing = size, padding_idx, smoothing
        self.confidence = 1.0 - self.smoothing
        self.true_dist: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """x: (tokens, size) log-probabilities; target: (tokens,) ids. Returns the
        summed KL divergence.
        """
        checks.log_probs_and_targets(x, target, self.size)
        others = self.size - (2 if self.padding_idx is not None else 1)
        # (tokens, size)
        true_dist = torch.full_like(x, self.smoothing / max(others, 1))
        true_dist.scatter_(1, target.unsqueeze(1), self.confidence)
        if self.padding_idx is not None:
            true_dist[:, self.padding_idx] = 0
            true_dist[target == self.padding_idx] = 0
        self.true_dist = true_dist.detach()
        # KL(true_dist || p) = sum of t (log t - log p) over entries with t > 0; entries
        # with t = 0 add nothing, even where the prediction is exactly 0 (log p = -inf),
        # as in `nn.KLDivLoss` up to that case, where it would give 0 * inf = nan.
        kl = true_dist * (true_dist.clamp_min(torch.finfo(x.dtype).tiny).log() - x)
        return torch.where(true_dist > 0, kl, torch.zeros_like(kl)).sum()


class LossCompute:
    """Generator, then criterion, normalised by the number of target tokens `norm`."""

    def __init__(self, generator: nn.Module, criterion: nn.Module) -> None:
        self.generator = generator
        self.criterion = criterion

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, norm: int | float
    ) -> tuple[float, torch.Tensor]:
        """x: decoder output (batch, seq, d_model); y: targets (batch, seq).

        Returns the summed loss (a float, for logging) and the mean loss per token (to
        backpropagate).
        """
        log_probs = self.generator(x)  # (batch, seq, vocab)
        # (batch*seq, vocab)
        loss = (
            self.criterion(log_probs.reshape(-1, log_probs.size(-1)), y.reshape(-1))
            / norm
        )
        return loss.item() * norm, loss
