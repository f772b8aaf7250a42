"""The book's model equals PyTorch's own `torch.nn.Transformer` when given the same weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from src.shared.training import Batch
from src.transformer import make_model
from src.transformer.attention import MultiHeadedAttention


def copy_attention(ours: MultiHeadedAttention, theirs: nn.MultiheadAttention) -> None:
    """W^Q, W^K, W^V stacked into PyTorch's in_proj; W^O into out_proj."""
    w_q, w_k, w_v, w_o = ours.linears
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([w_q.weight, w_k.weight, w_v.weight]))
        theirs.in_proj_bias.copy_(torch.cat([w_q.bias, w_k.bias, w_v.bias]))
        theirs.out_proj.weight.copy_(w_o.weight)
        theirs.out_proj.bias.copy_(w_o.bias)


def copy_norm(ours: nn.LayerNorm, theirs: nn.LayerNorm) -> None:
    theirs.load_state_dict(ours.state_dict())


def copy_ffn(ours, theirs_layer) -> None:
    theirs_layer.linear1.load_state_dict(ours.w_1.state_dict())
    theirs_layer.linear2.load_state_dict(ours.w_2.state_dict())


def reference_transformer(model, norm_first: bool) -> nn.Transformer:
    """A `torch.nn.Transformer` holding the weights of `model`."""
    c = model.config
    ref = nn.Transformer(
        d_model=c.d_model, nhead=c.h, num_encoder_layers=c.N, num_decoder_layers=c.N, dim_feedforward=c.d_ff,
        dropout=0.0, batch_first=True, norm_first=norm_first,
    ).eval()
    for ours, theirs in zip(model.encoder.layers, ref.encoder.layers):
        copy_attention(ours.self_attn, theirs.self_attn)
        copy_ffn(ours.feed_forward, theirs)
        copy_norm(ours.sublayer[0].norm, theirs.norm1)
        copy_norm(ours.sublayer[1].norm, theirs.norm2)
    for ours, theirs in zip(model.decoder.layers, ref.decoder.layers):
        copy_attention(ours.self_attn, theirs.self_attn)
        copy_attention(ours.src_attn, theirs.multihead_attn)
        copy_ffn(ours.feed_forward, theirs)
        for i, norm in enumerate((theirs.norm1, theirs.norm2, theirs.norm3)):
            copy_norm(ours.sublayer[i].norm, norm)
    if norm_first:
        copy_norm(model.encoder.norm, ref.encoder.norm)
        copy_norm(model.decoder.norm, ref.decoder.norm)
    else:  # the paper's post-norm stacks end with the last layer's own norm, no extra one
        ref.encoder.norm = nn.Identity()
        ref.decoder.norm = nn.Identity()
    return ref


@pytest.mark.parametrize("norm_first", [True, False])
def test_model_matches_torch_nn_transformer(norm_first):
    torch.manual_seed(0)
    model = make_model(13, 17, N=2, d_model=32, d_ff=64, h=4, dropout=0.0, norm_first=norm_first).eval()
    ref = reference_transformer(model, norm_first)
    src = torch.randint(3, 13, (4, 9))
    tgt = torch.randint(3, 17, (4, 7))
    src[1, 6:], src[2, 4:] = 0, 0  # padding
    tgt[1, 5:] = 0
    batch = Batch(src, torch.cat([torch.ones(4, 1, dtype=torch.long), tgt], 1), pad=0)
    ours = model.generator(model(batch.src, batch.tgt, batch.src_mask, batch.tgt_mask))
    with torch.no_grad():
        x = ref(
            model.src_embed(batch.src), model.tgt_embed(batch.tgt),
            src_mask=None,
            tgt_mask=nn.Transformer.generate_square_subsequent_mask(batch.tgt.size(1)),
            src_key_padding_mask=batch.src == 0,  # PyTorch: True marks what may NOT be attended to
            tgt_key_padding_mask=batch.tgt == 0,
            memory_key_padding_mask=batch.src == 0,
            tgt_is_causal=True,
        )
        theirs = model.generator(x)
    keep = batch.tgt != 0  # rows of padded queries are undefined in PyTorch's fast path
    diff = (ours - theirs)[keep].abs().max().item()
    assert diff < 1e-5, diff


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
