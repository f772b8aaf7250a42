"""Tokenizers that turn sentences into token ids and back: a word-level vocabulary and
subword BPE.

Which one a task needs depends on its target language:

- English -> French number words: numbers below a million are written with about a
  hundred words in each language ("cent", "mille", "quatre-vingt-dix-sept"; a hyphenated
  compound is one word, as in a dictionary). Every word of the test set occurs many
  times in the training set, so a word-level vocabulary has no unknown words, gives the
  shortest sequences (hyphens are not split off: fast training and decoding) and keeps
  tokens readable in attention charts. BPE would spend its merges rebuilding those same
  words.
- English -> German number words: German writes a number below a million as one compound
  word ("dreihundertvierundzwanzig"). A word-level vocabulary would need one entry per
  number, and every number of the test set would be unknown. Byte-pair encoding (trained
  with the `tokenizers` library) splits compounds into frequent pieces ("drei",
  "hundert", "vier", "und", "zwanzig") that do recur, so unseen numbers are spelled from
  known subwords.

Both share the special tokens <pad> = 0, <s> = 1, </s> = 2, <unk> = 3,
`encode`/`decode`, and `to_dict`/`tokenizer_from_dict` so that checkpoints store them as
plain strings and lists.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from src import checks

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
PAD, BOS, EOS, UNK = 0, 1, 2, 3

# A run of characters between spaces, with commas split off:
# "thousand," -> "thousand", ",".
_WORD = re.compile(r"[^\s,]+|,")


def split_words(sentence: str) -> list[str]:
    """'ninety-seven thousand, one' -> ['ninety-seven', 'thousand', ',', 'one']."""
    return _WORD.findall(sentence)


def join_words(words: Sequence[str]) -> str:
    """The inverse of `split_words` for text written the usual way: words apart by one
    space, no space before ','.
    """
    out = ""
    for i, w in enumerate(words):
        if i > 0 and w != ",":
            out += " "
        out += w
    return out


def _strip(ids: Iterable[int]) -> list[int]:
    """Ids up to the first </s>, without <s> and <pad>."""
    out = []
    for i in ids:
        i = int(i)
        if i == EOS:
            break
        if i not in (PAD, BOS):
            out.append(i)
    return out


class WordTokenizer:
    """A closed word-level vocabulary built from training sentences; unseen words map to
    <unk>.
    """

    kind = "word"

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = list(tokens)
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(
                f"a vocabulary must start with the special tokens {SPECIALS}, got "
                f"{tokens[:4]}"
            )
        if len(set(tokens)) != len(tokens):
            raise ValueError("a vocabulary must not repeat a token")
        self.itos = tokens
        self.stoi = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, sentences: Iterable[str], min_freq: int = 1) -> WordTokenizer:
        """The words of `sentences` seen at least `min_freq` times, most frequent first
        (ties alphabetical).
        """
        min_freq = checks.positive_int("min_freq", min_freq)
        counts = Counter(w for s in sentences for w in split_words(s))
        words = sorted(
            (w for w, c in counts.items() if c >= min_freq and w not in SPECIALS),
            key=lambda w: (-counts[w], w),
        )
        return cls([*SPECIALS, *words])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, sentence: str) -> list[int]:
        """Token ids of `sentence`, without <s> and </s>."""
        return [self.stoi.get(w, UNK) for w in split_words(sentence)]

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """The token strings of `ids` (all of them, specials included): labels for
        attention charts.
        """
        return [self.itos[int(i)] for i in ids]

    def decode(self, ids: Iterable[int]) -> str:
        """The sentence of `ids`, read up to the first </s>; <s> and <pad> are
        skipped.
        """
        return join_words([self.itos[i] for i in _strip(ids)])

    def to_dict(self) -> dict:
        return {"kind": self.kind, "tokens": list(self.itos)}


class BPETokenizer:
    """Byte-pair encoding trained with Hugging Face `tokenizers`, exactly reversible
    through Metaspace.
    """

    kind = "bpe"

    def __init__(self, tokenizer) -> None:  # a tokenizers.Tokenizer
        self._tok = tokenizer
        for i, s in enumerate(SPECIALS):
            if tokenizer.token_to_id(s) != i:
                raise ValueError(
                    f"a BPE vocabulary must map {s} to id {i}, got "
                    f"{tokenizer.token_to_id(s)}"
                )

    @classmethod
    def train(
        cls, sentences: Iterable[str], vocab_size: int = 250, min_frequency: int = 2
    ) -> BPETokenizer:
        """Learn merges on `sentences` until the vocabulary (specials and characters
        included) has `vocab_size` entries.

        Training is deterministic: the same sentences give the same merges.
        """
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        vocab_size = checks.positive_int("vocab_size", vocab_size)
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        # Metaspace marks each word start with "▁", so decoding restores the spaces
        # exactly.
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=checks.positive_int("min_frequency", min_frequency),
            special_tokens=list(SPECIALS),
            show_progress=False,
        )
        tok.train_from_iterator(list(sentences), trainer=trainer)
        return cls(tok)

    def __len__(self) -> int:
        return self._tok.get_vocab_size()

    def encode(self, sentence: str) -> list[int]:
        """Subword ids of `sentence`, without <s> and </s>."""
        return self._tok.encode(sentence, add_special_tokens=False).ids

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """The subword strings of `ids` ("▁" marks the start of a word)."""
        return [self._tok.id_to_token(int(i)) for i in ids]

    def decode(self, ids: Iterable[int]) -> str:
        """The sentence of `ids`, read up to the first </s>; <s> and <pad> are
        skipped.
        """
        return self._tok.decode(_strip(ids), skip_special_tokens=False)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "json": self._tok.to_str()}


Tokenizer = WordTokenizer | BPETokenizer


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """Rebuild a tokenizer saved with `to_dict` (as stored in checkpoints)."""
    if not isinstance(d, dict) or "kind" not in d:
        raise ValueError(
            "not a saved tokenizer: expected a dict with a 'kind', got "
            f"{type(d).__name__}"
        )
    if d["kind"] == "word":
        return WordTokenizer(d["tokens"])
    if d["kind"] == "bpe":
        from tokenizers import Tokenizer as HFTokenizer

        return BPETokenizer(HFTokenizer.from_str(d["json"]))
    raise ValueError(f"unknown tokenizer kind {d['kind']!r}; expected 'word' or 'bpe'")
