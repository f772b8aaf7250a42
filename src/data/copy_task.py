"""The copy task: learn to output the source sequence unchanged, a first check that training works."""

from __future__ import annotations

import torch

from src import checks
from src.shared.training import Batch

PAD, BOS = 0, 1  # padding and the start symbol; ids 2 .. vocab-1 are the symbols to copy


def random_sequences(
    n: int, seq_len: int = 10, vocab: int = 11, generator: torch.Generator | None = None
) -> torch.Tensor:
    """n random sequences (n, seq_len): the start symbol, then seq_len - 1 symbols drawn from 2 .. vocab-1."""
    n = checks.positive_int("n", n)
    seq_len = checks.positive_int("seq_len", seq_len)
    if checks.positive_int("vocab", vocab) < 3:
        raise ValueError(f"vocab must be at least 3 (padding, start symbol, one symbol), got {vocab}")
    data = torch.randint(2, vocab, (n, seq_len), generator=generator)  # (n, seq_len)
    data[:, 0] = BOS
    return data


def copy_batches(
    n_batches: int, batch_size: int = 80, seq_len: int = 10, vocab: int = 11, generator: torch.Generator | None = None
) -> list[Batch]:
    """`n_batches` batches whose target is their source."""
    checks.positive_int("n_batches", n_batches)
    batches = []
    for _ in range(n_batches):
        data = random_sequences(batch_size, seq_len, vocab, generator)
        batches.append(Batch(data, data.clone(), pad=PAD))
    return batches


def copy_model_config() -> dict:
    """The copy-task model of the book: small enough to train on a laptop CPU in well under a minute."""
    return {"src_vocab": 11, "tgt_vocab": 11, "N": 2, "d_model": 64, "d_ff": 256, "h": 4, "dropout": 0.0}


def copy_training_config() -> dict:
    """The copy task's recipe: equation (3) scaled by `factor`, `warmup` steps, label smoothing, batches an epoch."""
    return {"factor": 0.5, "warmup": 200, "smoothing": 0.1, "batches": 20, "batch_size": 80}


def train_copy_model(epochs: int = 40, seed: int = 0, progress: bool | None = None):
    """Train the book's copy-task model from seed `seed`; return (model, History). Deterministic."""
    from src.shared.training import train
    from src.transformer.model import make_model

    torch.manual_seed(seed)
    model = make_model(**copy_model_config())
    data_gen = torch.Generator().manual_seed(seed + 1)
    eval_batches = copy_batches(2, 80, generator=torch.Generator().manual_seed(seed + 2))
    c = copy_training_config()
    history = train(
        model, lambda: copy_batches(c["batches"], c["batch_size"], generator=data_gen), epochs,
        pad=PAD, eval_batches=eval_batches, factor=c["factor"], warmup=c["warmup"], smoothing=c["smoothing"],
        progress=progress,
    )
    return model, history


def exact_match(model, sequences: torch.Tensor) -> float:
    """Share of `sequences` (n, seq_len) that greedy decoding copies exactly, start symbol included."""
    from src.transformer.decoding import greedy_decode

    model.eval()
    out = greedy_decode(model, sequences, (sequences != PAD).unsqueeze(-2), sequences.size(1), BOS)
    return float((out == sequences).all(dim=1).float().mean())


def cached_copy_model(epochs: int = 40, seed: int = 0, progress: bool | None = None):
    """`train_copy_model`, trained once and then read from the model cache (`src.shared.checkpoint`).

    Chapters call this, so a build trains the copy-task model once, whichever chapter runs first.
    """
    from src.shared.checkpoint import Checkpoint, cached_model
    from src.shared.training import History

    def train_fn() -> Checkpoint:
        model, history = train_copy_model(epochs, seed, progress)
        return Checkpoint(model, extra={"steps": history.steps, "epochs": history.epochs})

    settings = {"epochs": epochs, "seed": seed, **copy_model_config(), **copy_training_config()}
    ckpt = cached_model("copy-task", settings, train_fn)
    return ckpt.model.eval(), History(steps=ckpt.extra["steps"], epochs=ckpt.extra["epochs"])
