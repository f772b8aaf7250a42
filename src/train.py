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
from dataclasses import asdict, fields, replace
from pathlib import Path

import torch

from src import checks
from src.data.copy_task import CopyTask
from src.data.numbers import NumbersTask
from src.data.parallel import load_split
from src.recipes.copy_task import COPY_TASK, COPY_TRAINING, train_copy_model
from src.recipes.numbers import number_settings, train_numbers
from src.recipes.translation import (
    BASE,
    FILES_SMALL,
    TranslationSettings,
    train_translation,
)
from src.shared import distributed
from src.shared.checkpoint import (
    Checkpoint,
    CheckpointWriteError,
    config_diff,
    load_training_state,
    save_checkpoint,
)
from src.shared.resume import Checkpointing, ResumeError
from src.shared.training import TrainingConfig
from src.transformer.model import ModelConfig


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
    switches = {
        "norm_first": "pre-norm residual sublayers (the default); off: post-norm, "
        "the paper's",
        "inner_dropout": "dropout on attention weights and inside the feed-forward "
        "network too (the reference code); off: only where the paper has it",
        "scale_scores": "divide attention scores by sqrt(d_k) (the paper); off: an "
        "ablation",
        "positional": "add the positional encoding (the paper); off: an ablation",
    }
    for name, text in switches.items():
        flag = "--" + name.replace("_", "-")
        p.add_argument(
            flag, action=argparse.BooleanOptionalAction, default=d[name], help=text
        )
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
        default=COPY_TRAINING.epochs,
        help="at most",
    )
    p.add_argument(
        "--patience",
        type=_non_negative_int,
        default=COPY_TRAINING.patience,
        help=(
            "stop after this many epochs in a row that copy every validation sequence; "
            "0: never"
        ),
    )
    p.add_argument(
        "--batches",
        type=_positive_int,
        default=COPY_TASK.batches,
        help="batches per epoch",
    )
    p.add_argument("--batch-size", type=_positive_int, default=COPY_TASK.batch_size)

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
    _model_options(p, flat_settings(number_settings("fr")))

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
        dest="share_embeddings",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "one BPE vocabulary for both languages and shared embeddings (default with "
            "--base)"
        ),
    )
    p.add_argument(
        "--max-len",
        dest="max_train_len",
        type=_positive_int,
        help=f"drop longer training pairs (tokens; {FILES_SMALL.max_train_len})",
    )
    b = BASE
    p.add_argument(
        "--base",
        action="store_true",
        help=(
            f"the paper's base model: N={b.model.N}, d_model={b.model.d_model}, "
            f"d_ff={b.model.d_ff}, h={b.model.h}, dropout {b.model.dropout}, "
            f"smoothing {b.training.smoothing}, warmup {b.training.warmup}, "
            f"{b.max_tokens} target tokens a batch, BPE {b.bpe_vocab}; options given "
            "explicitly win"
        ),
    )
    # None: filled from FILES_SMALL or BASE in `parse`
    _model_options(p, dict.fromkeys(flat_settings(FILES_SMALL)))
    return parser


def flat_settings(settings: TranslationSettings) -> dict:
    """The fields of `settings` and of its model and training configurations, in one
    dict keyed like the options.
    """
    top = {k: v for k, v in vars(settings).items() if k not in ("model", "training")}
    return {**asdict(settings.model), **asdict(settings.training), **top}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check every option; errors exit with status 2 before anything is
    written.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    # the task's own parser, for its usage line
    sub = parser._subparsers._group_actions[0].choices[args.task]
    if args.task == "files":
        preset = flat_settings(BASE if args.base else FILES_SMALL)
        for k, v in preset.items():
            if k in vars(args) and getattr(args, k) is None:
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
            sub.error(
                f"--resume: {args.state} is the state of another run "
                f"({config_diff(saved.get('config'), mine)})"
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


def _settings(
    args: argparse.Namespace, src_tokenizer: str, tgt_tokenizer: str
) -> TranslationSettings:
    """The options as a `TranslationSettings`: each configuration takes the options
    named like its fields.
    """

    def options(cls: type) -> dict:
        names = {f.name for f in fields(cls)} - {"model", "training"}
        return {k: v for k, v in vars(args).items() if k in names}

    return TranslationSettings(
        model=ModelConfig(**options(ModelConfig)),
        training=TrainingConfig(**options(TrainingConfig)),
        src_tokenizer=src_tokenizer,
        tgt_tokenizer=tgt_tokenizer,
        **options(TranslationSettings),
    )


def train_copy(args: argparse.Namespace, ctx, checkpoint: Checkpointing | None = None):
    """The copy task of `src.recipes.copy_task.train_copy_model`, with the options'
    epochs, patience and batches.
    """
    training = replace(COPY_TRAINING, epochs=args.epochs, patience=args.patience)
    task = CopyTask(args.batches, args.batch_size, COPY_TASK.valid)
    start = time.perf_counter()
    model, history = train_copy_model(
        args.seed,
        training,
        task,
        progress=args.progress,
        ctx=ctx,
        checkpoint=checkpoint,
    )
    extra = {
        "history": {"steps": history.steps, "epochs": history.epochs},
        "train_seconds": time.perf_counter() - start,
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
