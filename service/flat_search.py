"""Which of faiss's two flat-search kernels a batch of queries gets, measured on this machine.

An exact (flat) inner-product search of a few queries runs faiss's one-query kernel: each query
scans the table with SIMD inner products. From ``faiss.cvar.distance_compute_blas_threshold``
(queries × D) on, it runs one BLAS matrix product and a top-k instead. The matrix product packs
the whole table on every call, a fixed cost that only a batch of enough queries repays, and how
many depends on the CPU: 3 on session 5's Intel Xeon; 8 on session 8's AMD EPYC, where 3 queries
took 0.69 ms with BLAS against 0.27 ms one by one (Beauty's 12,101 items, D = 128, one core).
faiss's own default (128,000 / D queries) keeps every micro-batch on the one-query kernel.

Both kernels cost time linear in the table's rows, so their crossover hardly depends on the
catalog's size: it is measured once per version on a sample of the rows
(:func:`blas_min_queries`), with the threads the searches will use.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence

import faiss
import numpy as np

#: Batch sizes compared; a micro-batch holds at most ``BATCH_MAX_SIZE`` (32 by default) queries.
SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
SAMPLE_ROWS = 16384  # rows of the table timed (8 MiB at D = 128)
NEVER = 1 << 30  # a threshold no batch reaches: the one-query kernel always


def blas_min_queries(vectors: np.ndarray, k: int = 20, repeats: int = 5) -> int:
    """The fewest queries from which the BLAS kernel searches ``vectors [N, D]`` faster than the
    one-query kernel, at that size and at every larger size of :data:`SIZES` (``SIZES[-1] + 1``
    when it is slower even at the largest). Queries are rows of the table; each size is timed
    ``repeats`` times per kernel, the kernels alternating, and the medians compared."""
    rows = np.ascontiguousarray(vectors[:SAMPLE_ROWS], dtype=np.float32)  # [S, D]
    width = rows.shape[1]
    index = faiss.IndexFlatIP(width)
    index.add(rows)
    step = max(1, len(rows) // SIZES[-1])
    queries = np.ascontiguousarray(rows[::step][:SIZES[-1]])  # [<= 32, D]
    k = min(k, len(rows))
    saved = faiss.cvar.distance_compute_blas_threshold
    blas_faster = []
    try:
        for size in SIZES:
            batch = queries[:size]
            if len(batch) < size:
                break
            one_by_one, blas = _medians(
                [lambda: _set_threshold(NEVER), lambda: _set_threshold(1)],
                functools.partial(index.search, batch, k), repeats)
            blas_faster.append(blas < one_by_one)
    finally:
        faiss.cvar.distance_compute_blas_threshold = saved
    return crossover(SIZES[:len(blas_faster)], blas_faster)


def crossover(sizes: Sequence[int], blas_faster: Sequence[bool]) -> int:
    """The smallest of ``sizes`` (ascending) from which BLAS was faster at every size measured,
    ``sizes[-1] + 1`` when it lost at the largest."""
    threshold = sizes[-1] + 1
    for size, faster in zip(reversed(sizes), reversed(blas_faster), strict=True):
        if not faster:
            break
        threshold = size
    return threshold


def use_blas_from(min_queries: int, width: int) -> None:
    """Make flat searches of at least ``min_queries`` queries of width ``width`` use BLAS
    (process-wide: faiss has one setting for every index)."""
    faiss.cvar.distance_compute_blas_threshold = max(1, min_queries) * width


def _set_threshold(value: int) -> None:
    faiss.cvar.distance_compute_blas_threshold = value


def _medians(setups: list[Callable[[], None]], run: Callable[[], object], repeats: int,
             ) -> list[float]:
    """Median seconds of ``run`` after each setup, the setups taking turns (one warm-up each)."""
    times: list[list[float]] = [[] for _ in setups]
    for attempt in range(repeats + 1):
        for setup, measured in zip(setups, times, strict=True):
            setup()
            start = time.perf_counter()
            run()
            if attempt:  # the first round warms caches and allocations
                measured.append(time.perf_counter() - start)
    return [float(np.median(measured)) for measured in times]
