"""The same model in PyTorch's own `torch.nn.Transformer`: copy the weights across and
compare outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from src.transformer.attention import MultiHeadedAttention, subsequent_mask
from src.transformer.layers import PositionwiseFeedForward
from src.transformer.model import EncoderDecoder


def copy_attention(ours: MultiHeadedAttention, theirs: nn.MultiheadAttention) -> None:
    """W^Q, W^K, W^V stacked into PyTorch's `in_proj`; W^O into `out_proj`."""
    w_q, w_k, w_v, w_o = ours.linears
    with torch.no_grad():
        # (3 d_model, d_model)
        theirs.in_proj_weight.copy_(torch.cat([w_q.weight, w_k.weight, w_v.weight]))
        theirs.in_proj_bias.copy_(torch.cat([w_q.bias, w_k.bias, w_v.bias]))
        theirs.out_proj.weight.copy_(w_o.weight)
        theirs.out_proj.bias.copy_(w_o.bias)


def _copy_ffn(ours: PositionwiseFeedForward, theirs: nn.Module) -> None:
    theirs.linear1.load_state_dict(ours.w_1.state_dict())
    theirs.linear2.load_state_dict(ours.w_2.state_dict())


class TorchTransformer(nn.Module):
    """`torch.nn.Transformer` (batch first) between the embeddings and the generator of
    `model`: the book's architecture with PyTorch's stacks, called like the book's.
    """

    def __init__(self, model: EncoderDecoder, dropout: float | None = None) -> None:
        super().__init__()
        c = model.config
        if not c.inner_dropout and c.dropout > 0 and dropout != 0.0:
            raise ValueError(
                "nn.Transformer drops out attention weights and inside its "
                "feed-forward network: no inner_dropout=False (pass dropout=0.0)"
            )
        if not c.scale_scores:
            raise ValueError(
                "nn.Transformer always scales by 1 / sqrt(d_k): no scale_scores=False"
            )
        self.src_embed, self.tgt_embed = model.src_embed, model.tgt_embed
        self.generator = model.generator
        self.transformer = nn.Transformer(
            d_model=c.d_model,
            nhead=c.h,
            num_encoder_layers=c.N,
            num_decoder_layers=c.N,
            dim_feedforward=c.d_ff,
            dropout=c.dropout if dropout is None else dropout,
            batch_first=True,
            norm_first=c.norm_first,
        )
        if not c.norm_first:  # the paper's post-norm stacks end with no extra norm
            self.transformer.encoder.norm = nn.Identity()
            self.transformer.decoder.norm = nn.Identity()

    def forward(
        self,
        src: torch.Tensor,
        tgt: torch.Tensor,
        src_mask: torch.Tensor,
        tgt_mask: torch.Tensor,
    ) -> torch.Tensor:
        """The decoder's output (batch, tgt_len, d_model) for the book's masks."""
        # PyTorch's masks say the opposite of the book's: True marks a key that may
        # NOT be attended to; the causal mask is a float mask, -inf above the diagonal
        pad = ~src_mask[:, 0]  # (batch, src_len)
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.size(1))
        return self.transformer(
            self.src_embed(src),
            self.tgt_embed(tgt),
            tgt_mask=causal,
            src_key_padding_mask=pad,
            memory_key_padding_mask=pad,
            tgt_is_causal=True,
        )


def to_torch_transformer(model: EncoderDecoder) -> TorchTransformer:
    """A `TorchTransformer` (no dropout, eval mode) holding the weights of `model`."""
    ref = TorchTransformer(model, dropout=0.0).eval()
    theirs_encoder, theirs_decoder = ref.transformer.encoder, ref.transformer.decoder
    for ours, theirs in zip(model.encoder.layers, theirs_encoder.layers):
        copy_attention(ours.self_attn, theirs.self_attn)
        _copy_ffn(ours.feed_forward, theirs)
        for sublayer, norm in zip(ours.sublayer, (theirs.norm1, theirs.norm2)):
            norm.load_state_dict(sublayer.norm.state_dict())
    for ours, theirs in zip(model.decoder.layers, theirs_decoder.layers):
        copy_attention(ours.self_attn, theirs.self_attn)
        copy_attention(ours.src_attn, theirs.multihead_attn)
        _copy_ffn(ours.feed_forward, theirs)
        norms = (theirs.norm1, theirs.norm2, theirs.norm3)
        for sublayer, norm in zip(ours.sublayer, norms):
            norm.load_state_dict(sublayer.norm.state_dict())
    if model.config.norm_first:
        theirs_encoder.norm.load_state_dict(model.encoder.norm.state_dict())
        theirs_decoder.norm.load_state_dict(model.decoder.norm.state_dict())
    return ref


def max_difference(
    model: EncoderDecoder, src: torch.Tensor, tgt: torch.Tensor, pad: int = 0
) -> float:
    """Largest absolute difference of log-probabilities between `model` and its
    `torch.nn.Transformer` twin.

    Compared at non-padding target positions (PyTorch leaves rows of padded queries
    undefined).
    """
    model.eval()
    ref = to_torch_transformer(model)
    # (batch, tgt_len): shifted right
    tgt_in = torch.cat([tgt.new_ones(tgt.size(0), 1), tgt[:, :-1]], dim=1)
    src_mask = (src != pad).unsqueeze(-2)  # (batch, 1, src_len)
    # (batch, tgt_len, tgt_len)
    tgt_mask = (tgt_in != pad).unsqueeze(-2) & subsequent_mask(tgt_in.size(1))
    with torch.no_grad():
        ours = model.generator(model(src, tgt_in, src_mask, tgt_mask))
        theirs = ref.generator(ref(src, tgt_in, src_mask, tgt_mask))
    keep = tgt_in != pad
    return float((ours - theirs)[keep].abs().max())
