"""Losses: InfoNCE for the contrastive terms, memory-bounded full-softmax cross-entropy."""

from __future__ import annotations

from typing import Any

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


class _ChunkedSoftmaxCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``query @ table.T`` against ``targets``, computed ``chunk`` rows at
    a time; the backward recomputes each chunk's logits instead of keeping ``[P, N]`` alive."""

    @staticmethod
    def forward(ctx: Any, query: Tensor, table: Tensor, targets: Tensor, chunk: int) -> Tensor:
        rows = query.size(0)
        lse = torch.empty(rows, dtype=torch.float32, device=query.device)  # [P]
        total = torch.zeros((), dtype=torch.float32, device=query.device)
        for start in range(0, rows, chunk):
            end = min(start + chunk, rows)
            logits = (query[start:end] @ table.T).float()  # [c N]
            lse[start:end] = torch.logsumexp(logits, dim=1)
            picked = logits.gather(1, targets[start:end, None]).squeeze(1)
            total += (lse[start:end] - picked).sum()
        ctx.save_for_backward(query, table, targets, lse)
        ctx.chunk = chunk
        return total / rows

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, Tensor, None, None]:
        query, table, targets, lse = ctx.saved_tensors
        rows = query.size(0)
        grad_query = torch.empty_like(query)
        grad_table = torch.zeros_like(table)
        scale = grad_out / rows
        for start in range(0, rows, ctx.chunk):
            end = min(start + ctx.chunk, rows)
            probs = (query[start:end] @ table.T).float()  # [c N] logits, then softmax - onehot
            probs.sub_(lse[start:end, None]).exp_()
            probs[torch.arange(end - start, device=probs.device), targets[start:end]] -= 1.0
            probs = probs.mul_(scale).to(query.dtype)
            grad_query[start:end] = probs @ table
            grad_table.addmm_(probs.T, query[start:end])
        return grad_query, grad_table, None, None


def full_softmax_cross_entropy(query: Tensor, table: Tensor, targets: Tensor,
                               max_logits: int = 1 << 25) -> Tensor:
    """Cross-entropy over *all* items: ``softmax(query @ table.T)`` against ``targets``.

    When ``[P, N]`` logits would exceed ``max_logits`` elements (long-sequence batches, large
    catalogs) the loss is computed in row chunks and the backward recomputes them, so memory
    stays bounded; under autocast (CUDA) the fused library kernel is used as it is.

    Shapes:
        - input: ``query [P, D]``, ``table [N+1, D]``, ``targets [P]``
        - output: scalar
    """
    rows, items = query.size(0), table.size(0)
    if rows * items <= max_logits or torch.is_autocast_enabled(query.device.type):
        return F.cross_entropy((query @ table.T).float(), targets)
    chunk = max(1, max_logits // items)
    return _ChunkedSoftmaxCrossEntropy.apply(query, table, targets, chunk)
