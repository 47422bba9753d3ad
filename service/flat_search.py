"""Which of faiss's two flat-search kernels a batch of queries gets, measured on this machine.

An exact (flat) inner-product search of a few queries runs faiss's one-query kernel: each query
scans the table with SIMD inner products. From ``faiss.cvar.distance_compute_blas_threshold``
(queries × D) on, it runs one BLAS matrix product and a top-k instead. The matrix product packs
the whole table on every call, a fixed cost that only a batch of enough queries repays, and how
many depends on the CPU: 3 on session 5's Intel Xeon; 8 on session 8's AMD EPYC, where 3 queries
took 0.69 ms with BLAS against 0.27 ms one by one (Beauty's 12,101 items, D = 128, one core).
faiss's own default (128,000 / D queries) keeps every micro-batch on the one-query kernel.

Both kernels cost time linear in the table's rows, so their crossover hardly depends on the
catalog: it is measured once per process, when the first version loads and before any request is
served (:func:`measured_blas_min_queries`), on a sample of its rows with the threads the searches
will use. Measuring flips faiss's one process-wide setting, so it never happens while another
thread may search: a later version reuses the number.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence

import faiss
import numpy as np

#: Batch sizes compared; a micro-batch holds at most ``BATCH_MAX_SIZE`` (32 by default) queries.
SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
SAMPLE_ROWS = 16384  # rows of the table timed (8 MiB at D = 128)
NEVER = 2**31 - 1  # faiss's threshold is a C int: no batch reaches this, one by one always


_measured: int | None = None
_measuring = threading.Lock()


def measured_blas_min_queries(vectors: np.ndarray) -> int:
    """:func:`blas_min_queries` of the first table this process asked about (see the module
    docstring), the same number for every later call."""
    global _measured
    with _measuring:
        if _measured is None:
            _measured = blas_min_queries(vectors)
        return _measured


def blas_min_queries(vectors: np.ndarray, k: int = 20, repeats: int = 7) -> int:
    """The fewest queries from which the BLAS kernel searches ``vectors [N, D]`` faster than the
    one-query kernel on this machine (:func:`crossover` of their measured costs).

    Each batch size of :data:`SIZES` (queries are rows of the table) is searched ``repeats``
    times by each kernel, the kernels taking turns, and the fastest time of each is kept: the
    minimum is what the kernel costs, the rest is other work of a shared machine."""
    rows = np.ascontiguousarray(vectors[:SAMPLE_ROWS], dtype=np.float32)  # [S, D]
    index = faiss.IndexFlatIP(rows.shape[1])
    index.add(rows)
    step = max(1, len(rows) // SIZES[-1])
    queries = np.ascontiguousarray(rows[::step][:SIZES[-1]])  # [<= 32, D]
    sizes = [size for size in SIZES if size <= len(queries)]
    k = min(k, len(rows))
    saved = faiss.cvar.distance_compute_blas_threshold
    one_by_one, blas = [], []
    try:
        for size in sizes:
            fastest = _fastest([lambda: _set_threshold(NEVER), lambda: _set_threshold(1)],
                               functools.partial(index.search, queries[:size], k), repeats)
            one_by_one.append(fastest[0])
            blas.append(fastest[1])
    finally:
        faiss.cvar.distance_compute_blas_threshold = saved
    return crossover(sizes, one_by_one, blas)


def crossover(sizes: Sequence[int], one_by_one_s: Sequence[float], blas_s: Sequence[float],
              ) -> int:
    """The smallest batch size at which BLAS is cheaper, from costs measured at ``sizes``.

    The one-query kernel costs ``a·B`` for ``B`` queries and the BLAS kernel ``c + e·B`` (the
    packing of the table, then the product); both lines are fitted by least squares, so one
    noisy size does not move the answer much, and BLAS wins from ``B > c / (a - e)``.
    :data:`NEVER` when its cost per query is not lower."""
    size = np.asarray(sizes, dtype=np.float64)
    per_query = float(np.dot(size, one_by_one_s) / np.dot(size, size))  # a
    slope, fixed = np.polyfit(size, np.asarray(blas_s, dtype=np.float64), 1)  # e, c
    if per_query <= slope:
        return NEVER
    return int(min(np.floor(max(fixed, 0.0) / (per_query - slope)) + 1, NEVER))


def use_blas_from(min_queries: int, width: int) -> None:
    """Make flat searches of at least ``min_queries`` queries of width ``width`` use BLAS
    (process-wide: faiss has one setting for every index)."""
    faiss.cvar.distance_compute_blas_threshold = min(max(1, min_queries) * width, NEVER)


def _set_threshold(value: int) -> None:
    faiss.cvar.distance_compute_blas_threshold = value


def _fastest(setups: list[Callable[[], None]], run: Callable[[], object], repeats: int,
             ) -> list[float]:
    """Fewest seconds of ``run`` after each setup, the setups taking turns (one warm-up each)."""
    times: list[list[float]] = [[] for _ in setups]
    for attempt in range(repeats + 1):
        for setup, measured in zip(setups, times, strict=True):
            setup()
            start = time.perf_counter()
            run()
            if attempt:  # the first round warms caches and allocations
                measured.append(time.perf_counter() - start)
    return [min(measured) for measured in times]
