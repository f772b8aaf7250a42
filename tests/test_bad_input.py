"""Bad input fails early with a ValueError or TypeError that names the argument, never deep inside torch."""

from __future__ import annotations

import pytest
import torch

from src.data.copy_task import random_sequences
from src.shared.loss import LabelSmoothing
from src.shared.lr_scheduler import make_scheduler, rate
from src.shared.training import Batch, TrainingConfig, train
from src.transformer import beam_search, greedy_decode, make_model, subsequent_mask
from src.transformer.attention import MultiHeadedAttention
from src.transformer.embeddings import PositionalEncoding
from src.transformer.reference import TorchTransformer

MODEL = make_model(11, 11, N=1, d_model=16, d_ff=32, h=2).eval()
SRC = torch.randint(2, 11, (2, 5))
SRC_MASK = torch.ones(2, 1, 5)

CASES = [
    # (id, callable, exception, words the message must contain)
    ("d_model not divisible by h", lambda: make_model(11, 11, d_model=30, h=4), ValueError, ["d_model", "h"]),
    ("N zero", lambda: make_model(11, 11, N=0), ValueError, ["N", "positive"]),
    ("d_ff negative", lambda: make_model(11, 11, d_ff=-1), ValueError, ["d_ff"]),
    ("src_vocab zero", lambda: make_model(0, 11), ValueError, ["src_vocab"]),
    ("h float", lambda: make_model(11, 11, h=2.0), TypeError, ["h", "int"]),
    ("dropout 1", lambda: make_model(11, 11, dropout=1.0), ValueError, ["dropout", "[0, 1)"]),
    ("dropout negative", lambda: make_model(11, 11, dropout=-0.1), ValueError, ["dropout"]),
    ("dropout string", lambda: make_model(11, 11, dropout="0.1"), TypeError, ["dropout"]),
    ("share with two vocabularies", lambda: make_model(11, 12, share_embeddings=True), ValueError,
     ["share_embeddings", "src_vocab", "tgt_vocab"]),
    ("mha divisibility", lambda: MultiHeadedAttention(3, 16), ValueError, ["d_model", "h"]),
    ("nn.Transformer without scaling", lambda: TorchTransformer(make_model(11, 11, N=1, d_model=16, d_ff=32, h=2,
     scale_scores=False)), ValueError, ["scale_scores"]),
    ("src id too large", lambda: MODEL.encode(torch.tensor([[1, 11]]), torch.ones(1, 1, 2)), ValueError,
     ["src", "vocabulary"]),
    ("src id negative", lambda: MODEL.encode(torch.tensor([[1, -1]]), torch.ones(1, 1, 2)), ValueError, ["src"]),
    ("src float", lambda: MODEL.encode(torch.rand(1, 3), torch.ones(1, 1, 3)), TypeError, ["src", "integer"]),
    ("src 1-D", lambda: MODEL.encode(torch.tensor([1, 2]), torch.ones(1, 1, 2)), ValueError, ["src", "dimensions"]),
    ("tgt id too large", lambda: MODEL(SRC, torch.tensor([[1, 99], [1, 2]]), SRC_MASK, subsequent_mask(2)),
     ValueError, ["tgt", "vocabulary"]),
    ("src_mask wrong length", lambda: MODEL.encode(SRC, torch.ones(2, 1, 4)), ValueError, ["src_mask", "broadcast"]),
    ("src_mask wrong batch", lambda: MODEL.encode(SRC, torch.ones(3, 1, 5)), ValueError, ["src_mask"]),
    ("src_mask 2-D", lambda: MODEL.encode(SRC, torch.ones(2, 5)), ValueError, ["src_mask", "3 dimensions"]),
    ("tgt_mask wrong size", lambda: MODEL(SRC, SRC, SRC_MASK, subsequent_mask(4)), ValueError, ["tgt_mask"]),
    ("mask not a tensor", lambda: MODEL.encode(SRC, [[1, 1, 1, 1, 1]]), TypeError, ["src_mask"]),
    ("attention mask", lambda: MultiHeadedAttention(2, 8)(torch.rand(1, 3, 8), torch.rand(1, 4, 8),
                                                          torch.rand(1, 4, 8), torch.ones(1, 1, 3)),
     ValueError, ["mask"]),
    ("greedy max_len 0", lambda: greedy_decode(MODEL, SRC, SRC_MASK, 0, 1), ValueError, ["max_len"]),
    ("greedy start outside vocab", lambda: greedy_decode(MODEL, SRC, SRC_MASK, 5, 11), ValueError, ["start_symbol"]),
    ("greedy end outside vocab", lambda: greedy_decode(MODEL, SRC, SRC_MASK, 5, 1, end_symbol=-2), ValueError,
     ["end_symbol"]),
    ("beam size 0", lambda: beam_search(MODEL, SRC, SRC_MASK, 5, 1, beam_size=0), ValueError, ["beam_size"]),
    ("beam alpha negative", lambda: beam_search(MODEL, SRC, SRC_MASK, 5, 1, alpha=-1), ValueError, ["alpha"]),
    ("subsequent_mask 0", lambda: subsequent_mask(0), ValueError, ["size"]),
    ("positional max_len", lambda: PositionalEncoding(16, 0.1, max_len=0), ValueError, ["max_len"]),
    ("positional too long", lambda: PositionalEncoding(16, 0.0, max_len=4)(torch.zeros(1, 5, 16)), ValueError,
     ["max_len"]),
    ("model too long", lambda: make_model(11, 11, N=1, d_model=16, d_ff=32, h=2, max_len=4).encode(
        SRC, SRC_MASK), ValueError, ["max_len"]),
    ("rate warmup 0", lambda: rate(1, 512, 1.0, 0), ValueError, ["warmup"]),
    ("rate negative step", lambda: rate(-1, 512, 1.0, 10), ValueError, ["step"]),
    ("rate model_size 0", lambda: rate(1, 0, 1.0, 10), ValueError, ["model_size"]),
    ("rate factor 0", lambda: rate(1, 512, 0.0, 10), ValueError, ["factor"]),
    ("scheduler warmup", lambda: make_scheduler(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1), 8,
                                                warmup=-5), ValueError, ["warmup"]),
    ("smoothing with no other token", lambda: LabelSmoothing(2, 0, 0.1), ValueError, ["smoothing", "size=2"]),
    ("smoothing 1", lambda: LabelSmoothing(5, 0, 1.0), ValueError, ["smoothing"]),
    ("padding_idx outside", lambda: LabelSmoothing(5, 5, 0.1), ValueError, ["padding_idx"]),
    ("smoothing target outside", lambda: LabelSmoothing(5, 0, 0.1)(torch.zeros(2, 5), torch.tensor([1, 7])),
     ValueError, ["target"]),
    ("smoothing x shape", lambda: LabelSmoothing(5, 0, 0.1)(torch.zeros(2, 4), torch.tensor([1, 2])),
     ValueError, ["x", "size=5"]),
    ("batch float src", lambda: Batch(torch.rand(2, 3)), TypeError, ["src"]),
    ("batch tgt batch size", lambda: Batch(SRC, torch.ones(3, 4, dtype=torch.long)), ValueError, ["tgt", "batch"]),
    ("batch tgt too short", lambda: Batch(SRC, torch.ones(2, 1, dtype=torch.long)), ValueError, ["tgt"]),
    ("training epochs 0", lambda: TrainingConfig(epochs=0), ValueError, ["epochs"]),
    ("training warmup", lambda: TrainingConfig(warmup=0), ValueError, ["warmup"]),
    ("training smoothing", lambda: TrainingConfig(smoothing=1.0), ValueError, ["smoothing"]),
    ("training factor", lambda: TrainingConfig(factor=-1.0), ValueError, ["factor"]),
    ("training valid_target", lambda: TrainingConfig(valid_target=0.0), ValueError, ["valid_target"]),
    ("train batches", lambda: train(MODEL, 5, TrainingConfig(epochs=1)), TypeError, ["batches"]),
    ("copy vocab too small", lambda: random_sequences(3, vocab=2), ValueError, ["vocab"]),
]


@pytest.mark.parametrize("call,exc,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
