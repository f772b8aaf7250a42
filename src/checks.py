"""Argument checks that fail early with a message naming the argument and what was
expected.
"""

from __future__ import annotations

import numbers

import torch


def positive_int(name: str, value: object) -> int:
    """Return `value` if it is an int >= 1, else raise naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int (>= 1), got {value}")
    return int(value)


def non_negative_int(name: str, value: object) -> int:
    """Return `value` if it is an int >= 0, else raise naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int (>= 0), got {value}")
    return int(value)


def probability(name: str, value: object) -> float:
    """Return `value` if it is a real number in [0, 1), the range of a dropout rate or
    smoothing.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a float in [0, 1), got {type(value).__name__} {value!r}"
        )
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


def positive_float(name: str, value: object) -> float:
    """Return `value` if it is a real number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a positive number, got {type(value).__name__} {value!r}"
        )
    if not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value}")
    return float(value)


def token_ids(name: str, x: object, vocab: int, ndim: int = 2) -> torch.Tensor:
    """Check that `x` is an integer tensor of `ndim` dimensions with ids in [0,
    vocab).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of token ids, got {type(x).__name__}"
        )
    if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
        raise TypeError(
            f"{name} must hold integer token ids (torch.long), got dtype {x.dtype}"
        )
    if x.dim() != ndim:
        raise ValueError(
            f"{name} must have {ndim} dimensions (batch, seq), got shape "
            f"{tuple(x.shape)}"
        )
    if x.numel() > 0:
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi >= vocab:
            raise ValueError(
                f"{name} holds token ids in [{lo}, {hi}], outside the vocabulary [0, "
                f"{vocab - 1}]"
            )
    return x


def mask(name: str, m: object, batch: int, queries: int, keys: int) -> torch.Tensor:
    """Check that mask `m` broadcasts to (batch, queries, keys) and return it as
    booleans.
    """
    if not isinstance(m, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(m).__name__}")
    expected = (batch, queries, keys)
    if m.dim() != 3:
        raise ValueError(
            f"{name} must have 3 dimensions broadcastable to (batch, queries, keys) = "
            f"{expected}, got shape {tuple(m.shape)}"
        )
    try:
        shape = torch.broadcast_shapes(tuple(m.shape), expected)
    except RuntimeError:
        shape = None
    if shape != expected:
        raise ValueError(
            f"{name} of shape {tuple(m.shape)} cannot broadcast to (batch, queries, "
            f"keys) = {expected}"
        )
    return m if m.dtype == torch.bool else m != 0
