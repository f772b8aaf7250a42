"""Scaled dot-product attention, multi-head attention and masks against equation (1) and their properties."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from src.transformer.attention import MultiHeadedAttention, attention, subsequent_mask


def test_subsequent_mask_is_lower_triangular_boolean():
    m = subsequent_mask(5)
    assert m.shape == (1, 5, 5) and m.dtype == torch.bool
    for i in range(5):
        for j in range(5):
            assert bool(m[0, i, j]) == (j <= i)


def test_attention_matches_equation_1():
    q, k, v = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 6)
    out, p = attention(q, k, v)
    scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(8)
    expected_p = torch.exp(scores) / torch.exp(scores).sum(-1, keepdim=True)
    torch.testing.assert_close(p, expected_p)
    torch.testing.assert_close(out, expected_p @ v)


def test_unscaled_attention_is_softmax_of_raw_dot_products():
    """The ablation scaled=False: softmax(Q K^T) V, no 1 / sqrt(d_k); fused agrees."""
    q, k, v = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 6)
    out, p = attention(q, k, v, scaled=False)
    expected_p = torch.einsum("bhqd,bhkd->bhqk", q, k).softmax(-1)
    torch.testing.assert_close(p, expected_p)
    torch.testing.assert_close(out, expected_p @ v)
    assert not torch.allclose(p, attention(q, k, v)[1])
    mha = MultiHeadedAttention(h=4, d_model=32, dropout=0.0, scaled=False).eval()
    x = torch.randn(3, 7, 32)
    explicit = mha(x, x, x, subsequent_mask(7))
    mha.fused = True
    torch.testing.assert_close(mha(x, x, x, subsequent_mask(7)), explicit, atol=1e-6, rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 3), queries=st.integers(1, 6), keys=st.integers(1, 6), seed=st.integers(0, 10_000),
)
def test_rows_sum_to_one_and_masked_keys_get_zero(batch, queries, keys, seed):
    g = torch.Generator().manual_seed(seed)
    mha = MultiHeadedAttention(h=2, d_model=8, dropout=0.0)
    q, kv = torch.randn(batch, queries, 8, generator=g), torch.randn(batch, keys, 8, generator=g)
    mask = torch.rand(batch, 1, keys, generator=g) > 0.4
    mask[:, :, 0] = True  # at least one visible key
    mha(q, kv, kv, mask)
    p = mha.attn
    assert p.shape == (batch, 2, queries, keys)
    torch.testing.assert_close(p.sum(-1), torch.ones(batch, 2, queries))
    hidden = ~mask.unsqueeze(1).expand_as(p)
    assert torch.all(p[hidden] == 0)


def test_fully_masked_row_stays_finite():
    q = torch.randn(1, 1, 3, 4)
    out, p = attention(q, q, q, mask=torch.zeros(1, 1, 1, 3, dtype=torch.bool))
    assert torch.isfinite(out).all() and torch.isfinite(p).all()


def test_boolean_and_numeric_masks_agree():
    mha = MultiHeadedAttention(h=2, d_model=8, dropout=0.0)
    x = torch.randn(2, 4, 8)
    bool_mask = subsequent_mask(4)
    a = mha(x, x, x, bool_mask)
    b = mha(x, x, x, bool_mask.float())
    c = mha(x, x, x, bool_mask.long())
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


@pytest.mark.parametrize("mask_kind", ["none", "padding", "causal"])
def test_fused_attention_equals_explicit_softmax(mask_kind):
    mha = MultiHeadedAttention(h=4, d_model=32, dropout=0.0).eval()
    x = torch.randn(3, 7, 32)
    mask = {
        "none": None,
        "padding": torch.tensor([[1] * 7, [1] * 5 + [0] * 2, [1] * 3 + [0] * 4]).bool().unsqueeze(1),
        "causal": subsequent_mask(7),
    }[mask_kind]
    explicit = mha(x, x, x, mask)
    assert mha.attn is not None
    mha.fused = True
    fused = mha(x, x, x, mask)
    assert mha.attn is None
    torch.testing.assert_close(fused, explicit, atol=1e-6, rtol=1e-5)


def test_multi_head_is_concatenation_of_heads():
    """MultiHead(Q,K,V) = Concat(head_1..head_h) W^O with head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)."""
    h, d_model = 2, 8
    d_k = d_model // h
    mha = MultiHeadedAttention(h, d_model, dropout=0.0)
    x = torch.randn(1, 3, d_model)
    w_q, w_k, w_v, w_o = mha.linears
    heads = []
    for i in range(h):
        sl = slice(i * d_k, (i + 1) * d_k)
        qi = x @ w_q.weight[sl].T + w_q.bias[sl]
        ki = x @ w_k.weight[sl].T + w_k.bias[sl]
        vi = x @ w_v.weight[sl].T + w_v.bias[sl]
        heads.append(torch.softmax(qi @ ki.transpose(-1, -2) / math.sqrt(d_k), -1) @ vi)
    expected = w_o(torch.cat(heads, dim=-1))
    torch.testing.assert_close(mha(x, x, x), expected)
