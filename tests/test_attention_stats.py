"""Tallies of where attention heads look, and the alignment rule of number words: against loops
written out by hand, on hand-made attention and on sentences whose alignment is known."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from num2words import num2words

from src.attention_stats import (
    KINDS,
    aligned_positions,
    argmax_share,
    chance_share,
    english_roles,
    french_roles,
    german_roles,
    largest_weight,
    positions_mask,
    relative_mask,
    source_targets,
    stacked_attention,
    tally,
    teacher_forced,
    weight_share,
)
from src.data.tokenizer import PAD, WordTokenizer, split_words
from src.transformer import make_model


def random_attention(b=3, h=2, q=4, k=5, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, h, q, k, generator=g).softmax(dim=-1)


def random_mask(*shape, seed=1) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < 0.4


# --- tallies ----------------------------------------------------------------------------------


def test_argmax_share_counts_rows_whose_largest_weight_is_on_a_target_key():
    attn, target = random_attention(), random_mask(3, 4, 5)
    rows = torch.ones(3, 4, dtype=torch.bool)
    rows[0, 1] = rows[2, 3] = False
    expected = []
    for h in range(2):
        hits = total = 0
        for b in range(3):
            for q in range(4):
                if rows[b, q]:
                    total += 1
                    hits += bool(target[b, q, int(attn[b, h, q].argmax())])
        expected.append(hits / total)
    assert argmax_share(attn, target, rows).tolist() == pytest.approx(expected)


def test_argmax_share_is_one_on_the_argmax_and_zero_elsewhere():
    attn = random_attention()
    top = torch.nn.functional.one_hot(attn[:, 0].argmax(-1), 5).bool()  # head 0's argmax
    rows = torch.ones(3, 4, dtype=torch.bool)
    assert argmax_share(attn, top, rows)[0] == 1
    assert argmax_share(attn, ~top, rows)[0] == 0


def test_weight_share_and_largest_weight_against_loops():
    attn, target = random_attention(), random_mask(3, 4, 5)
    rows = torch.rand(3, 4, generator=torch.Generator().manual_seed(2)) < 0.7
    picked = [(b, q) for b in range(3) for q in range(4) if rows[b, q]]
    for h in range(2):
        on = sum(float(attn[b, h, q][target[b, q]].sum()) for b, q in picked) / len(picked)
        top = sum(float(attn[b, h, q].max()) for b, q in picked) / len(picked)
        assert weight_share(attn, target, rows)[h] == pytest.approx(on)
        assert largest_weight(attn, rows)[h] == pytest.approx(top)
    uniform = torch.full((2, 1, 3, 4), 0.25)
    assert largest_weight(uniform, torch.ones(2, 3, dtype=torch.bool)).item() == 0.25


def test_tallies_reject_wrong_shapes_and_empty_rows():
    attn = random_attention()
    with pytest.raises(ValueError, match="target"):
        argmax_share(attn, torch.ones(3, 5, 4, dtype=torch.bool), torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="rows"):
        argmax_share(attn, torch.ones(3, 4, 5, dtype=torch.bool), torch.ones(4, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="nothing to count"):
        argmax_share(attn, torch.ones(3, 4, 5, dtype=torch.bool), torch.zeros(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="attn"):
        largest_weight(attn[0], torch.ones(2, 4, dtype=torch.bool))


def test_relative_mask_marks_key_query_plus_offset_inside_each_length():
    mask = relative_mask([3, 5], 5, -1)
    for b, n in enumerate([3, 5]):
        for q in range(5):
            for k in range(5):
                assert mask[b, q, k] == (k == q - 1 and q < n and 0 <= k < n)
    assert relative_mask([4], 4, 0)[0].equal(torch.eye(4, dtype=torch.bool))


def test_positions_mask_and_its_errors():
    mask = positions_mask([[[0, 2], [1]], [[], [3]]], 3, 4)
    assert mask.shape == (2, 3, 4)
    assert mask.nonzero().tolist() == [[0, 0, 0], [0, 0, 2], [0, 1, 1], [1, 1, 3]]
    with pytest.raises(ValueError, match="key position"):
        positions_mask([[[4]]], 1, 4)
    with pytest.raises(ValueError, match="queries"):
        positions_mask([[[0], [0]]], 1, 4)


def test_chance_share_is_the_fraction_of_allowed_keys_marked():
    target = positions_mask([[[0], [0, 1]]], 2, 4)
    allowed = torch.tensor([[[1, 1, 1, 1], [1, 1, 0, 0]]], dtype=torch.bool)
    rows = torch.ones(1, 2, dtype=torch.bool)
    assert chance_share(target, allowed, rows) == pytest.approx((1 / 4 + 2 / 2) / 2)


def test_tally_has_a_row_per_layer_and_head_and_its_own_rows_for_the_largest_weight():
    attn = torch.stack([random_attention(seed=s) for s in range(2)])  # (layers, b, h, q, k)
    target = random_mask(3, 4, 5)
    some = torch.zeros(3, 4, dtype=torch.bool)
    some[0, 0] = True  # the target's rows: one row only
    every = torch.ones(3, 4, dtype=torch.bool)
    table = tally(attn, {"t": (target, some)}, every)
    assert table[["layer", "head"]].values.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    for layer in range(2):
        got = table[table.layer == layer]
        assert got["t"].tolist() == pytest.approx(argmax_share(attn[layer], target, some).tolist())
        expected = largest_weight(attn[layer], every).tolist()
        assert got["largest weight"].tolist() == pytest.approx(expected)
        assert expected != pytest.approx(largest_weight(attn[layer], some).tolist())


# --- the alignment rule ------------------------------------------------------------------------


def roles_of(n: int, lang: str) -> list[set[str]]:
    words = split_words(num2words(n, lang=lang))
    return [set(r) for r in {"en": english_roles, "fr": french_roles}[lang](words)]


def test_english_and_french_roles_follow_the_blocks_of_the_number():
    assert roles_of(505361, "en") == [
        {"k.digit"}, {"k.hundred"}, {"and"}, {"k.tens"}, {"thousand"}, {","},
        {"u.digit"}, {"u.hundred"}, {"and"}, {"u.tens"},
    ]
    # cinq cent cinq mille trois cent soixante et un
    assert roles_of(505361, "fr") == [
        {"k.digit"}, {"k.hundred"}, {"k.tens"}, {"thousand"}, {"u.digit"}, {"u.hundred"},
        {"u.tens"}, {"u.tens"}, {"u.tens"},
    ]
    assert roles_of(97, "fr") == [{"u.tens"}]  # quatre-vingt-dix-sept: one word


def test_german_pieces_take_the_roles_of_their_letters():
    pieces = ["▁fünfhundert", "fünf", "tausenddreihundert", "einund", "sechzig"]
    assert "".join(pieces).lstrip("▁") == num2words(505361, lang="de")
    assert [set(r) for r in german_roles(pieces)] == [
        {"k.digit", "k.hundred"}, {"k.tens"}, {"thousand", "u.digit", "u.hundred"},
        {"u.tens"}, {"u.tens"},
    ]
    assert german_roles(["▁", "zwanzig"])[0] == frozenset()


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        # cent (one hundred): cent aligns with "one" and "hundred"
        (100, {"cent": ["one", "hundred"]}),
        # mille (one thousand) un
        (1001, {"mille": ["one", "thousand"], "un": ["one"]}),
        # quatre-vingt-dix-sept mille: the compound with ninety-seven, mille with thousand only
        (97000, {"quatre-vingt-dix-sept": ["ninety-seven"], "mille": ["thousand"]}),
        # soixante et onze: all three words with seventy-one; and is aligned with nothing
        (171, {"cent": ["one", "hundred"], "soixante": ["seventy-one"], "et": ["seventy-one"],
               "onze": ["seventy-one"]}),
    ],
)
def test_aligned_positions_of_french_words(n, expected):
    en, fr = split_words(num2words(n, lang="en")), split_words(num2words(n, lang="fr"))
    aligned = aligned_positions(english_roles(en), french_roles(fr))
    got = {w: [en[i] for i in a] for w, a in zip(fr, aligned)}
    assert got == expected
    glue = {i for i, w in enumerate(en) if w in ("and", ",")}
    assert not any(glue & set(a) for a in aligned)  # no French word aligns with "and"


def test_a_german_piece_across_parts_aligns_with_every_word_it_spells():
    en = split_words(num2words(505361, lang="en"))
    pieces = ["▁fünfhundert", "fünf", "tausenddreihundert", "einund", "sechzig"]
    aligned = aligned_positions(english_roles(en), german_roles(pieces))
    words = [[en[i] for i in a] for a in aligned]
    assert words == [["five", "hundred"], ["five"], ["thousand", "three", "hundred"],
                     ["sixty-one"], ["sixty-one"]]


# --- a model's attention, teacher-forced --------------------------------------------------------

PAIRS = [("one hundred", "cent"), ("two thousand and one", "deux mille un")]


@pytest.fixture
def translator():
    src_tok = WordTokenizer.build(en for en, _ in PAIRS)
    tgt_tok = WordTokenizer.build(fr for _, fr in PAIRS)
    model = make_model(len(src_tok), len(tgt_tok), N=2, d_model=16, d_ff=32, h=2, dropout=0.0)
    model.set_fused_attention(True)  # teacher_forced must turn the explicit softmax back on
    return SimpleNamespace(model=model, src_tok=src_tok, tgt_tok=tgt_tok)


def test_teacher_forced_returns_every_weight_and_the_predictions(translator):
    batch, predicted, attn = teacher_forced(translator, PAIRS)
    assert batch.src.tolist()[0][:3] == translator.src_tok.encode("one hundred") + [2]
    assert predicted.shape == batch.tgt_y.shape == (2, 4)  # <s> deux mille un -> ... </s>
    assert list(attn) == list(KINDS)
    assert attn["encoder self-attention"].shape == (2, 2, 2, 5, 5)  # (layers, b, h, q, k)
    assert attn["decoder source attention"].shape == (2, 2, 2, 4, 5)
    expected = translator.model.decoder.layers[1].src_attn.attn
    assert torch.equal(attn["decoder source attention"][1], expected)
    assert (attn["decoder self-attention"].triu(diagonal=1) == 0).all()  # causal
    pads = batch.src == PAD  # (b, k): no weight on padding
    assert attn["encoder self-attention"].masked_select(pads[None, :, None, None, :]).abs().max() < 1e-6


def test_stacked_attention_needs_the_explicit_softmax(translator):
    with pytest.raises(ValueError, match="set_fused_attention"):
        stacked_attention(translator.model)


def test_source_targets_mark_the_aligned_words_of_the_token_produced_and_read(translator):
    batch, predicted, _ = teacher_forced(translator, PAIRS)
    end = frozenset({"end"})
    src_roles = [english_roles(split_words(en)) + [end] for en, _ in PAIRS]
    tgt_roles = [french_roles(split_words(fr)) + [end] for _, fr in PAIRS]
    targets = source_targets(batch, predicted, src_roles, tgt_roles)
    produced, _ = targets["the word it produces"]
    read, _ = targets["the word it reads"]
    # sentence 1: two thousand and one </s> / deux mille un </s>; row t produces token t
    assert [produced[1, t].nonzero().flatten().tolist() for t in range(4)] == [[0], [1], [3], [4]]
    assert [read[1, t].nonzero().flatten().tolist() for t in range(4)] == [[], [0], [1], [3]]
    ends, every = targets["</s>"]
    assert ends[0, 0].nonzero().flatten().tolist() == [2]  # one hundred </s>
    right = (predicted == batch.tgt_y) & (batch.tgt_y != PAD)
    assert every.equal(right)
    assert targets["the word it reads"][1].equal(right & read.any(dim=-1))


def test_tally_of_a_model_matches_its_weights(translator):
    batch, _, attn = teacher_forced(translator, PAIRS)
    rows = batch.src != PAD
    table = tally(attn["encoder self-attention"], {"itself": (relative_mask([3, 5], 5, 0), rows)}, rows)
    assert isinstance(table, pd.DataFrame) and len(table) == 4
    diagonal_top = attn["encoder self-attention"].argmax(-1) == torch.arange(5)  # (l, b, h, q)
    for layer in range(2):
        for head in range(2):
            hits = diagonal_top[layer, :, head][rows].float().mean().item()
            assert table.query(f"layer == {layer} and head == {head}")["itself"].item() == pytest.approx(hits)
