"""Causal transformer over a right-padded item sequence with learned positions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.dropout import FastDropout


class SequenceTransformer(nn.Module):
    """Position embedding + LayerNorm + dropout, then ``num_layers`` causal encoder layers.

    With causal attention the output at position ``t`` depends only on inputs ``0..t``, so it is
    the session vector of that prefix: one pass trains every prefix, and right padding never
    reaches a valid position (no key-padding mask is needed).

    Shapes:
        - input: item vectors ``[B, L, d]`` (``L <= max_len``)
        - output: ``[B, L, d]``
    """

    def __init__(self, dim: int, max_len: int, num_layers: int, num_heads: int, ffn_dim: int,
                 dropout: float) -> None:
        super().__init__()
        self.max_len = max_len
        self.position = nn.Embedding(max_len, dim)
        self.norm = nn.LayerNorm(dim)
        self.dropout = FastDropout(dropout)
        layer = nn.TransformerEncoderLayer(dim, num_heads, ffn_dim, dropout, activation="gelu",
                                           batch_first=True)
        self.layers = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        for encoder_layer in self.layers.layers:
            for name in ("dropout", "dropout1", "dropout2"):
                setattr(encoder_layer, name, FastDropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        h, causal = self._embed(x)
        return self.layers(h, mask=causal, is_causal=True)

    def forward_last(self, x: Tensor, lengths: Tensor) -> Tensor:
        """The output at each sequence's last position ``lengths - 1`` only: ``[B, d]``, equal to
        ``forward(x)[b, lengths[b] - 1]``. The last layer computes keys and values of every
        position but the query, attention and feed-forward of that one position (most of a
        layer's work), which is what inference and evaluation need. Eval mode only."""
        if self.training:
            raise RuntimeError("forward_last is for inference; train with forward()")
        h, causal = self._embed(x)
        *first, last = self.layers.layers
        for layer in first:
            h = layer(h, src_mask=causal, is_causal=True)
        return _last_position_layer(last, h, lengths - 1)

    def _embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        length = x.size(1)
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.max_len}")
        positions = torch.arange(length, device=x.device)
        h = self.dropout(self.norm(x + self.position(positions)))
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=x.device,
                                                                dtype=h.dtype)
        return h, causal


def _last_position_layer(layer: nn.TransformerEncoderLayer, h: Tensor, last: Tensor) -> Tensor:
    """A post-norm encoder layer evaluated at position ``last[b]`` of each row of ``h [B, L, d]``
    (causal: it attends to positions ``0..last[b]``); returns ``[B, d]``."""
    batch, length, dim = h.shape
    attention = layer.self_attn
    heads = attention.num_heads
    weight, bias = attention.in_proj_weight, attention.in_proj_bias
    x = h[torch.arange(batch, device=h.device), last]  # [B d]
    query = F.linear(x, weight[:dim], bias[:dim]).view(batch, heads, 1, dim // heads)
    key, value = F.linear(h, weight[dim:], bias[dim:]).chunk(2, dim=-1)  # [B L d] each
    key = key.view(batch, length, heads, dim // heads).transpose(1, 2)  # [B heads L d/heads]
    value = value.view(batch, length, heads, dim // heads).transpose(1, 2)
    visible = torch.arange(length, device=h.device) <= last[:, None]  # [B L]
    mixed = F.scaled_dot_product_attention(query, key, value,
                                           attn_mask=visible[:, None, None, :])  # [B heads 1 .]
    x = layer.norm1(x + attention.out_proj(mixed.reshape(batch, dim)))
    return layer.norm2(x + layer.linear2(layer.activation(layer.linear1(x))))
