"""Checkpoint averaging (section 6.1): the mean of the last checkpoints' weights."""

from __future__ import annotations

import pytest
import torch

from src.shared.averaging import KeepLast, average_weights
from src.shared.training import Batch, TrainingConfig, train
from src.transformer import make_model


def test_the_average_is_the_elementwise_mean_and_keeps_integer_buffers():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(4)}
    avg = average_weights([a, b])
    assert torch.equal(avg["w"], torch.tensor([2.0, 4.0])) and avg["w"].dtype == torch.float32
    assert int(avg["n"]) == 4
    assert torch.equal(average_weights([a])["w"], a["w"])


def test_states_of_different_models_or_none_are_refused():
    with pytest.raises(ValueError, match="states"):
        average_weights([])
    with pytest.raises(ValueError, match="keys differ"):
        average_weights([{"w": torch.zeros(1)}, {"v": torch.zeros(1)}])


def test_keep_last_holds_the_last_k_checkpoints_at_their_interval_and_averages_them():
    torch.manual_seed(0)
    model = make_model(11, 11, N=1, d_model=16, d_ff=32, h=2, dropout=0.0)
    data = torch.randint(2, 11, (8, 6))
    data[:, 0] = 1
    keep = KeepLast(k=3, every=2)
    train(model, [Batch(data, data)] * 5, TrainingConfig(epochs=2, warmup=5), callbacks=[keep])
    assert list(keep.steps) == [6, 8, 10]  # 10 steps, a checkpoint every 2, the last 3 kept
    last = {n: t for n, t in model.state_dict().items()}
    assert all(torch.equal(keep.states[-1][n], t) for n, t in last.items())
    name = "generator.proj.weight"
    mean = torch.stack([s[name].double() for s in keep.states]).mean(0).float()
    assert torch.equal(keep.averaged()[name], mean)
    assert not torch.equal(mean, last[name])  # the weights moved between checkpoints
