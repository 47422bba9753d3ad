"""Catalog scale: exact against approximate FAISS search over a synthetic 1,000,000-item catalog.

The catalog (``bench/catalog_data.py``) has the structure of real item embeddings: clusters
within categories, a decaying spectrum, log-normal norms, queries mixing two clusters; it is
calibrated against the trained Beauty model. Exact search (``IndexFlatIP``) is the ground truth;
the approximate index is the one the service builds with ``INDEX_TYPE=ivf``
(``service.state.build_index``: spherical k-means into ``nlist`` inverted lists, ``nprobe`` of
them scanned per query), swept over ``nprobe``; HNSW (``IndexHNSWFlat``, swept over
``efSearch``) is measured beside it for comparison (``--no-hnsw`` skips it).

For each index: build time, memory (serialized size), recall@10 against exact search, and search
time per query, one query at a time (a product page) and in batches of ``--batch`` (micro-batched
requests). ``summary`` reports the service's defaults (``IVF_NLIST`` auto, ``IVF_NPROBE``) unless
``--nprobe`` says otherwise. Each part is saved in ``--work`` and reused by a later run with the
same configuration (``--fresh`` to measure again).

    python -m bench.catalog_scale                         # 1M items, 1 thread (about 10 min)
    python -m bench.catalog_scale --items 50000 --results /tmp/smoke   # smoke
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch

from bench.catalog_data import recall_at, synthetic_catalog
from bench.machine import machine_info
from service.state import IndexSpec, build_index

log = logging.getLogger("bench.catalog_scale")

RECALL_TARGET = 0.95
SPEEDUP_TARGET = 5.0


def time_search(search: Callable[[np.ndarray], Any], queries: np.ndarray, batch: int,
                single: int) -> dict[str, float]:
    """Median (and p99) milliseconds per query: ``single`` queries one at a time, then all
    queries in batches of ``batch``."""
    search(queries[:1])  # warm up
    one = []
    for row in range(min(single, len(queries))):
        start = time.perf_counter()
        search(queries[row:row + 1])
        one.append(1000 * (time.perf_counter() - start))
    batched = []
    for start_row in range(0, len(queries) - batch + 1, batch):
        start = time.perf_counter()
        search(queries[start_row:start_row + batch])
        batched.append(1000 * (time.perf_counter() - start) / batch)
    return {"single_ms": float(np.median(one)), "single_p99_ms": float(np.percentile(one, 99)),
            "batched_ms": float(np.median(batched)) if batched else float("nan")}


def index_bytes(index: Any) -> int:
    return int(faiss.serialize_index(index).nbytes)


class Parts:
    """Saved parts of one configuration under ``work``."""

    def __init__(self, work: Path, key: dict[str, Any], fresh: bool) -> None:
        self.work, self.key, self.fresh = work, key, fresh
        work.mkdir(parents=True, exist_ok=True)

    def get(self, name: str) -> dict[str, Any] | None:
        path = self.work / f"{name}.json"
        if self.fresh or not path.exists():
            return None
        record: dict[str, Any] = json.loads(path.read_text())
        return record["result"] if record.get("key") == self.key else None

    def put(self, name: str, result: dict[str, Any]) -> dict[str, Any]:
        (self.work / f"{name}.json").write_text(json.dumps({"key": self.key, "result": result},
                                                           indent=2))
        return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    key = {"items": args.items, "dim": args.dim, "queries": args.queries, "seed": args.seed,
           "threads": args.threads, "batch": args.batch, "single": args.single}
    parts = Parts(args.work, key, args.fresh)
    log.info("catalog: %d × %d, %d queries", args.items, args.dim, args.queries)
    catalog, queries = synthetic_catalog(args.items, args.dim, args.queries, args.seed)
    k = 10

    exact = parts.get("exact")
    truth_path = args.work / "truth.npy"
    if exact is None or not truth_path.exists():
        start = time.perf_counter()
        flat, _, _ = build_index(catalog, torch.device("cpu"), "off", IndexSpec("exact"))
        build_s = time.perf_counter() - start
        _, truth = flat.search(queries, k)
        np.save(truth_path, truth)
        exact = parts.put("exact", {"index": "IndexFlatIP", "build_s": build_s,
                                    "bytes": index_bytes(flat),
                                    **time_search(lambda q: flat.search(q, k), queries,
                                                  args.batch, args.single)})
        del flat
    truth = np.load(truth_path)
    log.info("exact: %.2f ms/query single, %.3f batched", exact["single_ms"], exact["batched_ms"])

    spec = IndexSpec("ivf", args.nlist, args.nprobe or IndexSpec().nprobe)
    nlist = spec.lists_for(args.items)
    ivf = parts.get(f"ivf-{nlist}")
    if ivf is None:
        start = time.perf_counter()
        index, kind, _ = build_index(catalog, torch.device("cpu"), "off", spec)
        build_s = time.perf_counter() - start
        sweep = []
        for nprobe in sorted({*args.nprobes, spec.nprobe}):
            if nprobe > nlist:
                continue
            index.nprobe = nprobe
            _, found = index.search(queries, k)
            sweep.append({"nprobe": nprobe, "recall_at_10": recall_at(found, truth, k),
                          **time_search(lambda q: index.search(q, k), queries, args.batch,
                                        args.single)})
            log.info("ivf nlist=%d nprobe=%d: recall %.3f, %.3f ms/query", nlist, nprobe,
                     sweep[-1]["recall_at_10"], sweep[-1]["single_ms"])
        ivf = parts.put(f"ivf-{nlist}", {"index": f"IVF{nlist},Flat (IP)", "kind": kind,
                                         "nlist": nlist, "build_s": build_s,
                                         "bytes": index_bytes(index), "sweep": sweep})
        del index

    hnsw = None
    if args.hnsw:
        hnsw = parts.get(f"hnsw-{args.hnsw_m}")
        if hnsw is None:
            start = time.perf_counter()
            index = faiss.IndexHNSWFlat(args.dim, args.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = args.hnsw_ef_construction
            index.add(catalog)
            build_s = time.perf_counter() - start
            sweep = []
            for ef in args.hnsw_ef:
                index.hnsw.efSearch = ef
                _, found = index.search(queries, k)
                sweep.append({"ef_search": ef, "recall_at_10": recall_at(found, truth, k),
                              **time_search(lambda q: index.search(q, k), queries, args.batch,
                                            args.single)})
                log.info("hnsw M=%d ef=%d: recall %.3f, %.3f ms/query", args.hnsw_m, ef,
                         sweep[-1]["recall_at_10"], sweep[-1]["single_ms"])
            hnsw = parts.put(f"hnsw-{args.hnsw_m}", {
                "index": f"HNSW{args.hnsw_m},Flat (IP)", "m": args.hnsw_m,
                "ef_construction": args.hnsw_ef_construction, "build_s": build_s,
                "bytes": index_bytes(index), "sweep": sweep})
            del index

    chosen = next(row for row in ivf["sweep"] if row["nprobe"] == spec.nprobe)
    tuned = next((row for row in ivf["sweep"] if row["recall_at_10"] >= RECALL_TARGET), None)
    summary = {
        "items": args.items, "dim": args.dim, "queries": args.queries,
        "index": f"{ivf['index']} nprobe={spec.nprobe}",
        "recall_at_10": chosen["recall_at_10"],
        "exact_single_ms": exact["single_ms"], "ann_single_ms": chosen["single_ms"],
        "speedup_single": exact["single_ms"] / chosen["single_ms"],
        "exact_batched_ms": exact["batched_ms"], "ann_batched_ms": chosen["batched_ms"],
        "speedup_batched": exact["batched_ms"] / chosen["batched_ms"],
        "exact_build_s": exact["build_s"], "ann_build_s": ivf["build_s"],
        "exact_bytes": exact["bytes"], "ann_bytes": ivf["bytes"],
        "smallest_nprobe_reaching_target": None if tuned is None else tuned["nprobe"],
        "targets": {"recall_at_least_0.95": chosen["recall_at_10"] >= RECALL_TARGET,
                    "single_query_5x_faster": exact["single_ms"] / chosen["single_ms"]
                    >= SPEEDUP_TARGET},
        "machine": machine_info(threads=args.threads,
                                affinity=sorted(os.sched_getaffinity(0))),
    }
    return {"summary": summary, "exact": exact, "ivf": ivf, "hnsw": hnsw,
            "command": "python -m bench.catalog_scale " + " ".join(args.argv),
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def markdown(payload: dict[str, Any]) -> str:
    summary, exact, ivf, hnsw = (payload[name] for name in ("summary", "exact", "ivf", "hnsw"))
    machine = summary["machine"]
    mib = 2 ** 20
    lines = [
        f"# Catalog scale: {summary['items']:,} items", "",
        f"Generated by `{payload['command']}`: a synthetic catalog of {summary['items']:,} "
        f"float32 vectors of width {summary['dim']} (clusters within categories, decaying "
        f"spectrum, log-normal norms), {summary['queries']} queries mixing two clusters; top-10 "
        f"by inner product. {machine['threads']} search thread(s), cores "
        f"{machine['affinity']} of {machine['cores']} ({machine['cpu']}). Latencies are medians "
        "per query: one query per call, and in batches (micro-batched requests).", "",
        "## Summary (the service's `INDEX_TYPE=ivf` defaults)", "",
        "| | exact (`IndexFlatIP`) | " + summary["index"] + " |", "|---|---|---|",
        f"| recall@10 against exact | 1 | **{summary['recall_at_10']:.3f}** (target ≥ 0.95: "
        f"{'yes' if summary['targets']['recall_at_least_0.95'] else '**no**'}) |",
        f"| ms per query, one at a time | {summary['exact_single_ms']:.3f} | "
        f"{summary['ann_single_ms']:.3f} (**{summary['speedup_single']:.1f}×** faster; target "
        f"≥ 5×: {'yes' if summary['targets']['single_query_5x_faster'] else '**no**'}) |",
        f"| ms per query, batched | {summary['exact_batched_ms']:.3f} | "
        f"{summary['ann_batched_ms']:.3f} ({summary['speedup_batched']:.1f}× faster) |",
        f"| build time | {summary['exact_build_s']:.1f} s | {summary['ann_build_s']:.1f} s |",
        f"| memory (serialized index) | {summary['exact_bytes'] / mib:.0f} MiB | "
        f"{summary['ann_bytes'] / mib:.0f} MiB |", "",
        f"Smallest `nprobe` reaching recall@10 ≥ {RECALL_TARGET}: "
        f"{summary['smallest_nprobe_reaching_target']} (of {ivf['nlist']} lists).", "",
        f"## IVF, nlist = {ivf['nlist']}: the nprobe sweep", "",
        "| nprobe | recall@10 | ms/query single | p99 single | ms/query batched | speed-up "
        "single |", "|---|---|---|---|---|---|"]
    for row in ivf["sweep"]:
        lines.append(f"| {row['nprobe']} | {row['recall_at_10']:.3f} | {row['single_ms']:.3f} | "
                     f"{row['single_p99_ms']:.3f} | {row['batched_ms']:.3f} | "
                     f"{exact['single_ms'] / row['single_ms']:.1f}× |")
    if hnsw is not None:
        lines += ["", f"## HNSW, M = {hnsw['m']} (efConstruction {hnsw['ef_construction']}): "
                  f"built in {hnsw['build_s']:.0f} s, {hnsw['bytes'] / mib:.0f} MiB", "",
                  "| efSearch | recall@10 | ms/query single | ms/query batched | speed-up single |",
                  "|---|---|---|---|---|"]
        for row in hnsw["sweep"]:
            lines.append(f"| {row['ef_search']} | {row['recall_at_10']:.3f} | "
                         f"{row['single_ms']:.3f} | {row['batched_ms']:.3f} | "
                         f"{exact['single_ms'] / row['single_ms']:.1f}× |")
    lines += ["", "Why IVF in the service: with inner-product (maximum inner product) search, "
              "HNSW's recall levels off as efSearch grows (compare the tables), while IVF reaches "
              "any recall by scanning more lists; IVF runs on the GPU too (`faiss-gpu` has IVF, "
              "not HNSW); and its one knob (`IVF_NPROBE`) trades recall for time predictably.",
              "",
              "![recall against time per query](catalog_scale.png)", ""]
    return "\n".join(lines)


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    ivf = payload["ivf"]["sweep"]
    axis.plot([r["single_ms"] for r in ivf], [r["recall_at_10"] for r in ivf], "o-",
              label=f"IVF{payload['ivf']['nlist']} (labels: nprobe)")
    for row in ivf:
        axis.annotate(str(row["nprobe"]), (row["single_ms"], row["recall_at_10"]), fontsize=7,
                      textcoords="offset points", xytext=(3, -9))
    if payload["hnsw"] is not None:
        rows = payload["hnsw"]["sweep"]
        axis.plot([r["single_ms"] for r in rows], [r["recall_at_10"] for r in rows], "s-",
                  label=f"HNSW{payload['hnsw']['m']} (efSearch)")
    axis.axvline(payload["exact"]["single_ms"], color="tab:gray", linestyle="--",
                 label="exact search")
    axis.axhline(RECALL_TARGET, color="tab:red", linestyle=":", linewidth=0.8)
    axis.set_xscale("log")
    axis.set_xlabel("ms per query (one at a time)")
    axis.set_ylabel("recall@10 against exact")
    axis.set_title(f"{payload['summary']['items']:,} items, width {payload['summary']['dim']}")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _ints(text: str) -> list[int]:
    return [int(value) for value in text.split(",") if value]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128, help="the fused width 2d")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--single", type=int, default=200, help="queries timed one at a time")
    parser.add_argument("--batch", type=int, default=32, help="queries per batched call")
    parser.add_argument("--nlist", type=int, default=0, help="IVF lists; 0: the service's auto")
    parser.add_argument("--nprobe", type=int, default=0,
                        help="nprobe of the summary; 0: the service's IVF_NPROBE default")
    parser.add_argument("--nprobes", type=_ints, default=_ints("1,2,4,8,16,32,64,128"))
    parser.add_argument("--hnsw", action=argparse.BooleanOptionalAction, default=True,
                        help="also build and sweep HNSW, for comparison")
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--hnsw-ef-construction", type=int, default=64)
    parser.add_argument("--hnsw-ef", type=_ints, default=_ints("16,32,64,128"))
    parser.add_argument("--threads", type=int, default=1, help="FAISS/torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=Path("docs/results"))
    parser.add_argument("--work", type=Path, default=Path("runs/bench-catalog"))
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    payload = run(args)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "catalog_scale.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.results / "catalog_scale.md").write_text(markdown(payload))
    plot(payload, args.results / "catalog_scale.png")
    print(json.dumps({name: value for name, value in payload["summary"].items()
                      if name != "machine"}, indent=2))


if __name__ == "__main__":
    main()
