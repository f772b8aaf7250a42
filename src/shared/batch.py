"""`Batch`: source and target ids with the masks that teacher-forced training needs."""

from __future__ import annotations

import torch

from src import checks
from src.transformer.attention import subsequent_mask


class Batch:
    """A batch of source and target ids with their masks, for teacher-forced training.

    src: (batch, src_len); tgt: (batch, tgt_len) including the start symbol.
    The decoder reads `tgt` = tgt[:, :-1] and learns to predict `tgt_y` = tgt[:, 1:].
    """

    def __init__(
        self, src: torch.Tensor, tgt: torch.Tensor | None = None, pad: int = 0
    ) -> None:
        checks.token_ids("src", src, vocab=torch.iinfo(torch.long).max)
        self.src = src
        self.src_mask = (src != pad).unsqueeze(-2)  # (batch, 1, src_len)
        self.pad = pad
        if tgt is not None:
            checks.token_ids("tgt", tgt, vocab=torch.iinfo(torch.long).max)
            if tgt.size(0) != src.size(0):
                raise ValueError(
                    f"tgt has batch size {tgt.size(0)} but src has {src.size(0)}"
                )
            if tgt.size(1) < 2:
                raise ValueError(
                    "tgt needs at least 2 positions (start symbol and one token), got "
                    f"{tgt.size(1)}"
                )
            self.tgt = tgt[:, :-1]  # (batch, tgt_len - 1)
            self.tgt_y = tgt[:, 1:]  # (batch, tgt_len - 1)
            self.tgt_mask = self.make_std_mask(self.tgt, pad)
            self.ntokens = int((self.tgt_y != pad).sum())

    @staticmethod
    def make_std_mask(tgt: torch.Tensor, pad: int) -> torch.Tensor:
        """Hide padding and future positions: (batch, tgt_len, tgt_len)."""
        return (tgt != pad).unsqueeze(-2) & subsequent_mask(tgt.size(-1)).to(tgt.device)

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on another device."""
        for name in ("src", "src_mask", "tgt", "tgt_y", "tgt_mask"):
            if hasattr(self, name):
                setattr(self, name, getattr(self, name).to(device))
        return self
