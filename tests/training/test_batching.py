import numpy as np

from training.augment import Augmenter
from training.batching import TrainBatcher, pad_right


def test_pad_right():
    assert pad_right([np.array([1, 2]), np.array([3])]).tolist() == [[1, 2], [3, 0]]


def test_every_position_is_a_target_and_every_user_is_seen_once():
    seqs = [np.arange(1, n + 2) for n in range(1, 40)]
    batcher = TrainBatcher(seqs, max_len=8, batch_size=5)
    seen = 0
    for batch in batcher.epoch(np.random.default_rng(0)):
        inputs, targets = batch.inputs.numpy(), batch.targets.numpy()
        valid = targets > 0
        seen += len(inputs)
        assert inputs.shape[1] <= 8
        # the target at t is the item after input t
        assert np.all(targets[:, :-1][valid[:, 1:]] == inputs[:, 1:][valid[:, 1:]])
        assert np.all(targets[valid] == inputs[valid] + 1)
    assert seen == len(seqs) == len(batcher.windows)


def test_long_histories_keep_their_last_items():
    batcher = TrainBatcher([np.arange(1, 101)], max_len=10, batch_size=4)
    batch = next(batcher.epoch(np.random.default_rng(0)))
    assert batch.inputs.tolist() == [list(range(90, 100))]
    assert batch.targets.tolist() == [list(range(91, 101))]


def test_augmented_views_are_stacked_and_do_not_change_the_inputs():
    seqs = [np.arange(1, 12), np.arange(20, 26)]
    aug = Augmenter(0.5, 0.3, 0.3, mask_token=99)
    batcher = TrainBatcher(seqs, max_len=10, batch_size=2, augmenter=aug)
    batch = next(batcher.epoch(np.random.default_rng(0)))
    assert batch.augmented is not None and batch.augmented_lengths is not None
    assert batch.augmented.shape[0] == 4
    assert 99 not in batch.inputs
    for row, length in zip(batch.augmented, batch.augmented_lengths, strict=True):
        assert (row[:length] > 0).all() and (row[length:] == 0).all()
