"""The serving A/B: its run order and comparison, and one tiny end-to-end run of a tree against
itself (real uvicorn, real Redis, real locust)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.serving_ab import compare, main, run_order

ROOT = Path(__file__).resolve().parents[2]


def test_pairs_alternate_their_order():
    assert run_order(3) == ["a", "b", "b", "a", "a", "b"]


def run(side, rps, p99=5.0, errors=0):
    return {"side": side, "rps": rps, "p50_ms": 1.0, "p99_ms": p99, "errors": errors,
            "requests": int(rps)}


def test_compare_takes_medians_and_counts_the_pairs_b_won():
    runs = [run("a", 100.0), run("b", 110.0), run("b", 90.0), run("a", 95.0),
            run("a", 120.0, errors=1), run("b", 130.0, p99=7.0)]
    summary = compare(runs)
    assert summary["median_rps_a"] == 100.0 and summary["median_rps_b"] == 110.0
    assert summary["ratio_b_over_a"] == 1.1
    assert summary["pairs"] == 3 and summary["b_wins"] == 2
    assert summary["median_p99_ms_b"] == 5.0 and summary["errors"] == 1
    assert summary["b_lower_p99"] == 0
    assert summary["median_server_cpu_ms_a"] is None  # the runs above did not measure it


def test_compare_counts_the_pairs_in_which_b_had_the_lower_p99():
    runs = [run("a", 100.0, p99=9.0), run("b", 100.0, p99=8.0),
            run("b", 100.0, p99=7.0), run("a", 100.0, p99=6.0)]
    assert compare(runs)["b_lower_p99"] == 1


@pytest.mark.parametrize("load", [
    [], ["--rate", "20", "--half-peak-users", "2", "--b-set", "BATCH_MAX_WAIT_S=0.002"]],
    ids=["back-to-back", "fixed-rate-and-a-setting"])
def test_a_tree_against_itself_end_to_end(tmp_path, tiny_serving_inputs, redis_url, load):
    artifacts, sessions = tiny_serving_inputs
    results = tmp_path / "results"
    main([*load, "--a", str(ROOT), "--b", str(ROOT), "--rounds", "1", "--users", "2",
          "--artifact-dir", str(artifacts), "--name", "tiny", "--data", str(sessions),
          "--duration", "1", "--warmup", "0", "--server-cores", "", "--client-cores", "",
          "--k", "5", "--redis-url", redis_url, "--results", str(results),
          "--work", str(tmp_path / "work")])
    payload = json.loads((results / "serving_ab.json").read_text())
    assert [r["side"] for r in payload["runs"]] == ["a", "b"]
    assert all(r["rps"] > 0 and r["server_cpu_ms_per_request"] > 0 for r in payload["runs"])
    assert payload["summary"]["median_server_cpu_ms_b"] > 0
    assert payload["summary"]["errors"] == 0 and payload["summary"]["pairs"] == 1
    assert "B / A" in (results / "serving_ab.md").read_text()
    assert ("Poisson" in payload["load"]) == bool(load)
    assert payload["b_settings"] == ({"BATCH_MAX_WAIT_S": "0.002"} if load else {})


def test_side_b_gets_its_settings(tmp_path, tiny_serving_inputs, redis_url):
    artifacts, sessions = tiny_serving_inputs
    with pytest.raises(RuntimeError, match="the server exited"):  # B's setting is invalid
        main(["--a", str(ROOT), "--b", str(ROOT), "--rounds", "1", "--users", "2",
              "--b-set", "BATCH_MAX_WAIT_S=-1",
              "--artifact-dir", str(artifacts), "--name", "tiny", "--data", str(sessions),
              "--duration", "1", "--warmup", "0", "--server-cores", "", "--client-cores", "",
              "--k", "5", "--redis-url", redis_url, "--results", str(tmp_path / "results"),
              "--work", str(tmp_path / "work")])
    assert b"batch_max_wait_s" in (tmp_path / "work" / "server-b.log").read_bytes().lower()
