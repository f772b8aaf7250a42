"""The parallel-text loader on small files written here: pairs, batching by length, clear errors."""

from __future__ import annotations

import pytest
import torch

from src.data.parallel import (
    EpochBatches,
    encode_pairs,
    load_split,
    make_batches,
    pad_sequences,
    read_parallel,
)
from src.data.tokenizer import BOS, EOS, PAD, WordTokenizer


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path):
    en = ["a dog runs", "two men", "a cat sleeps on the mat", "hello", "the sun is hot today"]
    de = ["ein hund rennt", "zwei männer", "eine katze schläft auf der matte", "hallo", "die sonne ist heiß heute"]
    write(tmp_path / "train.en", en)
    write(tmp_path / "train.de", de)
    return tmp_path, list(zip(en, de, strict=True))


def test_reads_pairs_in_order(corpus):
    directory, pairs = corpus
    assert read_parallel(directory / "train.en", directory / "train.de") == pairs
    assert load_split(directory, "train", "en", "de") == pairs
    assert load_split(directory, "train", "de", "en")[1] == ("zwei männer", "two men")


def test_mismatched_line_counts_name_both_files(tmp_path):
    write(tmp_path / "a.en", ["one", "two", "three"])
    write(tmp_path / "a.fr", ["un", "deux"])
    with pytest.raises(ValueError, match=r"a\.en has 3 lines.*a\.fr has 2"):
        read_parallel(tmp_path / "a.en", tmp_path / "a.fr")


def test_missing_file_is_named(tmp_path):
    write(tmp_path / "train.en", ["one"])
    with pytest.raises(FileNotFoundError, match=r"train\.fr"):
        load_split(tmp_path, "train", "en", "fr")


def test_not_utf8_and_empty_files(tmp_path):
    (tmp_path / "x.en").write_bytes(b"fine\nbad \xff\xfe\n")
    write(tmp_path / "x.fr", ["bien", "mal"])
    with pytest.raises(ValueError, match=r"not UTF-8.*line 2"):
        read_parallel(tmp_path / "x.en", tmp_path / "x.fr")
    write(tmp_path / "e.en", [])
    write(tmp_path / "e.fr", [])
    with pytest.raises(ValueError, match="no sentence pairs"):
        read_parallel(tmp_path / "e.en", tmp_path / "e.fr")


def test_empty_lines_are_skipped_but_keep_alignment(tmp_path):
    write(tmp_path / "s.en", ["one", "", "three", "four"])
    write(tmp_path / "s.fr", ["un", "deux", "", "quatre"])
    assert read_parallel(tmp_path / "s.en", tmp_path / "s.fr") == [("one", "un"), ("four", "quatre")]
    assert len(read_parallel(tmp_path / "s.en", tmp_path / "s.fr", skip_empty=False)) == 4


def test_encode_adds_specials_and_filters_long_pairs(corpus):
    _, pairs = corpus
    src_tok = WordTokenizer.build(s for s, _ in pairs)
    tgt_tok = WordTokenizer.build(t for _, t in pairs)
    ex = encode_pairs(pairs, src_tok, tgt_tok)
    src, tgt = ex[0]
    assert src == [*src_tok.encode("a dog runs"), EOS]
    assert tgt == [BOS, *tgt_tok.encode("ein hund rennt"), EOS]
    assert len(encode_pairs(pairs, src_tok, tgt_tok, max_len=5)) == 3  # drops the 5- and 6-word pairs (7, 8 ids)


def test_batches_group_similar_lengths_and_pad(corpus):
    _, pairs = corpus
    tok = WordTokenizer.build(w for p in pairs for w in p)
    examples = encode_pairs(pairs, tok, tok)
    batches = make_batches(examples, batch_size=2, shuffle=False)
    assert [b.src.size(0) for b in batches] == [2, 2, 1]
    lengths = [len(t) for _, t in examples]
    # sorted by target length: the shortest two first, the longest last
    assert batches[0].tgt_y.size(1) + 1 == sorted(lengths)[1]
    assert batches[-1].tgt_y.size(1) + 1 == max(lengths)
    b = batches[0]
    assert b.src_mask.shape == (2, 1, b.src.size(1)) and b.tgt_mask.shape[1:] == (b.tgt.size(1), b.tgt.size(1))
    assert b.ntokens == int((b.tgt_y != PAD).sum())
    # every example lands in exactly one batch
    seen = sorted(tuple(r[r != PAD].tolist()) for bb in batches for r in bb.src)
    assert seen == sorted(tuple(s) for s, _ in examples)


def test_batches_by_tokens_and_seeded_shuffle(corpus):
    _, pairs = corpus
    tok = WordTokenizer.build(w for p in pairs for w in p)
    examples = encode_pairs(pairs * 20, tok, tok)
    for b in make_batches(examples, batch_size=None, max_tokens=24):
        assert b.tgt.size(0) * (b.tgt.size(1) + 1) <= 24
    a = make_batches(examples, 8, seed=1)
    assert all(torch.equal(x.src, y.src) for x, y in zip(a, make_batches(examples, 8, seed=1), strict=True))
    c = make_batches(examples, 8, seed=2)
    assert not all(torch.equal(x.src, y.src) for x, y in zip(a, c, strict=False))
    epochs = EpochBatches(examples, 8, seed=1)
    first, second = epochs(), epochs()
    assert all(torch.equal(x.src, y.src) for x, y in zip(first, a, strict=True))
    same = [x.src.shape == y.src.shape and torch.equal(x.src, y.src) for x, y in zip(first, second, strict=False)]
    assert not all(same)


def test_batching_arguments_are_checked(corpus):
    _, pairs = corpus
    tok = WordTokenizer.build(w for p in pairs for w in p)
    examples = encode_pairs(pairs, tok, tok)
    with pytest.raises(ValueError, match="empty"):
        make_batches([], 4)
    with pytest.raises(ValueError, match="batch_size, max_tokens"):
        make_batches(examples, None, None)
    with pytest.raises(ValueError, match="batch_size"):
        make_batches(examples, 0)


def test_pad_sequences():
    out = pad_sequences([[5, 6, 7], [8]])
    assert out.tolist() == [[5, 6, 7], [8, PAD, PAD]] and out.dtype == torch.long
