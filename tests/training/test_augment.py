import numpy as np
import pytest

from training.augment import Augmenter

AUG = Augmenter(crop_keep=0.6, mask_ratio=0.3, reorder_ratio=0.4, mask_token=99)
SEQ = np.arange(1, 11)


@pytest.mark.parametrize("op", ["crop", "mask", "reorder"])
def test_augmentations_never_touch_the_input(op):
    seq = SEQ.copy()
    getattr(AUG, op)(seq, np.random.default_rng(0))
    assert np.array_equal(seq, SEQ)


def test_crop_keeps_a_contiguous_fraction():
    out = AUG.crop(SEQ, np.random.default_rng(1))
    assert len(out) == 6
    assert np.array_equal(out, np.arange(out[0], out[0] + 6))


def test_mask_uses_the_mask_token_not_padding():
    out = AUG.mask(SEQ, np.random.default_rng(2))
    assert (out == 99).sum() == 3 and (out == 0).sum() == 0
    keep = out != 99
    assert np.array_equal(out[keep], SEQ[keep])


def test_reorder_permutes_one_span():
    out = AUG.reorder(SEQ, np.random.default_rng(3))
    assert sorted(out) == list(SEQ)
    changed = np.nonzero(out != SEQ)[0]
    assert len(changed) == 0 or changed[-1] - changed[0] < 4


def test_two_views_use_two_different_operations_and_skip_length_one():
    rng = np.random.default_rng(4)
    a, b = AUG.two_views(np.array([7]), rng)
    assert a.tolist() == b.tolist() == [7]
    seen = set()
    for _ in range(50):
        a, b = AUG.two_views(SEQ, rng)
        seen.add((len(a) < len(SEQ)) + (99 in a) + (len(b) < len(SEQ)) + (99 in b))
        assert not (len(a) < len(SEQ) and len(b) < len(SEQ))  # never two crops
    assert seen
