"""The choice between faiss's one-query and BLAS flat-search kernels (``BLAS_MIN_QUERIES``)."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch

from service.flat_search import SIZES, blas_min_queries, crossover, use_blas_from
from service.state import IndexSpec, build_state

CPU = torch.device("cpu")


@pytest.fixture
def blas_setting():
    """faiss's process-wide threshold, put back after the test."""
    saved = faiss.cvar.distance_compute_blas_threshold
    yield
    faiss.cvar.distance_compute_blas_threshold = saved


@pytest.mark.parametrize(("faster", "threshold"), [
    ([False, False, False, True, True], 4),
    ([False, True, False, False, True], 5),  # a win before a loss does not count
    ([True, True, True, True, True], 1),
    ([False, False, False, False, False], 6),  # never: beyond the largest size
    ([True, True, True, True, False], 6),
])
def test_crossover_is_where_blas_starts_winning_for_good(faster, threshold):
    assert crossover([1, 2, 3, 4, 5], faster) == threshold


def test_both_kernels_give_the_same_top_k(blas_setting):
    rng = np.random.default_rng(0)
    catalog = rng.standard_normal((5000, 64), dtype=np.float32)
    queries = rng.standard_normal((12, 64), dtype=np.float32)
    index = faiss.IndexFlatIP(64)
    index.add(catalog)
    use_blas_from(1000, 64)
    one_by_one = index.search(queries, 30)
    use_blas_from(1, 64)
    assert faiss.cvar.distance_compute_blas_threshold == 64
    blas = index.search(queries, 30)
    assert (blas[1] == one_by_one[1]).all()
    np.testing.assert_allclose(blas[0], one_by_one[0], rtol=1e-5)


def test_measuring_leaves_the_setting_as_it_was(blas_setting):
    faiss.cvar.distance_compute_blas_threshold = 12345
    rng = np.random.default_rng(1)
    found = blas_min_queries(rng.standard_normal((3000, 32), dtype=np.float32), repeats=2)
    assert found in (*SIZES, SIZES[-1] + 1)
    assert faiss.cvar.distance_compute_blas_threshold == 12345


@pytest.mark.parametrize("index_type", ["exact", "ivf"])
def test_the_served_state_uses_the_configured_or_measured_size(versions, blas_setting,
                                                               index_type):
    artifact = versions[0]
    width = artifact.fused_item_emb.shape[1]
    configured = build_state(artifact, "t", CPU, "off",
                             index_spec=IndexSpec(index_type, blas_min_queries=5))
    if index_type == "ivf":  # not a flat index: nothing to choose
        assert configured.blas_min_queries == 0
        return
    assert configured.blas_min_queries == 5
    assert faiss.cvar.distance_compute_blas_threshold == 5 * width
    measured = build_state(artifact, "t", CPU, "off", index_spec=IndexSpec(index_type))
    assert measured.blas_min_queries in (*SIZES, SIZES[-1] + 1)
    assert faiss.cvar.distance_compute_blas_threshold == measured.blas_min_queries * width
