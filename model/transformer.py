"""Causal transformer over a right-padded item sequence with learned positions."""

from __future__ import annotations

import torch
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
        length = x.size(1)
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.max_len}")
        positions = torch.arange(length, device=x.device)
        h = self.dropout(self.norm(x + self.position(positions)))
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=x.device,
                                                                dtype=h.dtype)
        return self.layers(h, mask=causal, is_causal=True)
