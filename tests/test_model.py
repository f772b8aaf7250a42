"""The whole model: shapes, the causal property, padding invariance, weight sharing, pre/post-norm, decoding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from src.shared.training import Batch
from src.transformer import greedy_decode, make_model, subsequent_mask
from src.transformer.layers import PositionwiseFeedForward, SublayerConnection


def test_shapes_of_every_module(small_model):
    m = small_model
    src = torch.randint(2, 11, (3, 7))
    tgt = torch.randint(2, 11, (3, 5))
    src_mask, tgt_mask = torch.ones(3, 1, 7), subsequent_mask(5)
    emb = m.src_embed(src)
    assert emb.shape == (3, 7, 32)
    memory = m.encode(src, src_mask)
    assert memory.shape == (3, 7, 32)
    for layer in m.encoder.layers:
        assert layer.self_attn.attn.shape == (3, 4, 7, 7)
        assert layer.feed_forward(memory).shape == (3, 7, 32)
    out = m.decode(memory, src_mask, tgt, tgt_mask)
    assert out.shape == (3, 5, 32)
    for layer in m.decoder.layers:
        assert layer.self_attn.attn.shape == (3, 4, 5, 5)
        assert layer.src_attn.attn.shape == (3, 4, 5, 7)
    log_probs = m.generator(out)
    assert log_probs.shape == (3, 5, 11)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3, 5))
    torch.testing.assert_close(m(src, tgt, src_mask, tgt_mask), out)


def test_causal_property(small_model):
    """Changing target token t changes no decoder output at positions < t."""
    src = torch.randint(2, 11, (2, 6))
    tgt = torch.randint(2, 11, (2, 8))
    src_mask, tgt_mask = torch.ones(2, 1, 6), subsequent_mask(8)
    out = small_model(src, tgt, src_mask, tgt_mask)
    for t in range(1, 8):
        changed = tgt.clone()
        changed[:, t] = (changed[:, t] - 2 + 1) % 9 + 2
        out2 = small_model(src, changed, src_mask, tgt_mask)
        torch.testing.assert_close(out2[:, :t], out[:, :t])
        assert not torch.allclose(out2[:, t], out[:, t])


def test_padding_invariance_in_the_encoder(small_model):
    """Appending padding to the source changes neither the encoding of real tokens nor the decoder output."""
    src = torch.randint(2, 11, (1, 5))
    padded = torch.cat([src, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    mem = small_model.encode(src, Batch(src).src_mask)
    mem_padded = small_model.encode(padded, Batch(padded).src_mask)
    torch.testing.assert_close(mem_padded[:, :5], mem, atol=1e-5, rtol=1e-5)
    tgt, tgt_mask = torch.randint(2, 11, (1, 4)), subsequent_mask(4)
    out = small_model.decode(mem, Batch(src).src_mask, tgt, tgt_mask)
    out_padded = small_model.decode(mem_padded, Batch(padded).src_mask, tgt, tgt_mask)
    torch.testing.assert_close(out_padded, out, atol=1e-5, rtol=1e-5)


def test_batched_equals_one_by_one(small_model):
    src = torch.randint(2, 11, (4, 6))
    tgt = torch.randint(2, 11, (4, 5))
    together = small_model(src, tgt, torch.ones(4, 1, 6), subsequent_mask(5))
    for i in range(4):
        alone = small_model(src[i : i + 1], tgt[i : i + 1], torch.ones(1, 1, 6), subsequent_mask(5))
        torch.testing.assert_close(alone[0], together[i], atol=1e-5, rtol=1e-5)


def test_without_positional_encoding_the_encoder_ignores_order():
    """positional=False (an ablation): self-attention is permutation-equivariant, so
    permuting the source permutes the encoder's output rows and nothing else; with the
    positional encoding it does not.
    """
    torch.manual_seed(0)
    src = torch.tensor([[1, 2, 3, 4, 5, 6]])
    perm = torch.tensor([5, 3, 0, 1, 4, 2])
    mask = torch.ones(1, 1, 6, dtype=torch.bool)
    for positional in (False, True):
        model = make_model(11, 11, N=2, d_model=16, d_ff=32, h=2, dropout=0.0, positional=positional)
        assert model.config.positional is positional
        memory = model.encode(src, mask)
        permuted = model.encode(src[:, perm], mask)
        assert torch.allclose(permuted, memory[:, perm], atol=1e-5) is not positional


def test_ablation_switches_are_kept_in_the_config():
    model = make_model(11, 11, N=1, d_model=16, d_ff=32, h=2, scale_scores=False, positional=False)
    assert not model.config.scale_scores and not model.config.positional
    rebuilt = model.config.build()
    assert all(not m.scaled for m in rebuilt.modules() if hasattr(m, "scaled"))
    assert rebuilt.src_embed.position.pe.abs().sum() == 0
    assert make_model(11, 11, N=1, d_model=16, d_ff=32, h=2).src_embed.position.pe.abs().sum() > 0


def test_shared_embeddings_are_one_parameter():
    m = make_model(20, 20, N=1, d_model=16, d_ff=32, h=2, share_embeddings=True)
    w = m.generator.proj.weight
    assert m.src_embed.embeddings.lut.weight is w and m.tgt_embed.embeddings.lut.weight is w
    unshared = make_model(20, 20, N=1, d_model=16, d_ff=32, h=2)
    n_shared = sum(p.numel() for p in m.parameters())
    n_unshared = sum(p.numel() for p in unshared.parameters())
    assert n_unshared - n_shared == 2 * 20 * 16


@pytest.mark.parametrize("norm_first", [True, False])
def test_sublayer_connection_pre_and_post_norm(norm_first):
    sub = SublayerConnection(8, dropout=0.0, norm_first=norm_first)
    f = nn.Linear(8, 8)
    x = torch.randn(2, 3, 8)
    ln = lambda t: (t - t.mean(-1, keepdim=True)) / torch.sqrt(t.var(-1, unbiased=False, keepdim=True) + 1e-5)  # noqa: E731
    expected = x + f(ln(x)) if norm_first else ln(x + f(x))
    torch.testing.assert_close(sub(x, f), expected, atol=1e-5, rtol=1e-5)


def test_post_norm_model_has_no_final_norm_and_runs():
    m = make_model(11, 11, N=2, d_model=16, d_ff=32, h=2, norm_first=False).eval()
    assert isinstance(m.encoder.norm, nn.Identity) and isinstance(m.decoder.norm, nn.Identity)
    out = m(torch.randint(0, 11, (2, 4)), torch.randint(0, 11, (2, 3)), torch.ones(2, 1, 4), subsequent_mask(3))
    assert out.shape == (2, 3, 16)


def test_feed_forward_is_equation_2():
    ff = PositionwiseFeedForward(8, 16, dropout=0.0)
    x = torch.randn(4, 8)
    expected = torch.clamp(x @ ff.w_1.weight.T + ff.w_1.bias, min=0) @ ff.w_2.weight.T + ff.w_2.bias
    torch.testing.assert_close(ff(x), expected)


def test_paper_parameter_counts_against_table_3():
    """Base ~65M and big ~213M parameters with a shared 37000-token vocabulary (Table 3)."""
    base = make_model(37000, 37000, share_embeddings=True)
    big = make_model(37000, 37000, N=6, d_model=1024, d_ff=4096, h=16, dropout=0.3, share_embeddings=True)
    n_base = sum(p.numel() for p in base.parameters())
    n_big = sum(p.numel() for p in big.parameters())
    assert abs(n_base - 65e6) / 65e6 < 0.04
    assert abs(n_big - 213e6) / 213e6 < 0.02


def test_greedy_decode_returns_max_len_positions_with_start_symbol(small_model):
    src = torch.randint(2, 11, (3, 6))
    for max_len in (1, 2, 7):
        out = greedy_decode(small_model, src, torch.ones(3, 1, 6), max_len, start_symbol=1)
        assert out.shape == (3, max_len)
        assert torch.all(out[:, 0] == 1)


def test_greedy_decode_matches_step_by_step_argmax(small_model):
    """Each generated token is the argmax of the generator given the prefix so far, for every row of a batch."""
    src = torch.randint(2, 11, (3, 6))
    src_mask = torch.ones(3, 1, 6)
    out = greedy_decode(small_model, src, src_mask, 6, start_symbol=1)
    memory = small_model.encode(src, src_mask)
    for t in range(1, 6):
        prefix = out[:, :t]
        logits = small_model.generator(small_model.decode(memory, src_mask, prefix, subsequent_mask(t))[:, -1])
        assert torch.equal(logits.argmax(-1), out[:, t])
    torch.testing.assert_close(
        out, greedy_decode(small_model, src, src_mask, 6, start_symbol=1, use_cache=False)
    )


def test_greedy_decode_stops_at_end_symbol_and_pads(small_model):
    src = torch.randint(2, 11, (4, 6))
    src_mask = torch.ones(4, 1, 6)
    free = greedy_decode(small_model, src, src_mask, 8, start_symbol=1)
    end = int(free[0, 2])  # a token the first row emits at step 2: make it the end symbol
    out = greedy_decode(small_model, src, src_mask, 8, start_symbol=1, end_symbol=end, pad_symbol=0)
    assert out.shape == (4, 8)
    for row, free_row in zip(out, free):
        hits = (free_row[1:] == end).nonzero()
        if len(hits):
            stop = int(hits[0]) + 1
            assert torch.equal(row[: stop + 1], free_row[: stop + 1])
            assert torch.all(row[stop + 1 :] == 0)
        else:
            assert torch.equal(row, free_row)
