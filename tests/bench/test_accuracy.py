"""The accuracy benchmark trains each grid entry once and reports every finished run."""

import json
import os
import subprocess
import sys

from bench.accuracy import REQUIRED_FIELDS, claim, merged_records, run_grid
from bench.accuracy_report import METRICS, best_per_model, seed_groups, seed_table
from training.synthetic import SyntheticSpec, generate_sessions

TINY = {"model.dim": 16, "model.ffn_dim": 32, "data.max_len": 10, "train.epochs": 1,
        "train.batch_size": 64}


def write_benchmark_file(path):
    sessions = generate_sessions(SyntheticSpec(num_users=120, num_categories=3,
                                               items_per_category=10, seed=3))
    path.write_text("".join(f"{i} {' '.join(items)}\n"
                            for i, items in enumerate(sessions.values(), start=1)))


def test_grid_runs_once_and_reports(tmp_path):
    datasets, runs, results = tmp_path / "datasets", tmp_path / "runs", tmp_path / "results"
    datasets.mkdir()
    write_benchmark_file(datasets / "Tiny.txt")
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps([
        {"dataset": "Tiny", "model": "sasrec", "overrides": TINY, "note": "baseline"},
        {"dataset": "Tiny", "model": "mvcrec", "overrides": TINY},
        {"dataset": "Other", "model": "sasrec", "overrides": TINY},
    ]))
    run_grid(grid, {"Tiny"}, 1, datasets, runs, results)
    records = json.loads((results / "accuracy.json").read_text())
    assert sorted(r["model"] for r in records) == ["mvcrec", "sasrec"]
    for record in records:
        assert set(record) >= REQUIRED_FIELDS
        assert set(record["test"]) == {"HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20"}
        assert record["config"]["model"]["dim"] == 16
    markdown = (results / "accuracy.md").read_text()
    assert "| Tiny | sasrec |" in markdown and "ratio" in markdown
    assert (results / "accuracy.png").stat().st_size > 0

    # a second pass finds nothing to do, even with the run directories gone
    before = (results / "accuracy.json").read_text()
    for path in sorted(runs.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    run_grid(grid, {"Tiny"}, 1, datasets, runs, results)
    assert not runs.exists() or not any(runs.rglob("result.json"))
    assert json.loads(before) == merged_records(runs, results)


def test_a_run_held_by_a_live_worker_is_not_claimed_twice(tmp_path):
    held = claim(tmp_path)
    assert held is not None
    child = subprocess.run([sys.executable, "-c", CLAIM_IN_CHILD, str(tmp_path)],
                           capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "refused"
    os.close(held)  # the holder finishes (or dies): the next worker gets it
    child = subprocess.run([sys.executable, "-c", CLAIM_IN_CHILD, str(tmp_path)],
                           capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "claimed"


CLAIM_IN_CHILD = """
import sys
from pathlib import Path
from bench.accuracy import claim
print("refused" if claim(Path(sys.argv[1])) is None else "claimed")
"""


def record(model, seed, device, test, **overrides):
    return {"dataset": "Tiny", "model": model, "seed": seed, "device": device,
            "label": f"{model}-{seed}-{device}", "overrides": overrides,
            "valid": {"NDCG@10": test + 0.01}, "test": {m: test for m in METRICS},
            "best_epoch": 1, "epochs_run": 2, "sec_per_epoch": 1.0}


def test_headline_uses_cpu_runs_and_seeds_are_grouped_across_devices():
    records = [record("sasrec", 42, "cpu", 0.040), record("mvcrec", 42, "cpu", 0.044),
               record("mvcrec", 1, "cuda", 0.050, **{"train.device": "cuda"}),
               record("mvcrec", 2, "cuda", 0.046, **{"train.device": "cuda"}),
               record("mvcrec", 3, "cuda", 0.070, **{"model.dropout": 0.5})]
    best = best_per_model(records)
    assert best["Tiny"]["mvcrec"]["seed"] == 42, "a GPU run never makes the headline"
    groups = seed_groups(records)
    assert [[r["seed"] for r in g] for g in groups] == [[1, 2, 42]]
    table = "\n".join(seed_table(records))
    assert "0.0467 ± 0.0031" in table
