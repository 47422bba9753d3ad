"""The GPU check runs anywhere: on a machine without CUDA it times the CPU side and says so."""

from __future__ import annotations

import json

import torch

from bench.gpu_check import main


def test_gpu_check_writes_its_results(tmp_path):
    main(["--items", "3000", "--queries", "32", "--batch-sizes", "1,8", "--search-batch", "8",
          "--repeats", "2", "--results", str(tmp_path)])
    payload = json.loads((tmp_path / "gpu_check.json").read_text())
    assert payload["cuda"] == torch.cuda.is_available()
    devices = {row["device"] for row in payload["encoder"]}
    assert devices == ({"cpu", "cuda"} if payload["cuda"] else {"cpu"})
    rows = payload["search"]["rows"]
    assert {row["search"] for row in rows} >= {"faiss-cpu exact", "torch-cpu exact"}
    assert all(row["recall_at_10"] == 1.0 for row in rows if "exact" in row["search"])
    assert "# GPU check" in (tmp_path / "gpu_check.md").read_text()
