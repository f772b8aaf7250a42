"""The book's model equals PyTorch's own `torch.nn.Transformer` when given the same weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from src.transformer import make_model
from src.transformer.attention import MultiHeadedAttention
from src.transformer.reference import copy_attention, max_difference


def padded_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, 13, (4, 9), generator=g)
    tgt = torch.randint(3, 17, (4, 7), generator=g)
    src[1, 6:], src[2, 4:] = 0, 0  # padding
    tgt[1, 5:] = 0
    return src, tgt


def randomize_norms(model: nn.Module) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_model_matches_torch_nn_transformer(norm_first, seed):
    torch.manual_seed(seed)
    model = make_model(13, 17, N=2, d_model=32, d_ff=64, h=4, dropout=0.0, norm_first=norm_first)
    randomize_norms(model)  # fresh norms are all alike: a misplaced one would go unnoticed
    src, tgt = padded_batch(seed)
    assert max_difference(model, src, tgt) < 1e-5


def test_parity_check_can_fail():
    """A model whose weights differ from its twin's by one entry is caught."""
    model = make_model(13, 17, N=1, d_model=32, d_ff=64, h=4, dropout=0.0)
    randomize_norms(model)
    src, tgt = padded_batch(0)
    from src.transformer import reference

    original = reference.to_torch_transformer

    def broken(m):
        ref = original(m)
        with torch.no_grad():
            ref.transformer.decoder.layers[0].linear2.bias[0] += 1e-3
        return ref

    reference.to_torch_transformer = broken
    try:
        assert max_difference(model, src, tgt) > 1e-5
    finally:
        reference.to_torch_transformer = original


def test_multi_head_attention_matches_torch():
    torch.manual_seed(0)
    ours = MultiHeadedAttention(h=4, d_model=32, dropout=0.0).eval()
    theirs = nn.MultiheadAttention(32, 4, dropout=0.0, batch_first=True).eval()
    copy_attention(ours, theirs)
    q, kv = torch.randn(3, 5, 32), torch.randn(3, 8, 32)
    pad = torch.zeros(3, 8, dtype=torch.bool)
    pad[0, 6:] = True
    out = ours(q, kv, kv, (~pad).unsqueeze(1))
    with torch.no_grad():
        ref, weights = theirs(q, kv, kv, key_padding_mask=pad, average_attn_weights=False)
    assert (out - ref).abs().max().item() < 1e-5
    torch.testing.assert_close(ours.attn, weights, atol=1e-6, rtol=1e-5)
