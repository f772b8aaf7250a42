"""Translation metrics: exact match, BLEU and chrF, the last two computed with
`sacrebleu`.

BLEU (Papineni et al., 2002) is the geometric mean of word 1- to 4-gram precisions times
a brevity penalty; chrF (Popovic, 2015) is an F-score over character n-grams, kinder to
languages that glue words together. `sacrebleu` (Post, 2018) fixes the tokenization so
scores are comparable; its signature records the settings. A German number below a
million is one word, so word-level BLEU has no 2-grams to count and is zero for every
system: for such targets use `bleu_tokenize="char"`.
"""

from __future__ import annotations

from collections.abc import Sequence


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Share of hypotheses equal to their reference, character for character."""
    _check(hypotheses, references)
    return sum(h == r for h, r in zip(hypotheses, references, strict=True)) / len(
        references
    )


def bleu(
    hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a"
) -> float:
    """Corpus BLEU in [0, 100] with sacrebleu's default settings (`tokenize` '13a';
    'char' for compounds).
    """
    from sacrebleu.metrics import BLEU

    _check(hypotheses, references)
    return float(
        BLEU(tokenize=tokenize).corpus_score(list(hypotheses), [list(references)]).score
    )


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (character 6-grams, beta 2) in [0, 100] with sacrebleu's default
    settings.
    """
    from sacrebleu.metrics import CHRF

    _check(hypotheses, references)
    return float(CHRF().corpus_score(list(hypotheses), [list(references)]).score)


def score(
    hypotheses: Sequence[str], references: Sequence[str], bleu_tokenize: str = "13a"
) -> dict[str, float]:
    """{'exact_match', 'bleu', 'chrf'} of hypotheses against references."""
    return {
        "exact_match": exact_match(hypotheses, references),
        "bleu": bleu(hypotheses, references, bleu_tokenize),
        "chrf": chrf(hypotheses, references),
    }


def _check(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references: they must "
            "pair up"
        )
    if not references:
        raise ValueError("no references to score against")
