"""Serving load test: the real service under locust, beside the web stack's own ceiling.

Starts the service (uvicorn, Redis, a trained artifact) as it runs in production and drives it
with ``deploy/locustfile.py`` (real sessions from a dataset, checks on every response), headless,
for a fixed time at several concurrency levels (users sending back to back). In the same run:

- ``trivial``: ``POST /bench/trivial`` of the same app (same middleware, validation and response
  model, a fixed answer, no model): the ceiling of the web stack;
- ``batched``: the realistic mix (``POST /recommend`` 9 : 1 ``GET /items/{id}/similar``) with
  micro-batching on (the default settings);
- ``unbatched``: the same mix with ``BATCHING=false``;
- ``half``: the batched mix at a fixed rate of half its peak throughput (latency at a load with
  headroom, what a shop would run at).

``trivial`` and ``batched`` share one server and alternate level by level (trivial at 1 user,
batched at 1 user, trivial at 4 users, ...), so slow drift of a shared machine affects both sides
of their ratio alike; ``unbatched`` follows on a server of its own.

Server and load generator are pinned to separate cores (``--server-cores``, ``--client-cores``).
Percentiles come from every request's own latency (locust's report rounds them); requests in the
first ``--warmup`` seconds of each level are left out of the rates and percentiles, but any failed
request of a run counts as an error. Each level is saved in ``--work`` as it finishes and reused by
a later run with the same configuration (``--fresh`` to measure again); ``--parts`` picks parts.
Writes ``serving.json`` (``"summary"`` first), ``serving.md`` and ``serving.png`` into
``--results``; ANN figures are copied from ``catalog_scale.json`` there (run
``python -m bench.catalog_scale`` first).

    python -m bench.serving --artifact-dir artifacts --name beauty --server-cores 0 \\
        --client-cores 1
    python -m bench.serving --duration 3 --warmup 1 --levels 4,16 --results /tmp/smoke  # smoke

Without a version of ``--name`` in ``--artifact-dir``, a small model is trained on ``--data``
first (``--set model.dim=64 model.share_transformer=true train.epochs=2``: the architecture of
the best validation configuration on Beauty, few epochs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import redis

from bench.machine import machine_info

log = logging.getLogger("bench.serving")

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "deploy" / "locustfile.py"
PARTS = ("trivial", "batched", "unbatched", "half")
TARGETS = {"recommend_to_trivial": 0.5, "p99_ms_at_half_peak": 25.0}
CLIENT_BOUND = 0.9  # client CPU share from which the load generator, not the server, sets a peak


# ---------------------------------------------------------------------------------------------
# statistics of one locust run


def summarize(records: Sequence[Sequence[Any]], warmup_s: float, duration_s: float,
              ) -> dict[str, Any]:
    """Rates and latency percentiles of the requests started in the measured window
    ``[t0 + warmup_s, t0 + warmup_s + duration_s)`` (``t0``: the first request), per request
    name and together; ``errors`` counts failed requests of the whole run, warm-up included.

    ``records``: ``(start_s, latency_ms, ok, name)`` per request, as the locustfile writes them.
    """
    if not records:
        return {"requests": 0, "rps": 0.0, "p50_ms": None, "p95_ms": None, "p99_ms": None,
                "errors": 0, "by_name": {}}
    start = min(float(r[0]) for r in records) + warmup_s
    window = [r for r in records if start <= float(r[0]) < start + duration_s]
    result = _stats(window, duration_s)
    result["errors"] = sum(not r[2] for r in records)
    result["by_name"] = {name: _stats([r for r in window if r[3] == name], duration_s)
                         for name in sorted({str(r[3]) for r in window})}
    return result


def _stats(window: Sequence[Sequence[Any]], duration_s: float) -> dict[str, Any]:
    latencies = np.array([float(r[1]) for r in window])
    if not len(latencies):
        return {"requests": 0, "rps": 0.0, "p50_ms": None, "p95_ms": None, "p99_ms": None,
                "errors_in_window": 0}
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    return {"requests": len(window), "rps": len(window) / duration_s, "p50_ms": float(p50),
            "p95_ms": float(p95), "p99_ms": float(p99),
            "errors_in_window": sum(not r[2] for r in window)}


def peak(levels: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The level with the highest throughput."""
    return max(levels, key=lambda level: level["rps"], default=None)


