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
        ``forward(x)[b, lengths[b] - 1]``. Inference (eval mode) only.

        Two savings over ``forward``: every dense product (projections, feed-forward, norms)
        runs on the real tokens packed together ``[T, d]``, never on padding (live sessions are
        mostly short, so a padded batch is mostly padding); only attention scatters them back
        to ``[B, L]``. And the last layer computes keys and values of every token but the
        query, attention and feed-forward of the last position only (most of a layer's work).
        """
        if self.training:
            raise RuntimeError("forward_last is for inference; train with forward()")
        length = self._checked_length(x)
        valid = torch.arange(length, device=x.device) < lengths[:, None]  # [B L]
        positions = valid.nonzero()[:, 1]  # [T], row-major like x[valid]
        tokens = self.norm(x[valid] + self.position(positions))  # [T d]
        *first, last = self.layers.layers
        for layer in first:
            tokens = _packed_layer(layer, tokens, valid)
        last_token = lengths.cumsum(0) - 1  # [B] index of each sequence's last token
        return _last_position_layer(last, tokens, valid, last_token)

    def _checked_length(self, x: Tensor) -> int:
        length = x.size(1)
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.max_len}")
        return length

    def _embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        length = self._checked_length(x)
        positions = torch.arange(length, device=x.device)
        h = self.dropout(self.norm(x + self.position(positions)))
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=x.device,
                                                                dtype=h.dtype)
        return h, causal


def _attention_inputs(projected: Tensor, valid: Tensor, heads: int, parts: int,
                      ) -> list[Tensor]:
    """Packed projections ``[T, parts * d]`` (query, key, value side by side) → one padded
    per-head tensor ``[B, heads, L, d / heads]`` per part (0 at padding, which the causal
    attention of a valid position never reads)."""
    batch, length = valid.shape
    padded = projected.new_zeros(batch, length, projected.size(1))
    padded[valid] = projected
    per_head = padded.view(batch, length, parts, heads, -1).permute(2, 0, 3, 1, 4)
    return list(per_head.unbind(0))


def _packed_layer(layer: nn.TransformerEncoderLayer, tokens: Tensor, valid: Tensor) -> Tensor:
    """A post-norm causal encoder layer over packed tokens ``[T, d]`` of the sequences whose
    positions ``valid [B, L]`` marks; returns ``[T, d]``."""
    attention = layer.self_attn
    qkv = F.linear(tokens, attention.in_proj_weight, attention.in_proj_bias)  # [T 3d]
    query, key, value = _attention_inputs(qkv, valid, attention.num_heads, 3)
    mixed = F.scaled_dot_product_attention(query, key, value, is_causal=True)  # [B h L d/h]
    mixed = mixed.transpose(1, 2).flatten(2)[valid]  # [T d]
    x = layer.norm1(tokens + attention.out_proj(mixed))
    return layer.norm2(x + layer.linear2(layer.activation(layer.linear1(x))))


def _last_position_layer(layer: nn.TransformerEncoderLayer, tokens: Tensor, valid: Tensor,
                         last_token: Tensor) -> Tensor:
    """A post-norm causal encoder layer evaluated at one token per sequence, ``last_token [B]``
    of the packed ``tokens [T, d]`` (it attends to its sequence's tokens up to itself: with
    right padding, every valid one); returns ``[B, d]``."""
    batch, dim = valid.size(0), tokens.size(1)
    attention = layer.self_attn
    heads = attention.num_heads
    weight, bias = attention.in_proj_weight, attention.in_proj_bias
    x = tokens[last_token]  # [B d]
    query = F.linear(x, weight[:dim], bias[:dim]).view(batch, heads, 1, dim // heads)
    key_value = F.linear(tokens, weight[dim:], bias[dim:])  # [T 2d]
    key, value = _attention_inputs(key_value, valid, heads, 2)  # [B h L d/h] each
    mixed = F.scaled_dot_product_attention(query, key, value,
                                           attn_mask=valid[:, None, None, :])  # [B h 1 d/h]
    x = layer.norm1(x + attention.out_proj(mixed.reshape(batch, dim)))
    return layer.norm2(x + layer.linear2(layer.activation(layer.linear1(x))))
