"""Embeddings and positional encoding against sections 3.4 and 3.5 of the paper."""

from __future__ import annotations

import math

import pytest
import torch

from src.transformer.embeddings import Embeddings, PositionalEncoding


@pytest.mark.parametrize("pos,i", [(0, 0), (1, 0), (7, 3), (50, 10), (99, 31)])
def test_positional_encoding_matches_the_paper(pos, i):
    d_model = 64
    pe = PositionalEncoding(d_model, dropout=0.0)
    y = pe(torch.zeros(1, 100, d_model))
    angle = pos / 10000 ** (2 * i / d_model)
    assert y[0, pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
    assert y[0, pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_positional_encoding_adds_to_input_and_offsets_positions():
    pe = PositionalEncoding(16, dropout=0.0)
    x = torch.randn(2, 5, 16)
    full = pe(torch.cat([x, x], dim=1))
    torch.testing.assert_close(pe(x, start=5), full[:, 5:])
    torch.testing.assert_close(pe(x) - x, pe.pe[:, :5].expand(2, -1, -1))


def test_odd_d_model_is_supported():
    y = PositionalEncoding(5, dropout=0.0)(torch.zeros(1, 3, 5))
    assert y[0, 2, 4].item() == pytest.approx(math.sin(2 / 10000 ** (4 / 5)), abs=1e-6)


def test_embeddings_are_scaled_by_sqrt_d_model():
    emb = Embeddings(d_model=16, vocab=10)
    ids = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(emb(ids), emb.lut.weight[ids] * 4.0)
