"""The book's number-translation models: settings measured to reach their target,
training, and a cache.

The data (which numbers, spelled how, split how) is `src.data.numbers`; this module
trains on it with the translation code every corpus goes through
(`src.recipes.translation`).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path

from src.data.numbers import NumbersTask, write_number_corpus
from src.data.parallel import load_split
from src.recipes.targets import TargetMissed, reproduce_command
from src.recipes.translation import TranslationSettings, Translator, train_translation
from src.shared.callbacks import Callback
from src.shared.checkpoint import cached_model
from src.shared.resume import Checkpointing
from src.shared.training import TrainingConfig
from src.transformer.model import ModelConfig


def number_settings(lang: str = "fr") -> TranslationSettings:
    """The book's model and schedule for English -> `lang`: the same model code, only
    the target tokenizer differs.

    A fixed number of epochs is not steady: greedy exact match moves by a percent or
    more from one epoch to the next, and where a run ends depends on the seed and on the
    CPU's float rounding. So training stops after two epochs in a row at exact match
    0.996 or better on the validation pairs, at most `epochs` epochs; `make robustness`
    checks the test target over seeds and kernel paths.
    """
    if lang not in ("fr", "de"):
        raise ValueError(f"lang must be 'fr' or 'de', got {lang!r}")
    return TranslationSettings(
        model=ModelConfig(N=2, d_model=128, d_ff=256, h=4, dropout=0.0),
        training=TrainingConfig(
            epochs=12, factor=0.3, warmup=400, patience=2, valid_target=0.996
        ),
        src_tokenizer="word",
        tgt_tokenizer="word" if lang == "fr" else "bpe",
        bpe_vocab=150,
        batch_size=128,
        seed=0,
    )


def train_numbers(
    task: NumbersTask,
    settings=None,
    progress: bool | None = None,
    ctx=None,
    data_dir: str | Path | None = None,
    checkpoint: Checkpointing | None = None,
    callbacks: Sequence[Callback] = (),
):
    """Write the corpus files, read them back with the parallel-text loader, and train;
    returns a Translator.

    `checkpoint` (a `src.shared.resume.Checkpointing`) writes training states and
    resumes from one.
    """
    settings = settings or number_settings(task.lang)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(data_dir) if data_dir is not None else Path(tmp)
        write_number_corpus(
            directory,
            task.lang,
            task.n_train,
            task.n_valid,
            task.n_test,
            task.limit,
            task.data_seed,
            task.blocks,
        )
        train_pairs = load_split(directory, "train", "en", task.lang)
        valid_pairs = load_split(directory, "valid", "en", task.lang)
    translator = train_translation(
        train_pairs,
        valid_pairs,
        settings,
        progress=progress,
        ctx=ctx,
        checkpoint=checkpoint,
        callbacks=callbacks,
    )
    translator.extra["task"] = dataclasses.asdict(task)
    return translator


# greedy exact match on the test split that a cached number model must reach
TARGET_EXACT_MATCH = 0.99


def accept_numbers_model(translator, task: NumbersTask, seed: int = 0) -> float:
    """Greedy exact match on the test split; TargetMissed (nothing is cached) below
    `TARGET_EXACT_MATCH`.
    """
    score = translator.evaluate(task.pairs("test"))["exact_match"]
    if score < TARGET_EXACT_MATCH:
        raise TargetMissed(
            f"number-translation recipe en->{task.lang} (settings "
            f"{translator.extra['settings']}) with seed {seed}: test exact match "
            f"{score:.3f}, target {TARGET_EXACT_MATCH}; the model was not cached. "
            "Reproduce with: " + reproduce_command(task.lang, seed)
        )
    return score


def numbers_translator(
    lang: str = "fr",
    progress: bool | None = None,
    task: NumbersTask | None = None,
    settings=None,
):
    """The book's English -> `lang` model: trained once, accepted
    (`accept_numbers_model`), then cached.
    """
    task = task or NumbersTask(lang=lang)
    settings = settings or number_settings(task.lang)

    def train_fn():
        translator = train_numbers(task, settings, progress=progress)
        accept_numbers_model(translator, task, settings.seed)
        return translator.to_checkpoint()

    key = {"task": dataclasses.asdict(task), "settings": settings.to_dict()}
    return Translator.from_checkpoint(
        cached_model(f"numbers-{task.lang}", key, train_fn)
    )