def build_summary(runs: dict[str, list[dict[str, Any]]], ann: dict[str, Any] | None,
                  machine: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of ``serving.json`` and whether each target is met."""
    best = {part: peak(runs.get(part, [])) for part in ("trivial", "batched", "unbatched")}
    rps = {part: None if level is None else level["rps"] for part, level in best.items()}
    half = runs["half"][0] if runs.get("half") else None
    recommend_only = (None if best["batched"] is None else
                      best["batched"]["by_name"].get("/recommend", {}).get("rps"))
    summary: dict[str, Any] = {
        "peak_rps_recommend": rps["batched"],
        "peak_rps_recommend_only": recommend_only,
        "peak_rps_recommend_unbatched": rps["unbatched"],
        "peak_rps_trivial": rps["trivial"],
        "recommend_to_trivial": _ratio(rps["batched"], rps["trivial"]),
        # what each request costs the server at the peaks: their inverse ratio is the
        # throughput ratio of a server-bound run, whichever side the load generator held back
        "server_cpu_ms_per_request": {part: _cpu_per_request(best[part])
                                      for part in ("trivial", "batched")},
        "trivial_peak_client_bound": _client_bound(best["trivial"]),
        "p99_ms_at_half_peak": None if half is None else half["p99_ms"],
        "rps_at_half_peak": None if half is None else half["rps"],
        "errors": sum(level["errors"] for levels in runs.values() for level in levels),
        "batching_speedup": _ratio(rps["batched"], rps["unbatched"]),
        "ann_recall_at_10": None if ann is None else ann.get("ann_recall_at_10"),
        "ann_speedup": None if ann is None else ann.get("ann_speedup"),
        "ann_source": None if ann is None else ann.get("source"),
        "machine": machine,
    }
    cpu = summary["server_cpu_ms_per_request"]
    summary["server_cpu_ratio"] = _ratio(cpu["trivial"], cpu["batched"])
    summary["targets"] = {
        "recommend_at_least_half_of_trivial": _holds_on_the_server(summary),
        "p99_at_half_peak_within_25_ms": (None if summary["p99_ms_at_half_peak"] is None else
                                          summary["p99_ms_at_half_peak"]
                                          <= TARGETS["p99_ms_at_half_peak"]),
        "zero_errors": summary["errors"] == 0,
        "batching_raises_peak": _at_least(summary["batching_speedup"], 1.0, strict=True),
    }
    return summary


def _holds_on_the_server(summary: dict[str, Any]) -> bool | None:
    """``recommend_to_trivial`` >= 0.5, and, when the trivial peak was held back by the load
    generator (so the measured ratio flatters ``/recommend``), the server CPU ratio as well."""
    bound = TARGETS["recommend_to_trivial"]
    measured = _at_least(summary["recommend_to_trivial"], bound)
    if not measured or not summary["trivial_peak_client_bound"]:
        return measured
    return _at_least(summary["server_cpu_ratio"], bound)


def _cpu_per_request(level: dict[str, Any] | None) -> float | None:
    return None if level is None else level.get("server_cpu_ms_per_request")


def _client_bound(level: dict[str, Any] | None) -> bool | None:
    if level is None or level.get("client_cpu_utilisation") is None:
        return None
    return bool(level["client_cpu_utilisation"] >= CLIENT_BOUND)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _at_least(value: float | None, bound: float, strict: bool = False) -> bool | None:
    if value is None:
        return None
    return value > bound if strict else value >= bound


# ---------------------------------------------------------------------------------------------
# processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(command: list[str], cores: str) -> list[str]:
    """``command`` under ``taskset`` when cores are given (and taskset exists)."""
    if cores and os.path.exists("/usr/bin/taskset"):
        return ["taskset", "-c", cores, *command]
    return command


def core_count(cores: str) -> int:
    """How many cores a ``taskset -c`` list names (``0``, ``0,1``, ``2-5``)."""
    if not cores:
        return os.cpu_count() or 1
    total = 0
    for part in cores.split(","):
        low, _, high = part.partition("-")
        total += int(high or low) - int(low) + 1
    return total


@contextlib.contextmanager
def serve(args: argparse.Namespace, batching: bool, log_path: Path, root: Path = ROOT,
          settings: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """The service of the source tree ``root`` under uvicorn on a free port, pinned to the server
    cores, with a Redis key prefix of its own (deleted afterwards) and ``settings`` (environment
    variables) over the benchmark's own; yields the base URL and the server's pid once
    ``/readyz`` answers 200."""
    import httpx

    port = free_port()
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "REDIS_URL": args.redis_url, "KEY_PREFIX": prefix,
           "ARTIFACT_DIR": str(args.artifact_dir), "MODEL_NAME": args.name, "DEVICE": args.device,
           "CPU_THREADS": str(args.server_threads or core_count(args.server_cores)),
           "MAX_CONCURRENT_PER_CLIENT": "0", "RATE_LIMIT_PER_S": "0", "BENCH_ENDPOINT": "true",
           "BATCHING": str(batching).lower(), "BATCH_MAX_SIZE": str(args.batch_max_size),
           "BATCH_MAX_WAIT_S": str(args.batch_max_wait_s), "INDEX_TYPE": args.index_type,
           "IVF_NLIST": str(args.ivf_nlist), "IVF_NPROBE": str(args.ivf_nprobe),
           "AUTO_PUBLISH": "true", "LOG_LEVEL": "warning", **(settings or {})}
    command = pinned([sys.executable, "-m", "uvicorn", "service.main:create_app", "--factory",
                      "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                      "--log-level", "warning", "--loop", args.loop, "--http", args.http],
                     args.server_cores)
    with open(log_path, "ab") as server_log:
        process = subprocess.Popen(command, env=env, cwd=root, stdout=server_log,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + args.start_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited ({process.returncode}); see {log_path}")
            with contextlib.suppress(httpx.HTTPError):
                readiness = httpx.get(f"{url}/readyz", timeout=2)
                if readiness.status_code == 200:
                    log.info("server ready: %s", readiness.json())
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server was not ready in {args.start_timeout} s")
            time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        client = redis.Redis.from_url(args.redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def run_locust(args: argparse.Namespace, url: str, server_pid: int, users: int, label: str,
               extra: Sequence[str], run_time_s: float) -> dict[str, Any]:
    """One headless locust run of ``run_time_s`` (rounded up to whole seconds, as locust takes
    them); returns its summary plus the CPU the server and the load generator used."""
    run_time_s = math.ceil(run_time_s)
    out_dir = args.work / "locust"
    out_dir.mkdir(parents=True, exist_ok=True)
    latency_file = out_dir / f"{label}.latencies.json"
    command = pinned([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", url,
                      "--headless", "--users", str(users),
                      "--spawn-rate", str(users if "--user-rate" not in extra else
                                          max(1, users // 2)),
                      "--run-time", f"{run_time_s}s", "--stop-timeout", "5",
                      "--csv", str(out_dir / label), "--only-summary", "--loglevel", "WARNING",
                      "--sessions-file", str(args.data), "--k", str(args.k),
                      "--latency-out", str(latency_file), *extra], args.client_cores)
    server = psutil.Process(server_pid)
    server_before = _cpu_seconds(server)
    started = time.monotonic()
    client = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    client_cpu = 0.0
    with contextlib.suppress(psutil.Error):
        watched = psutil.Process(client.pid)
        while client.poll() is None:
            client_cpu = max(client_cpu, _cpu_seconds(watched))
            time.sleep(0.2)
    output = client.communicate()[0].decode(errors="replace")
    elapsed = time.monotonic() - started
    server_cpu = _cpu_seconds(server) - server_before
    if not latency_file.exists():
        raise RuntimeError(f"locust wrote no latencies ({label}):\n{output[-2000:]}")
    records = json.loads(latency_file.read_text())
    result = summarize(records, args.warmup, run_time_s - args.warmup)
    total = len(records)
    result.update({
        "users": users, "total_requests": total,
        "server_cpu_ms_per_request": 1000 * server_cpu / total if total else None,
        "server_cpu_utilisation": server_cpu / elapsed / core_count(args.server_cores),
        "client_cpu_utilisation": client_cpu / elapsed / core_count(args.client_cores),
    })
    return result


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


# ---------------------------------------------------------------------------------------------
# the benchmark


def config_key(args: argparse.Namespace, version: str) -> dict[str, Any]:
    """Everything a saved level depends on: a level is reused only under the same key."""
    return {"version": version, "name": args.name, "duration": args.duration,
            "warmup": args.warmup, "server_cores": args.server_cores,
            "client_cores": args.client_cores, "device": args.device, "k": args.k,
            "data": str(args.data), "batch_max_size": args.batch_max_size,
            "batch_max_wait_s": args.batch_max_wait_s, "index_type": args.index_type,
            **({"ivf_nlist": args.ivf_nlist, "ivf_nprobe": args.ivf_nprobe}
               if args.index_type == "ivf" else {}),
            "server_threads": args.server_threads, "similar_weight": args.similar_weight,
            "half_peak_users": args.half_peak_users, "half_peak_duration": args.half_peak_duration,
            "loop": args.loop, "http": args.http}


def saved(args: argparse.Namespace, key: dict[str, Any], label: str,
          reuse: bool | None = None) -> dict[str, Any] | None:
    """The saved level of this configuration; ``reuse`` (default: not ``--fresh``) False
    ignores what an earlier run saved."""
    path = args.work / "levels" / f"{label}.json"
    if reuse is None:
        reuse = not args.fresh
    if not reuse or not path.exists():
        return None
    record: dict[str, Any] = json.loads(path.read_text())
    return record if record.get("config") == key else None


def save(args: argparse.Namespace, key: dict[str, Any], label: str,
         record: dict[str, Any]) -> None:
    path = args.work / "levels" / f"{label}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**record, "config": key}, indent=2))


def ensure_artifact(args: argparse.Namespace) -> str:
    """The newest version of ``--name``; trains a small one on ``--data`` when there is none."""
    from model.artifact import ArtifactError, latest_version

    try:
        return latest_version(args.artifact_dir, args.name).name
    except (ArtifactError, FileNotFoundError):
        pass
    log.info("no version of %s in %s: training a small model on %s", args.name,
             args.artifact_dir, args.data)
    command = pinned([sys.executable, "-m", "training", "train", "--data", str(args.data),
                      "--model", "mvcrec", "--set", "model.dim=64", "model.share_transformer=true",
                      "train.epochs=2",
                      "train.num_threads=1", "--run-dir", str(args.work / "train"), "--export",
                      str(args.artifact_dir), "--name", args.name, "--no-progress"],
                     args.server_cores)
    subprocess.run(command, cwd=ROOT, check=True)
    return latest_version(args.artifact_dir, args.name).name


class Servers:
    """At most one service process at a time, started on demand and replaced when the batching
    setting changes (the trivial, batched and half parts share one)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stack: contextlib.ExitStack | None = None
        self.batching: bool | None = None
        self.address: tuple[str, int] = ("", 0)

    def get(self, batching: bool) -> tuple[str, int]:
        """The base URL and pid of a server with ``BATCHING=batching``."""
        if self.stack is None or self.batching != batching:
            self.close()
            self.stack = contextlib.ExitStack()
            self.address = self.stack.enter_context(
                serve(self.args, batching, self.args.work / "server.log"))
            self.batching = batching
        return self.address

    def close(self) -> None:
        if self.stack is not None:
            self.stack.close()
            self.stack = None


def measure(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """Every selected part at every level, reusing saved levels of the same configuration. The
    trivial and batched parts share a server and alternate level by level, so the drift of a
    shared machine falls on both sides of their ratio alike."""
    version = ensure_artifact(args)
    key = config_key(args, version)
    mix = ["--similar-weight", str(args.similar_weight)]
    extras = {"trivial": ["--trivial"], "batched": mix, "unbatched": mix}
    wanted = {part for part in ("trivial", "batched", "unbatched") if part in args.parts}
    if "half" in args.parts:
        wanted.add("batched")
    shared: tuple[str, ...] = ("trivial", "batched")
    rounds: list[list[tuple[str, int]]] = [
        [(part, users) for part in shared if part in wanted] for users in args.levels]
    rounds += [[("unbatched", users)] for users in args.levels if "unbatched" in wanted]
    args.work.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {}
    with contextlib.closing(Servers(args)) as servers:
        for part, users in (step for steps in rounds for step in steps):
            if saved(args, key, f"{part}-{users}") is not None:
                continue
            url, pid = servers.get(part != "unbatched")
            log.info("%s: %d users, %g s", part, users, args.warmup + args.duration)
            record = run_locust(args, url, pid, users, f"{part}-{users}", extras[part],
                                args.warmup + args.duration)
            save(args, key, f"{part}-{users}", {"part": part, **record})
            log.info("%s: %d users: %.0f requests/s, p99 %.1f ms, %d errors", part, users,
                     record["rps"], record["p99_ms"] or -1, record["errors"])
        for name in ("trivial", "batched", "unbatched"):
            if name in wanted:
                runs[name] = [_strip(saved_or_fail(args, key, f"{name}-{users}"))
                              for users in args.levels]
        if "half" in args.parts:
            runs["half"] = [_strip(measure_half(args, key, runs["batched"], mix, servers))]
    return {part: runs[part] for part in PARTS if part in args.parts}


def measure_half(args: argparse.Namespace, key: dict[str, Any], batched: list[dict[str, Any]],
                 mix: list[str], servers: Servers) -> dict[str, Any]:
    """The batched mix at half of its peak throughput, as a fixed rate spread over users (their
    arrivals: ``--half-peak-arrivals``)."""
    top = peak(batched)
    assert top is not None
    target = top["rps"] / 2
    half_key = {**key, "target_rps": round(target, 1), "arrivals": args.half_peak_arrivals}
    record = saved(args, half_key, "half")
    if record is not None:
        return record
    users = args.half_peak_users
    rate = ["--user-rate", f"{target / users:.4f}", "--arrivals", args.half_peak_arrivals]
    url, pid = servers.get(True)
    log.info("half: %.0f requests/s over %d users, %g s", target, users,
             args.warmup + args.half_peak_duration)
    record = run_locust(args, url, pid, users, "half", [*mix, *rate],
                        args.warmup + args.half_peak_duration)
    record = {"part": "half", "target_rps": target, **record}
    save(args, half_key, "half", record)
    return record


def saved_or_fail(args: argparse.Namespace, key: dict[str, Any], label: str) -> dict[str, Any]:
    record = saved(args, key, label, reuse=True)  # measured by this run, --fresh or not
    if record is None:
        raise RuntimeError(f"level {label} was not measured")
    return record


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name != "config"}


def ann_figures(results: Path) -> dict[str, Any] | None:
    """The approximate index's recall and speed-up, from ``catalog_scale.json`` in ``results``
    (else in ``docs/results``, for side runs written elsewhere)."""
    path = next((p for p in (results / "catalog_scale.json",
                             ROOT / "docs" / "results" / "catalog_scale.json") if p.exists()),
                None)
    if path is None:
        return None
    summary = json.loads(path.read_text()).get("summary", {})
    return {"ann_recall_at_10": summary.get("recall_at_10"),
            "ann_speedup": summary.get("speedup_single"),
            "source": f"catalog_scale.json: {summary.get('items')} items, "
                      f"{summary.get('index')} (single-query latency ratio)"}


# ---------------------------------------------------------------------------------------------
# reports


def served_index_recall(args: argparse.Namespace, version: str) -> dict[str, Any]:
    """The served index and its recall@10 against exact search, for sessions cut from ``--data``
    as the load generator cuts them (a random user's history up to a random event), encoded by
    the benchmarked model: what an approximate index costs on this catalog's own queries."""
    import random

    import torch

    from model.artifact import load_artifact
    from service.encoding import EncoderInput
    from service.recommender import map_items
    from service.state import IndexSpec, build_index, build_state
    from training.data import read_sequences

    spec = IndexSpec(args.index_type, args.ivf_nlist, args.ivf_nprobe)
    described = {"type": spec.type, **({"nlist": spec.nlist, "nprobe": spec.nprobe}
                                       if spec.type == "ivf" else {})}
    if spec.type == "exact":
        return {**described, "recall_at_10_vs_exact": 1.0}
    artifact = load_artifact(args.artifact_dir / args.name / version)
    state = build_state(artifact, args.name, torch.device("cpu"), "off",
                        local_copy_max_bytes=1 << 40)
    histories = [items for items in read_sequences(args.data).values() if items]
    chooser = random.Random(0)
    sessions: list[EncoderInput] = []
    while len(sessions) < args.recall_sessions:
        history = chooser.choice(histories)
        known = map_items(state, history[:chooser.randint(1, len(history))])[0][-state.max_len:]
        if known:
            tail = np.asarray(known, dtype=np.int64)
            graph = None if state.local_graph is None else state.local_graph[tail]
            sessions.append(EncoderInput(tail, graph))
    queries = state.encoder(sessions)  # [S D]
    approximate, _, _ = build_index(artifact.fused_item_emb[1:], torch.device("cpu"), "off", spec)
    found = approximate.search(queries, 10)[1]
    truth = state.index.search(queries, 10)[1]
    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)]))
    return {**described, "nlist": spec.lists_for(state.num_items),
            "recall_at_10_vs_exact": recall, "sessions": len(sessions)}


