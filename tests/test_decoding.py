"""Decoding: cached keys and values change nothing, beam size 1 is greedy, beam search finds better sequences."""

from __future__ import annotations

import pytest
import torch

from src.transformer import beam_search, greedy_decode, make_model
from src.transformer.attention import subsequent_mask

BOS, EOS, PAD = 1, 2, 0


def random_model(seed: int, vocab: int = 12, sharp: float = 1.0):
    """An untrained model; `sharp` scales the output layer so its distributions are more or less peaked."""
    torch.manual_seed(seed)
    model = make_model(vocab, vocab, N=2, d_model=32, d_ff=64, h=4, dropout=0.0).eval()
    with torch.no_grad():
        model.generator.proj.weight.mul_(sharp)
    return model


def sources(seed: int, batch: int = 6, length: int = 7, vocab: int = 12):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, vocab, (batch, length), generator=g)
    src[1, 5:] = PAD  # one padded source
    return src, (src != PAD).unsqueeze(-2)


def log_prob(model, src, src_mask, ys, end_symbol=None) -> torch.Tensor:
    """Sum of log-probabilities of each sequence ys[:, 1:] under the model (teacher-forced), up to its end symbol."""
    with torch.no_grad():
        out = model.generator(model(src, ys[:, :-1], src_mask, subsequent_mask(ys.size(1) - 1)))  # (batch, t, vocab)
    lp = out.gather(-1, ys[:, 1:].unsqueeze(-1)).squeeze(-1)  # (batch, t)
    if end_symbol is not None:  # count up to and including the first end symbol
        ended = (ys[:, 1:] == end_symbol).long().cumsum(1)
        keep = (ended == 0) | ((ended == 1) & (ys[:, 1:] == end_symbol))
        lp = lp * keep
    return lp.sum(1)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("end", [None, EOS])
def test_cached_greedy_equals_uncached(seed, end):
    model = random_model(seed, sharp=3.0)
    src, mask = sources(seed)
    a = greedy_decode(model, src, mask, 12, BOS, end, PAD, use_cache=True)
    b = greedy_decode(model, src, mask, 12, BOS, end, PAD, use_cache=False)
    assert a.shape == (6, 12) and torch.equal(a, b)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("end", [None, EOS])
def test_cached_beam_equals_uncached(seed, end):
    model = random_model(seed, sharp=3.0)
    src, mask = sources(seed)
    a = beam_search(model, src, mask, 12, BOS, end, beam_size=4, pad_symbol=PAD, use_cache=True)
    b = beam_search(model, src, mask, 12, BOS, end, beam_size=4, pad_symbol=PAD, use_cache=False)
    assert torch.equal(a, b)


@pytest.mark.parametrize("seed", range(4))
def test_beam_size_one_is_greedy(seed):
    model = random_model(seed, sharp=2.0)
    src, mask = sources(seed)
    for end in (None, EOS):
        for cache in (True, False):
            greedy = greedy_decode(model, src, mask, 10, BOS, end, PAD, use_cache=cache)
            beam = beam_search(model, src, mask, 10, BOS, end, beam_size=1, alpha=0.0, pad_symbol=PAD, use_cache=cache)
            assert torch.equal(beam, greedy)


def test_beam_finds_higher_scoring_sequences_than_greedy():
    """Without an end symbol or length penalty the score is the sequence's log-probability: beam must win somewhere."""
    better, worse = 0, 0
    for seed in range(4):
        model = random_model(seed, sharp=1.5)
        src, mask = sources(seed + 10, batch=8)
        greedy = greedy_decode(model, src, mask, 8, BOS)
        beam = beam_search(model, src, mask, 8, BOS, beam_size=5, alpha=0.0)
        g, b = log_prob(model, src, mask, greedy), log_prob(model, src, mask, beam)
        better += int((b > g + 1e-4).sum())
        worse += int((b < g - 1e-4).sum())
    assert better > 0  # beam search found a more probable sequence than greedy for some inputs
    assert better > worse


def test_beam_returns_its_best_finished_hypothesis():
    """With an end symbol, the returned sequence ends and its normalised score is no worse than greedy's."""
    model = random_model(7, sharp=2.0)
    src, mask = sources(7, batch=8)
    greedy = greedy_decode(model, src, mask, 10, BOS, EOS, PAD)
    beam = beam_search(model, src, mask, 10, BOS, EOS, beam_size=6, alpha=0.0, pad_symbol=PAD)
    for row in beam:
        ended = (row == EOS).nonzero()
        if len(ended):
            assert (row[int(ended[0]) + 1:] == PAD).all()
    g, b = log_prob(model, src, mask, greedy, EOS), log_prob(model, src, mask, beam, EOS)
    assert (b >= g - 1e-4).float().mean() >= 0.75


@pytest.mark.slow
def test_cached_equals_uncached_on_a_trained_model():
    """The copy task trained briefly: cached and uncached decoding agree, greedy and beam."""
    from src.data.copy_task import copy_batches, random_sequences
    from src.recipes.copy_task import COPY_MODEL
    from src.shared.training import TrainingConfig, train

    torch.manual_seed(0)
    model = COPY_MODEL.build()
    g = torch.Generator().manual_seed(1)
    train(model, lambda: copy_batches(10, 80, generator=g), TrainingConfig(epochs=6, factor=2.0, warmup=200), pad=PAD)
    src = random_sequences(32, generator=torch.Generator().manual_seed(5))
    mask = (src != PAD).unsqueeze(-2)
    for fn in (greedy_decode, lambda *a, **k: beam_search(*a, beam_size=3, **k)):
        cached = fn(model, src, mask, 10, BOS, use_cache=True)
        assert torch.equal(cached, fn(model, src, mask, 10, BOS, use_cache=False))
