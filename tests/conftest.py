"""Shared fixtures: deterministic seeds and a small model."""

from __future__ import annotations

import pytest
import torch

from src.transformer import make_model


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def small_model():
    """A small untrained model in eval mode (no dropout): vocabulary 11, N=2, d_model=32, h=4."""
    model = make_model(11, 11, N=2, d_model=32, d_ff=64, h=4, dropout=0.0)
    return model.eval()
