"""Item co-occurrence graph built from training sequences only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch_geometric.utils import coalesce, to_undirected

#: How repeated co-occurrences of a pair weigh its edge.
WEIGHTINGS = ("binary", "count", "log")


def cooccurrence_edges(
    train_sequences: Sequence[np.ndarray], num_items: int, distance: int,
    weighting: str = "binary",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Undirected edges between items at distance ``1..distance`` in a sequence.

    Returns ``edge_index [2, E]`` (both directions, no self loops, no padding node) and
    ``edge_weight [E]``: all ones (``"binary"``), the number of times the pair co-occurs
    (``"count"``) or ``1 + log`` of it (``"log"``). Self loops and normalisation are added by
    the propagation (``gcn_norm``), so the graph stays a plain description of the data.
    """
    if distance < 1:
        raise ValueError(f"graph distance must be >= 1, got {distance}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"graph weighting must be one of {WEIGHTINGS}, got {weighting!r}")
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
    ones = torch.ones(edge_index.size(1))
    # NOTE: to_undirected adds the reverse of every occurrence and sums duplicates, so a pair's
    # count is its occurrences in either order, the same in both directions.
    edge_index, counts = to_undirected(edge_index, ones, num_nodes=num_items + 1, reduce="sum")
    edge_index, counts = coalesce(edge_index, counts, num_nodes=num_items + 1, reduce="sum")
    if weighting == "binary":
        return edge_index, torch.ones_like(counts)
    return edge_index, counts if weighting == "count" else 1.0 + counts.log()
