"""Sequence augmentations of the CL4SRec family: crop, mask, reorder.

Every function returns a new array; the input history is never modified (the authors' code
corrupts the main-loss input in place, see DESIGN.md §7).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Augmenter:
    """Two different augmentations per sequence; sequences of length 1 are left as they are."""

    crop_keep: float  # η: fraction of items a crop keeps
    mask_ratio: float  # γ: fraction of items masked
    reorder_ratio: float  # β: fraction of items in the shuffled span
    mask_token: int

    def crop(self, seq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        keep = max(1, int(self.crop_keep * len(seq)))
        start = int(rng.integers(0, len(seq) - keep + 1))
        return seq[start:start + keep].copy()

    def mask(self, seq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = seq.copy()
        count = max(1, int(self.mask_ratio * len(seq)))
        out[rng.choice(len(seq), size=count, replace=False)] = self.mask_token
        return out

    def reorder(self, seq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = seq.copy()
        span = min(len(seq), max(2, int(self.reorder_ratio * len(seq))))
        start = int(rng.integers(0, len(seq) - span + 1))
        out[start:start + span] = rng.permutation(out[start:start + span])
        return out

    def two_views(self, seq: np.ndarray, rng: np.random.Generator,
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Two different augmentations of ``seq`` (copies)."""
        if len(seq) < 2:
            return seq.copy(), seq.copy()
        ops = (self.crop, self.mask, self.reorder)
        first, second = rng.choice(3, size=2, replace=False)
        return ops[first](seq, rng), ops[second](seq, rng)
