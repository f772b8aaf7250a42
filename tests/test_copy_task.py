"""The copy task trained with the book's pieces: greedy decoding copies held-out sequences exactly."""

from __future__ import annotations

import time

import pytest
import torch

from src.data.copy_task import BOS, copy_batches, exact_match, random_sequences, train_copy_model


@pytest.mark.slow
def test_copy_task_converges_to_exact_copies():
    start = time.perf_counter()
    model, history = train_copy_model(seed=0)
    seconds = time.perf_counter() - start
    held_out = random_sequences(1000, generator=torch.Generator().manual_seed(12345))
    trained_on = copy_batches(20 * 40, 80, generator=torch.Generator().manual_seed(1))  # what train_copy_model saw
    seen = {tuple(s.tolist()) for b in trained_on for s in b.src}
    unseen = torch.stack([s for s in held_out if tuple(s.tolist()) not in seen])
    assert len(unseen) > 990  # held out: (almost) none of them was trained on
    assert exact_match(model, unseen) == 1.0
    assert history.epochs[-1]["eval_loss"] < history.epochs[0]["eval_loss"] / 10
    print(f"copy task: {seconds:.1f} s of training, {history.epochs[-1]['step']} steps")


def test_random_sequences_start_with_the_start_symbol():
    s = random_sequences(50, seq_len=10, vocab=11)
    assert s.shape == (50, 10) and torch.all(s[:, 0] == BOS) and s[:, 1:].min() >= 2 and s.max() <= 10
