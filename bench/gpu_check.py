"""GPU check: the session encoder and exact top-k search on CUDA, timed against the CPU of the
same machine.

- Encoder: the service's :class:`~service.encoding.QueryEncoder` (an artifact's encoder with
  ``--artifact``, else a randomly initialised one of the default size: d = 64, L = 50, 12,101
  items) over batches of sessions with Beauty-like lengths, on ``cpu`` and ``cuda``.
- Search: top-``k`` by inner product over a synthetic catalog (``bench/catalog_data.py``,
  ``--items``, width 128). With faiss: the service's own index (``service.state.build_index``)
  on the CPU, and on the GPU when faiss has GPU support, exact and IVF, with the index kind the
  service reports. Without faiss (or without its GPU build) the GPU side is timed with torch
  (one matrix product + ``topk``), and the JSON says so (``"gpu_search"``).

Writes ``gpu_check.json`` and ``gpu_check.md`` into ``--results``. It needs only torch and numpy
(faiss when present), so it runs on a bare CUDA machine from the repository root:

    PYTHONPATH=. python3 -m bench.gpu_check --results docs/results
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.catalog_data import recall_at, synthetic_catalog
from bench.machine import machine_info
from model.session_encoder import SessionEncoder
from service.encoding import EncoderInput, QueryEncoder

try:
    import faiss

    HAVE_FAISS = True
except ImportError:  # a bare CUDA machine: time the GPU with torch instead
    HAVE_FAISS = False


def median_ms(run: Callable[[], Any], repeats: int, sync: bool) -> float:
    """Median wall time of ``run`` in ms after two warm-up calls (CUDA synchronised)."""
    for _ in range(2):
        run()
    times = []
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if sync:
            torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - start))
    return float(np.median(times))


def load_encoder(artifact: Path | None) -> SessionEncoder:
    if artifact is not None:
        from model.artifact import load_artifact

        return load_artifact(artifact).encoder
    torch.manual_seed(0)
    return SessionEncoder(num_items=12101, dim=64, max_len=50).eval()


def session_batch(encoder: SessionEncoder, size: int, rng: np.random.Generator,
                  ) -> list[EncoderInput]:
    """``size`` sessions with lengths like live Beauty sessions (median ~4, a tail to ``L``)."""
    sessions = []
    for _ in range(size):
        length = int(min(encoder.max_len, rng.geometric(0.2)))
        ids = rng.integers(1, encoder.num_items + 1, size=length)
        graph = rng.standard_normal((length, encoder.dim)).astype(np.float32)
        sessions.append(EncoderInput(ids, graph if encoder.use_graph_view else None))
    return sessions


def time_encoder(args: argparse.Namespace, devices: Sequence[str]) -> list[dict[str, Any]]:
    encoder = load_encoder(args.artifact)
    rng = np.random.default_rng(0)
    batches = {size: session_batch(encoder, size, rng) for size in args.batch_sizes}
    rows = []
    for device in devices:
        query_encoder = QueryEncoder(encoder, torch.device(device))
        for size, sessions in batches.items():
            ms = median_ms(functools.partial(query_encoder, sessions), args.repeats, False)
            rows.append({"device": device, "batch": size, "ms_per_batch": ms,
                         "ms_per_session": ms / size})
    return rows


def torch_topk(catalog: torch.Tensor, k: int) -> Callable[[np.ndarray], Any]:
    def search(queries: np.ndarray) -> Any:
        scores = torch.from_numpy(queries).to(catalog.device) @ catalog.T  # [B N]
        return torch.topk(scores, k, dim=1).indices.cpu()

    return search


def time_search(args: argparse.Namespace, cuda: bool) -> dict[str, Any]:
    catalog, queries = synthetic_catalog(args.items, 128, args.queries, seed=0)
    k = 10
    searches: dict[str, Callable[[np.ndarray], Any]] = {}
    kinds: dict[str, str] = {}
    keep_alive: list[Any] = []  # GPU indexes and the resources they need
    truth: np.ndarray | None = None
    if HAVE_FAISS:
        from service.state import IndexSpec, build_index

        flat, kind, _ = build_index(catalog, torch.device("cpu"), "off", IndexSpec("exact"))
        searches[f"{kind} exact"] = functools.partial(flat.search, k=k)
        truth = flat.search(queries, k)[1]
    searches["torch-cpu exact"] = torch_topk(torch.from_numpy(catalog), k)
    if truth is None:
        truth = searches["torch-cpu exact"](queries).numpy()
    gpu_search = "none"
    if cuda:
        faiss_gpu = HAVE_FAISS and hasattr(faiss, "StandardGpuResources")
        if faiss_gpu:
            for spec in (IndexSpec("exact"), IndexSpec("ivf")):
                index, kind, resources = build_index(catalog, torch.device("cuda"), "auto", spec)
                kinds[spec.type] = kind
                searches[f"{kind} {spec.type}"] = functools.partial(index.search, k=k)
                keep_alive.append((index, resources))
            gpu_search = "faiss-gpu"
        else:
            searches["torch-cuda exact"] = torch_topk(torch.from_numpy(catalog).cuda(), k)
            gpu_search = "torch (faiss has no GPU support here)"
    rows = []
    for name, search in searches.items():
        found = search(queries)
        labels = found[1] if isinstance(found, tuple) else found.numpy()
        sync = cuda and ("cuda" in name or "gpu" in name)
        for size in (1, args.search_batch):
            ms = median_ms(functools.partial(search, queries[:size]), args.repeats, sync)
            rows.append({"search": name, "batch": size, "ms_per_batch": ms,
                         "ms_per_query": ms / size,
                         "recall_at_10": recall_at(np.asarray(labels), truth, k)})
    return {"items": args.items, "gpu_search": gpu_search, "service_index_kind": kinds,
            "rows": rows}


def markdown(payload: dict[str, Any]) -> str:
    machine = payload["machine"]
    lines = ["# GPU check", "",
             f"Generated by `{payload['command']}` on {machine['device']} "
             f"({machine['cores']} CPU cores, {machine['cpu']}; torch {machine['torch']}, faiss "
             f"{machine['faiss'] or 'not installed'}). CUDA available: "
             f"{'yes' if payload['cuda'] else '**no**'}. Medians of {payload['repeats']} runs.",
             "", "## Session encoder (`QueryEncoder`)", "",
             "| device | sessions per batch | ms per batch | ms per session |", "|---|---|---|---|"]
    for row in payload["encoder"]:
        lines.append(f"| {row['device']} | {row['batch']} | {row['ms_per_batch']:.2f} | "
                     f"{row['ms_per_session']:.3f} |")
    search = payload["search"]
    lines += ["", f"## Top-10 search over {search['items']:,} items (width 128)", "",
              f"GPU search with: {search['gpu_search']}. Index kinds the service builds on "
              f"CUDA: {search['service_index_kind'] or '–'}.", "",
              "| search | queries per call | ms per call | ms per query | recall@10 |",
              "|---|---|---|---|---|"]
    for row in search["rows"]:
        lines.append(f"| {row['search']} | {row['batch']} | {row['ms_per_batch']:.3f} | "
                     f"{row['ms_per_query']:.4f} | {row['recall_at_10']:.3f} |")
    return "\n".join(lines) + "\n"


def _ints(text: str) -> list[int]:
    return [int(value) for value in text.split(",") if value]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, default=None, help="an artifact version dir")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--batch-sizes", type=_ints, default=_ints("1,8,32,128"))
    parser.add_argument("--search-batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--results", type=Path, default=Path("docs/results"))
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    devices = ["cpu", "cuda"] if cuda else ["cpu"]
    payload = {"cuda": cuda, "repeats": args.repeats,
               "command": "python -m bench.gpu_check " + " ".join(
                   sys.argv[1:] if argv is None else argv),
               "machine": machine_info(), "encoder": time_encoder(args, devices),
               "search": time_search(args, cuda),
               "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "gpu_check.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.results / "gpu_check.md").write_text(markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()
