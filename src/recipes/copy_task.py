"""The copy-task recipe: the model, the schedule and the stopping rule that copy every
held-out sequence.

The data is `src.data.copy_task`; `cached_copy_model` is what chapters call.
"""

from __future__ import annotations

import torch
from torch import nn

from src.data.copy_task import (
    BOS,
    PAD,
    copy_batches,
    held_out_sequences,
    valid_sequences,
)
from src.recipes.targets import TargetMissed, UntilExact, reproduce_command
from src.shared.batch import Batch
from src.shared.checkpoint import Checkpoint, cached_model
from src.shared.history import History
from src.shared.resume import SeededBatches
from src.shared.training import train
from src.transformer.decoding import greedy_decode
from src.transformer.model import EncoderDecoder, make_model


def copy_model_config() -> dict:
    """The copy-task model of the book: small enough to train on a laptop CPU in well
    under a minute.
    """
    return {
        "src_vocab": 11,
        "tgt_vocab": 11,
        "N": 2,
        "d_model": 64,
        "d_ff": 256,
        "h": 4,
        "dropout": 0.0,
    }


def copy_training_config() -> dict:
    """The copy task's recipe: equation (3) scaled by `factor`, `warmup` steps, label
    smoothing, batches an epoch; training stops after `patience` epochs in a row that
    copy all `valid` validation sequences, or `epochs`."""
    return {
        "factor": 0.5,
        "warmup": 200,
        "smoothing": 0.1,
        "batches": 20,
        "batch_size": 80,
        "epochs": 40,
        "patience": 3,
        "valid": 500,
    }


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
    epochs: int | None = None,
    seed: int = 0,
    progress: bool | None = None,
    until: UntilCopied | None = None,
) -> tuple[EncoderDecoder, History]:
    """Train the book's copy-task model from seed `seed` until `UntilCopied` says stop
    (at most `epochs`).

    Deterministic: the same seed gives the same model on the same machine. Returns
    (model, History).
    """
    c = copy_training_config()
    torch.manual_seed(seed)
    model = make_model(**copy_model_config())
    batches, eval_batches = copy_data(seed, c["batches"], c["batch_size"])
    history = train(
        model,
        batches,
        epochs or c["epochs"],
        pad=PAD,
        eval_batches=eval_batches,
        factor=c["factor"],
        warmup=c["warmup"],
        smoothing=c["smoothing"],
        until=until or UntilCopied(valid_sequences(seed, c["valid"]), c["patience"]),
        progress=progress,
    )
    return model, history


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
            f"copy-task recipe {copy_training_config()} with seed {seed}: held-out "
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
    c = copy_training_config()
    valid, patience = valid_sequences(seed, c["valid"]), c["patience"] if stop else None

    def train_fn() -> Checkpoint:
        model, history = train_copy_model(
            epochs, seed, progress, until=UntilCopied(valid, patience)
        )
        if stop:
            accept_copy_model(model, history, seed)
        return Checkpoint(
            model, extra={"steps": history.steps, "epochs": history.epochs}
        )

    settings = {
        "epochs": epochs,
        "seed": seed,
        "stop": stop,
        **copy_model_config(),
        **c,
    }
    ckpt = cached_model("copy-task", settings, train_fn)
    return ckpt.model.eval(), History(
        steps=ckpt.extra["steps"], epochs=ckpt.extra["epochs"]
    )
