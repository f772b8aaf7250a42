"""Score the book's models and print one JSON object: `python -m src.evaluate`.

Models come from checkpoints given on the command line, else from the model cache, else
they are trained (and cached). Reported: the copy task's exact match on held-out random
sequences, and for English -> French and English -> German number words on the held-out
test set, exact match, BLEU and chrF for greedy decoding and for beam search. German
numbers below a million are single words, so its BLEU is computed on characters
(sacrebleu `tokenize="char"`); see `src.data.metrics`.
A bad option, a file that is not a checkpoint, or a checkpoint of another task or
direction ends the run before any work with one line, `error: ...`, and status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from src.data.copy_task import held_out_sequences
from src.data.numbers import NumbersTask
from src.recipes.copy_task import COPY_MODEL, cached_copy_model, exact_copies
from src.recipes.numbers import numbers_translator
from src.recipes.translation import Translator
from src.shared.checkpoint import Checkpoint, load_checkpoint

TASKS = ("copy", "fr", "de")
LANGS = {"fr": "French", "de": "German"}


def copy_checkpoint(progress: bool | None = None):
    """The book's copy-task model, as the chapters get it: `cached_copy_model`, trained
    once per build.
    """
    model, history = cached_copy_model(progress=progress)
    return Checkpoint(
        model, {}, {"train_seconds": sum(r["seconds"] for r in history.epochs)}
    )


def evaluate_copy(ckpt, n: int = 500) -> dict:
    """Exact match of greedy decoding on `n` held-out random sequences, those that
    accept a trained model.
    """
    sequences = held_out_sequences(n)
    seconds = ckpt.extra.get("train_seconds")
    # other writers keep epoch rows
    if seconds is None and "epochs" in ckpt.extra.get("history", ckpt.extra):
        seconds = sum(
            r["seconds"] for r in ckpt.extra.get("history", ckpt.extra)["epochs"]
        )
    return {
        "exact_match": exact_copies(ckpt.model, sequences),
        "sequences": n,
        "train_seconds": seconds,
    }


def evaluate_numbers(translator, beam_size: int = 4, alpha: float = 0.6) -> dict:
    """Greedy and beam-search scores of a number translator on the test split it was
    trained with.
    """
    task = NumbersTask(**translator.extra["task"])
    pairs = task.pairs("test")
    tokenize = "char" if task.lang == "de" else "13a"
    out = {
        "test_sentences": len(pairs),
        "bleu_tokenize": tokenize,
        "train_seconds": translator.extra.get("train_seconds"),
    }
    for name, k in (("greedy", 1), ("beam", beam_size)):
        start = time.perf_counter()
        out[name] = translator.evaluate(
            pairs, beam_size=k, alpha=alpha, bleu_tokenize=tokenize
        )
        out[name]["decode_seconds"] = time.perf_counter() - start
    out["beam"]["beam_size"], out["beam"]["alpha"] = beam_size, alpha
    return out


def _rounded(obj, digits: int = 4):
    """Floats rounded for reading (BLEU 100.00000000000004 -> 100.0); the rest
    unchanged.
    """
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    return obj


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m src.evaluate", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--tasks",
        default=",".join(TASKS),
        help=f"comma-separated subset of {','.join(TASKS)}",
    )
    p.add_argument(
        "--copy", type=Path, help="copy-task checkpoint (default: the model cache)"
    )
    p.add_argument(
        "--fr",
        type=Path,
        help="English -> French checkpoint (default: the model cache)",
    )
    p.add_argument(
        "--de",
        type=Path,
        help="English -> German checkpoint (default: the model cache)",
    )
    p.add_argument("--beam-size", type=int, default=4)
    p.add_argument("--alpha", type=float, default=0.6)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    return p


def _holds(ckpt: Checkpoint) -> str:
    """What a checkpoint was trained for: 'copy', 'fr' or 'de', else a description of
    what it holds.
    """
    vocabs, extra, config = ckpt.vocabs, ckpt.extra, ckpt.config
    if "src" not in vocabs or "tgt" not in vocabs:
        if (config.src_vocab, config.tgt_vocab) == (
            COPY_MODEL.src_vocab,
            COPY_MODEL.tgt_vocab,
        ):
            return "copy"
        return (
            f"a model without vocabularies of {config.src_vocab} and "
            f"{config.tgt_vocab} tokens"
        )
    task = extra.get("task")
    if isinstance(task, dict) and task.get("lang") in LANGS:
        return task["lang"]
    corpus = extra.get("corpus")
    if isinstance(corpus, dict):
        return (
            f"a model trained on the {corpus.get('src')} -> {corpus.get('tgt')} files "
            f"in {corpus.get('data_dir')}"
        )
    return "a translation model of no number task (no extra['task'])"


def _describe(task: str) -> str:
    return (
        "a copy-task model"
        if task == "copy"
        else f"an English -> {LANGS[task]} number model"
    )


def load_for(task: str, path: Path) -> Checkpoint | Translator:
    """The checkpoint at `path`, checked to be one for `task` ('copy', 'fr', 'de'): a
    Checkpoint or a Translator.

    ValueError names the file and what it holds: not a checkpoint, or one of another
    task or direction.
    """
    try:
        ckpt = load_checkpoint(path)
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
    held = _holds(ckpt)
    if held != task:
        raise ValueError(
            f"{path} holds {_describe(held) if held in TASKS else held}, expected "
            f"{_describe(task)}"
        )
    if task == "copy":
        return ckpt
    try:
        NumbersTask(**ckpt.extra["task"])
        translator = Translator.from_checkpoint(ckpt)
    # a foreign task or vocabulary: TypeError, KeyError, ValueError, the tokenizers'
    # errors
    except Exception as e:
        raise ValueError(
            f"{path} holds an unreadable number task or vocabulary "
            f"({type(e).__name__}: {e})"
        ) from None
    sizes = (len(translator.src_tok), len(translator.tgt_tok))
    if sizes != (ckpt.config.src_vocab, ckpt.config.tgt_vocab):
        raise ValueError(
            f"{path} holds vocabularies of {sizes[0]} and {sizes[1]} tokens for a "
            f"model of {ckpt.config.src_vocab} and {ckpt.config.tgt_vocab}"
        )
    return translator


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    if not tasks or any(t not in TASKS for t in tasks):
        parser.error(
            f"--tasks must be a comma-separated subset of {','.join(TASKS)}, got "
            f"{args.tasks!r}"
        )
    if args.beam_size < 1:
        parser.error(f"--beam-size must be a positive integer, got {args.beam_size}")
    if not (math.isfinite(args.alpha) and args.alpha >= 0):
        parser.error(f"--alpha must be a finite number >= 0, got {args.alpha}")
    given = {}  # every checkpoint on the command line, checked before any work
    for name in TASKS:
        path = getattr(args, name)
        if path is not None:
            if not path.is_file():
                parser.error(
                    f"--{name}: {path} is a directory, expected a checkpoint file"
                    if path.is_dir()
                    else f"--{name}: checkpoint not found: {path}"
                )
            try:
                given[name] = load_for(name, path)
            except ValueError as e:
                parser.error(" ".join(f"--{name}: {e}".split()))  # one line

    result: dict = {}
    if "copy" in tasks:
        result["copy"] = evaluate_copy(
            given["copy"] if "copy" in given else copy_checkpoint(args.progress)
        )
    for lang in ("fr", "de"):
        if lang in tasks:
            translator = (
                given[lang]
                if lang in given
                else numbers_translator(lang, args.progress)
            )
            result[f"en_{lang}"] = evaluate_numbers(
                translator, args.beam_size, args.alpha
            )
    print(json.dumps(_rounded(result), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
