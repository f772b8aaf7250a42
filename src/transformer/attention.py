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
    scaled: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V, equation (1).

    `mask` is boolean, True where a key may be attended to, and broadcasts to the
    scores. `scaled=False` drops the 1 / sqrt(d_k) (an ablation).
    Returns the output and the attention weights (the softmax, before dropout).
    """
    d_k = query.size(-1)
    scores = query @ key.transpose(-2, -1)  # (..., queries, keys)
    if scaled:
        scores = scores / math.sqrt(d_k)
    if mask is not None:
        # The most negative float, not -inf: a row with every key masked stays finite.
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    p_attn = scores.softmax(dim=-1)
    weights = dropout(p_attn) if dropout is not None else p_attn
    return weights @ value, p_attn


class MultiHeadedAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O, heads of d_k = d_model / h.

    After a forward pass `.attn` holds the weights (batch, h, queries, keys), unless
    `fused` is set: then PyTorch's fused kernel runs and `.attn` is None.
    """

    def __init__(
        self, h: int, d_model: int, dropout: float = 0.1, scaled: bool = True
    ) -> None:
        super().__init__()
        if d_model % h != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by h ({h})")
        self.d_k, self.h, self.scaled = d_model // h, h, scaled
        # W^Q, W^K, W^V and W^O
        self.linears = nn.ModuleList([nn.Linear(d_model, d_model) for _ in range(4)])
        self.dropout = nn.Dropout(p=dropout)
        self.attn: torch.Tensor | None = None
        self.fused = False

    def split_heads(self, x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
        """Project x (batch, seq, d_model), split into heads: (batch, h, seq, d_k)."""
        x = linear(x).view(x.size(0), -1, self.h, self.d_k)  # (batch, seq, h, d_k)
        return x.transpose(1, 2)  # (batch, h, seq, d_k)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: dict[str, torch.Tensor] | None = None,
        static_kv: bool = False,
    ) -> torch.Tensor:
        """Attend from query (batch, queries, d_model) to key and value (batch, keys,
        d_model). `mask` broadcasts to (batch, queries, keys), True where a query may
        look; `cache` and `static_kv` serve step-by-step decoding (`keys_and_values`).
        """
        w_q, w_o = self.linears[0], self.linears[3]
        q = self.split_heads(query, w_q)  # (batch, h, queries, d_k)
        # each (batch, h, keys, d_k)
        k, v = keys_and_values(self, key, value, cache, static_kv)
        if mask is not None:  # one mask for all heads: (batch|1, 1, queries|1, keys)
            mask = checks.mask("mask", mask, q.size(0), q.size(2), k.size(2))
            mask = mask.unsqueeze(1)
        if self.fused:
            p = self.dropout.p if self.training else 0.0
            scale = None if self.scaled else 1.0  # None: 1 / sqrt(d_k)
            x = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=p, scale=scale
            )
            self.attn = None
        else:
            x, self.attn = attention(q, k, v, mask, self.dropout, self.scaled)
        x = x.transpose(1, 2)  # (batch, queries, h, d_k)
        x = x.reshape(x.size(0), -1, self.h * self.d_k)  # (batch, queries, d_model)
        return w_o(x)


def keys_and_values(
    attn: MultiHeadedAttention,
    key: torch.Tensor,
    value: torch.Tensor,
    cache: dict[str, torch.Tensor] | None,
    static_kv: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values projected into heads, (batch, h, keys, d_k), through `cache`.

    Without a cache: projected from `key` and `value`. With one, attention to the
    encoder (`static_kv`) projects them at the first step and reuses them afterwards;
    self-attention projects only the new positions and appends them to those before.
    """
    if cache is not None and static_kv and "k" in cache:
        return cache["k"], cache["v"]
    k = attn.split_heads(key, attn.linears[1])  # (batch, h, keys, d_k)
    v = attn.split_heads(value, attn.linears[2])
    if cache is not None and not static_kv and "k" in cache:
        k = torch.cat([cache["k"], k], dim=2)  # (batch, h, cached + keys, d_k)
        v = torch.cat([cache["v"], v], dim=2)
    if cache is not None:
        cache["k"], cache["v"] = k, v
    return k, v
