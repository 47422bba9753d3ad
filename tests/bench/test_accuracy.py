"""The accuracy benchmark trains each grid entry once and reports every finished run."""

import json

from bench.accuracy import REQUIRED_FIELDS, merged_records, run_grid
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
