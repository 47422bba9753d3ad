"""Everything a run needs from the data file: the split, the item graph, popularity counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor

from model.graph import normalized_adjacency
from training.config import DataConfig
from training.data import (
    Interactions,
    LeaveOneOutSplit,
    item_popularity,
    leave_one_out,
    load_interactions,
)
from training.item_graph import cooccurrence_edges


@dataclass
class PreparedData:
    interactions: Interactions
    split: LeaveOneOutSplit
    adjacency: Tensor  # normalised [N+1, N+1] sparse CSR, from training sequences only
    num_edges: int  # undirected co-occurrence edges (both directions counted once each)
    popularity: np.ndarray  # [N+1] training interaction counts

    @property
    def num_items(self) -> int:
        return self.interactions.num_items


def prepare_data(config: DataConfig) -> PreparedData:
    interactions = load_interactions(config.path, k=config.k_core)
    split = leave_one_out(interactions)
    edge_index, edge_weight = cooccurrence_edges(split.train, interactions.num_items,
                                                 config.graph_distance,
                                                 config.graph_weighting)
    adjacency = normalized_adjacency(edge_index, interactions.num_items + 1, edge_weight)
    return PreparedData(interactions, split, adjacency, int(edge_index.size(1)),
                        item_popularity(split.train, interactions.num_items))
