"""Train from the command line and write a checkpoint; data-parallel when started by
`torchrun`.

    # the copy task, ~20 s on a laptop CPU
    python -m src.train copy
    # English -> French number words, ~2 min
    python -m src.train numbers --lang fr
    # a Multi30k / WMT corpus
    python -m src.train files --data-dir D --src en --tgt de --base
    # the same, in two processes
    torchrun --standalone --nproc-per-node 2 -m src.train copy

Each writes `--out` (a checkpoint: model, configuration, vocabularies) and `--history`
(JSON: the loss of every step and epoch). Under `torchrun` every process trains on a
slice of each batch, and only the first one writes. Bad options, and corpus files that
differ in length, are empty or are not UTF-8, exit with status 2 before anything is
written.

While it trains, each command keeps a training state next to `--out` (`<out>.state.pt`,
e.g. `runs/copy.state.pt`): the model, Adam's moments, the schedule, the step counts,
the loss history, every random state and the place in the epoch. It is written at the
end of every epoch and, with `--checkpoint-every K`, after every K optimizer steps
(default 0: only at epoch ends), always atomically, and removed once `--out` is written.
A run that was killed continues with the same command and `--resume`, and ends with the
same weights and loss history, bit for bit, as a run that never stopped:

    # killed in epoch 12 ...
    python -m src.train copy --checkpoint-every 50
    # ... goes on from its last state
    python -m src.train copy --checkpoint-every 50 --resume

`--resume` refuses a missing state and a state of other options (`--epochs` may grow). A
file that cannot be written (a full disk) ends the run with one line,
`error: cannot write ...`, and status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from src import checks
from src.data.copy_task import PAD, valid_sequences
from src.data.numbers import NumbersTask
from src.data.parallel import load_split
from src.recipes.copy_task import (
    UntilCopied,
    copy_data,
    copy_model_config,
    copy_training_config,
)
from src.recipes.numbers import number_settings, train_numbers
from src.recipes.translation import TranslationSettings, train_translation
from src.shared import distributed
from src.shared.checkpoint import (
    Checkpoint,
    CheckpointWriteError,
    load_training_state,
    save_checkpoint,
)
from src.shared.resume import Checkpointing, ResumeError
from src.shared.training import train
from src.transformer.model import make_model


def _argument(
    parse: Callable[[str], object], check: Callable[[str, object], object]
) -> Callable[[str], object]:
    """An argparse `type`: parse the text, then apply a `src.checks` check; errors
    become usage errors (exit 2).
    """

    def convert(text: str) -> object:
        try:
            return check("value", parse(text))
        except (TypeError, ValueError) as e:
            raise argparse.ArgumentTypeError(f"{e} (from {text!r})") from None

    return convert


_positive_int = _argument(int, checks.positive_int)
_non_negative_int = _argument(int, checks.non_negative_int)
_rate = _argument(float, checks.probability)
_positive_float = _argument(float, checks.positive_float)


def _share(name: str, value: float) -> float:
    """`value` if it is a share in (0, 1], else raise naming `name`."""
    if not 0.0 < checks.positive_float(name, value) <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}")
    return value


_share_arg = _argument(float, _share)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", type=Path, help="checkpoint to write (default runs/<task>.pt)"
    )
    p.add_argument(
        "--history",
        type=Path,
        help="JSON file for the loss history (default: next to --out)",
    )
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument(
        "--threads",
        type=_positive_int,
        help="torch threads per process (default: torch's)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: only on a terminal)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=_non_negative_int,
        default=0,
        metavar="K",
        help=(
            "also write the training state <out>.state.pt every K optimizer steps "
            "(default 0: only at the end of each epoch); it is removed when the run "
            "finishes"
        ),
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help=(
            "continue a killed run from <out>.state.pt; the other options must be "
            "those of that run"
        ),
    )


def _model_options(p: argparse.ArgumentParser, d: dict) -> None:
    p.add_argument("--layers", "-N", dest="N", type=_positive_int, default=d["N"])
    p.add_argument("--d-model", type=_positive_int, default=d["d_model"])
    p.add_argument("--d-ff", type=_positive_int, default=d["d_ff"])
    p.add_argument("--heads", dest="h", type=_positive_int, default=d["h"])
    p.add_argument("--dropout", type=_rate, default=d["dropout"])
    p.add_argument("--epochs", type=_positive_int, default=d["epochs"])
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=d["batch_size"],
        help="sentences per batch",
    )
    p.add_argument(
        "--max-tokens",
        type=_positive_int,
        default=d["max_tokens"],
        help="target tokens per batch",
    )
    p.add_argument(
        "--accum",
        dest="accum_iter",
        type=_positive_int,
        default=d.get("accum_iter", 1),
        help="batches per optimizer step (gradient accumulation)",
    )
    p.add_argument("--warmup", type=_positive_int, default=d["warmup"])
    p.add_argument("--factor", type=_positive_float, default=d["factor"])
    p.add_argument("--smoothing", type=_rate, default=d["smoothing"])
    p.add_argument("--bpe-vocab", type=_positive_int, default=d["bpe_vocab"])
    p.add_argument(
        "--patience",
        type=_non_negative_int,
        default=d.get("patience") or 0,
        help="stop after this many epochs in a row whose greedy exact match on the "
        "validation pairs reaches --valid-target (--epochs is then a cap); 0: never",
    )
    p.add_argument(
        "--valid-target",
        type=_share_arg,
        default=d.get("valid_target") or 1.0,
        help="validation exact match that counts toward --patience",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m src.train", description=__doc__.split("\n\n")[0]
    )
    tasks = parser.add_subparsers(
        dest="task", required=True, metavar="{copy,numbers,files}"
    )

    p = tasks.add_parser("copy", help="the copy task: output the input sequence")
    _common(p)
    p.add_argument(
        "--epochs",
        type=_positive_int,
        default=copy_training_config()["epochs"],
        help="at most",
    )
    p.add_argument(
        "--patience",
        type=_non_negative_int,
        default=copy_training_config()["patience"],
        help=(
            "stop after this many epochs in a row that copy every validation sequence; "
            "0: never"
        ),
    )
    p.add_argument(
        "--batches",
        type=_positive_int,
        default=copy_training_config()["batches"],
        help="batches per epoch",
    )
    p.add_argument(
        "--batch-size", type=_positive_int, default=copy_training_config()["batch_size"]
    )

    p = tasks.add_parser("numbers", help="English number words to French or German")
    _common(p)
    p.add_argument("--lang", choices=["fr", "de"], default="fr")
    p.add_argument("--n-train", type=_positive_int, default=40_000)
    p.add_argument("--n-valid", type=_positive_int, default=NumbersTask.n_valid)
    p.add_argument("--n-test", type=_positive_int, default=1_000)
    p.add_argument("--data-dir", type=Path, help="also keep the corpus files here")
    p.add_argument(
        "--tokenizer",
        choices=["word", "bpe"],
        help="target tokenizer (default: word for fr, bpe for de)",
    )
    defaults = number_settings("fr").to_dict()
    _model_options(p, defaults)

    p = tasks.add_parser(
        "files", help="a parallel corpus in plain text files (Multi30k, IWSLT, WMT)"
    )
    _common(p)
    p.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="holds <split>.<lang> files, one sentence a line",
    )
    p.add_argument("--src", required=True, help="source language suffix, e.g. en")
    p.add_argument("--tgt", required=True, help="target language suffix, e.g. de")
    p.add_argument("--train-split", default="train")
    p.add_argument("--valid-split", default="valid")
    p.add_argument("--tokenizer", choices=["word", "bpe"], default="bpe")
    p.add_argument(
        "--share-vocab",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "one BPE vocabulary for both languages and shared embeddings (default with "
            "--base)"
        ),
    )
    p.add_argument(
        "--max-len",
        type=_positive_int,
        default=100,
        help="drop longer training pairs (tokens)",
    )
    p.add_argument(
        "--base",
        action="store_true",
        help=(
            "the paper's base model: N=6, d_model=512, d_ff=2048, h=8, dropout 0.1, "
            "smoothing 0.1, warmup 4000, 25000 target tokens a batch, BPE 37000; "
            "options given explicitly win"
        ),
    )
    # None: filled from FILES_SMALL or BASE in `parse`
    _model_options(p, dict.fromkeys(FILES_SMALL))
    return parser


# A model a laptop trains on Multi30k in hours, and the paper's base model (Table 3),
# for `files`.
FILES_SMALL = {
    "N": 3,
    "d_model": 256,
    "d_ff": 1024,
    "h": 8,
    "dropout": 0.1,
    "smoothing": 0.1,
    "epochs": 10,
    "batch_size": None,
    "max_tokens": 4096,
    "warmup": 4000,
    "factor": 1.0,
    "bpe_vocab": 8000,
    "share_vocab": False,
}
BASE = {
    **FILES_SMALL,
    "N": 6,
    "d_model": 512,
    "d_ff": 2048,
    "h": 8,
    "max_tokens": 25000,
    "bpe_vocab": 37000,
    "share_vocab": True,
    "epochs": 20,
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check every option; errors exit with status 2 before anything is
    written.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    # the task's own parser, for its usage line
    sub = parser._subparsers._group_actions[0].choices[args.task]
    if args.task == "files":
        preset = BASE if args.base else FILES_SMALL
        for k, v in preset.items():
            if getattr(args, k) is None:
                setattr(args, k, v)
    if args.task in ("numbers", "files"):
        if args.d_model % args.h:
            sub.error(
                f"--d-model ({args.d_model}) must be divisible by --heads ({args.h})"
            )
    if args.task == "numbers" and args.n_train + args.n_valid + args.n_test > 1_000_000:
        sub.error(
            "--n-train + --n-valid + --n-test must not exceed the 1000000 numbers "
            "below one million"
        )
    if args.task == "files":
        for split in (args.train_split, args.valid_split):
            for lang in (args.src, args.tgt):
                f = args.data_dir / f"{split}.{lang}"
                if not f.is_file():
                    sub.error(f"corpus file not found: {f}")
    if (
        args.task == "numbers"
        and args.data_dir is not None
        and args.data_dir.exists()
        and not args.data_dir.is_dir()
    ):
        sub.error(f"--data-dir {args.data_dir} is a file, expected a directory")
    if args.device == "cuda" and not torch.cuda.is_available():
        sub.error("--device cuda: no GPU is available")
    args.out = (
        args.out
        or Path("runs")
        / f"{args.task if args.task != 'numbers' else 'numbers-' + args.lang}.pt"
    )
    args.history = args.history or args.out.with_suffix(".history.json")
    args.state = args.out.with_suffix(".state.pt")
    for path in (args.out, args.history, args.state):
        if path.exists() and path.is_dir():
            sub.error(f"{path} is a directory, expected a file path")
        parent = path.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            sub.error(f"cannot write {path}: {parent} is not a writable directory")
    if args.resume:
        if not args.state.is_file():
            sub.error(
                f"--resume: no training state at {args.state} (a run writes it while "
                "training and removes it when it finishes)"
            )
        try:
            saved = load_training_state(args.state)
        except ValueError as e:
            sub.error(f"--resume: {e}")
        mine = run_config(args)
        if saved.get("config") != mine:
            old = saved.get("config") if isinstance(saved.get("config"), dict) else {}
            diff = [
                f"{k} was {old.get(k)!r}, now {mine.get(k)!r}"
                for k in sorted(set(old) | set(mine))
                if old.get(k) != mine.get(k)
            ]
            sub.error(
                f"--resume: {args.state} is the state of another run "
                f"({'; '.join(diff)})"
            )
        if saved["epoch"] > args.epochs:
            sub.error(
                f"--resume: {args.state} is at epoch {saved['epoch']}, past --epochs "
                f"{args.epochs}"
            )
    # read last, after the cheap checks: uneven, empty or non-UTF-8 files are usage
    # errors
    if args.task == "files":
        try:
            args.pairs = {
                split: load_split(args.data_dir, split, args.src, args.tgt)
                for split in (args.train_split, args.valid_split)
            }
        except (OSError, ValueError) as e:
            sub.error(" ".join(str(e).split()))  # one line
    return args


# Options that do not change what is trained (and the corpus `parse` reads): a run may
# be resumed with other values.
_NOT_CONFIG = {
    "out",
    "history",
    "state",
    "device",
    "threads",
    "progress",
    "checkpoint_every",
    "resume",
    "epochs",
    "pairs",
}


def run_config(args: argparse.Namespace) -> dict:
    """The options that decide the training, as plain values: a state is resumed only
    under the same ones.
    """
    # numbers: --data-dir only keeps files
    skip = _NOT_CONFIG | ({"data_dir"} if args.task == "numbers" else set())
    return {
        k: str(v) if isinstance(v, Path) else v
        for k, v in sorted(vars(args).items())
        if k not in skip
    }


def _settings(args: argparse.Namespace, src_tokenizer: str, tgt_tokenizer: str):
    return TranslationSettings(
        src_tokenizer=src_tokenizer,
        tgt_tokenizer=tgt_tokenizer,
        bpe_vocab=args.bpe_vocab,
        N=args.N,
        d_model=args.d_model,
        d_ff=args.d_ff,
        h=args.h,
        dropout=args.dropout,
        epochs=args.epochs,
        batch_size=args.batch_size,
        max_tokens=args.max_tokens,
        warmup=args.warmup,
        factor=args.factor,
        smoothing=args.smoothing,
        max_len=getattr(args, "max_len", None),
        seed=args.seed,
        accum_iter=args.accum_iter,
        share_vocab=bool(getattr(args, "share_vocab", False)),
        patience=args.patience,
        valid_target=args.valid_target,
    )


def train_copy(args: argparse.Namespace, ctx, checkpoint: Checkpointing | None = None):
    """The copy task of `src.recipes.copy_task.train_copy_model`, with batches split
    across processes.
    """
    schedule = copy_training_config()
    torch.manual_seed(args.seed)
    model = make_model(**copy_model_config())
    draw, eval_batches = copy_data(args.seed, args.batches, args.batch_size)
    eval_batches = [b.to(ctx.device) for b in eval_batches]
    batches = distributed.sharded(draw, ctx)
    until = (
        UntilCopied(valid_sequences(args.seed, schedule["valid"]), args.patience)
        if args.patience
        else None
    )
    start = time.perf_counter()
    history = train(
        distributed.wrap(model, ctx),
        batches,
        args.epochs,
        pad=PAD,
        eval_batches=eval_batches,
        factor=schedule["factor"],
        warmup=schedule["warmup"],
        smoothing=schedule["smoothing"],
        until=until,
        progress=args.progress if ctx.is_main else False,
        checkpoint=checkpoint,
    )
    seconds = time.perf_counter() - start
    history = distributed.average_history(history, ctx)
    extra = {
        "history": {"steps": history.steps, "epochs": history.epochs},
        "train_seconds": seconds,
    }
    return Checkpoint(model.cpu(), {}, extra)


def train_numbers_cli(
    args: argparse.Namespace, ctx, checkpoint: Checkpointing | None = None
):
    """English -> `args.lang` number names (`src.data.numbers`), through the
    parallel-text path.
    """
    task = NumbersTask(
        args.lang, args.n_train, args.n_valid, args.n_test, data_seed=args.seed
    )
    tokenizer = args.tokenizer or ("word" if args.lang == "fr" else "bpe")
    translator = train_numbers(
        task,
        _settings(args, "word", tokenizer),
        args.progress,
        ctx,
        args.data_dir,
        checkpoint=checkpoint,
    )
    translator.model.cpu()
    return translator.to_checkpoint()


def train_files(args: argparse.Namespace, ctx, checkpoint: Checkpointing | None = None):
    """A model trained on the `train_split` and `valid_split` files of
    `args.data_dir`.
    """
    train_pairs, valid_pairs = (
        args.pairs[args.train_split],
        args.pairs[args.valid_split],
    )
    translator = train_translation(
        train_pairs,
        valid_pairs,
        _settings(args, args.tokenizer, args.tokenizer),
        args.progress,
        ctx,
        checkpoint=checkpoint,
    )
    translator.model.cpu()
    translator.extra["corpus"] = {
        "data_dir": str(args.data_dir),
        "src": args.src,
        "tgt": args.tgt,
    }
    return translator.to_checkpoint()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ctx = distributed.init(args.device)
    checkpoint = Checkpointing(
        args.state,
        args.checkpoint_every,
        args.resume,
        run_config(args),
        ctx.rank,
        ctx.world,
    )
    try:
        run = {"copy": train_copy, "numbers": train_numbers_cli, "files": train_files}[
            args.task
        ]
        ckpt = run(args, ctx, checkpoint=checkpoint)
        if ctx.is_main:
            save_checkpoint(args.out, ckpt.model, ckpt.vocabs, ckpt.extra)
            history = {
                **ckpt.extra["history"],
                "world": ctx.world,
                "train_seconds": ckpt.extra["train_seconds"],
            }
            tmp = args.history.with_name(args.history.name + ".tmp")
            try:
                tmp.write_text(json.dumps(history, indent=1))
                os.replace(tmp, args.history)
            except OSError as e:
                tmp.unlink(missing_ok=True)
                raise CheckpointWriteError(
                    f"cannot write {args.history}: {e.strerror or e}"
                ) from None
            args.state.unlink(missing_ok=True)  # finished: nothing left to resume
            last = ckpt.extra["history"]["epochs"][-1]
            print(
                f"wrote {args.out} and {args.history}: {ctx.world} process(es), "
                f"{ckpt.extra['train_seconds']:.1f} s, last epoch {json.dumps(last)}",
                file=sys.stderr,
            )
    except (CheckpointWriteError, ResumeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ResumeError) else 1
    finally:
        distributed.cleanup(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
