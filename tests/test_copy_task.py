"""The copy task trained with the book's pieces: greedy decoding copies held-out sequences exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from src.data.copy_task import BOS, copy_batches, random_sequences
from src.recipes.copy_task import (
    UntilCopied,
    cached_copy_model,
    COPY_TASK,
    COPY_TRAINING,
    exact_copies,
    train_copy_model,
)
from src.recipes.targets import TargetMissed
from src.shared.checkpoint import CACHE_ENV
from src.shared.training import History

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_copy_task_converges_to_exact_copies():
    model, history = cached_copy_model(progress=False)  # train_copy_model(seed=0), as the chapters load it
    held_out = random_sequences(1000, generator=torch.Generator().manual_seed(12345))
    trained_on = copy_batches(20 * 40, 80, generator=torch.Generator().manual_seed(1))  # what train_copy_model saw
    seen = {tuple(s.tolist()) for b in trained_on for s in b.src}
    unseen = torch.stack([s for s in held_out if tuple(s.tolist()) not in seen])
    assert len(unseen) > 990  # held out: (almost) none of them was trained on
    assert exact_copies(model, unseen) == 1.0
    assert history.epochs[-1]["eval_loss"] < history.epochs[0]["eval_loss"] / 10


def test_random_sequences_start_with_the_start_symbol():
    s = random_sequences(50, seq_len=10, vocab=11)
    assert s.shape == (50, 10) and torch.all(s[:, 0] == BOS) and s[:, 1:].min() >= 2 and s.max() <= 10


def test_until_copied_counts_the_streak_of_perfect_epochs_up_to_the_last():
    rows = [{"valid_exact_match": v} for v in (0.2, 1.0, 1.0, 0.998, 1.0, 1.0)]
    assert UntilCopied.streak(History(epochs=rows)) == 2
    assert UntilCopied.streak(History(epochs=rows[:3])) == 2
    assert UntilCopied.streak(History(epochs=rows[:4])) == 0
    assert UntilCopied.streak(History(epochs=[])) == 0


def test_training_stops_once_the_rule_says_so_and_records_its_measure():
    class Stub(UntilCopied):  # a model that copies everything from the third epoch on: stop after the fifth
        def __call__(self, model, history):
            history.epochs[-1]["valid_exact_match"] = 1.0 if len(history.epochs) >= 3 else 0.5
            return self.streak(history) >= self.patience

    _, history = train_copy_model(0, replace(COPY_TRAINING, epochs=8), until=Stub(random_sequences(4), patience=3))
    assert [r["valid_exact_match"] for r in history.epochs] == [0.5, 0.5, 1.0, 1.0, 1.0]
    assert history.epochs[-1]["step"] == 5 * COPY_TASK.batches


def test_until_copied_rejects_a_patience_below_one():
    with pytest.raises(ValueError, match="patience"):
        UntilCopied(random_sequences(4), patience=0)


def test_a_model_that_misses_its_target_raises_and_is_never_cached(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    with pytest.raises(TargetMissed) as e:
        cached_copy_model(epochs=1, seed=5, progress=False)  # one epoch cannot copy
    message = str(e.value)
    assert "seed 5" in message and "held-out exact match 0." in message and "after 1 epochs" in message
    assert "'factor': 0.5" in message  # the recipe
    assert "python -m src.robustness --tasks copy --seeds 5" in message
    assert list(tmp_path.glob("*.pt")) == []


@pytest.mark.slow
def test_the_recipe_copies_exactly_on_another_kernel_path(tmp_path):
    """A second machine on every CI run: the portable ATen kernels round differently from this CPU's."""
    out = tmp_path / "grid.json"
    cmd = [sys.executable, "-m", "src.robustness", "--tasks", "copy", "--seeds", "0", "--paths", "default",
           "--threads", "1", "--json", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (cell,) = json.loads(out.read_text())["cells"]
    assert cell["capability"] == "DEFAULT" and cell["threads"] == 1
    assert cell["exact_match"] == 1.0 and cell["stopped"], cell
