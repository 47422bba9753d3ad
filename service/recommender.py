"""Recommendation logic, independent of HTTP: external ids in, ranked external ids out.

Per batch of sessions: map external ids, fetch the graph-view rows of every item the encoder will
read in one store round trip, encode all sessions in one call, search the index once with room for
the items to exclude, then drop excluded items and keep ``k``. Sessions with no known item get the
popularity ranking instead.

The rows of a version never change, so when the state holds an in-process copy of them (a table
of at most ``LOCAL_COPY_MAX_BYTES``) they are read there, and a Redis outage does not touch the
model path; a larger table is read from the store, whose errors propagate (a 503 upstream) to the
sessions that needed the store only when asked (:func:`answer_each`, used by micro-batching).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from service.encoding import EncoderInput
from service.state import ServingState
from service.store import ROW_DTYPE, EmbeddingStore, StoreUnavailable, VersionStateError

ItemId = str | int
Strategy = Literal["model", "popular"]
StoreError = StoreUnavailable | VersionStateError


@dataclass(frozen=True)
class Query:
    session: Sequence[ItemId]  # oldest first, external ids
    k: int
    exclude_seen: bool = True
    exclude: Sequence[ItemId] = ()


@dataclass(frozen=True)
class SimilarQuery:
    item: str  # external id
    k: int


SimilarItems = list[tuple[str, float]]  # (external id, score), best first


@dataclass(frozen=True)
class Result:
    items: list[tuple[str, float]]  # (external id, score), best first
    strategy: Strategy
    ignored: list[ItemId] = field(default_factory=list)


def recommend(state: ServingState, store: EmbeddingStore, queries: Sequence[Query],
              ) -> list[Result]:
    """Answer every query against one state (one model version); a store failure raises."""
    answers = answer_each(state, store, queries)
    for answer in answers:
        if isinstance(answer, Exception):
            raise answer
    return [answer for answer in answers if not isinstance(answer, Exception)]


def answer_each(state: ServingState, store: EmbeddingStore, queries: Sequence[Query],
                ) -> list[Result | StoreError]:
    """:func:`recommend`, except that a store failure is returned in place of each answer that
    needed the store, so the popularity answers of the same batch still come back."""
    known: list[list[int]] = []
    ignored: list[list[ItemId]] = []
    for query in queries:
        indices, unknown = map_items(state, query.session)
        known.append(indices)
        ignored.append(unknown)
    excluded = [_excluded(state, query, indices) for query, indices in zip(queries, known,
                                                                         strict=True)]
    answers: list[Result | StoreError | None] = [None] * len(queries)
    model_rows = [row for row, indices in enumerate(known) if indices]
    if model_rows:
        tails = [np.asarray(known[row][-state.max_len:], dtype=np.int64) for row in model_rows]
        try:
            graph = fetch_graph_rows(state, store, tails)
        except (StoreUnavailable, VersionStateError) as error:
            for row in model_rows:
                answers[row] = error
        else:
            vectors = state.encoder([EncoderInput(tail, rows)
                                     for tail, rows in zip(tails, graph, strict=True)])
            width = max(queries[row].k + len(excluded[row]) for row in model_rows)
            scores, labels = state.search(np.stack(vectors), width)  # [B width] each
            for position, row in enumerate(model_rows):
                items = _top_k(state, scores[position], labels[position], excluded[row],
                               queries[row].k)
                answers[row] = Result(items, "model", ignored[row])
    for row, query in enumerate(queries):
        if answers[row] is None:
            answers[row] = Result(popular(state, query.k, excluded[row]), "popular", ignored[row])
    return [answer for answer in answers if answer is not None]


def similar_each(state: ServingState, queries: Sequence[SimilarQuery],
                 ) -> list[SimilarItems | None]:
    """For each query, the ``k`` items whose fused embeddings score highest against its item's
    own (the item left out), all from one search; ``None`` for an item this version lacks."""
    indices = [state.item_index.get(query.item) for query in queries]
    known = [row for row, index in enumerate(indices) if index is not None]
    answers: list[SimilarItems | None] = [None] * len(queries)
    if known:
        items = np.asarray([indices[row] for row in known], dtype=np.int64)  # [B]
        width = max(queries[row].k for row in known) + 1
        scores, labels = state.search(state.fused[items], width)  # [B width] each
        for position, row in enumerate(known):
            answers[row] = _top_k(state, scores[position], labels[position],
                                  {int(items[position])}, queries[row].k)
    return answers


def map_items(state: ServingState, session: Sequence[ItemId]) -> tuple[list[int], list[ItemId]]:
    """Internal indices of the known items (order kept) and the unknown ids as given."""
    known, unknown = [], []
    for item in session:
        index = state.item_index.get(str(item))
        if index is None:
            unknown.append(item)
        else:
            known.append(index)
    return known, unknown


def fetch_graph_rows(state: ServingState, store: EmbeddingStore,
                     sessions: Sequence[np.ndarray]) -> list[np.ndarray | None]:
    """Graph-view rows ``[l, d]`` of each session's items for the state's version: from its
    in-process copy when it has one, else from the store in one round trip for the batch
    (``None`` per session for a model without the graph view)."""
    if not state.graph_view:
        return [None] * len(sessions)
    if state.local_graph is not None:  # the whole version is in process: plain indexing
        return [state.local_graph[session] for session in sessions]
    unique = np.unique(np.concatenate(sessions))  # [U] sorted
    table = _read_store(state, store, unique)  # [U d]
    return [table[np.searchsorted(unique, session)] for session in sessions]


def _read_store(state: ServingState, store: EmbeddingStore, unique: np.ndarray) -> np.ndarray:
    raw = store.read_rows(state.name, state.version, unique.tolist())
    width = state.dim * ROW_DTYPE.itemsize
    if any(value is None or len(value) != width for value in raw):
        raise VersionStateError(f"graph rows of {state.name} version {state.version} are missing "
                                "from the store; re-publish it (python -m service.publish)")
    return np.frombuffer(b"".join(value for value in raw if value is not None),
                         dtype=ROW_DTYPE).reshape(len(unique), state.dim)


def popular(state: ServingState, k: int, excluded: set[int]) -> list[tuple[str, float]]:
    """The ``k`` most popular training items not in ``excluded``; score = training count."""
    items: list[tuple[str, float]] = []
    for index in state.popular:
        if len(items) == k:
            break
        if int(index) not in excluded:
            items.append((state.item_ids[index], float(state.popularity[index])))
    return items


def _excluded(state: ServingState, query: Query, known: list[int]) -> set[int]:
    excluded = set(known) if query.exclude_seen else set()
    excluded.update(index for index in (state.item_index.get(str(item)) for item in query.exclude)
                    if index is not None)
    return excluded


def _top_k(state: ServingState, scores: np.ndarray, labels: np.ndarray, excluded: set[int],
           k: int) -> list[tuple[str, float]]:
    items: list[tuple[str, float]] = []
    for score, label in zip(scores.tolist(), labels.tolist(), strict=True):
        if len(items) == k:
            break
        if label != 0 and label not in excluded:
            items.append((state.item_ids[label], score))
    return items
