"""The encoder-decoder model (paper, figure 1) and `make_model`, which builds it from
hyperparameters.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from src import checks
from src.transformer.attention import MultiHeadedAttention
from src.transformer.embeddings import Embeddings, PositionalEncoding
from src.transformer.layers import (
    Decoder,
    DecoderLayer,
    Encoder,
    EncoderLayer,
    PositionwiseFeedForward,
)


class Generator(nn.Module):
    """The pre-softmax linear projection and log-softmax: decoder output ->
    log-probabilities.
    """

    def __init__(self, d_model: int, vocab: int) -> None:
        super().__init__()
        self.proj = nn.Linear(
            checks.positive_int("d_model", d_model), checks.positive_int("vocab", vocab)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).log_softmax(dim=-1)


class Embed(nn.Sequential):
    """Embeddings followed by PositionalEncoding; `start` offsets positions for
    step-by-step decoding.
    """

    def __init__(self, embeddings: Embeddings, position: PositionalEncoding) -> None:
        # a Sequential: parameters stay named `0.lut.weight`
        super().__init__(embeddings, position)

    @property
    def embeddings(self) -> Embeddings:
        return self[0]

    @property
    def position(self) -> PositionalEncoding:
        return self[1]

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        return self.position(self.embeddings(x), start=start)


@dataclass
class DecoderCache:
    """Each decoder layer's projected keys and values, kept while decoding one position
    at a time.
    """

    layers: list[dict[str, dict[str, torch.Tensor]]]
    length: int = 0  # target positions decoded so far

    @classmethod
    def empty(cls, n_layers: int) -> DecoderCache:
        return cls(layers=[{"self": {}, "src": {}} for _ in range(n_layers)])

    def select(self, index: torch.Tensor) -> None:
        """Keep the batch rows `index` (in that order) of every cached tensor; beam
        search reorders with it.
        """
        for layer in self.layers:
            for kv in layer.values():
                for name, t in kv.items():
                    kv[name] = t.index_select(0, index)


@dataclass(frozen=True)
class ModelConfig:
    """Everything `make_model` needs to build the same model again (saved with
    checkpoints). A preset may leave the vocabulary sizes to its tokenizers (None).
    """

    src_vocab: int | None = None
    tgt_vocab: int | None = None
    N: int = 6
    d_model: int = 512
    d_ff: int = 2048
    h: int = 8
    dropout: float = 0.1
    norm_first: bool = True
    share_embeddings: bool = False
    max_len: int = 5000  # positions of the positional-encoding table
    # dropout also on the attention weights and inside the feed-forward network, as the
    # reference code; the paper (section 5.4) drops out only sublayer outputs and the
    # embedding sums
    inner_dropout: bool = True
    # ablations: no 1 / sqrt(d_k) in attention; no positional encoding
    scale_scores: bool = True
    positional: bool = True

    def __post_init__(self) -> None:
        """Check every hyperparameter once, here, with a message naming it."""
        for name in ("N", "d_model", "d_ff", "h", "max_len"):
            checks.positive_int(name, getattr(self, name))
        for name in ("src_vocab", "tgt_vocab"):  # None: left to the tokenizers
            if getattr(self, name) is not None:
                checks.positive_int(name, getattr(self, name))
        checks.probability("dropout", self.dropout)
        if self.d_model % self.h != 0:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by h ({self.h})"
            )
        if self.share_embeddings and self.src_vocab != self.tgt_vocab:
            raise ValueError(
                "share_embeddings needs one vocabulary: "
                f"src_vocab ({self.src_vocab}) != tgt_vocab ({self.tgt_vocab})"
            )

    def with_vocab(self, src_vocab: int, tgt_vocab: int) -> ModelConfig:
        """This configuration for the given vocabulary sizes."""
        return dataclasses.replace(self, src_vocab=src_vocab, tgt_vocab=tgt_vocab)

    def build(self) -> EncoderDecoder:
        """A freshly initialised model of this configuration (`make_model`)."""
        if self.src_vocab is None or self.tgt_vocab is None:
            raise ValueError("the vocabulary sizes are not set: use with_vocab first")
        return make_model(**dataclasses.asdict(self))


class EncoderDecoder(nn.Module):
    """The Transformer: encode the source once, then decode the target attending to
    it.
    """

    def __init__(
        self,
        encoder: Encoder,
        decoder: Decoder,
        src_embed: Embed,
        tgt_embed: Embed,
        generator: Generator,
        config: ModelConfig | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.src_embed = src_embed
        self.tgt_embed = tgt_embed
        self.generator = generator
        self.config = config

    def forward(
        self,
        src: torch.Tensor,
        tgt: torch.Tensor,
        src_mask: torch.Tensor,
        tgt_mask: torch.Tensor,
    ) -> torch.Tensor:
        """(batch, src_len) and (batch, tgt_len) ids -> decoder output (batch, tgt_len,
        d_model).
        """
        return self.decode(self.encode(src, src_mask), src_mask, tgt, tgt_mask)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        """(batch, src_len) ids -> memory (batch, src_len, d_model). `src_mask`:
        (batch|1, 1|src_len, src_len).
        """
        vocab = self.src_embed.embeddings.vocab
        src, src_mask = checks.encoder_inputs(src, src_mask, vocab)
        return self.encoder(self.src_embed(src), src_mask)

    def decode(
        self,
        memory: torch.Tensor,
        src_mask: torch.Tensor,
        tgt: torch.Tensor,
        tgt_mask: torch.Tensor | None,
        cache: DecoderCache | None = None,
    ) -> torch.Tensor:
        """(batch, tgt_len) ids -> (batch, tgt_len, d_model), attending to `memory`.

        With a `cache`, `tgt` holds only the new positions; earlier ones are read from
        the cache. Those are the decoder's own choices, so their ids are not checked
        again (on a GPU that would cost a device sync per token).
        """
        start = cache.length if cache is not None else 0
        vocab = self.tgt_embed.embeddings.vocab if cache is None else None
        src_mask, tgt_mask = checks.decoder_inputs(
            memory, src_mask, tgt, tgt_mask, vocab, start
        )
        layer_caches = cache.layers if cache is not None else None
        x = self.tgt_embed(tgt, start=start)
        x = self.decoder(x, memory, src_mask, tgt_mask, cache=layer_caches)
        if cache is not None:
            cache.length += tgt.size(1)
        return x

    def set_fused_attention(self, enabled: bool) -> None:
        """Use PyTorch's fused attention kernel (fast, keeps no `.attn`) or the explicit
        softmax.
        """
        for module in self.modules():
            if isinstance(module, MultiHeadedAttention):
                module.fused = enabled


def make_model(
    src_vocab: int,
    tgt_vocab: int,
    N: int = 6,
    d_model: int = 512,
    d_ff: int = 2048,
    h: int = 8,
    dropout: float = 0.1,
    *,
    norm_first: bool = True,
    share_embeddings: bool = False,
    max_len: int = 5000,
    inner_dropout: bool = True,
    scale_scores: bool = True,
    positional: bool = True,
) -> EncoderDecoder:
    """Build the Transformer of the paper from its hyperparameters (base model: the
    defaults).

    norm_first: pre-norm residual sublayers (True) or the paper's post-norm (False).
    share_embeddings: one weight matrix for both embeddings and the pre-softmax
    projection (section 3.4); needs src_vocab == tgt_vocab.
    inner_dropout: dropout on attention weights and between the feed-forward layers too.
    scale_scores, positional: False switches off the 1 / sqrt(d_k) of attention, or
    the positional encoding (ablations).
    """
    config = ModelConfig(**locals())  # the arguments: nothing else is defined yet
    c = copy.deepcopy
    inner = dropout if inner_dropout else 0.0
    attn = MultiHeadedAttention(h, d_model, inner, scale_scores)
    ff = PositionwiseFeedForward(d_model, d_ff, inner)
    position = PositionalEncoding(d_model, dropout, max_len)
    if not positional:  # the ablation: a table of zeros, no position signal
        position.pe.zero_()
    encoder_layer = EncoderLayer(d_model, c(attn), c(ff), dropout, norm_first)
    decoder_layer = DecoderLayer(d_model, c(attn), c(attn), c(ff), dropout, norm_first)
    model = EncoderDecoder(
        Encoder(encoder_layer, N, norm_first),
        Decoder(decoder_layer, N, norm_first),
        Embed(Embeddings(d_model, src_vocab), c(position)),
        Embed(Embeddings(d_model, tgt_vocab), c(position)),
        Generator(d_model, tgt_vocab),
        config,
    )
    # Glorot / fan_avg initialisation of every weight matrix, as the reference code
    for p in model.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
    if share_embeddings:
        shared = model.generator.proj.weight  # (vocab, d_model), as an embedding table
        model.src_embed.embeddings.lut.weight = shared
        model.tgt_embed.embeddings.lut.weight = shared
    return model
