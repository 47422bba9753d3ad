"""The catalog-scale benchmark at a tiny size: the synthetic catalog, the exact baseline, the
service's IVF index swept over nprobe, HNSW beside it, and the reports."""

from __future__ import annotations

import json

import numpy as np

from bench.catalog_data import recall_at, synthetic_catalog
from bench.catalog_scale import main


def test_the_synthetic_catalog_is_clustered_float32_and_reproducible():
    items, queries = synthetic_catalog(3000, 16, 20, seed=1)
    assert items.shape == (3000, 16) and queries.shape == (20, 16)
    assert items.dtype == queries.dtype == np.float32
    again, _ = synthetic_catalog(3000, 16, 20, seed=1)
    assert np.array_equal(items, again)
    norms = np.linalg.norm(items, axis=1)
    assert 0.15 < norms.std() / norms.mean() < 0.5  # popular items have larger norms
    assert recall_at(np.array([[1, 2, 3]]), np.array([[3, 2, 9]]), k=3) == 2 / 3


def test_a_tiny_run_sweeps_nprobe_and_writes_the_reports(tmp_path):
    results, work = tmp_path / "results", tmp_path / "work"
    argv = ["--items", "4000", "--queries", "64", "--single", "8", "--batch", "16",
            "--nprobes", "1,4,126", "--hnsw-ef", "16,64", "--results", str(results),
            "--work", str(work)]
    main(argv)
    payload = json.loads((results / "catalog_scale.json").read_text())
    summary = payload["summary"]
    assert summary["items"] == 4000 and payload["ivf"]["nlist"] == 102  # 4000 // 39
    assert summary["index"] == "IVF102,Flat (IP) nprobe=48"  # the service's defaults
    sweep = {row["nprobe"]: row for row in payload["ivf"]["sweep"]}
    assert set(sweep) == {1, 4, 48}  # 126 > nlist is skipped, the default is added
    assert sweep[1]["recall_at_10"] < sweep[48]["recall_at_10"] <= 1.0
    assert summary["recall_at_10"] == sweep[48]["recall_at_10"]
    assert summary["speedup_single"] == (payload["exact"]["single_ms"] / sweep[48]["single_ms"])
    assert [row["ef_search"] for row in payload["hnsw"]["sweep"]] == [16, 64]
    assert set(summary["targets"]) == {"recall_at_least_0.95", "single_query_5x_faster"}
    assert "| 48 |" in (results / "catalog_scale.md").read_text()
    assert (results / "catalog_scale.png").stat().st_size > 0

    saved = {path.name: path.stat().st_mtime_ns for path in work.iterdir()}
    main(argv)  # every part is reused
    assert {path.name: path.stat().st_mtime_ns for path in work.iterdir()} == saved
