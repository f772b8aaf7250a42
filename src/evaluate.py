"""Score the book's models and print one JSON object: `python -m src.evaluate`.

Models come from checkpoints given on the command line, else from the model cache, else they are
trained (and cached). Reported: the copy task's exact match on held-out random sequences, and for
English -> French and English -> German number words on the held-out test set, exact match, BLEU
and chrF for greedy decoding and for beam search. German numbers below a million are single
words, so its BLEU is computed on characters (sacrebleu `tokenize="char"`); see `src.data.metrics`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

TASKS = ("copy", "fr", "de")


def copy_checkpoint(progress: bool | None = None):
    """The book's copy-task model, as the chapters get it: `cached_copy_model`, trained once per build."""
    from src.data.copy_task import cached_copy_model
    from src.shared.checkpoint import Checkpoint

    model, history = cached_copy_model(progress=progress)
    return Checkpoint(model, {}, {"train_seconds": sum(r["seconds"] for r in history.epochs)})


def evaluate_copy(ckpt, n: int = 500, seed: int = 1234) -> dict:
    """Exact match of greedy decoding on `n` random sequences the model never trained on."""
    from src.data.copy_task import exact_match, random_sequences

    sequences = random_sequences(n, generator=torch.Generator().manual_seed(seed))
    seconds = ckpt.extra.get("train_seconds")
    if seconds is None and "epochs" in ckpt.extra.get("history", ckpt.extra):  # other writers keep epoch rows
        seconds = sum(r["seconds"] for r in ckpt.extra.get("history", ckpt.extra)["epochs"])
    return {"exact_match": exact_match(ckpt.model, sequences), "sequences": n, "train_seconds": seconds}


def evaluate_numbers(translator, beam_size: int = 4, alpha: float = 0.6) -> dict:
    """Greedy and beam-search scores of a number translator on the test split it was trained with."""
    from src.data.numbers import NumbersTask

    task = NumbersTask(**translator.extra["task"])
    pairs = task.pairs("test")
    tokenize = "char" if task.lang == "de" else "13a"
    out = {"test_sentences": len(pairs), "bleu_tokenize": tokenize,
           "train_seconds": translator.extra.get("train_seconds")}
    for name, k in (("greedy", 1), ("beam", beam_size)):
        start = time.perf_counter()
        out[name] = translator.evaluate(pairs, beam_size=k, alpha=alpha, bleu_tokenize=tokenize)
        out[name]["decode_seconds"] = time.perf_counter() - start
    out["beam"]["beam_size"], out["beam"]["alpha"] = beam_size, alpha
    return out


def _rounded(obj, digits: int = 4):
    """Floats rounded for reading (BLEU 100.00000000000004 -> 100.0); the rest unchanged."""
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    return obj


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m src.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of {','.join(TASKS)}")
    p.add_argument("--copy", type=Path, help="copy-task checkpoint (default: the model cache)")
    p.add_argument("--fr", type=Path, help="English -> French checkpoint (default: the model cache)")
    p.add_argument("--de", type=Path, help="English -> German checkpoint (default: the model cache)")
    p.add_argument("--beam-size", type=int, default=4)
    p.add_argument("--alpha", type=float, default=0.6)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    if not tasks or any(t not in TASKS for t in tasks):
        parser.error(f"--tasks must be a comma-separated subset of {','.join(TASKS)}, got {args.tasks!r}")
    if args.beam_size < 1:
        parser.error(f"--beam-size must be a positive integer, got {args.beam_size}")
    if args.alpha < 0:
        parser.error(f"--alpha must be >= 0, got {args.alpha}")
    for name in ("copy", "fr", "de"):
        path = getattr(args, name)
        if path is not None and not path.is_file():
            parser.error(f"--{name}: checkpoint not found: {path}")

    from src.data.numbers import numbers_translator
    from src.data.translation import Translator
    from src.shared.checkpoint import load_checkpoint

    result: dict = {}
    if "copy" in tasks:
        ckpt = load_checkpoint(args.copy) if args.copy else copy_checkpoint(args.progress)
        result["copy"] = evaluate_copy(ckpt)
    for lang in ("fr", "de"):
        if lang in tasks:
            path = getattr(args, lang)
            if path:
                translator = Translator.from_checkpoint(load_checkpoint(path))
            else:
                translator = numbers_translator(lang, args.progress)
            result[f"en_{lang}"] = evaluate_numbers(translator, args.beam_size, args.alpha)
    print(json.dumps(_rounded(result), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
