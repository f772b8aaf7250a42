"""A trained translation model as ONNX graphs, for runtimes without PyTorch (the book's
in-browser page runs them with onnxruntime-web).

- `EncoderGraph`: source ids and mask -> memory, as `EncoderDecoder.encode`.
- `DecoderGraph`: one step of `greedy_decode` without a cache: the memory, the source
  mask and the whole target prefix -> log-probabilities of the next token and the
  encoder-decoder attention weights of every layer and head.
- `CachedDecoderGraph`: the same step fed only the last token, with the
  self-attention keys and values of the earlier positions as inputs and outputs.
- `export_translator`: the encoder, a decoder and the vocabularies (JSON) into a folder.

The graphs take PyTorch's exporter (`torch.onnx.export(..., dynamo=True)`, which needs
`onnxscript`); lengths are dynamic up to `max_positions`, the rows of the positional
encoding table the graphs keep.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from src import checks
from src.data.tokenizer import BOS, EOS, PAD, UNK, WordTokenizer
from src.recipes.translation import Translator
from src.transformer.attention import subsequent_mask
from src.transformer.embeddings import PositionalEncoding
from src.transformer.model import DecoderCache, EncoderDecoder

MAX_POSITIONS = 64  # source or target tokens a graph accepts
FILES = {"encoder": "encoder.onnx", "decoder": "decoder.onnx", "vocab": "vocab.json"}


class EncoderGraph(nn.Module):
    """(batch, src_len) ids and (batch, 1, src_len) mask -> memory (batch, src_len,
    d_model).
    """

    def __init__(self, model: EncoderDecoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        m = self.model  # `encode` without its checks of the ids' values
        return m.encoder(m.src_embed(src), src_mask)


class DecoderGraph(nn.Module):
    """One greedy step over the whole prefix `ys` (batch, t): log-probabilities of the
    next token (batch, vocab) and encoder-decoder attention (N, batch, h, t, src_len).
    """

    def __init__(self, model: EncoderDecoder) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, memory: torch.Tensor, src_mask: torch.Tensor, ys: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        tgt_mask = subsequent_mask(ys.size(1))  # (1, t, t)
        x = m.decoder(m.tgt_embed(ys), memory, src_mask, tgt_mask)  # (batch, t, d)
        attn = torch.stack([layer.src_attn.attn for layer in m.decoder.layers])
        return m.generator(x[:, -1]), attn


class CachedDecoderGraph(nn.Module):
    """One greedy step fed the last token (batch, 1) and the self-attention keys and
    values of the t earlier positions, (N, batch, h, t, d_k) each: log-probabilities
    (batch, vocab), attention of the new position (N, batch, h, 1, src_len), and the
    keys and values with the new position appended (N, batch, h, t + 1, d_k).
    """

    def __init__(self, model: EncoderDecoder) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        memory: torch.Tensor,
        src_mask: torch.Tensor,
        last: torch.Tensor,
        past_keys: torch.Tensor,
        past_values: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        m, layers = self.model, self.model.decoder.layers
        cache = DecoderCache.empty(len(layers))
        cache.length = past_keys.size(3)
        for i, layer_cache in enumerate(cache.layers):
            layer_cache["self"] = {"k": past_keys[i], "v": past_values[i]}
        x = m.tgt_embed(last, start=cache.length)  # (batch, 1, d_model)
        x = m.decoder(x, memory, src_mask, None, cache=cache.layers)
        attn = torch.stack([layer.src_attn.attn for layer in layers])
        keys = torch.stack([c["self"]["k"] for c in cache.layers])
        values = torch.stack([c["self"]["v"] for c in cache.layers])
        return m.generator(x[:, -1]), attn, keys, values


def for_export(model: EncoderDecoder, max_positions: int = MAX_POSITIONS) -> nn.Module:
    """An eval-mode copy of `model` whose positional tables keep `max_positions` rows
    (the full table of 5000 would add megabytes to each graph).
    """
    max_positions = checks.positive_int("max_positions", max_positions)
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(module, PositionalEncoding):
            rows = min(max_positions, module.max_len)
            module.pe = module.pe[:, :rows].clone()  # (1, rows, d_model)
            module.max_len = rows
    return model


@contextlib.contextmanager
def _quiet():
    """Silence the exporter's notes: the `.attn` it sees written, torchvision absent."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def _export(graph: nn.Module, args: tuple, names: dict, shapes: dict, path: Path):
    # strict: dynamo traces the Python of the model (its checks see symbolic lengths)
    with _quiet():
        exported = torch.export.export(
            graph.eval(), args, dynamic_shapes=shapes, strict=True
        )
        program = torch.onnx.export(
            exported,
            input_names=names["inputs"],
            output_names=names["outputs"],
            dynamo=True,
            optimize=True,
            verbose=False,
        )
    program.save(str(path))


