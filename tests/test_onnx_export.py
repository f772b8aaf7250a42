"""src.export_onnx: the exported graphs compute what the PyTorch model computes.

onnxruntime (the Python package of the runtime the book's page runs in WebAssembly) executes the
graphs; PyTorch's model is the reference: the same greedy tokens, log-probabilities within 1e-4,
the same encoder-decoder attention weights, and the cached decoder step equal to the plain one.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from src import export_onnx
from src.data.numbers import NumbersTask
from src.data.tokenizer import BOS, EOS, PAD, BPETokenizer, WordTokenizer
from src.recipes.numbers import numbers_translator
from src.recipes.translation import Translator
from src.transformer.attention import subsequent_mask
from src.transformer.decoding import greedy_decode

ort = pytest.importorskip("onnxruntime")
TOLERANCE = 1e-4


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def pytorch_greedy(model, src: list[int]) -> list[int]:
    x = torch.tensor([src])
    ys = greedy_decode(model, x, (x != PAD).unsqueeze(-2), 2 * len(src) + 10, BOS, EOS, PAD)[0].tolist()
    return ys[: ys.index(EOS) + 1] if EOS in ys else ys


@torch.no_grad()
def teacher_forced(model, src: list[int], ys: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's log-probabilities after every prefix of ys (t, vocab) and the src_attn weights
    (N, 1, h, t, src_len) of the whole prefix, from one forward pass."""
    x, y = torch.tensor([src]), torch.tensor([ys])
    mask = torch.ones(1, 1, len(src), dtype=torch.bool)
    out = model.decode(model.encode(x, mask), mask, y, subsequent_mask(y.size(1)))
    attn = torch.stack([layer.src_attn.attn for layer in model.decoder.layers])
    return model.generator(out)[0].numpy(), attn.numpy()


def word_translator(model) -> Translator:
    """A Translator around `model` (vocabulary 11 on both sides: 4 specials and 7 words)."""
    words = WordTokenizer(["<pad>", "<s>", "</s>", "<unk>", *"abcdefg"])
    return Translator(model, words, words)


@pytest.mark.slow
def test_small_model_graphs_match_pytorch(small_model, tmp_path) -> None:
    """An untrained model: memory, log-probabilities and attention of every length, tokens alike."""
    paths = export_onnx.export_translator(word_translator(small_model), tmp_path)
    cached_path = export_onnx.export_decoder(small_model, tmp_path / "cached.onnx", cached=True)
    encoder, decoder, cached = session(paths["encoder"]), session(paths["decoder"]), session(cached_path)
    generator = torch.Generator().manual_seed(1)
    for src_len in (1, 2, 5, 17):
        src = torch.randint(4, 11, (1, src_len), generator=generator)
        src[0, -1] = EOS
        mask = torch.ones(1, 1, src_len, dtype=torch.bool)
        (memory,) = encoder.run(None, {"src": src.numpy(), "src_mask": mask.numpy()})
        with torch.no_grad():
            expected = small_model.encode(src, mask).numpy()
        np.testing.assert_allclose(memory, expected, atol=TOLERANCE)
        for t in (1, 3, 9):
            ys = torch.randint(4, 11, (1, t), generator=generator)
            ys[0, 0] = BOS
            log_probs, attn = decoder.run(None, {"memory": memory, "src_mask": mask.numpy(), "ys": ys.numpy()})
            want_log_probs, want_attn = teacher_forced(small_model, src[0].tolist(), ys[0].tolist())
            np.testing.assert_allclose(log_probs[0], want_log_probs[-1], atol=TOLERANCE)
            np.testing.assert_allclose(attn, want_attn, atol=TOLERANCE)
        ids, steps = export_onnx.onnx_greedy_decode(encoder, decoder, src[0].tolist(), 2 * src_len + 10)
        ids_cached, steps_cached = export_onnx.onnx_greedy_decode(
            encoder, cached, src[0].tolist(), 2 * src_len + 10, cached=True
        )
        assert ids == ids_cached == pytorch_greedy(small_model, src[0].tolist())
        np.testing.assert_allclose(np.stack(steps), np.stack(steps_cached), atol=TOLERANCE)
    vocab = json.loads(paths["vocab"].read_text())
    assert vocab["src"] == vocab["tgt"] == ["<pad>", "<s>", "</s>", "<unk>", *"abcdefg"]
    assert vocab["specials"] == {"pad": PAD, "bos": BOS, "eos": EOS, "unk": 3}
    assert (vocab["layers"], vocab["heads"]) == (2, 4)


@pytest.mark.slow
def test_number_model_graphs_give_pytorchs_tokens_on_held_out_sentences(tmp_path, one_thread) -> None:
    """The book's English -> French model: 250 held-out sentences decode to the same tokens, and
    every step's log-probabilities are within 1e-4 of PyTorch's. (The chapter that exports the
    model, book/translate_in_browser.md, asserts the same over all 1000 test sentences.)"""
    fr = numbers_translator("fr", progress=False)
    paths = export_onnx.export_translator(fr, tmp_path)
    encoder, decoder = session(paths["encoder"]), session(paths["decoder"])
    pairs = random.Random(0).sample(NumbersTask(lang="fr").pairs("test"), 250)
    differ, worst = [], 0.0
    for english, _ in pairs:
        src = fr.src_tok.encode(english) + [EOS]
        ids, steps = export_onnx.onnx_greedy_decode(encoder, decoder, src, 2 * len(src) + 10)
        if ids != pytorch_greedy(fr.model, src):
            differ.append(english)
        want, _ = teacher_forced(fr.model, src, ids[:-1])
        worst = max(worst, float(np.abs(np.stack(steps) - want).max()))
    assert not differ, f"{len(differ)} of {len(pairs)} test sentences decode differently: {differ[:5]}"
    assert worst < TOLERANCE, worst


def test_the_exported_copy_keeps_max_positions_rows_and_leaves_the_model_alone(small_model) -> None:
    copy = export_onnx.for_export(small_model, max_positions=12)
    for embed in (copy.src_embed, copy.tgt_embed):
        assert embed.position.pe.shape == (1, 12, 32) and embed.position.max_len == 12
        torch.testing.assert_close(embed.position.pe, small_model.src_embed.position.pe[:, :12])
    assert small_model.src_embed.position.pe.shape[1] == 5000  # the original keeps its table
    assert not copy.training
    with pytest.raises(ValueError, match="max_len=12"):
        copy.src_embed(torch.full((1, 13), 4))
    with pytest.raises(ValueError, match="max_positions"):
        export_onnx.for_export(small_model, max_positions=0)


def test_vocabularies_refuse_a_tokenizer_the_page_cannot_mirror(small_model) -> None:
    translator = word_translator(small_model)
    assert export_onnx.vocabularies(translator)["max_positions"] == export_onnx.MAX_POSITIONS
    translator.tgt_tok = BPETokenizer.train(["un deux trois", "quatre cinq six"] * 5, vocab_size=30)
    with pytest.raises(ValueError, match="translator.tgt_tok must be a WordTokenizer"):
        export_onnx.vocabularies(translator)
