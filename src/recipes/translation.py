"""Train a translation model on sentence pairs and translate with it: the code any
parallel corpus goes through.

The number corpus and a real one (Multi30k, WMT) take the same path: build tokenizers on
the training sentences, encode and bucket the pairs (`src.data.parallel`), train with
`train`, and decode with greedy search or beam search. Scores come from
`src.data.metrics`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from src import checks
from src.data.metrics import score
from src.data.parallel import EpochBatches, encode_pairs, make_batches, pad_sequences
from src.data.tokenizer import (
    BOS,
    EOS,
    PAD,
    BPETokenizer,
    WordTokenizer,
    tokenizer_from_dict,
)
from src.recipes.targets import UntilExact
from src.shared import distributed
from src.shared.callbacks import Callback, progress_bar
from src.shared.checkpoint import Checkpoint
from src.shared.history import History
from src.shared.resume import Checkpointing
from src.shared.training import TrainingConfig, train
from src.transformer.decoding import beam_search, greedy_decode
from src.transformer.model import ModelConfig


@dataclass(frozen=True)
class TranslationSettings:
    """Everything that decides a trained translation model: the model, its training,
    the tokenizers and batches, and the seed.
    """

    # the vocabulary sizes come from the tokenizers
    model: ModelConfig = ModelConfig(N=2, d_model=128, d_ff=512, h=4, dropout=0.0)
    training: TrainingConfig = TrainingConfig()
    src_tokenizer: str = "word"  # 'word' or 'bpe'
    tgt_tokenizer: str = "word"
    # vocabulary size of a BPE tokenizer (specials and characters included)
    bpe_vocab: int = 250
    batch_size: int | None = 128  # sentences per batch
    max_tokens: int | None = None  # or target tokens per batch
    max_train_len: int | None = None  # drop training pairs with a longer side (tokens)
    seed: int = 0

    def __post_init__(self) -> None:
        for side in ("src_tokenizer", "tgt_tokenizer"):
            if getattr(self, side) not in ("word", "bpe"):
                raise ValueError(
                    f"{side} must be 'word' or 'bpe', got {getattr(self, side)!r}"
                )
        if self.model.share_embeddings and self.src_tokenizer != self.tgt_tokenizer:
            raise ValueError(
                "share_embeddings needs the same tokenizer kind on both sides"
            )
        checks.positive_int("bpe_vocab", self.bpe_vocab)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# For a parallel corpus in files (`python -m src.train files`): a model a laptop trains
# on Multi30k in hours, and the paper's base model (Table 3).
FILES_SMALL = TranslationSettings(
    model=ModelConfig(N=3, d_model=256, d_ff=1024, h=8, dropout=0.1),
    training=TrainingConfig(epochs=10, factor=1.0, warmup=4000, smoothing=0.1),
    src_tokenizer="bpe",
    tgt_tokenizer="bpe",
    bpe_vocab=8000,
    batch_size=None,
    max_tokens=4096,
    max_train_len=100,
)
BASE = dataclasses.replace(
    FILES_SMALL,
    model=ModelConfig(N=6, d_model=512, d_ff=2048, h=8, share_embeddings=True),
    training=dataclasses.replace(FILES_SMALL.training, epochs=20),
    bpe_vocab=37000,
    max_tokens=25000,
)


def build_tokenizer(kind: str, sentences: Sequence[str], bpe_vocab: int = 250):
    """A word-level vocabulary or a BPE tokenizer trained on `sentences`."""
    if kind == "word":
        return WordTokenizer.build(sentences)
    if kind == "bpe":
        return BPETokenizer.train(sentences, vocab_size=bpe_vocab)
    raise ValueError(f"tokenizer kind must be 'word' or 'bpe', got {kind!r}")


class Translator:
    """A trained model with its tokenizers: `translate` sentences, `evaluate` against
    references.
    """

    def __init__(
        self, model, src_tok, tgt_tok, history=None, extra: dict | None = None
    ) -> None:
        self.model = model
        self.src_tok = src_tok
        self.tgt_tok = tgt_tok
        self.history = history  # a History-like object with .steps and .epochs, or None
        self.extra = extra or {}

    @classmethod
    def from_checkpoint(cls, ckpt) -> Translator:
        extra = dict(ckpt.extra)
        history = History(**extra["history"]) if "history" in extra else None
        return cls(
            ckpt.model,
            tokenizer_from_dict(ckpt.vocabs["src"]),
            tokenizer_from_dict(ckpt.vocabs["tgt"]),
            history,
            extra,
        )

    def to_checkpoint(self):
        extra = dict(self.extra)
        if self.history is not None:
            extra["history"] = {
                "steps": self.history.steps,
                "epochs": self.history.epochs,
            }
        return Checkpoint(
            self.model,
            {"src": self.src_tok.to_dict(), "tgt": self.tgt_tok.to_dict()},
            extra,
        )

    def encode_sources(self, sentences: Sequence[str]) -> torch.Tensor:
        """(len(sentences), longest + 1) source ids ending with </s>, padded."""
        return pad_sequences([self.src_tok.encode(s) + [EOS] for s in sentences])

    @torch.no_grad()
    def decode_ids(
        self,
        src: torch.Tensor,
        beam_size: int = 1,
        alpha: float = 0.6,
        max_len: int | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Output ids (batch, max_len) for source ids (batch, src_len): greedy when
        beam_size is 1.
        """
        self.model.eval()
        device = next(self.model.parameters()).device
        src = src.to(device)
        src_mask = (src != PAD).unsqueeze(-2)  # (batch, 1, src_len)
        max_len = max_len or 2 * src.size(1) + 10
        if beam_size == 1:
            return greedy_decode(
                self.model, src, src_mask, max_len, BOS, EOS, PAD, use_cache=use_cache
            )
        return beam_search(
            self.model,
            src,
            src_mask,
            max_len,
            BOS,
            EOS,
            beam_size,
            alpha,
            PAD,
            use_cache=use_cache,
        )

    def translate(
        self,
        sentences: Sequence[str],
        beam_size: int = 1,
        alpha: float = 0.6,
        batch_size: int = 250,
        max_len: int | None = None,
    ) -> list[str]:
        """Translations of `sentences`, decoded in batches of `batch_size` (greedy when
        beam_size is 1).
        """
        checks.positive_int("beam_size", beam_size)
        checks.positive_int("batch_size", batch_size)
        sentences = list(sentences)
        # similar lengths pad less
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        out: list[str] = [""] * len(sentences)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ys = self.decode_ids(
                self.encode_sources([sentences[i] for i in idx]),
                beam_size,
                alpha,
                max_len,
            )
            for i, row in zip(idx, ys.tolist(), strict=True):
                out[i] = self.tgt_tok.decode(row)
        return out

    def evaluate(
        self,
        pairs: Sequence[tuple[str, str]],
        beam_size: int = 1,
        alpha: float = 0.6,
        bleu_tokenize: str = "13a",
    ) -> dict[str, float]:
        """Exact match, BLEU and chrF of the translations of the sources of `pairs`
        against their targets.
        """
        hyps = self.translate([s for s, _ in pairs], beam_size, alpha)
        return score(hyps, [t for _, t in pairs], bleu_tokenize)


