"""A translation task that runs offline: English number words to French or German number words.

`num2words` spells each number in each language ("ninety-seven" -> "quatre-vingt-dix-sept",
"siebenundneunzig"). The numbers are split into train, validation and test sets by one seeded
permutation of 0 .. limit-1, so the three sets are disjoint: the test set holds numbers the
model never saw. The sentences are written as plain parallel text files, one sentence per line
(`train.en` / `train.fr`, `valid.en` / ...), the format of Multi30k, IWSLT and WMT, and read back
with the same loader (`src.data.parallel`) a real corpus would use.
"""

from __future__ import annotations

from pathlib import Path

import torch

from src import checks

LANGS = ("en", "fr", "de")
LIMIT = 1_000_000  # numbers below one million
SPLITS = ("train", "valid", "test")


def number_words(n: int, lang: str) -> str:
    """`n` written in words in `lang` ('en', 'fr' or 'de'): 97 -> 'ninety-seven', 'quatre-vingt-dix-sept'."""
    from num2words import num2words

    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}")
    return num2words(checks.non_negative_int("n", n), lang=lang)


def split_numbers(
    n_train: int, n_valid: int, n_test: int, limit: int = LIMIT, seed: int = 0
) -> dict[str, list[int]]:
    """Disjoint train / valid / test sets of numbers in [0, limit): consecutive slices of one seeded permutation."""
    sizes = {"train": checks.positive_int("n_train", n_train), "valid": checks.positive_int("n_valid", n_valid),
             "test": checks.positive_int("n_test", n_test)}
    limit = checks.positive_int("limit", limit)
    if sum(sizes.values()) > limit:
        raise ValueError(f"n_train + n_valid + n_test = {sum(sizes.values())} exceeds the {limit} numbers below {limit}")
    perm = torch.randperm(limit, generator=torch.Generator().manual_seed(seed)).tolist()
    out, start = {}, 0
    for split, size in sizes.items():
        out[split] = perm[start : start + size]
        start += size
    return out


def write_number_corpus(
    directory: str | Path,
    tgt_lang: str = "fr",
    n_train: int = 30_000,
    n_valid: int = 500,
    n_test: int = 1_000,
    limit: int = LIMIT,
    seed: int = 0,
) -> dict[str, tuple[Path, Path]]:
    """Write `{split}.en` and `{split}.{tgt_lang}` for each split into `directory`; return their paths.

    Line i of `train.en` and line i of `train.fr` are the same number, in English and in French.
    The same seed writes the same files.
    """
    if tgt_lang not in LANGS or tgt_lang == "en":
        raise ValueError(f"tgt_lang must be 'fr' or 'de', got {tgt_lang!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    numbers = split_numbers(n_train, n_valid, n_test, limit, seed)
    paths = {}
    for split, ns in numbers.items():
        pair = []
        for lang in ("en", tgt_lang):
            path = directory / f"{split}.{lang}"
            path.write_text("".join(number_words(n, lang) + "\n" for n in ns), encoding="utf-8")
            pair.append(path)
        paths[split] = (pair[0], pair[1])
    return paths
