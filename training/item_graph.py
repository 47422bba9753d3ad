"""Item co-occurrence graph built from training sequences only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch_geometric.utils import coalesce, to_undirected


def cooccurrence_edges(
    train_sequences: Sequence[np.ndarray], num_items: int, distance: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Undirected, binarized edges between items at distance ``1..distance`` in a sequence.

    Returns ``edge_index [2, E]`` (both directions, no self loops, no padding node) and
    ``edge_weight [E]`` (all ones). Self loops and normalisation are added by the propagation
    (``gcn_norm``), so the graph stays a plain description of the data.
    """
    if distance < 1:
        raise ValueError(f"graph distance must be >= 1, got {distance}")
    sources, targets = [], []
    for seq in train_sequences:
        for k in range(1, min(distance, len(seq) - 1) + 1):
            sources.append(seq[:-k])
            targets.append(seq[k:])
    if not sources:
        empty = torch.empty(2, 0, dtype=torch.long)
        return empty, torch.empty(0)
    src = torch.from_numpy(np.concatenate(sources))
    dst = torch.from_numpy(np.concatenate(targets))
    keep = src != dst
    edge_index = torch.stack([src[keep], dst[keep]])
    edge_index = coalesce(to_undirected(edge_index, num_nodes=num_items + 1),
                          num_nodes=num_items + 1)
    return edge_index, torch.ones(edge_index.size(1))
