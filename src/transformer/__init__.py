"""The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al.,
2017).
"""

from src.transformer.attention import MultiHeadedAttention, attention, subsequent_mask
from src.transformer.decoding import beam_search, greedy_decode
from src.transformer.embeddings import Embeddings, PositionalEncoding
from src.transformer.model import (
    DecoderCache,
    EncoderDecoder,
    Generator,
    ModelConfig,
    make_model,
)

__all__ = [
    "DecoderCache",
    "Embeddings",
    "EncoderDecoder",
    "Generator",
    "ModelConfig",
    "MultiHeadedAttention",
    "PositionalEncoding",
    "attention",
    "beam_search",
    "greedy_decode",
    "make_model",
    "subsequent_mask",
]
