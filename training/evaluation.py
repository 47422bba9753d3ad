"""Full-ranking evaluation: the target is ranked among all ``N`` items, history masked out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from model.mvcrec import MVCRec
from training.batching import pad_right
from training.data import EvalSet

CUTOFFS = (5, 10, 20)


def rank_metrics(ranks: np.ndarray, cutoffs: Sequence[int] = CUTOFFS) -> dict[str, float]:
    """HR@k and NDCG@k from 0-based target ranks (one relevant item per user)."""
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ValueError("no ranks to average")
    metrics: dict[str, float] = {}
    for k in cutoffs:
        hit = ranks < k
        metrics[f"HR@{k}"] = float(hit.mean())
        metrics[f"NDCG@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
    return metrics


def target_ranks(scores: Tensor, targets: Tensor, histories: Sequence[np.ndarray]) -> Tensor:
    """0-based rank of each target among all items, padding and history items excluded.

    ``scores [B, N+1]`` (modified in place), ``targets [B]`` → ``[B]``. Items scoring strictly
    higher than the target count; a target that is also in the history is masked like any
    history item (a miss).
    """
    scores[:, 0] = float("-inf")
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    cols = np.concatenate(histories)
    scores[torch.from_numpy(rows).to(scores.device), torch.from_numpy(cols).to(scores.device)] = (
        float("-inf"))
    target_scores = scores.gather(1, targets[:, None])  # [B 1]
    return (scores > target_scores).sum(dim=1)


@torch.no_grad()
def evaluate(model: MVCRec, split: EvalSet, adj: Tensor | None, max_len: int,
             batch_size: int, device: torch.device) -> dict[str, float]:
    """HR/NDCG@5/10/20 over every user of ``split``; graph propagation runs once."""
    was_training = model.training
    model.eval()
    g = model.graph_item_embeddings(adj)
    table = model.item_table(g)
    order = np.argsort([min(len(h), max_len) for h in split.histories], kind="stable")
    ranks = []
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        histories = [split.histories[i] for i in chunk]
        inputs = [h[-max_len:] for h in histories]
        item_ids = torch.from_numpy(pad_right(inputs)).to(device)
        lengths = torch.tensor([len(x) for x in inputs], device=device)
        scores = model.full_sort_predict(item_ids, lengths, g, table).float()
        targets = torch.from_numpy(split.targets[chunk]).to(device)
        ranks.append(target_ranks(scores, targets, histories).cpu())
    model.train(was_training)
    return rank_metrics(torch.cat(ranks).numpy())
