"""Everything one model version needs to answer requests, built completely before it is served.

A :class:`ServingState` is immutable; a new version is served by building a new one and swapping
one reference (see :mod:`service.runtime`), and every request reads that reference once, so no
response mixes two versions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import faiss
import numpy as np
import torch

from model.artifact import Artifact
from service.encoding import QueryEncoder
from service.flat_search import measured_blas_min_queries, use_blas_from


@dataclass(frozen=True)
class ServingState:
    name: str
    version: str
    item_ids: list[str]  # [N+1] internal index → external id, "" at 0
    item_index: dict[str, int]  # external id → internal index 1..N
    encoder: QueryEncoder
    index: Any  # faiss index over fused rows 1..N: label j is item j + 1
    index_kind: str  # "faiss-cpu", "faiss-gpu", "faiss-cpu-ivf" or "faiss-gpu-ivf"
    gpu_resources: Any  # faiss.StandardGpuResources kept alive with a GPU index, else None
    fused: np.ndarray  # [N+1, D] float32
    popular: np.ndarray  # [N] item indices by training count, most popular first
    popularity: np.ndarray  # [N+1] training counts
    graph_view: bool
    dim: int  # d, the width of one graph-view row
    local_graph: np.ndarray | None  # [N+1, d] copy of the graph rows for Redis outages, or None
    search_threads: int = 0  # FAISS (OpenMP) threads of a search; 0: the library's default
    blas_min_queries: int = 0  # an exact CPU search of this many queries uses BLAS (0: not exact)

    @property
    def needs_store(self) -> bool:
        """Whether answering from the model needs Redis (graph view without a local copy)."""
        return self.graph_view and self.local_graph is None

    @property
    def num_items(self) -> int:
        return len(self.item_ids) - 1

    @property
    def max_len(self) -> int:
        return self.encoder.max_len

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items by inner product for ``queries [B, D]``: scores ``[B, k]`` and internal
        indices ``[B, k]`` (0 where fewer than ``k`` items exist, or an IVF index found fewer in the
        lists it searched)."""
        k = min(k, self.num_items, GPU_MAX_K if self.gpu_resources is not None else k)
        if self.search_threads:
            # OpenMP's thread count is per calling thread, and requests search from worker threads
            faiss.omp_set_num_threads(self.search_threads)
        scores, labels = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores, np.where(labels >= 0, labels + 1, 0)


def build_state(artifact: Artifact, name: str, device: torch.device,
                faiss_gpu: str = "auto", local_copy_max_bytes: int = 0,
                index_spec: IndexSpec | None = None, search_threads: int = 0) -> ServingState:
    """Move the encoder to ``device`` and index the fused item embeddings (rows ``1..N``); keep
    the artifact's graph rows in process when they take at most ``local_copy_max_bytes``;
    searches use ``search_threads`` OpenMP threads (0: the library's default). An exact CPU
    index gets the batch size from which its searches use BLAS: ``index_spec.blas_min_queries``,
    or measured on this machine (once per process) when that is 0 (:mod:`service.flat_search`)."""
    spec = index_spec or IndexSpec()
    if search_threads:
        faiss.omp_set_num_threads(search_threads)  # this thread's: build and measure as served
    vectors = artifact.fused_item_emb[1:]  # [N, D]
    index, kind, resources = build_index(vectors, device, faiss_gpu, spec)
    blas_from = 0
    if kind == "faiss-cpu":
        blas_from = spec.blas_min_queries or measured_blas_min_queries(vectors)
        use_blas_from(blas_from, vectors.shape[1])
    popularity = np.asarray(artifact.popularity)
    popular = np.argsort(-popularity[1:], kind="stable") + 1
    graph = artifact.graph_item_emb
    return ServingState(
        name=name, version=artifact.version, item_ids=artifact.item_ids,
        item_index=artifact.item_index(), encoder=QueryEncoder(artifact.encoder, device),
        index=index, index_kind=kind, gpu_resources=resources, fused=artifact.fused_item_emb,
        popular=popular, popularity=popularity, graph_view=graph is not None,
        dim=0 if graph is None else int(graph.shape[1]),
        local_graph=graph if graph is not None and graph.nbytes <= local_copy_max_bytes else None,
        search_threads=search_threads, blas_min_queries=blas_from)


@dataclass(frozen=True)
class IndexSpec:
    """Which FAISS index serves the fused item embeddings (``INDEX_TYPE``, ``IVF_NLIST``,
    ``IVF_NPROBE``, ``BLAS_MIN_QUERIES``).

    ``exact`` is a flat inner-product search: the model's own ranking, cost linear in ``N``.
    ``ivf`` clusters the items into ``nlist`` inverted lists (spherical k-means on a sample) and
    scans the ``nprobe`` lists nearest to each query: approximate, for catalogs where the exact
    search dominates the request (``bench/catalog_scale.py`` measures recall and speed). It runs on
    the GPU too, unlike HNSW.
    """

    type: Literal["exact", "ivf"] = "exact"
    nlist: int = 0  # 0: about 2·sqrt(N), at most N / 39 (faiss wants 39 training points a list)
    nprobe: int = 48  # tuned with bench/catalog_scale.py (docs/results/catalog_scale.md)
    blas_min_queries: int = 0  # exact on the CPU: BLAS from this many queries; 0: measured

    def lists_for(self, num_items: int) -> int:
        """The number of inverted lists for a catalog of ``num_items``."""
        if self.nlist:
            return max(1, min(self.nlist, num_items))
        return max(1, min(round(2 * math.sqrt(num_items)), num_items // 39))


GPU_MAX_K = 2048  # the largest k a faiss GPU index answers
IVF_TRAIN_POINTS_PER_LIST = 128  # k-means sample: this many items per list (faiss default 256)


def build_index(vectors: np.ndarray, device: torch.device, faiss_gpu: str,
                spec: IndexSpec | None = None) -> tuple[Any, str, Any]:
    """Inner-product index over ``vectors [N, D]`` as ``spec`` says: on the GPU when faiss was
    built with GPU support, a GPU is visible and ``device`` is CUDA; on the CPU otherwise. Returns
    the index, its kind and the GPU resources it needs (``None`` on the CPU)."""
    spec = spec or IndexSpec()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    num_items, width = vectors.shape
    index: Any
    if spec.type == "exact":
        index = faiss.IndexFlatIP(width)
        suffix = ""
    else:
        nlist = spec.lists_for(num_items)
        quantizer = faiss.IndexFlatIP(width)
        index = faiss.IndexIVFFlat(quantizer, width, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.max_points_per_centroid = IVF_TRAIN_POINTS_PER_LIST
        index.cp.seed = 1234
        index.train(vectors)
        index.nprobe = min(spec.nprobe, nlist)
        suffix = "-ivf"
    index.add(vectors)
    gpu_ready = (faiss_gpu == "auto" and device.type == "cuda"
                 and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0)
    if not gpu_ready:
        return index, f"faiss-cpu{suffix}", None
    resources = faiss.StandardGpuResources()
    gpu_index = faiss.index_cpu_to_gpu(resources, device.index or 0, index)
    if spec.type == "ivf":
        faiss.GpuParameterSpace().set_index_parameter(gpu_index, "nprobe", index.nprobe)
    return gpu_index, f"faiss-gpu{suffix}", resources
