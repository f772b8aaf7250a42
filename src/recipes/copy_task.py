"""The copy-task recipe: the model, the schedule and the stopping rule that copy every
held-out sequence.

The data is `src.data.copy_task`; `cached_copy_model` is what chapters call.
"""

from __future__ import annotations

from dataclasses import asdict, replace

import torch
from torch import nn

from src.data.copy_task import (
    BOS,
    PAD,
    CopyTask,
    copy_batches,
    held_out_sequences,
    valid_sequences,
)
from src.recipes.targets import TargetMissed, UntilExact, reproduce_command
from src.shared import distributed
from src.shared.batch import Batch
from src.shared.callbacks import progress_bar
from src.shared.checkpoint import Checkpoint, cached_model
from src.shared.history import History
from src.shared.resume import Checkpointing, SeededBatches
from src.shared.training import TrainingConfig, train
from src.transformer.decoding import greedy_decode
from src.transformer.model import EncoderDecoder, ModelConfig

# The copy-task model of the book: small enough to train on a laptop CPU in well under
# a minute.
COPY_MODEL = ModelConfig(11, 11, N=2, d_model=64, d_ff=256, h=4, dropout=0.0)
# Its recipe: equation (3) scaled by `factor`, `warmup` steps, label smoothing; training
# stops after `patience` epochs in a row that copy every validation sequence, or after
# `epochs`.
COPY_TRAINING = TrainingConfig(
    epochs=40, factor=0.5, warmup=200, smoothing=0.1, patience=3
)
COPY_TASK = CopyTask(batches=20, batch_size=80, valid=500)


def copy_recipe() -> dict:
    """The copy task's model, training and data as plain values (one flat dict)."""
    return {**asdict(COPY_MODEL), **asdict(COPY_TRAINING), **asdict(COPY_TASK)}


class UntilCopied(UntilExact):
    """`UntilExact` for the copy task: stop once `patience` epochs in a row copy every
    `valid` sequence exactly.
    """

    def __init__(self, valid: torch.Tensor, patience: int | None) -> None:
        super().__init__(lambda model: exact_copies(model, valid), 1.0, patience)
        self.valid = valid


def copy_data(
    seed: int, batches: int, batch_size: int
) -> tuple[SeededBatches, list[Batch]]:
    """The run with seed `seed`: `batches` training batches drawn afresh each epoch, and
    two evaluation batches, each from a generator of its own.
    """
    draw = SeededBatches(
        lambda g: copy_batches(batches, batch_size, generator=g),
        torch.Generator().manual_seed(seed + 1),
    )
    eval_gen = torch.Generator().manual_seed(seed + 2)
    return draw, copy_batches(2, 80, generator=eval_gen)


def train_copy_model(
    seed: int = 0,
    training: TrainingConfig = COPY_TRAINING,
    task: CopyTask = COPY_TASK,
    *,
    until: UntilCopied | None = None,
    progress: bool | None = None,
    ctx: distributed.DistContext | None = None,
    checkpoint: Checkpointing | None = None,
) -> tuple[EncoderDecoder, History]:
    """Train the book's copy-task model from seed `seed`, stopping by `until` (default:
    `UntilCopied` with `training.patience`; with 0 it only measures, and all
    `training.epochs` run).

    Deterministic: the same seed gives the same model on the same machine. `ctx` trains
    data-parallel, `checkpoint` writes training states and resumes from one.
    """
    ctx = ctx or distributed.DistContext()
    torch.manual_seed(seed)
    model = COPY_MODEL.build()
    draw, eval_batches = copy_data(seed, task.batches, task.batch_size)
    if until is None:
        until = UntilCopied(
            valid_sequences(seed, task.valid), training.patience or None
        )
    history = train(
        distributed.wrap(model, ctx),
        distributed.sharded(draw, ctx),
        training,
        pad=PAD,
        eval_batches=[b.to(ctx.device) for b in eval_batches],
        until=until,
        callbacks=[checkpoint, progress_bar(progress if ctx.is_main else False)],
    )
    return model, distributed.average_history(history, ctx)


def exact_copies(model: nn.Module, sequences: torch.Tensor) -> float:
    """Share of `sequences` (n, seq_len) that greedy decoding copies exactly, start
    symbol included.
    """
    model.eval()
    sequences = sequences.to(next(model.parameters()).device)
    out = greedy_decode(
        model, sequences, (sequences != PAD).unsqueeze(-2), sequences.size(1), BOS
    )
    return float((out == sequences).all(dim=1).float().mean())


def accept_copy_model(model: nn.Module, history: History, seed: int) -> float:
    """Held-out exact match of a trained copy model; TargetMissed unless every held-out
    sequence is copied.
    """
    score = exact_copies(model, held_out_sequences())
    if score < 1.0:
        raise TargetMissed(
            f"copy-task recipe {copy_recipe()} with seed {seed}: held-out "
            f"exact match {score:.3f} after {len(history.epochs)} epochs, target 1.0; "
            "the model was not cached. Reproduce with: "
            f"{reproduce_command('copy', seed)}"
        )
    return score


def cached_copy_model(
    epochs: int | None = None,
    seed: int = 0,
    progress: bool | None = None,
    stop: bool = True,
):
    """`train_copy_model`, trained once and then read from the model cache
    (`src.shared.checkpoint`).

    Chapters call this, so a build trains the copy-task model once, whichever chapter
    runs first. A model that misses the target (`accept_copy_model`) raises TargetMissed
    and is never cached.
    `stop=False` trains the whole budget of epochs without the stopping rule (which
    still measures every epoch): the fixed-budget recipe that the copy-task chapter
    compares against, not accepted.
    """
    training = replace(
        COPY_TRAINING,
        epochs=epochs or COPY_TRAINING.epochs,
        patience=COPY_TRAINING.patience if stop else 0,
    )

    def train_fn() -> Checkpoint:
        model, history = train_copy_model(seed, training, progress=progress)
        if stop:
            accept_copy_model(model, history, seed)
        return Checkpoint(
            model, extra={"steps": history.steps, "epochs": history.epochs}
        )

    settings = {"seed": seed, **copy_recipe(), **asdict(training)}
    ckpt = cached_model("copy-task", settings, train_fn)
    return ckpt.model.eval(), History(
        steps=ckpt.extra["steps"], epochs=ckpt.extra["epochs"]
    )
