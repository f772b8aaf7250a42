"""Token embeddings scaled by sqrt(d_model) and sinusoidal positional encoding (paper,
3.4 and 3.5).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from src import checks


class Embeddings(nn.Module):
    """Learned embeddings of `vocab` tokens, multiplied by sqrt(d_model) (section
    3.4).
    """

    def __init__(self, d_model: int, vocab: int) -> None:
        super().__init__()
        self.d_model = checks.positive_int("d_model", d_model)
        self.vocab = checks.positive_int("vocab", vocab)
        self.lut = nn.Embedding(vocab, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, seq) token ids -> (batch, seq, d_model)."""
        return self.lut(x) * math.sqrt(self.d_model)


def sinusoid_table(max_len: int, d_model: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(pos /
    10000^(2i/d_model)).
    """
    position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)  # (max_len, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(d_model / 2),)
    angle = position / 10000 ** (two_i / d_model)  # (max_len, ceil(d_model / 2))
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return pe.float()


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal position signal to its input, then applies dropout (section
    3.5).
    """

    def __init__(self, d_model: int, dropout: float, max_len: int = 5000) -> None:
        super().__init__()
        self.d_model = checks.positive_int("d_model", d_model)
        self.max_len = checks.positive_int("max_len", max_len)
        self.dropout = nn.Dropout(p=checks.probability("dropout", dropout))
        pe = sinusoid_table(max_len, d_model).unsqueeze(0)  # (1, max_len, d_model)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """x: (batch, seq, d_model); positions start at `start` (non-zero when decoding
        step by step).
        """
        end = start + x.size(1)
        if x.dim() != 3 or x.size(-1) != self.d_model:
            raise ValueError(
                f"x must have shape (batch, seq, d_model={self.d_model}), got "
                f"{tuple(x.shape)}"
            )
        if end > self.max_len:
            raise ValueError(
                f"sequence positions up to {end} exceed max_len={self.max_len} of "
                "PositionalEncoding"
            )
        return self.dropout(x + self.pe[:, start:end])
