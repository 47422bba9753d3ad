"""Fusion of the ID-view and graph-view session vectors.

The attention fusion follows attentional feature fusion (Dai et al., "Attentional Feature Fusion",
WACV 2021): a gate ``w = sigmoid(local(x + y) + global(x + y))`` mixes the two inputs as
``w * x + (1 - w) * y``. ``local`` gives one weight per dimension, ``global`` one weight for the
whole vector. The last layer of both branches starts at zero, so training starts from the plain
average of the views and the gate learns from there.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AttentionFusion(nn.Module):
    """Local (per-dimension) + global (whole-vector) gated fusion.

    Shapes:
        - input: ``x [*, d]``, ``y [*, d]``
        - output: ``[*, d]``
    """

    def __init__(self, dim: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(dim // reduction, 1)
        self.local_gate = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.global_gate = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.reset_gate()

    def reset_gate(self) -> None:
        """Zero the output layers: the fusion starts as the average of its inputs."""
        for branch in (self.local_gate, self.global_gate):
            _zero_linear(branch[-1])

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        s = x + y
        w = torch.sigmoid(self.local_gate(s) + self.global_gate(s))
        return w * x + (1.0 - w) * y


class MLPFusion(nn.Module):
    """Ablation: ``x`` plus an MLP over the concatenated views ``[*, 2d] -> [*, d]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.reset_gate()

    def reset_gate(self) -> None:
        """Zero the output layer: the fusion starts as ``x``."""
        _zero_linear(self.mlp[-1])

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return x + self.mlp(torch.cat([x, y], dim=-1))


class AddFusion(nn.Module):
    """Ablation: ``x + y`` (what the authors' code computes, its softmax weight being always 1)."""

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return x + y


def _zero_linear(layer: nn.Module) -> None:
    assert isinstance(layer, nn.Linear)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)


def make_fusion(kind: str, dim: int) -> nn.Module:
    """``"attention"`` | ``"mlp"`` | ``"add"``."""
    if kind == "attention":
        return AttentionFusion(dim)
    if kind == "mlp":
        return MLPFusion(dim)
    if kind == "add":
        return AddFusion()
    raise ValueError(f"unknown fusion {kind!r}; expected 'attention', 'mlp' or 'add'")
