"""Everything one model version needs to answer requests, built completely before it is served.

A :class:`ServingState` is immutable; a new version is served by building a new one and swapping
one reference (see :mod:`service.runtime`), and every request reads that reference once, so no
response mixes two versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import torch

from model.artifact import Artifact
from service.encoding import QueryEncoder


@dataclass(frozen=True)
class ServingState:
    name: str
    version: str
    item_ids: list[str]  # [N+1] internal index → external id, "" at 0
    item_index: dict[str, int]  # external id → internal index 1..N
    encoder: QueryEncoder
    index: Any  # faiss index over fused rows 1..N: label j is item j + 1
    index_kind: str  # "faiss-cpu" or "faiss-gpu"
    gpu_resources: Any  # faiss.StandardGpuResources kept alive with a GPU index, else None
    fused: np.ndarray  # [N+1, D] float32
    popular: np.ndarray  # [N] item indices by training count, most popular first
    popularity: np.ndarray  # [N+1] training counts
    graph_view: bool
    dim: int  # d, the width of one graph-view row
    local_graph: np.ndarray | None  # [N+1, d] copy of the graph rows for Redis outages, or None

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
        indices ``[B, k]`` (0 where fewer than ``k`` items exist)."""
        k = min(k, self.num_items)
        scores, labels = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores, np.where(labels >= 0, labels + 1, 0)


def build_state(artifact: Artifact, name: str, device: torch.device,
                faiss_gpu: str = "auto", local_copy_max_bytes: int = 0) -> ServingState:
    """Move the encoder to ``device`` and index the fused item embeddings (rows ``1..N``); keep
    the artifact's graph rows in process when they take at most ``local_copy_max_bytes``."""
    index, kind, resources = build_index(artifact.fused_item_emb[1:], device, faiss_gpu)
    popularity = np.asarray(artifact.popularity)
    popular = np.argsort(-popularity[1:], kind="stable") + 1
    graph = artifact.graph_item_emb
    return ServingState(
        name=name, version=artifact.version, item_ids=artifact.item_ids,
        item_index=artifact.item_index(), encoder=QueryEncoder(artifact.encoder, device),
        index=index, index_kind=kind, gpu_resources=resources, fused=artifact.fused_item_emb,
        popular=popular, popularity=popularity, graph_view=graph is not None,
        dim=0 if graph is None else int(graph.shape[1]),
        local_graph=graph if graph is not None and graph.nbytes <= local_copy_max_bytes else None)


def build_index(vectors: np.ndarray, device: torch.device, faiss_gpu: str,
                ) -> tuple[Any, str, Any]:
    """Exact inner-product index over ``vectors [N, D]``: on the GPU when faiss was built with
    GPU support, a GPU is visible and ``device`` is CUDA; on the CPU otherwise. Returns the index,
    its kind and the GPU resources it needs (``None`` on the CPU)."""
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    gpu_ready = (faiss_gpu == "auto" and device.type == "cuda"
                 and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0)
    if not gpu_ready:
        return index, "faiss-cpu", None
    resources = faiss.StandardGpuResources()
    return faiss.index_cpu_to_gpu(resources, device.index or 0, index), "faiss-gpu", resources
