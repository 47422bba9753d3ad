"""The choice between faiss's one-query and BLAS flat-search kernels (``BLAS_MIN_QUERIES``)."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch

from service import flat_search
from service.flat_search import NEVER, SIZES, blas_min_queries, crossover, use_blas_from
from service.state import IndexSpec, build_state

CPU = torch.device("cpu")


@pytest.fixture
def blas_setting():
    """faiss's process-wide threshold, put back after the test."""
    saved = faiss.cvar.distance_compute_blas_threshold
    yield
    faiss.cvar.distance_compute_blas_threshold = saved


SIZES_MEASURED = [1, 2, 4, 8, 16, 32]


def costs(per_query: float, fixed: float, blas_per_query: float, noise: float = 0.0):
    rng = np.random.default_rng(0)
    one = [per_query * size * (1 + noise * rng.standard_normal()) for size in SIZES_MEASURED]
    blas = [(fixed + blas_per_query * size) * (1 + noise * rng.standard_normal())
            for size in SIZES_MEASURED]
    return one, blas


@pytest.mark.parametrize(("per_query", "fixed", "blas_per_query", "threshold"), [
    (0.09, 0.42, 0.045, 10),  # session 8's AMD host: 0.42 / 0.045 = 9.3
    (0.30, 0.40, 0.05, 2),  # a slow one-query kernel: 0.40 / 0.25 = 1.6
    (0.10, 0.41, 0.05, 9),  # 8.2: at 8 queries BLAS is still dearer
    (0.10, 0.0, 0.05, 1),
    (0.04, 0.40, 0.05, NEVER),  # BLAS is dearer per query
])
def test_crossover_of_the_fitted_costs(per_query, fixed, blas_per_query, threshold):
    one, blas = costs(per_query, fixed, blas_per_query)
    assert crossover(SIZES_MEASURED, one, blas) == threshold


def test_crossover_moves_little_with_noisy_measurements():
    one, blas = costs(0.09, 0.42, 0.045, noise=0.1)
    assert 7 <= crossover(SIZES_MEASURED, one, blas) <= 12


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
    assert found == NEVER or 1 <= found <= 10 * SIZES[-1]
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
    assert measured.blas_min_queries >= 1
    assert faiss.cvar.distance_compute_blas_threshold == min(measured.blas_min_queries * width,
                                                             NEVER)


def test_the_crossover_is_measured_once_per_process(versions, blas_setting, monkeypatch):
    """Measuring flips faiss's process-wide setting: a version loaded while another one serves
    must not, or concurrent searches of the served one switch kernels (and scores' rounding)."""
    calls = []

    def counted(vectors):
        calls.append(len(vectors))
        return real(vectors)

    real = flat_search.blas_min_queries
    monkeypatch.setattr(flat_search, "_measured", None)
    monkeypatch.setattr(flat_search, "blas_min_queries", counted)
    first, second = (build_state(version, "t", CPU, "off") for version in versions)
    assert len(calls) == 1
    assert first.blas_min_queries == second.blas_min_queries >= 1