def export_encoder(model: EncoderDecoder, path: str | Path) -> Path:
    """Write `EncoderGraph(model)` to `path`: inputs src, src_mask; output memory."""
    path, model = Path(path), for_export(model)
    batch = torch.export.Dim("batch", max=1024)
    src_len = torch.export.Dim("src_len", max=model.src_embed.position.max_len)
    src = torch.full((2, 3), UNK)
    src_mask = torch.ones(2, 1, 3, dtype=torch.bool)
    shapes = {"src": {0: batch, 1: src_len}, "src_mask": {0: batch, 2: src_len}}
    names = {"inputs": ["src", "src_mask"], "outputs": ["memory"]}
    _export(EncoderGraph(model), (src, src_mask), names, shapes, path)
    return path


def export_decoder(
    model: EncoderDecoder, path: str | Path, cached: bool = False
) -> Path:
    """Write `DecoderGraph(model)` (or `CachedDecoderGraph` when `cached`) to `path`."""
    path, model = Path(path), for_export(model)
    max_len = model.tgt_embed.position.max_len
    batch = torch.export.Dim("batch", max=1024)
    src_len = torch.export.Dim("src_len", max=model.src_embed.position.max_len)
    memory = torch.zeros(2, 3, model.tgt_embed.embeddings.d_model)
    src_mask = torch.ones(2, 1, 3, dtype=torch.bool)
    shapes = {"memory": {0: batch, 1: src_len}, "src_mask": {0: batch, 2: src_len}}
    if not cached:
        ys = torch.full((2, 4), BOS)
        shapes["ys"] = {0: batch, 1: torch.export.Dim("tgt_len", max=max_len)}
        names = {
            "inputs": ["memory", "src_mask", "ys"],
            "outputs": ["log_probs", "attn"],
        }
        _export(DecoderGraph(model), (memory, src_mask, ys), names, shapes, path)
        return path
    layer = model.decoder.layers[0].self_attn
    n = len(model.decoder.layers)
    past = torch.zeros(n, 2, layer.h, 4, layer.d_k)  # (N, batch, h, t, d_k)
    t = torch.export.Dim("past_len", min=0, max=max_len - 1)
    shapes |= {"last": {0: batch}} | {
        k: {1: batch, 3: t} for k in ("past_keys", "past_values")
    }
    names = {
        "inputs": ["memory", "src_mask", "last", "past_keys", "past_values"],
        "outputs": ["log_probs", "attn", "keys", "values"],
    }
    args = (memory, src_mask, torch.full((2, 1), BOS), past, past.clone())
    _export(CachedDecoderGraph(model), args, names, shapes, path)
    return path


def vocabularies(translator: Translator) -> dict:
    """What a runtime needs besides the graphs: both vocabularies (id -> token), the
    special ids and the model's shape.
    """
    for side in ("src_tok", "tgt_tok"):
        if not isinstance(getattr(translator, side), WordTokenizer):
            raise ValueError(
                f"translator.{side} must be a WordTokenizer (the page splits words), "
                f"got {type(getattr(translator, side)).__name__}"
            )
    layer = translator.model.decoder.layers[0].src_attn
    return {
        "src": list(translator.src_tok.itos),
        "tgt": list(translator.tgt_tok.itos),
        "specials": {"pad": PAD, "bos": BOS, "eos": EOS, "unk": UNK},
        "layers": len(translator.model.decoder.layers),
        "heads": layer.h,
        "max_positions": MAX_POSITIONS,
    }


def export_translator(
    translator: Translator, directory: str | Path, cached: bool = False
) -> dict[str, Path]:
    """Write encoder.onnx, decoder.onnx (`cached`: the key/value-cache step) and
    vocab.json into `directory`; their paths by name.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / file for name, file in FILES.items()}
    vocab = vocabularies(translator)  # refuses a tokenizer the page cannot mirror
    export_encoder(translator.model, paths["encoder"])
    export_decoder(translator.model, paths["decoder"], cached=cached)
    paths["vocab"].write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    return paths


def onnx_greedy_decode(
    encoder, decoder, src: list[int], max_len: int, cached: bool = False
) -> tuple[list[int], list[np.ndarray]]:
    """`greedy_decode` of one sentence with onnxruntime sessions of the graphs above
    (as the page runs it): ids from <s> to </s> or `max_len`, and each step's
    log-probabilities.
    """
    src_ids = np.array([src], dtype=np.int64)  # (1, src_len)
    src_mask = np.ones((1, 1, len(src)), dtype=bool)
    (memory,) = encoder.run(None, {"src": src_ids, "src_mask": src_mask})
    ys, steps = [BOS], []
    if cached:
        n, h, d_k = (decoder.get_inputs()[3].shape[i] for i in (0, 2, 4))
        keys = values = np.zeros((n, 1, h, 0, d_k), dtype=np.float32)
    while len(ys) < max_len:
        feed = {"memory": memory, "src_mask": src_mask}
        if cached:
            feed |= {"last": np.array([[ys[-1]]]), "past_keys": keys}
            log_probs, _, keys, values = decoder.run(
                None, feed | {"past_values": values}
            )
        else:
            log_probs, _ = decoder.run(None, feed | {"ys": np.array([ys])})
        steps.append(log_probs[0])
        ys.append(int(log_probs[0].argmax()))
        if ys[-1] == EOS:
            break
    return ys, steps
