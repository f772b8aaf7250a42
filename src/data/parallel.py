"""Parallel text files (Multi30k, IWSLT, WMT, or the number corpus): read sentence
pairs, batch them by length.

A parallel corpus is two files with one sentence per line, line i of one the translation
of line i of the other (`train.en` and `train.de`). `read_parallel` reads and checks
them, `encode_pairs` turns sentences into ids with <s> and </s>, and `make_batches`
groups sentences of similar length (so little of a batch is padding), pads them and
returns `Batch` objects, in a seeded random order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import torch

from src import checks
from src.data.tokenizer import BOS, EOS, PAD
from src.shared.batch import Batch


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file, without their line endings."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"parallel text file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise ValueError(
            f"{path} is not UTF-8 text (line {line}: {e.reason})"
        ) from None
    return text.splitlines()


def read_parallel(
    src_path: str | Path, tgt_path: str | Path, skip_empty: bool = True
) -> list[tuple[str, str]]:
    """Sentence pairs (source, target) from two files of equal line counts.

    Surrounding whitespace is stripped; with `skip_empty`, pairs where either side is
    empty are dropped (WMT files have a few). Files of different line counts raise
    ValueError.
    """
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise ValueError(
            f"parallel files differ in length: {src_path} has {len(src)} lines, "
            f"{tgt_path} has {len(tgt)}; line i of one must be the translation of line "
            "i of the other"
        )
    pairs = [(s.strip(), t.strip()) for s, t in zip(src, tgt, strict=True)]
    if skip_empty:
        pairs = [(s, t) for s, t in pairs if s and t]
    if not pairs:
        raise ValueError(f"no sentence pairs in {src_path} and {tgt_path}")
    return pairs


def split_paths(
    directory: str | Path, split: str, src_lang: str, tgt_lang: str
) -> tuple[Path, Path]:
    """`directory/{split}.{src_lang}` and `directory/{split}.{tgt_lang}`, the usual
    names of corpus files.
    """
    directory = Path(directory)
    return directory / f"{split}.{src_lang}", directory / f"{split}.{tgt_lang}"


def load_split(
    directory: str | Path, split: str, src_lang: str, tgt_lang: str
) -> list[tuple[str, str]]:
    """Read the pairs of one split ('train', 'valid', 'test', or a file stem like
    'newstest2014').
    """
    return read_parallel(*split_paths(directory, split, src_lang, tgt_lang))


def encode_pairs(
    pairs: Sequence[tuple[str, str]], src_tok, tgt_tok, max_len: int | None = None
) -> list[tuple[list[int], list[int]]]:
    """Token ids of each pair: source `ids + [</s>]`, target `[<s>] + ids + [</s>]`.

    With `max_len`, pairs whose source or target is longer than `max_len` tokens are
    dropped (as is usual when training on WMT).
    """
    out = []
    for s, t in pairs:
        src = src_tok.encode(s) + [EOS]
        tgt = [BOS, *tgt_tok.encode(t), EOS]
        if max_len is None or (len(src) <= max_len and len(tgt) <= max_len):
            out.append((src, tgt))
    return out


def pad_sequences(seqs: Sequence[Sequence[int]], pad: int = PAD) -> torch.Tensor:
    """(len(seqs), longest) ids, padded with `pad` on the right."""
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def make_batches(
    examples: Sequence[tuple[list[int], list[int]]],
    batch_size: int | None = 128,
    max_tokens: int | None = None,
    shuffle: bool = True,
    seed: int = 0,
) -> list[Batch]:
    """Group examples of similar length into padded `Batch`es.

    Examples are sorted by (target, source) length, with ties broken at random when
    `shuffle`, then cut into batches of at most `batch_size` sentences and, if given, at
    most `max_tokens` target tokens including padding (the paper batched by about 25000
    tokens). The order of the batches is shuffled with `seed`. The same seed gives the
    same batches.
    """
    if not examples:
        raise ValueError("examples is empty: nothing to batch")
    if batch_size is None and max_tokens is None:
        raise ValueError("give batch_size, max_tokens or both")
    if batch_size is not None:
        checks.positive_int("batch_size", batch_size)
    if max_tokens is not None:
        checks.positive_int("max_tokens", max_tokens)
    rng = random.Random(seed)
    keys = [rng.random() if shuffle else i for i in range(len(examples))]
    order = sorted(
        range(len(examples)),
        key=lambda i: (len(examples[i][1]), len(examples[i][0]), keys[i]),
    )
    groups, current, width = [], [], 0
    for i in order:
        w = max(width, len(examples[i][1]))
        full = (batch_size is not None and len(current) >= batch_size) or (
            max_tokens is not None and current and w * (len(current) + 1) > max_tokens
        )
        if full:
            groups.append(current)
            current, w = [], len(examples[i][1])
        current.append(i)
        width = w
    groups.append(current)
    if shuffle:
        rng.shuffle(groups)
    return [
        Batch(
            pad_sequences([examples[i][0] for i in g]),
            pad_sequences([examples[i][1] for i in g]),
            pad=PAD,
        )
        for g in groups
    ]


class EpochBatches:
    """A callable that returns freshly shuffled batches for each epoch: pass it to
    `train`.

    Epoch e uses seed `seed + e`, so a run is reproducible and every epoch sees a new
    order.
    """

    def __init__(
        self,
        examples,
        batch_size: int | None = 128,
        max_tokens: int | None = None,
        seed: int = 0,
    ) -> None:
        self.examples = examples
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.seed = seed
        self.epoch = 0
        make_batches(examples[:1], batch_size, max_tokens)  # check the arguments now

    def __call__(self) -> list[Batch]:
        seed = self.seed + self.epoch
        batches = make_batches(
            self.examples, self.batch_size, self.max_tokens, shuffle=True, seed=seed
        )
        self.epoch += 1
        return batches
