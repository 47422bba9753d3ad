"""Causal transformer over a right-padded item sequence with learned positions."""

from __future__ import annotations

from dataclasses import dataclass

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

    def forward_last(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """The output at each sequence's last position only, from its items packed back to back:
        ``tokens [T, d]`` (sequence ``b`` holds ``lengths[b]`` rows, oldest first), ``lengths [B]``
        → ``[B, d]``, equal to ``forward(padded)[b, lengths[b] - 1]`` (in training, with its
        own dropout draws). Serving's queries and training's contrastive views use it.

        Two savings over ``forward``: every dense product (projections, feed-forward, norms)
        runs on the real tokens, never on padding (live sessions are mostly short, so a padded
        batch is mostly padding); only attention scatters them to ``[B, L]``. And the last layer
        computes keys and values of every token but the query, attention and feed-forward of the
        last position only (most of a layer's work).
        """
        layout = _PackedLayout.of(lengths, self.max_len)
        if tokens.size(0) != layout.positions.numel():
            raise ValueError(f"{tokens.size(0)} packed tokens for sequences of "
                             f"{layout.positions.numel()} items in all")
        tokens = self.dropout(self.norm(tokens + self.position(layout.positions)))  # [T d]
        *first, last = self.layers.layers
        for layer in first:
            tokens = _packed_layer(layer, tokens, layout)
        return _last_position_layer(last, tokens, layout)

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


@dataclass(frozen=True)
class _PackedLayout:
    """Where the packed tokens ``[T, d]`` of ``B`` sequences sit in a right-padded ``[B, L]``
    batch (``L`` the longest sequence)."""

    positions: Tensor  # [T] position of each token in its sequence
    slots: Tensor  # [T] flat index row * L + position into [B * L]
    last_token: Tensor  # [B] index of each sequence's last token in [T]
    key_padding: Tensor  # [B, 1, 1, L] True at the sequences' tokens
    batch: int
    length: int

    @staticmethod
    def of(lengths: Tensor, max_len: int) -> _PackedLayout:
        shortest, length, total = torch.stack(  # one device sync
            [lengths.min(), lengths.max(), lengths.sum()]).tolist()
        if length > max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {max_len}")
        if shortest < 1:
            raise ValueError("every packed sequence needs at least one item")
        device = lengths.device
        ends = lengths.cumsum(0)  # [B]
        starts = torch.repeat_interleave(ends - lengths, lengths, output_size=total)  # [T]
        positions = torch.arange(total, device=device) - starts
        rows = torch.repeat_interleave(torch.arange(lengths.numel(), device=device), lengths,
                                       output_size=total)
        columns = torch.arange(length, device=device)
        valid = columns[None] < lengths[:, None]  # [B L]
        return _PackedLayout(positions=positions, slots=rows * length + positions,
                             last_token=ends - 1, key_padding=valid[:, None, None, :],
                             batch=lengths.numel(), length=length)

    def pad(self, packed: Tensor) -> Tensor:
        """``[T, C]`` → ``[B, L, C]``, zeros at padding."""
        padded = packed.new_zeros(self.batch * self.length, packed.size(1))
        padded.index_copy_(0, self.slots, packed)
        return padded.view(self.batch, self.length, -1)

    def pack(self, padded: Tensor) -> Tensor:
        """``[B, L, C]`` → ``[T, C]``."""
        return padded.reshape(self.batch * self.length, -1).index_select(0, self.slots)


def _attention_inputs(projected: Tensor, layout: _PackedLayout, heads: int, parts: int,
                      ) -> list[Tensor]:
    """Packed projections ``[T, parts * d]`` (query, key, value side by side) → one padded
    per-head tensor ``[B, heads, L, d / heads]`` per part (0 at padding)."""
    padded = layout.pad(projected)
    per_head = padded.view(layout.batch, layout.length, parts, heads, -1).permute(2, 0, 3, 1, 4)
    return list(per_head.unbind(0))


def _packed_layer(layer: nn.TransformerEncoderLayer, tokens: Tensor, layout: _PackedLayout,
                  ) -> Tensor:
    """A post-norm causal encoder layer over packed tokens ``[T, d]``; returns ``[T, d]``."""
    attention = layer.self_attn
    qkv = F.linear(tokens, attention.in_proj_weight, attention.in_proj_bias)  # [T 3d]
    query, key, value = _attention_inputs(qkv, layout, attention.num_heads, 3)
    mixed = F.scaled_dot_product_attention(query, key, value, is_causal=True,
                                           dropout_p=_attention_dropout(layer))  # [B h L d/h]
    mixed = layout.pack(mixed.transpose(1, 2))  # [T d]
    x = layer.norm1(tokens + layer.dropout1(attention.out_proj(mixed)))
    return layer.norm2(x + _feed_forward(layer, x))


def _last_position_layer(layer: nn.TransformerEncoderLayer, tokens: Tensor,
                         layout: _PackedLayout) -> Tensor:
    """A post-norm causal encoder layer evaluated at each sequence's last token (it attends to
    every token of its sequence); returns ``[B, d]``."""
    dim = tokens.size(1)
    attention = layer.self_attn
    heads = attention.num_heads
    weight, bias = attention.in_proj_weight, attention.in_proj_bias
    x = tokens.index_select(0, layout.last_token)  # [B d]
    query = F.linear(x, weight[:dim], bias[:dim]).view(layout.batch, heads, 1, dim // heads)
    key_value = F.linear(tokens, weight[dim:], bias[dim:])  # [T 2d]
    key, value = _attention_inputs(key_value, layout, heads, 2)  # [B h L d/h] each
    mixed = F.scaled_dot_product_attention(query, key, value, attn_mask=layout.key_padding,
                                           dropout_p=_attention_dropout(layer))  # [B h 1 d/h]
    x = layer.norm1(x + layer.dropout1(attention.out_proj(mixed.reshape(layout.batch, dim))))
    return layer.norm2(x + _feed_forward(layer, x))


def _feed_forward(layer: nn.TransformerEncoderLayer, x: Tensor) -> Tensor:
    """The layer's feed-forward block with its dropouts, as ``nn.TransformerEncoderLayer``."""
    return layer.dropout2(layer.linear2(layer.dropout(layer.activation(layer.linear1(x)))))


def _attention_dropout(layer: nn.TransformerEncoderLayer) -> float:
    return layer.self_attn.dropout if layer.training else 0.0
