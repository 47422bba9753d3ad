"""Inverted dropout whose mask comes from raw random bits.

NOTE: on the CPU, ``torch.bernoulli_`` (behind ``nn.Dropout``) costs ~15 ns per element, about a
sixth of an MVCrec training step. Drawing 16 random bits per element and comparing them with a
threshold gives the same distribution (``p`` rounded to 1/65536) about 5x faster. Elsewhere
(CUDA) this is plain ``F.dropout``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FastDropout(nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.threshold = round(p * 65536) - 32768  # int16 bits below it are dropped

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        words = (x.numel() + 1) // 2
        bits = torch.randint(-(2**31), 2**31 - 1, (words,), dtype=torch.int32)
        drop = bits.view(torch.int16)[: x.numel()].view(x.shape) < self.threshold
        return x.masked_fill(drop, 0.0).mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"