def train_translation(
    train_pairs: Sequence[tuple[str, str]],
    valid_pairs: Sequence[tuple[str, str]] | None,
    settings: TranslationSettings,
    progress: bool | None = None,
    ctx=None,
    checkpoint: Checkpointing | None = None,
    callbacks: Sequence[Callback] = (),
) -> Translator:
    """Build tokenizers on `train_pairs`, then train a model from `settings.seed`;
    deterministic on CPU. With `settings.training.patience`, training stops early by the
    validation pairs' greedy exact match (`UntilExact`).

    `ctx` (a `src.shared.distributed.DistContext`) trains data-parallel: each process
    takes a slice of every batch. `callbacks` see the run (`src.shared.callbacks`);
    `checkpoint` writes training states and resumes from one (see `train`).
    The returned Translator holds the training history and the seconds it took.
    """
    s = settings
    ctx = ctx or distributed.DistContext()
    if s.model.share_embeddings:  # one vocabulary for both sides (section 3.4)
        src_tok = tgt_tok = build_tokenizer(
            s.src_tokenizer, [x for pair in train_pairs for x in pair], s.bpe_vocab
        )
    else:
        src_tok = build_tokenizer(
            s.src_tokenizer, [a for a, _ in train_pairs], s.bpe_vocab
        )
        tgt_tok = build_tokenizer(
            s.tgt_tokenizer, [b for _, b in train_pairs], s.bpe_vocab
        )
    examples = encode_pairs(train_pairs, src_tok, tgt_tok, s.max_train_len)
    eval_batches = None
    if valid_pairs:
        valid = encode_pairs(valid_pairs, src_tok, tgt_tok)
        eval_batches = [
            b.to(ctx.device)
            for b in make_batches(valid, s.batch_size, s.max_tokens, shuffle=False)
        ]
    torch.manual_seed(s.seed)
    model = s.model.with_vocab(len(src_tok), len(tgt_tok)).build()
    until = None
    if s.training.patience and valid_pairs:

        def valid_exact_match(core: nn.Module) -> float:
            return Translator(core, src_tok, tgt_tok).evaluate(valid_pairs)[
                "exact_match"
            ]

        until = UntilExact(
            valid_exact_match, s.training.valid_target, s.training.patience
        )
    trained = distributed.wrap(model, ctx)
    batches = distributed.sharded(
        EpochBatches(examples, s.batch_size, s.max_tokens, seed=s.seed), ctx
    )
    start = time.perf_counter()
    history = train(
        trained,
        batches,
        s.training,
        pad=PAD,
        eval_batches=eval_batches,
        until=until,
        callbacks=[
            checkpoint,
            progress_bar(progress if ctx.is_main else False),
            *callbacks,
        ],
    )
    seconds = time.perf_counter() - start
    history = distributed.average_history(history, ctx)
    model.eval()
    extra = {
        "settings": s.to_dict(),
        "train_seconds": seconds,
        "train_pairs": len(examples),
        "world": ctx.world,
        "threads": torch.get_num_threads(),
    }
    return Translator(model, src_tok, tgt_tok, history, extra)
