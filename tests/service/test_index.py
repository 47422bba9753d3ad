"""The FAISS index the service builds: exact or IVF (``INDEX_TYPE``), chosen by the settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from service.main import create_app
from service.publish import publish_version
from service.state import IndexSpec, build_index

from .conftest import NAME
from .test_api import assert_same_ranking

CPU = torch.device("cpu")


def clustered(items: int, queries: int, dim: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((items // 100, dim)).astype(np.float32)
    catalog = centres[rng.integers(len(centres), size=items)] + 0.4 * rng.standard_normal(
        (items, dim), dtype=np.float32)
    query = centres[rng.integers(len(centres), size=queries)] + 0.3 * rng.standard_normal(
        (queries, dim), dtype=np.float32)
    return catalog, query


@pytest.mark.parametrize(("spec", "items", "lists"), [
    (IndexSpec("ivf"), 1_000_000, 2000),  # about 2·sqrt(N)
    (IndexSpec("ivf"), 12_101, 220),
    (IndexSpec("ivf"), 2_000, 51),  # at least 39 training items a list
    (IndexSpec("ivf"), 60, 1),
    (IndexSpec("ivf", nlist=300), 12_101, 300),
    (IndexSpec("ivf", nlist=300), 100, 100),
])
def test_number_of_lists(spec, items, lists):
    assert spec.lists_for(items) == lists


def test_ivf_finds_most_of_the_exact_top10_and_all_of_it_when_probing_every_list():
    catalog, queries = clustered(8000, 100)
    exact, exact_kind, _ = build_index(catalog, CPU, "auto", IndexSpec("exact"))
    ivf, ivf_kind, resources = build_index(catalog, CPU, "auto", IndexSpec("ivf", nprobe=8))
    assert (exact_kind, ivf_kind, resources) == ("faiss-cpu", "faiss-cpu-ivf", None)
    assert ivf.nlist == 179 and ivf.nprobe == 8  # round(2·sqrt(8000))
    _, truth = exact.search(queries, 10)
    _, found = ivf.search(queries, 10)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall > 0.8
    ivf.nprobe = ivf.nlist
    scores, everywhere = ivf.search(queries, 10)
    assert (everywhere == truth).all()
    np.testing.assert_allclose(scores, exact.search(queries, 10)[0], rtol=1e-5)


def test_the_service_serves_from_the_index_the_settings_name(make_settings, redis_url, prefix,
                                                             store, versions):
    publish_version(store, versions[0], NAME)
    session = {"session": versions[0].item_ids[1:4], "k": 5}
    answers = {}
    for index_type in ("exact", "ivf"):
        settings = make_settings(redis_url=redis_url, key_prefix=prefix, index_type=index_type,
                                 ivf_nprobe=1)
        with TestClient(create_app(settings)) as client:
            ready = client.get("/readyz").json()
            assert ready["index"] == {"exact": "faiss-cpu", "ivf": "faiss-cpu-ivf"}[index_type]
            assert (ready["blas_min_queries"] is None) == (index_type == "ivf")
            answers[index_type] = client.post("/recommend", json=session).json()["items"]
            item = versions[0].item_ids[5]
            assert len(client.get(f"/items/{item}/similar?k=3").json()["items"]) == 3
    # 60 items make one list, so even nprobe=1 scans the whole catalog
    assert_same_ranking(answers["ivf"], answers["exact"])