def write_reports(results: Path, payload: dict[str, Any]) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / "serving.json").write_text(json.dumps(payload, indent=2) + "\n")
    (results / "serving.md").write_text(markdown(payload))
    plot(payload["runs"], results / "serving.png")


def _cpu_text(summary: dict[str, Any]) -> str:
    cpu = summary.get("server_cpu_ms_per_request") or {}
    if cpu.get("trivial") is None or cpu.get("batched") is None:
        return "–"
    bound = " (trivial peak set by the load generator)" if summary.get(
        "trivial_peak_client_bound") else ""
    return (f"{cpu['trivial']:.3f} / {cpu['batched']:.3f} ms: ratio "
            f"{_fmt(summary.get('server_cpu_ratio'), 2)}{bound}")


def _index_text(index: dict[str, Any] | None) -> str:
    if not index:
        return "–"
    if index["type"] == "exact":
        return "exact (flat inner product): 1"
    return (f"IVF, nlist {index['nlist']}, nprobe {index['nprobe']}: "
            f"{index['recall_at_10_vs_exact']:.4f} ({index['sessions']} sessions)")


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(payload: dict[str, Any]) -> str:
    summary, config, runs = payload["summary"], payload["config"], payload["runs"]
    machine = summary["machine"]
    lines = [
        "# Serving throughput and latency", "",
        "Generated by `python -m bench.serving` (" + payload["command"] + "). "
        f"Server: uvicorn (event loop `{config.get('loop', 'auto')}`, HTTP "
        f"`{config.get('http', 'auto')}`; `auto` is uvloop and httptools, which the project "
        f"installs), one process, pinned to core(s) `{config['server_cores'] or 'any'}`, "
        f"`CPU_THREADS={config['server_threads']}`, device `{config['device']}`, "
        f"index `{config['index_type']}`, Redis on the same host; load generator: locust "
        f"(FastHttpUser) on core(s) `{config['client_cores'] or 'any'}`. Model "
        f"`{config['name']}` version `{config['version']}`; sessions from `{config['data']}`. "
        f"Each level: {config['warmup']:g} s warm-up, then {config['duration']:g} s measured; "
        "users send back to back. Machine: "
        f"{machine['cores']} cores ({machine['cpu']}), device {machine['device']}.", "",
        "## Summary", "",
        "| figure | value | target |", "|---|---|---|",
        f"| peak requests/s, `/recommend` mix, batching on | "
        f"{_fmt(summary['peak_rps_recommend'], 0)} | |",
        f"| peak requests/s, `/recommend` mix, batching off | "
        f"{_fmt(summary['peak_rps_recommend_unbatched'], 0)} | |",
        f"| peak requests/s, trivial endpoint (web-stack ceiling) | "
        f"{_fmt(summary['peak_rps_trivial'], 0)} | |",
        f"| `/recommend` peak / trivial peak | {_fmt(summary['recommend_to_trivial'], 2)} | "
        f"≥ 0.5: {_fmt(summary['targets']['recommend_at_least_half_of_trivial'])} |",
        f"| server CPU per request at the peaks, trivial / `/recommend` mix | "
        f"{_cpu_text(summary)} | |",
        f"| batching speed-up (peak on / peak off) | {_fmt(summary['batching_speedup'], 2)} | "
        f"> 1: {_fmt(summary['targets']['batching_raises_peak'])} |",
        f"| p99 latency at half of the peak ({_fmt(summary['rps_at_half_peak'], 0)} req/s) | "
        f"{_fmt(summary['p99_ms_at_half_peak'])} ms | ≤ 25 ms: "
        f"{_fmt(summary['targets']['p99_at_half_peak_within_25_ms'])} |",
        f"| failed requests (all runs, warm-up included) | {summary['errors']} | 0: "
        f"{_fmt(summary['targets']['zero_errors'])} |",
        f"| ANN recall@10 / search speed-up | {_fmt(summary['ann_recall_at_10'], 3)} / "
        f"{_fmt(summary['ann_speedup'], 1)}× | from {summary['ann_source'] or '–'} |",
        f"| served index, recall@10 against exact on this model's sessions | "
        f"{_index_text(summary.get('index'))} | |", "",
        "The `/recommend` mix is what `deploy/locustfile.py` sends: `POST /recommend` and "
        "`GET /items/{id}/similar` at 9 : 1 (`peak_rps_recommend_only` in `serving.json` counts "
        "`/recommend` alone). The trivial endpoint takes the same request bodies through the same "
        "app and answers a fixed list. `server CPU ms/req` is the server process's CPU time "
        "divided by the requests it answered; `client CPU` near 100 % means the load generator, "
        "not the server, set the pace. The ratio of the two CPU costs is the throughput ratio a "
        "server-bound run would show; when the trivial peak is client-bound, the target needs "
        "it too.", "",
        "## Every level", "",
        "| part | users | requests/s | p50 ms | p95 ms | p99 ms | errors | server CPU ms/req "
        "| server CPU | client CPU |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for part, levels in runs.items():
        for level in levels:
            lines.append(
                f"| {part} | {level['users']} | {_fmt(level['rps'], 0)} | "
                f"{_fmt(level['p50_ms'])} | {_fmt(level['p95_ms'])} | {_fmt(level['p99_ms'])} | "
                f"{level['errors']} | {_fmt(level['server_cpu_ms_per_request'], 2)} | "
                f"{_fmt(100 * level['server_cpu_utilisation'], 0)} % | "
                f"{_fmt(100 * level['client_cpu_utilisation'], 0)} % |")
    arrivals = config.get("half_peak_arrivals", "constant")
    lines += ["", f"`half`: a fixed rate of half the batched peak over "
              f"{config['half_peak_users']} users, not users sending back to back; "
              + ("each user's requests start as a Poisson process (exponential gaps, independent "
                 "of the answers: independent shoppers)." if arrivals == "poisson" else
                 "locust `constant_throughput` per user (fixed gaps: users answered by the same "
                 "micro-batch send again together)."), "",
              "![latency against throughput](serving.png)", ""]
    return "\n".join(lines)


def plot(runs: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    styles = {"trivial": "tab:gray", "batched": "tab:blue", "unbatched": "tab:orange"}
    for part, color in styles.items():
        levels = sorted(runs.get(part, []), key=lambda level: level["users"])
        if not levels:
            continue
        rps = [level["rps"] for level in levels]
        axis.plot(rps, [level["p50_ms"] for level in levels], "o--", color=color,
                  label=f"{part} p50")
        axis.plot(rps, [level["p99_ms"] for level in levels], "o-", color=color,
                  label=f"{part} p99")
        for level in levels:
            axis.annotate(str(level["users"]), (level["rps"], level["p99_ms"]), fontsize=7,
                          textcoords="offset points", xytext=(3, 3))
    for level in runs.get("half", []):
        axis.plot([level["rps"]], [level["p99_ms"]], "*", color="tab:green", markersize=12,
                  label="batched p99 at half peak")
    axis.axhline(TARGETS["p99_ms_at_half_peak"], color="tab:red", linewidth=0.8, linestyle=":")
    axis.set_xlabel("requests/s")
    axis.set_ylabel("latency (ms)")
    axis.set_yscale("log")
    axis.set_title("Latency against throughput (labels: concurrent users)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def build_parser(description: str | None = __doc__) -> argparse.ArgumentParser:
    """The options of the service, the load and the files (shared with ``bench.serving_ab``)."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact-dir", type=Path, default=Path("artifacts"))
    parser.add_argument("--name", default="bench-beauty", help="artifact (model) name")
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/Beauty.txt"),
                        help="sessions for locust (and training when there is no artifact)")
    parser.add_argument("--levels", default="1,4,16,32,64,128",
                        help="concurrent users per level, comma-separated")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds a level")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds left out a level")
    parser.add_argument("--half-peak-duration", type=float, default=60.0)
    parser.add_argument("--half-peak-users", type=int, default=32)
    parser.add_argument("--half-peak-arrivals", choices=("poisson", "constant"), default="poisson",
                        help="gaps between a half-peak user's requests: exponential (independent "
                             "shoppers) or fixed (locust constant_throughput)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"any of {','.join(PARTS)}")
    parser.add_argument("--server-cores", default="0", help="taskset list; '' for no pinning")
    parser.add_argument("--client-cores", default="1", help="taskset list; '' for no pinning")
    parser.add_argument("--server-threads", type=int, default=0,
                        help="CPU_THREADS of the server; 0: the number of server cores")
    parser.add_argument("--device", default="auto", help="DEVICE of the server")
    parser.add_argument("--index-type", default="exact", choices=("exact", "ivf"))
    parser.add_argument("--ivf-nlist", type=int, default=0, help="IVF_NLIST (0: about 2·sqrt(N))")
    parser.add_argument("--ivf-nprobe", type=int, default=48, help="IVF_NPROBE")
    parser.add_argument("--recall-sessions", type=int, default=2000,
                        help="sessions that measure the served index's recall@10 against exact")
    parser.add_argument("--batch-max-size", type=int, default=32)
    parser.add_argument("--batch-max-wait-s", type=float, default=0.001)
    parser.add_argument("--similar-weight", type=int, default=1,
                        help="GET /similar per 9 POST /recommend")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--loop", default="auto", choices=("auto", "asyncio", "uvloop"),
                        help="uvicorn --loop of the server")
    parser.add_argument("--http", default="auto", choices=("auto", "h11", "httptools"),
                        help="uvicorn --http of the server")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--start-timeout", type=float, default=600.0)
    parser.add_argument("--results", type=Path, default=Path("docs/results"))
    parser.add_argument("--work", type=Path, default=Path("runs/bench-serving"),
                        help="saved levels, locust CSVs, server log")
    parser.add_argument("--fresh", action="store_true", help="measure saved levels again")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.levels = [int(users) for users in args.levels.split(",")]
    args.parts = [part for part in args.parts.split(",") if part]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}")
    if not args.server_threads:
        args.server_threads = core_count(args.server_cores)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    runs = measure(args)
    version = ensure_artifact(args)
    machine = machine_info(server_cores=args.server_cores, client_cores=args.client_cores)
    summary = build_summary(runs, ann_figures(args.results), machine)
    summary["index"] = served_index_recall(args, version)
    config = {**config_key(args, version), "half_peak_arrivals": args.half_peak_arrivals}
    payload = {"summary": summary, "config": config,
               "command": "python -m bench.serving " + " ".join(
                   sys.argv[1:] if argv is None else argv),
               "runs": runs, "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_reports(args.results, payload)
    print(json.dumps({name: value for name, value in summary.items() if name != "machine"},
                     indent=2))


if __name__ == "__main__":
    main()
