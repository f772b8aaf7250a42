"""A translation task that runs offline: English number words to French or German number
words.

`num2words` spells each number in each language ("ninety-seven" ->
"quatre-vingt-dix-sept", "siebenundneunzig"). The numbers are split into train,
validation and test sets by one seeded permutation of 0 .. limit-1, so the three sets
are disjoint: the test set holds numbers the model never saw. The training set also
holds the building blocks, every number below 1000, that are not held out. The sentences
are written as plain parallel text files, one sentence per line (`train.en` /
`train.fr`, `valid.en` / ...), the format of Multi30k, IWSLT and WMT, and read back with
the same loader (`src.data.parallel`) a real corpus would use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from num2words import num2words

from src import checks

LANGS = ("en", "fr", "de")
LIMIT = 1_000_000  # numbers below one million
SPLITS = ("train", "valid", "test")


def number_words(n: int, lang: str) -> str:
    """`n` written in words in `lang` ('en', 'fr' or 'de'): 97 -> 'ninety-seven',
    'quatre-vingt-dix-sept'.
    """
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}")
    return num2words(checks.non_negative_int("n", n), lang=lang)


def building_blocks(limit: int = LIMIT) -> list[int]:
    """Every number below 1000 (and below `limit`): the groups of three digits all other
    numbers are made of.
    """
    return list(range(min(1000, limit)))


def split_numbers(
    n_train: int,
    n_valid: int,
    n_test: int,
    limit: int = LIMIT,
    seed: int = 0,
    blocks: bool = True,
) -> dict[str, list[int]]:
    """Disjoint train / valid / test sets of numbers in [0, limit), drawn from one
    seeded permutation.

    The validation and test sets are the first `n_valid`, then the next `n_test` numbers
    of the permutation: uniform samples. With `blocks`, the training set holds every
    `building_blocks` number that is not held out (each group of three digits alone,
    spellings that a uniform sample almost never shows, since 99.9 % of the numbers
    below a million are above 999), and the following numbers of the permutation fill it
    up to `n_train`.
    """
    sizes = {
        "train": checks.positive_int("n_train", n_train),
        "valid": checks.positive_int("n_valid", n_valid),
        "test": checks.positive_int("n_test", n_test),
    }
    limit = checks.positive_int("limit", limit)
    if sum(sizes.values()) > limit:
        total = sum(sizes.values())
        raise ValueError(
            f"n_train + n_valid + n_test = {total} exceeds the {limit} numbers below "
            f"{limit}"
        )
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(limit, generator=g).tolist()
    valid, test = perm[:n_valid], perm[n_valid : n_valid + n_test]
    held_out = set(valid) | set(test)
    train = [n for n in building_blocks(limit) if n not in held_out] if blocks else []
    if len(train) > n_train:
        raise ValueError(
            f"n_train ({n_train}) is smaller than the {len(train)} building blocks; "
            "raise n_train or pass blocks=False"
        )
    chosen = set(train)
    for n in perm[n_valid + n_test :]:
        if len(train) == n_train:
            break
        if n not in chosen:
            train.append(n)
    # blocks spread through the file
    train = [train[i] for i in torch.randperm(len(train), generator=g).tolist()]
    return {"train": train, "valid": valid, "test": test}


def write_number_corpus(
    directory: str | Path,
    tgt_lang: str = "fr",
    n_train: int = 40_000,
    n_valid: int = 2_000,
    n_test: int = 1_000,
    limit: int = LIMIT,
    seed: int = 0,
    blocks: bool = True,
) -> dict[str, tuple[Path, Path]]:
    """Write `{split}.en` and `{split}.{tgt_lang}` for each split into `directory`;
    return their paths.

    Line i of `train.en` and line i of `train.fr` are the same number, in English and in
    French.
    The same seed writes the same files.
    """
    if tgt_lang not in LANGS or tgt_lang == "en":
        raise ValueError(f"tgt_lang must be 'fr' or 'de', got {tgt_lang!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    numbers = split_numbers(n_train, n_valid, n_test, limit, seed, blocks)
    paths = {}
    for split, ns in numbers.items():
        pair = []
        for lang in ("en", tgt_lang):
            path = directory / f"{split}.{lang}"
            path.write_text(
                "".join(number_words(n, lang) + "\n" for n in ns), encoding="utf-8"
            )
            pair.append(path)
        paths[split] = (pair[0], pair[1])
    return paths


@dataclass(frozen=True)
class NumbersTask:
    """Which numbers, in which language, and how many of them: the data side of a
    number-translation run.
    """

    lang: str = "fr"
    n_train: int = 40_000
    n_valid: int = 2_000  # the stopping rule reads them: enough to see a rare mistake
    n_test: int = 1_000
    limit: int = LIMIT
    data_seed: int = 0
    blocks: bool = True  # every number below 1000 in the training set

    def __post_init__(self) -> None:
        if self.lang not in ("fr", "de"):
            raise ValueError(f"lang must be 'fr' or 'de', got {self.lang!r}")
        for name in ("n_train", "n_valid", "n_test", "limit"):
            checks.positive_int(name, getattr(self, name))
        if self.n_train + self.n_valid + self.n_test > self.limit:
            raise ValueError(
                f"n_train + n_valid + n_test exceeds the {self.limit} numbers below "
                f"{self.limit}"
            )

    def pairs(self, split: str) -> list[tuple[str, str]]:
        """The (English, target) sentence pairs of one split, generated in memory (no
        files).
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        ns = split_numbers(
            self.n_train,
            self.n_valid,
            self.n_test,
            self.limit,
            self.data_seed,
            self.blocks,
        )[split]
        return [(number_words(n, "en"), number_words(n, self.lang)) for n in ns]
