import numpy as np
import pytest
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


def weights_by_edge(edge_index: torch.Tensor, weight: torch.Tensor) -> dict[tuple[int, int], float]:
    return {(int(a), int(b)): float(w) for (a, b), w in zip(edge_index.T, weight, strict=True)}


def test_count_weighting_counts_a_pair_in_either_order_symmetrically():
    sequences = [np.array([1, 2]), np.array([1, 2]), np.array([2, 1]), np.array([1, 3])]
    edge_index, weight = cooccurrence_edges(sequences, 3, distance=1, weighting="count")
    assert weights_by_edge(edge_index, weight) == {(1, 2): 3.0, (2, 1): 3.0, (1, 3): 1.0,
                                                   (3, 1): 1.0}
    edge_index, weight = cooccurrence_edges(sequences, 3, distance=1, weighting="log")
    weights = weights_by_edge(edge_index, weight)
    assert weights[(1, 2)] == weights[(2, 1)] == pytest.approx(1.0 + np.log(3.0))
    assert weights[(1, 3)] == 1.0


def test_unknown_weighting_is_an_error():
    with pytest.raises(ValueError, match="weighting"):
        cooccurrence_edges([np.array([1, 2])], 2, distance=1, weighting="tfidf")
