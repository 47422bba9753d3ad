"""Training batches: every position of a sequence is a training sample.

A user's training history (last ``L + 1`` items) gives ``inputs = s[:-1]`` and
``targets = s[1:]``, right-padded with 0. Batches are drawn from length buckets so the transformer
spends little time on padding, and are cut to their longest row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from training.augment import Augmenter


@dataclass
class TrainBatch:
    inputs: Tensor  # [B L]
    targets: Tensor  # [B L], 0 where padded
    augmented: Tensor | None = None  # [2B L'] two views stacked, right-padded
    augmented_lengths: Tensor | None = None  # [2B]

    def to(self, device: torch.device) -> TrainBatch:
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return TrainBatch(self.inputs.to(device, non_blocking=True),
                          self.targets.to(device, non_blocking=True),
                          move(self.augmented), move(self.augmented_lengths))


def pad_right(rows: Sequence[np.ndarray], width: int | None = None) -> np.ndarray:
    """Stack 1-D int arrays into ``[len(rows), width]``, right-padded with 0."""
    width = max(len(r) for r in rows) if width is None else width
    out = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


class TrainBatcher:
    """Iterates over shuffled, length-bucketed batches of training sequences."""

    def __init__(self, train_sequences: Sequence[np.ndarray], max_len: int, batch_size: int,
                 augmenter: Augmenter | None = None, bucket_batches: int = 50) -> None:
        windows = [s[-(max_len + 1):] for s in train_sequences if len(s) >= 2]
        if not windows:
            raise ValueError("no training sequence has two or more items")
        self.windows = windows
        self.lengths = np.array([len(w) for w in windows], dtype=np.int64)
        self.max_len = max_len
        self.batch_size = batch_size
        self.augmenter = augmenter
        self.bucket_size = batch_size * bucket_batches

    def __len__(self) -> int:
        return -(-len(self.windows) // self.batch_size)

    def epoch(self, rng: np.random.Generator) -> Iterator[TrainBatch]:
        """One pass over all users in random order (length-bucketed batches, shuffled)."""
        order = rng.permutation(len(self.windows))
        batches: list[np.ndarray] = []
        for start in range(0, len(order), self.bucket_size):
            bucket = order[start:start + self.bucket_size]
            bucket = bucket[np.argsort(self.lengths[bucket], kind="stable")]
            batches.extend(bucket[i:i + self.batch_size]
                           for i in range(0, len(bucket), self.batch_size))
        for index in rng.permutation(len(batches)):
            yield self.make_batch(batches[index], rng)

    def make_batch(self, users: np.ndarray, rng: np.random.Generator) -> TrainBatch:
        windows = [self.windows[u] for u in users]
        padded = pad_right(windows)
        batch = TrainBatch(torch.from_numpy(padded[:, :-1]), torch.from_numpy(padded[:, 1:]))
        if self.augmenter is not None:
            histories = [w[-self.max_len:] for w in windows]
            views = [self.augmenter.two_views(h, rng) for h in histories]
            stacked = [v[0] for v in views] + [v[1] for v in views]
            batch.augmented = torch.from_numpy(pad_right(stacked))
            batch.augmented_lengths = torch.tensor([len(v) for v in stacked])
        return batch
