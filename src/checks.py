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


def encoder_inputs(
    src: object, src_mask: object, vocab: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`EncoderDecoder.encode`'s inputs checked: ids (batch, src_len) in [0, vocab) and
    a mask broadcasting to (batch, src_len, src_len), as booleans.
    """
    src = token_ids("src", src, vocab)
    batch, src_len = src.shape
    return src, mask("src_mask", src_mask, batch, src_len, src_len)


def decoder_inputs(
    memory: torch.Tensor,
    src_mask: object,
    tgt: torch.Tensor,
    tgt_mask: object | None,
    vocab: int | None,
    start: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`EncoderDecoder.decode`'s masks checked against `memory` and `tgt` (whose ids
    are checked unless `vocab` is None), as booleans; `start`: positions decoded before.
    """
    if vocab is not None:
        token_ids("tgt", tgt, vocab)
    batch, tgt_len = tgt.shape
    if memory.dim() != 3 or memory.size(0) != batch:
        raise ValueError(
            f"memory must have shape (batch={batch}, src_len, d_model), got "
            f"{tuple(memory.shape)}"
        )
    src_mask = mask("src_mask", src_mask, batch, tgt_len, memory.size(1))
    if tgt_mask is not None:
        tgt_mask = mask("tgt_mask", tgt_mask, batch, tgt_len, start + tgt_len)
    return src_mask, tgt_mask


def label_smoothing(size: int, padding_idx: int | None, smoothing: float) -> None:
    """Check `LabelSmoothing`'s arguments: a vocabulary `size`, a padding id in it or
    None, and a smoothing in [0, 1) with a token besides the true one to receive it.
    """
    positive_int("size", size)
    if (
        padding_idx is not None
        and not 0 <= non_negative_int("padding_idx", padding_idx) < size
    ):
        raise ValueError(
            f"padding_idx must be a token id in [0, {size - 1}] or None, got "
            f"{padding_idx}"
        )
    if (
        probability("smoothing", smoothing) > 0
        and size - (2 if padding_idx is not None else 1) < 1
    ):
        raise ValueError(
            "smoothing > 0 needs a token besides the true one and padding to receive "
            f"its mass, but size={size} with padding_idx={padding_idx} leaves none"
        )


def log_probs_and_targets(x: torch.Tensor, target: object, size: int) -> None:
    """Check `LabelSmoothing`'s inputs: x (tokens, size) and target (tokens,) ids."""
    if x.dim() != 2 or x.size(1) != size:
        raise ValueError(
            f"x must have shape (tokens, size={size}), got {tuple(x.shape)}"
        )
    token_ids("target", target, size, ndim=1)
    if target.size(0) != x.size(0):
        raise ValueError(
            f"target has {target.size(0)} tokens but x has {x.size(0)} rows"
        )
