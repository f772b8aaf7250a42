"""The building blocks of both stacks: residual sublayers, the feed-forward network,
encoder and decoder layers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from src import checks
from src.transformer.attention import MultiHeadedAttention


def clones(module: nn.Module, n: int) -> nn.ModuleList:
    """N identical, independent copies of a module."""
    return nn.ModuleList([copy.deepcopy(module) for _ in range(n)])


class SublayerConnection(nn.Module):
    """A residual connection around a sublayer, with layer normalization.

    pre-norm (`norm_first=True`, the default): x + Dropout(Sublayer(LayerNorm(x)))
    post-norm (the paper's, `norm_first=False`): LayerNorm(x + Dropout(Sublayer(x)))
    """

    def __init__(self, size: int, dropout: float, norm_first: bool = True) -> None:
        super().__init__()
        # the standard definition: biased variance, eps 1e-5
        self.norm = nn.LayerNorm(size)
        self.dropout = nn.Dropout(checks.probability("dropout", dropout))
        self.norm_first = norm_first

    def forward(
        self, x: torch.Tensor, sublayer: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        if self.norm_first:
            return x + self.dropout(sublayer(self.norm(x)))
        return self.norm(x + self.dropout(sublayer(x)))


class PositionwiseFeedForward(nn.Module):
    """FFN(x) = max(0, x W_1 + b_1) W_2 + b_2, equation (2), applied to each position
    alike.
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.w_1 = nn.Linear(
            checks.positive_int("d_model", d_model), checks.positive_int("d_ff", d_ff)
        )
        self.w_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(checks.probability("dropout", dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(self.w_1(x).relu()))


class EncoderLayer(nn.Module):
    """Self-attention, then feed-forward, each wrapped in a residual sublayer."""

    def __init__(
        self,
        size: int,
        self_attn: MultiHeadedAttention,
        feed_forward: PositionwiseFeedForward,
        dropout: float,
        norm_first: bool = True,
    ) -> None:
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.sublayer = clones(SublayerConnection(size, dropout, norm_first), 2)
        self.size = size

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.sublayer[0](x, lambda x: self.self_attn(x, x, x, mask))
        return self.sublayer[1](x, self.feed_forward)


class DecoderLayer(nn.Module):
    """Masked self-attention, attention over the encoder output (`src_attn`), then
    feed-forward.
    """

    def __init__(
        self,
        size: int,
        self_attn: MultiHeadedAttention,
        src_attn: MultiHeadedAttention,
        feed_forward: PositionwiseFeedForward,
        dropout: float,
        norm_first: bool = True,
    ) -> None:
        super().__init__()
        self.size = size
        self.self_attn = self_attn
        self.src_attn = src_attn
        self.feed_forward = feed_forward
        self.sublayer = clones(SublayerConnection(size, dropout, norm_first), 3)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        src_mask: torch.Tensor,
        tgt_mask: torch.Tensor,
        cache: dict[str, dict[str, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        self_cache = cache["self"] if cache is not None else None
        src_cache = cache["src"] if cache is not None else None
        m = memory
        x = self.sublayer[0](
            x, lambda x: self.self_attn(x, x, x, tgt_mask, cache=self_cache)
        )
        x = self.sublayer[1](
            x,
            lambda x: self.src_attn(x, m, m, src_mask, cache=src_cache, static_kv=True),
        )
        return self.sublayer[2](x, self.feed_forward)


class Encoder(nn.Module):
    """A stack of N encoder layers (followed by a final LayerNorm when pre-norm)."""

    def __init__(self, layer: EncoderLayer, N: int, norm_first: bool = True) -> None:
        super().__init__()
        self.layers = clones(layer, checks.positive_int("N", N))
        self.norm: nn.Module = nn.LayerNorm(layer.size) if norm_first else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)


class Decoder(nn.Module):
    """A stack of N decoder layers (followed by a final LayerNorm when pre-norm)."""

    def __init__(self, layer: DecoderLayer, N: int, norm_first: bool = True) -> None:
        super().__init__()
        self.layers = clones(layer, checks.positive_int("N", N))
        self.norm: nn.Module = nn.LayerNorm(layer.size) if norm_first else nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        src_mask: torch.Tensor,
        tgt_mask: torch.Tensor,
        cache: list[dict[str, dict[str, torch.Tensor]]] | None = None,
    ) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(
                x,
                memory,
                src_mask,
                tgt_mask,
                cache=cache[i] if cache is not None else None,
            )
        return self.norm(x)
