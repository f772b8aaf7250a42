"""Scaled dot-product attention, multi-head attention and the causal mask (paper,
section 3.2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from src import checks


def subsequent_mask(size: int) -> torch.Tensor:
    """Causal mask of shape (1, size, size): True where query i may attend to key j,
    i.e. j <= i.
    """
    size = checks.positive_int("size", size)
    return torch.tril(torch.ones(1, size, size, dtype=torch.bool))


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout: nn.Dropout | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V, equation (1).

    `mask` is boolean, True where a key may be attended to, and broadcasts to the
    scores.
    Returns the output and the attention weights (the softmax, before dropout).
    """
    d_k = query.size(-1)
    scores = query @ key.transpose(-2, -1) / math.sqrt(d_k)  # (..., queries, keys)
    if mask is not None:
        # The most negative float, not -inf: a row with every key masked stays finite.
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    p_attn = scores.softmax(dim=-1)
    weights = dropout(p_attn) if dropout is not None else p_attn
    return weights @ value, p_attn


class MultiHeadedAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O, with h parallel heads of
    size d_k = d_model / h.

    After each forward pass `.attn` holds the attention weights, shape (batch, h,
    queries, keys), unless `fused` is set: then the pass runs PyTorch's fused kernel and
    `.attn` is None.
    """

    def __init__(self, h: int, d_model: int, dropout: float = 0.1) -> None:
        super().__init__()
        h = checks.positive_int("h", h)
        d_model = checks.positive_int("d_model", d_model)
        if d_model % h != 0:
            raise ValueError(
                f"d_model ({d_model}) must be divisible by the number of heads h ({h})"
            )
        self.d_k = d_model // h
        self.h = h
        # W^Q, W^K, W^V, W^O
        self.linears = nn.ModuleList([nn.Linear(d_model, d_model) for _ in range(4)])
        self.dropout = nn.Dropout(p=checks.probability("dropout", dropout))
        self.attn: torch.Tensor | None = None
        self.fused = False

    def split_heads(self, x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
        """Project x (batch, seq, d_model) and split it into heads: (batch, h, seq,
        d_k).
        """
        batch = x.size(0)
        # (batch, h, seq, d_k)
        return linear(x).view(batch, -1, self.h, self.d_k).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: dict[str, torch.Tensor] | None = None,
        static_kv: bool = False,
    ) -> torch.Tensor:
        """Attend from `query` (batch, queries, d_model) to `key`/`value` (batch, keys,
        d_model).

        `mask` broadcasts to (batch, queries, keys); True (or 1) marks the keys a query
        may see.
        With a `cache` dict, projected keys and values are kept across calls: appended
        to for self-attention, computed once and reused when `static_kv` (attention to
        the encoder).
        """
        batch = query.size(0)
        w_q, w_k, w_v, w_o = self.linears
        q = self.split_heads(query, w_q)  # (batch, h, queries, d_k)
        if cache is not None and static_kv and "k" in cache:
            # the encoder's keys and values, projected at the first step
            k, v = cache["k"], cache["v"]
        else:
            # each (batch, h, keys, d_k)
            k, v = self.split_heads(key, w_k), self.split_heads(value, w_v)
            if cache is not None and not static_kv and "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)  # (batch, h, cached + keys, d_k)
                v = torch.cat([cache["v"], v], dim=2)
        if cache is not None:
            cache["k"], cache["v"] = k, v

        if mask is not None:
            # (batch|1, 1, queries|1, keys)
            mask = checks.mask("mask", mask, batch, q.size(2), k.size(2)).unsqueeze(1)

        if self.fused:
            p = self.dropout.p if self.training else 0.0
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
            self.attn = None
        else:
            # (batch, h, queries, d_k)
            x, self.attn = attention(q, k, v, mask=mask, dropout=self.dropout)

        # (batch, queries, d_model)
        x = x.transpose(1, 2).reshape(batch, -1, self.h * self.d_k)
        return w_o(x)
