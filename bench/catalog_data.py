"""The synthetic catalog of the scale benchmarks (numpy only, so ``bench/gpu_check.py`` runs
where faiss is missing).

Item vectors are float32 of the model's fused width (``2d`` = 128) with the structure real
embeddings have, not uniform noise: categories of clusters of 500 items (items scattered around
their cluster centre), a decaying spectrum across dimensions, and log-normal norms (popular items
score higher against everything; coefficient of variation 0.25, as the trained Beauty model's
fused item embeddings). Queries mix two clusters' centres plus noise, like a session that spans
two interests. The noise levels were set so that at the size of Beauty (12,101 items) IVF's recall
against nprobe follows what the trained Beauty model gives for real sessions, a little lower.
"""

from __future__ import annotations

import numpy as np


def synthetic_catalog(items: int, dim: int, queries: int, seed: int = 0,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``items [N, dim]`` and ``queries [Q, dim]`` float32 with cluster structure (see the module
    docstring); generated in chunks, so the peak is about the catalog itself."""
    rng = np.random.default_rng(seed)
    clusters = max(8, items // 500)
    categories = max(2, clusters // 20)
    spectrum = (1.0 + np.arange(dim)) ** -0.5
    spectrum = (spectrum / np.sqrt((spectrum ** 2).mean())).astype(np.float32)  # [dim]
    category_centres = rng.standard_normal((categories, dim)).astype(np.float32)
    centres = (category_centres[rng.integers(categories, size=clusters)]
               + rng.standard_normal((clusters, dim)).astype(np.float32))  # [C dim]
    catalog = np.empty((items, dim), dtype=np.float32)
    chunk = 100_000
    for start in range(0, items, chunk):
        count = min(chunk, items - start)
        members = rng.integers(clusters, size=count)
        block = centres[members] + 0.5 * rng.standard_normal((count, dim), dtype=np.float32)
        scale = rng.lognormal(0.0, 0.25, size=(count, 1)).astype(np.float32)
        catalog[start:start + count] = block * spectrum * scale / np.sqrt(dim)
    first, second = rng.integers(clusters, size=queries), rng.integers(clusters, size=queries)
    mix = rng.uniform(0.7, 1.0, size=(queries, 1)).astype(np.float32)
    query = (mix * centres[first] + (1 - mix) * centres[second]
             + 0.3 * rng.standard_normal((queries, dim), dtype=np.float32))
    return catalog, (query * spectrum / np.sqrt(dim)).astype(np.float32)


def recall_at(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean share of the true top-``k`` found in the approximate top-``k``."""
    hits = sum(len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth,
                                                                                 strict=True))
    return hits / (k * len(truth))
