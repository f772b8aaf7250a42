"""The copy task's data: random sequences that a model learns to output unchanged, and
their batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from src import checks
from src.shared.batch import Batch

# padding and the start symbol; ids 2 .. vocab-1 are the symbols to copy
PAD, BOS = 0, 1


@dataclass(frozen=True)
class CopyTask:
    """How much copy-task data a run sees: `batches` batches of `batch_size` sequences
    drawn afresh each epoch, and `valid` validation sequences.
    """

    batches: int = 20
    batch_size: int = 80
    valid: int = 500

    def __post_init__(self) -> None:
        for name in ("batches", "batch_size", "valid"):
            checks.positive_int(name, getattr(self, name))


def random_sequences(
    n: int, seq_len: int = 10, vocab: int = 11, generator: torch.Generator | None = None
) -> torch.Tensor:
    """n random sequences (n, seq_len): the start symbol, then seq_len - 1 symbols drawn
    from 2 .. vocab-1.
    """
    n = checks.positive_int("n", n)
    seq_len = checks.positive_int("seq_len", seq_len)
    if checks.positive_int("vocab", vocab) < 3:
        raise ValueError(
            f"vocab must be at least 3 (padding, start symbol, one symbol), got {vocab}"
        )
    data = torch.randint(2, vocab, (n, seq_len), generator=generator)  # (n, seq_len)
    data[:, 0] = BOS
    return data


def copy_batches(
    n_batches: int,
    batch_size: int = 80,
    seq_len: int = 10,
    vocab: int = 11,
    generator: torch.Generator | None = None,
) -> list[Batch]:
    """`n_batches` batches whose target is their source."""
    checks.positive_int("n_batches", n_batches)
    batches = []
    for _ in range(n_batches):
        data = random_sequences(batch_size, seq_len, vocab, generator)
        batches.append(Batch(data, data.clone(), pad=PAD))
    return batches


# the held-out sequences that accept a trained model (and that `src.evaluate` scores)
HELD_OUT_SEED = 1234


def held_out_sequences(n: int = 500) -> torch.Tensor:
    """(n, 10) random sequences drawn from a seed that no training run uses."""
    return random_sequences(n, generator=torch.Generator().manual_seed(HELD_OUT_SEED))


def valid_sequences(seed: int, n: int = 500) -> torch.Tensor:
    """(n, 10) validation sequences of the run with seed `seed`: they decide when its
    training stops.
    """
    return random_sequences(n, generator=torch.Generator().manual_seed(seed + 3))
