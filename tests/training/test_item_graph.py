import numpy as np
import torch

from training.data import index_items, leave_one_out
from training.item_graph import cooccurrence_edges


def edge_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in edge_index.T}


def test_edges_within_distance_both_directions_no_self_loops():
    edge_index, weight = cooccurrence_edges([np.array([1, 2, 3, 4, 1])], 5, distance=2)
    expected = {(1, 2), (2, 3), (3, 4), (1, 4), (1, 3), (2, 4), (3, 1)}
    expected |= {(b, a) for a, b in expected}
    assert edge_set(edge_index) == expected
    assert torch.all(weight == 1)


def test_repeated_pairs_are_binarized():
    edge_index, _ = cooccurrence_edges([np.array([1, 2]), np.array([1, 2]), np.array([2, 1])],
                                       3, distance=1)
    assert edge_set(edge_index) == {(1, 2), (2, 1)}


def test_graph_uses_only_training_positions():
    """Validation and test targets never create edges."""
    data = index_items({"u1": ["a", "b", "c", "v", "t"], "u2": ["b", "c", "a", "t", "v"]})
    split = leave_one_out(data)
    edge_index, _ = cooccurrence_edges(split.train, data.num_items, distance=3)
    lookup = {name: i for i, name in enumerate(data.item_ids)}
    touched = set(edge_index.flatten().tolist())
    assert lookup["v"] not in touched and lookup["t"] not in touched
    assert {lookup["a"], lookup["b"], lookup["c"]} <= touched
