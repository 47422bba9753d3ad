"""The serving load test: its statistics, the trivial endpoint, and one tiny end-to-end run
(real uvicorn, real Redis, real locust) that writes the reports and reuses saved levels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bench.serving import build_summary, core_count, main, summarize
from service.config import Settings
from service.main import create_app

SUMMARY_FIELDS = {"peak_rps_recommend", "peak_rps_trivial", "p99_ms_at_half_peak", "errors",
                  "batching_speedup", "ann_recall_at_10", "ann_speedup", "machine"}


def test_summarize_leaves_out_the_warmup_but_counts_every_error():
    records = [(100.0 + i / 100, float(i % 10), i != 3, "/recommend" if i % 5 else "/similar")
               for i in range(300)]  # 3 s of requests, 100 a second; one failure in warm-up
    result = summarize(records, warmup_s=1.0, duration_s=2.0)
    assert result["requests"] == 200 and result["rps"] == 100.0
    assert result["errors"] == 1 and result["errors_in_window"] == 0
    assert result["p50_ms"] == pytest.approx(4.5) and result["p99_ms"] == pytest.approx(9.0)
    assert result["by_name"]["/similar"]["requests"] == 40
    assert summarize([], 1.0, 2.0)["requests"] == 0


def level(users, rps, p99=5.0, errors=0, recommend_rps=None, cpu_ms=1.0, client=0.5):
    return {"users": users, "rps": rps, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": p99,
            "errors": errors, "by_name": {"/recommend": {"rps": recommend_rps or 0.9 * rps}},
            "server_cpu_ms_per_request": cpu_ms, "client_cpu_utilisation": client}


def test_summary_ratios_and_targets():
    runs = {"trivial": [level(4, 900.0), level(16, 1000.0)],
            "batched": [level(4, 400.0), level(16, 600.0)],
            "unbatched": [level(4, 200.0), level(16, 250.0, errors=1)],
            "half": [level(32, 300.0, p99=12.0)]}
    summary = build_summary(runs, {"ann_recall_at_10": 0.97, "ann_speedup": 20.0,
                                   "source": "x"}, {"cores": 2})
    assert set(summary) >= SUMMARY_FIELDS
    assert summary["peak_rps_recommend"] == 600.0 and summary["peak_rps_trivial"] == 1000.0
    assert summary["recommend_to_trivial"] == 0.6 and summary["batching_speedup"] == 2.4
    assert summary["p99_ms_at_half_peak"] == 12.0 and summary["errors"] == 1
    assert summary["targets"] == {"recommend_at_least_half_of_trivial": True,
                                  "p99_at_half_peak_within_25_ms": True, "zero_errors": False,
                                  "batching_raises_peak": True}
    assert build_summary({}, None, {})["targets"]["zero_errors"] is True


@pytest.mark.parametrize(("client", "recommend_cpu", "holds"),
                         [(0.5, 3.0, True), (0.97, 1.8, True), (0.97, 3.0, False)])
def test_a_client_bound_ceiling_needs_the_server_cpu_ratio_too(client, recommend_cpu, holds):
    """The measured ratio is 0.6; when locust set the trivial peak, the server CPU a request
    costs (trivial 1.0 ms against ``recommend_cpu``) must also give at least 0.5."""
    runs = {"trivial": [level(16, 1000.0, client=client)],
            "batched": [level(16, 600.0, cpu_ms=recommend_cpu)]}
    summary = build_summary(runs, None, {})
    assert summary["recommend_to_trivial"] == 0.6
    assert summary["trivial_peak_client_bound"] is (client >= 0.9)
    assert summary["server_cpu_ratio"] == pytest.approx(1.0 / recommend_cpu)
    assert summary["targets"]["recommend_at_least_half_of_trivial"] is holds


@pytest.mark.parametrize(("cores", "count"), [("0", 1), ("0,1", 2), ("2-5", 4), ("0,2-3", 3)])
def test_core_count(cores, count):
    assert core_count(cores) == count


def test_the_trivial_endpoint_is_off_by_default_and_checks_input_when_on(tmp_path):
    def app(**values):
        return create_app(Settings(_env_file=None, artifact_dir=tmp_path, model_name="none",
                                   device="cpu", **values))

    with TestClient(app()) as client:
        assert client.post("/bench/trivial", json={"session": []}).status_code == 404
    with TestClient(app(bench_endpoint=True)) as client:
        answer = client.post("/bench/trivial", json={"session": ["a"], "k": 7})
        assert answer.status_code == 200 and len(answer.json()["items"]) == 7
        assert client.post("/bench/trivial", json={"session": [], "k": 0}).status_code == 422
        assert "/bench/trivial" not in client.get("/openapi.json").json()["paths"]


def test_a_tiny_run_writes_the_reports_and_reuses_saved_levels(tmp_path, tiny_serving_inputs,
                                                               redis_url):
    artifacts, sessions = tiny_serving_inputs
    results, work = tmp_path / "results", tmp_path / "work"
    argv = ["--artifact-dir", str(artifacts), "--name", "tiny", "--data", str(sessions),
            "--levels", "2", "--duration", "1", "--warmup", "0", "--half-peak-duration", "1",
            "--half-peak-users", "2", "--server-cores", "", "--client-cores", "",
            "--parts", "trivial,batched,half",  # one server (unbatched: tests/service)
            "--similar-weight", "9",  # half the requests: both endpoints show up in 1 s
            "--k", "5", "--redis-url", redis_url, "--results", str(results),
            "--work", str(work)]
    main(argv)
    payload = json.loads((results / "serving.json").read_text())
    summary = payload["summary"]
    assert set(summary) >= SUMMARY_FIELDS
    assert summary["errors"] == 0
    assert summary["peak_rps_recommend"] > 0 and summary["peak_rps_trivial"] > 0
    assert summary["p99_ms_at_half_peak"] is not None and summary["batching_speedup"] is None
    assert {part: len(levels) for part, levels in payload["runs"].items()} == {
        "trivial": 1, "batched": 1, "half": 1}
    assert set(payload["runs"]["batched"][0]["by_name"]) == {"/recommend",
                                                            "/items/{id}/similar"}
    assert "| trivial | 2 |" in (results / "serving.md").read_text()
    assert (results / "serving.png").stat().st_size > 0

    saved = {path: path.stat().st_mtime_ns for path in Path(work, "levels").iterdir()}
    main(argv)  # the same configuration: every level is reused, nothing measured again
    assert {path: path.stat().st_mtime_ns for path in Path(work, "levels").iterdir()} == saved
    assert json.loads((results / "serving.json").read_text())["runs"] == payload["runs"]
    main([*argv, "--fresh"])  # every level measured again, and the reports written from them
    remeasured = {path: path.stat().st_mtime_ns for path in Path(work, "levels").iterdir()}
    assert all(remeasured[path] > mtime for path, mtime in saved.items())
    assert json.loads((results / "serving.json").read_text())["summary"]["errors"] == 0
