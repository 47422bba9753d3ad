"""Restartable accuracy benchmark: train model × dataset × config runs, collect the results.

Each experiment of the grid file trains in its own run directory
(``runs/accuracy/<dataset>/<label>/``); a finished run (``result.json`` present) is skipped and an
interrupted one resumes from its last checkpoint. After every run the records of *all* finished
runs are written to ``docs/results/accuracy.json`` and the summary table to ``accuracy.md`` /
``accuracy.png``.

    python -m bench.accuracy --grid bench/accuracy_grid.json [--only Beauty] [--threads 1]
    python -m bench.accuracy --report-only
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from bench.accuracy_report import write_report
from training.config import ExperimentConfig, preset

DATASET_DIR = Path("../shared/datasets")
RUNS_DIR = Path("runs/accuracy")
RESULTS_DIR = Path("docs/results")

log = logging.getLogger("bench.accuracy")

#: Fields of every record in accuracy.json.
REQUIRED_FIELDS = {"dataset", "model", "seed", "best_epoch", "epochs_run", "sec_per_epoch",
                   "device", "valid", "test", "config", "label", "note", "overrides"}


def experiment_config(spec: dict[str, Any], dataset_dir: Path, threads: int) -> ExperimentConfig:
    """A grid entry ``{dataset, model, seed, overrides, note}`` → ExperimentConfig."""
    config = preset(spec["model"], str(dataset_dir / f"{spec['dataset']}.txt"))
    overrides = dict(spec.get("overrides", {}))
    overrides["train.seed"] = spec.get("seed", 42)
    overrides["train.num_threads"] = threads
    return config.with_overrides(overrides)


def run_label(spec: dict[str, Any]) -> str:
    """Stable directory name: model, seed and a hash of the overrides."""
    overrides = json.dumps(spec.get("overrides", {}), sort_keys=True)
    digest = hashlib.sha1(overrides.encode()).hexdigest()[:8]
    return f"{spec['model']}-s{spec.get('seed', 42)}-{digest}"


def collect_records(runs_dir: Path) -> list[dict[str, Any]]:
    """One record per finished run directory."""
    records = []
    for result_path in sorted(runs_dir.glob("*/*/result.json")):
        run_dir = result_path.parent
        result = json.loads(result_path.read_text())
        config = json.loads((run_dir / "config.json").read_text())
        spec = json.loads((run_dir / "spec.json").read_text())
        records.append({
            "dataset": spec["dataset"], "model": spec["model"], "seed": spec.get("seed", 42),
            "label": run_dir.name, "note": spec.get("note", ""),
            "overrides": spec.get("overrides", {}),
            "best_epoch": result["best_epoch"], "epochs_run": result["epochs_run"],
            "sec_per_epoch": round(result["sec_per_epoch"], 2), "device": result["device"],
            "valid": result["valid"], "test": result["test"], "config": config,
        })
    return records


def merged_records(runs_dir: Path, results_dir: Path) -> list[dict[str, Any]]:
    """Records already in ``accuracy.json`` (earlier sessions) updated with finished runs."""
    path = results_dir / "accuracy.json"
    known = json.loads(path.read_text()) if path.exists() else []
    merged = {(r["dataset"], r["label"]): r for r in known}
    merged.update({(r["dataset"], r["label"]): r for r in collect_records(runs_dir)})
    return sorted(merged.values(), key=lambda r: (r["dataset"], r["model"], r["label"]))


def next_spec(grid_path: Path, only: set[str] | None, runs_dir: Path,
              results_dir: Path) -> tuple[dict[str, Any], Path, int] | None:
    """The first grid entry that is neither finished nor held by a live worker (claimed now).
    The grid file is re-read each time, so entries can be appended while workers run."""
    done = {(r["dataset"], r["label"]) for r in merged_records(runs_dir, results_dir)}
    for spec in json.loads(grid_path.read_text()):
        if (only and spec["dataset"] not in only) or (spec["dataset"], run_label(spec)) in done:
            continue
        run_dir = runs_dir / spec["dataset"] / run_label(spec)
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = claim(run_dir)
        if lock is not None:
            if (run_dir / "result.json").exists():  # finished while we looked
                os.close(lock)
                continue
            return spec, run_dir, lock
    return None


def run_grid(grid_path: Path, only: set[str] | None, threads: int, dataset_dir: Path,
             runs_dir: Path, results_dir: Path) -> None:
    from training.trainer import Trainer

    while (pending := next_spec(grid_path, only, runs_dir, results_dir)) is not None:
        spec, run_dir, lock = pending
        try:
            (run_dir / "spec.json").write_text(json.dumps(spec, indent=2))
            log.info("train %s", run_dir)
            trainer = Trainer(experiment_config(spec, dataset_dir, threads), run_dir,
                              progress=sys.stderr.isatty())
            trainer.fit(resume=True)
        finally:
            os.close(lock)
        write_report(merged_records(runs_dir, results_dir), results_dir)


def claim(run_dir: Path) -> int | None:
    """Take a run for this process unless a live worker holds it (several workers may share
    one grid, e.g. one per core): an exclusive ``flock`` on ``worker.lock``, which the kernel
    drops when its holder exits. Returns the open lock descriptor (close it to release)."""
    fd = os.open(run_dir / "worker.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", type=Path, default=Path("bench/accuracy_grid.json"))
    parser.add_argument("--only", nargs="*", help="datasets to run (default: all in the grid)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    parser.add_argument("--datasets", type=Path, default=DATASET_DIR)
    parser.add_argument("--runs", type=Path, default=RUNS_DIR)
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not args.report_only:
        run_grid(args.grid, set(args.only) if args.only else None, args.threads,
                 args.datasets, args.runs, args.results)
    write_report(merged_records(args.runs, args.results), args.results)


if __name__ == "__main__":
    main()
