import math

import numpy as np
import pytest
import torch

from training.evaluation import rank_metrics, target_ranks


def test_metrics_match_hand_computed_values():
    # ranks 0, 3, 12, 40 (0-based)
    m = rank_metrics(np.array([0, 3, 12, 40]))
    assert m["HR@5"] == pytest.approx(2 / 4)
    assert m["HR@10"] == pytest.approx(2 / 4)
    assert m["HR@20"] == pytest.approx(3 / 4)
    assert m["NDCG@5"] == pytest.approx((1 + 1 / math.log2(5)) / 4)
    assert m["NDCG@20"] == pytest.approx((1 + 1 / math.log2(5) + 1 / math.log2(14)) / 4)


def test_single_user_at_rank_one():
    assert rank_metrics(np.array([0]))["NDCG@10"] == 1.0
    assert rank_metrics(np.array([10]))["HR@10"] == 0.0


def test_target_ranks_mask_padding_and_history():
    #               pad  1    2    3    4    5
    scores = torch.tensor([[9.0, 5.0, 4.0, 3.0, 2.0, 1.0],
                           [9.0, 5.0, 4.0, 3.0, 2.0, 1.0]])
    targets = torch.tensor([3, 5])
    histories = [np.array([1]), np.array([1, 2, 3])]
    ranks = target_ranks(scores.clone(), targets, histories)
    # user 0: item 1 masked, pad masked -> only item 2 beats item 3
    # user 1: items 1..3 masked -> item 4 beats item 5
    assert ranks.tolist() == [1, 1]


def test_target_in_history_is_a_miss():
    scores = torch.tensor([[0.0, 3.0, 2.0, 1.0]])
    ranks = target_ranks(scores, torch.tensor([1]), [np.array([1])])
    assert ranks.item() >= 2
