"""Contrastive loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def info_nce(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """NT-Xent (SimCLR / CL4SRec) with in-batch negatives.

    ``z1[b]`` and ``z2[b]`` are two views of sample ``b``; every other vector of either view is a
    negative, so each anchor sees ``2B - 2`` negatives. Cosine similarity over ``temperature``.

    Shapes:
        - input: ``z1 [B, d]``, ``z2 [B, d]``
        - output: scalar
    """
    batch = z1.size(0)
    z = F.normalize(torch.cat([z1, z2]), dim=-1)  # [2B d]
    sim = (z @ z.T) / temperature  # [2B 2B]
    sim = sim.masked_fill(torch.eye(2 * batch, dtype=torch.bool, device=z.device), float("-inf"))
    positives = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)]).to(z.device)
    return F.cross_entropy(sim, positives)
