"""Latency of sequential ``POST /recommend`` calls against a running service.

Sessions are real user histories from the dataset the served model was trained on (a random
prefix of each, so lengths follow the data); one call at a time, one keep-alive connection.

    python -m bench.latency --url http://127.0.0.1:8000 --data ../shared/datasets/Beauty.txt \
        --calls 1000
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import httpx
import numpy as np

from training.data import read_sequence_file


def sample_sessions(path: Path, count: int, seed: int) -> list[list[str]]:
    """``count`` random prefixes (length >= 1) of the dataset's user sequences."""
    sequences = list(read_sequence_file(path).values())
    rng = np.random.default_rng(seed)
    sessions = []
    for user in rng.integers(len(sequences), size=count):
        sequence = sequences[user]
        sessions.append(sequence[: int(rng.integers(1, len(sequence) + 1))])
    return sessions


def measure(url: str, sessions: list[list[str]], k: int) -> dict[str, float]:
    timings = []
    with httpx.Client(base_url=url, timeout=10.0) as client:
        for session in sessions[:20]:  # warm-up, not measured
            client.post("/recommend", json={"session": session, "k": k}).raise_for_status()
        for session in sessions:
            start = time.perf_counter()
            response = client.post("/recommend", json={"session": session, "k": k})
            timings.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
    ordered = sorted(timings)
    return {"calls": len(timings), "median_ms": statistics.median(timings),
            "p90_ms": ordered[int(0.9 * len(ordered))], "p99_ms": ordered[int(0.99 * len(ordered))],
            "mean_ms": statistics.fmean(timings)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/Beauty.txt"))
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/results/latency.json"))
    args = parser.parse_args()
    result = measure(args.url, sample_sessions(args.data, args.calls, args.seed), args.k)
    result.update(url=args.url, data=args.data.name, k=args.k)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
