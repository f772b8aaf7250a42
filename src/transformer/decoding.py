"""Turning a trained model into output sequences: greedy decoding and beam search, with
cached keys and values.
"""

from __future__ import annotations

import torch

from src import checks
from src.transformer.attention import subsequent_mask
from src.transformer.model import DecoderCache, EncoderDecoder


def _check_symbols(model: EncoderDecoder, **symbols: int | None) -> None:
    vocab = model.tgt_embed.embeddings.vocab
    for name, value in symbols.items():
        if value is not None and not 0 <= checks.non_negative_int(name, value) < vocab:
            raise ValueError(
                f"{name} must be a token id in [0, {vocab - 1}], got {value}"
            )


def _next_log_probs(
    model: EncoderDecoder,
    memory: torch.Tensor,
    src_mask: torch.Tensor,
    ys: torch.Tensor,
    cache: DecoderCache | None,
) -> torch.Tensor:
    """Log-probabilities of the next token after prefix `ys` (batch, t): (batch, vocab).

    With a cache only the last position is fed, and a step costs one position, not the
    whole prefix.
    """
    if cache is not None:
        # (batch, 1, d_model)
        out = model.decode(memory, src_mask, ys[:, -1:], None, cache=cache)
    else:
        # (batch, t, d_model)
        out = model.decode(memory, src_mask, ys, subsequent_mask(ys.size(1)))
    return model.generator(out[:, -1])


@torch.no_grad()
def greedy_decode(
    model: EncoderDecoder,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    max_len: int,
    start_symbol: int,
    end_symbol: int | None = None,
    pad_symbol: int | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Pick the most probable next token at each step. Returns (batch, max_len) ids,
    start symbol first.

    Once a sequence has produced `end_symbol`, its later positions hold `pad_symbol` (or
    `end_symbol` again when no pad is given); decoding stops when every sequence has
    ended.
    Call `model.eval()` first: decoding never switches the model's mode.
    """
    max_len = checks.positive_int("max_len", max_len)
    _check_symbols(
        model, start_symbol=start_symbol, end_symbol=end_symbol, pad_symbol=pad_symbol
    )
    memory = model.encode(src, src_mask)  # (batch, src_len, d_model)
    batch = src.size(0)
    # (batch, 1)
    ys = torch.full((batch, 1), start_symbol, dtype=torch.long, device=src.device)
    fill = pad_symbol if pad_symbol is not None else end_symbol
    done = torch.zeros(batch, dtype=torch.bool, device=src.device)
    cache = DecoderCache.empty(len(model.decoder.layers)) if use_cache else None
    while ys.size(1) < max_len:
        # (batch,)
        next_word = _next_log_probs(model, memory, src_mask, ys, cache).argmax(dim=-1)
        if end_symbol is not None:
            next_word = next_word.masked_fill(done, fill)
            done |= next_word == end_symbol
        ys = torch.cat([ys, next_word.unsqueeze(1)], dim=1)  # (batch, t + 1)
        if end_symbol is not None and bool(done.all()):
            break
    if ys.size(1) < max_len:  # every sequence ended early: fill the rest
        # (batch, max_len)
        ys = torch.cat([ys, ys.new_full((batch, max_len - ys.size(1)), fill)], dim=1)
    return ys


def length_penalty(length: torch.Tensor, alpha: float) -> torch.Tensor:
    """GNMT length penalty ((5 + |Y|) / 6) ** alpha (Wu et al., 2016); the paper uses
    alpha = 0.6.
    """
    return ((5.0 + length.float()) / 6.0) ** alpha


@torch.no_grad()
def beam_search(
    model: EncoderDecoder,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    max_len: int,
    start_symbol: int,
    end_symbol: int | None = None,
    beam_size: int = 4,
    alpha: float = 0.6,
    pad_symbol: int | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Keep the `beam_size` most probable prefixes at each step; return the best (batch,
    max_len) ids.

    Finished hypotheses are ranked by log-probability / length_penalty(length, alpha),
    the paper's setting (beam 4, alpha 0.6). Positions after `end_symbol` hold
    `pad_symbol` (or `end_symbol`).
    """
    max_len = checks.positive_int("max_len", max_len)
    k = checks.positive_int("beam_size", beam_size)
    if alpha < 0:
        raise ValueError(f"alpha (length penalty exponent) must be >= 0, got {alpha}")
    _check_symbols(
        model, start_symbol=start_symbol, end_symbol=end_symbol, pad_symbol=pad_symbol
    )
    fill = pad_symbol if pad_symbol is not None else end_symbol
    memory = model.encode(src, src_mask)  # (batch, src_len, d_model)
    batch, src_len = src.shape
    # (batch * k, 1|src_len, src_len)
    src_mask = src_mask.expand(batch, -1, -1).repeat_interleave(k, dim=0)
    memory = memory.repeat_interleave(k, dim=0)  # (batch * k, src_len, d_model)

    # (batch * k, 1)
    ys = torch.full((batch * k, 1), start_symbol, dtype=torch.long, device=src.device)
    scores = torch.full((batch, k), float("-inf"), device=src.device)
    # all beams start equal: expand only the first one at the first step
    scores[:, 0] = 0.0
    finished = torch.zeros(batch * k, dtype=torch.bool, device=src.device)
    lengths = torch.zeros(batch * k, dtype=torch.long, device=src.device)
    offsets = (torch.arange(batch, device=src.device) * k).unsqueeze(1)  # (batch, 1)
    cache = DecoderCache.empty(len(model.decoder.layers)) if use_cache else None
    while ys.size(1) < max_len:
        # (batch * k, vocab)
        log_probs = _next_log_probs(model, memory, src_mask, ys, cache)
        vocab = log_probs.size(-1)
        # a finished hypothesis continues with `fill` at no cost
        if end_symbol is not None:
            log_probs[finished] = float("-inf")
            log_probs[finished, fill] = 0.0
        # (batch, k * vocab)
        candidates = (scores.view(-1, 1) + log_probs).view(batch, k * vocab)
        scores, flat = candidates.topk(k, dim=1)  # (batch, k)
        # (batch * k,) row of the parent hypothesis
        beam = (offsets + flat // vocab).view(-1)
        token = (flat % vocab).view(-1)  # (batch * k,)
        ys = torch.cat([ys[beam], token.unsqueeze(1)], dim=1)  # (batch * k, t + 1)
        lengths = lengths[beam] + (~finished[beam]).long()
        finished = finished[beam]
        if end_symbol is not None:
            finished = finished | (token == end_symbol)
        if cache is not None:
            cache.select(beam)
        if end_symbol is not None and bool(finished.all()):
            break
    normalised = scores / length_penalty(lengths, alpha).view(batch, k)  # (batch, k)
    best = offsets.squeeze(1) + normalised.argmax(dim=1)  # (batch,)
    ys = ys[best]  # (batch, t)
    if ys.size(1) < max_len:
        # (batch, max_len)
        ys = torch.cat([ys, ys.new_full((batch, max_len - ys.size(1)), fill)], dim=1)
    return ys
