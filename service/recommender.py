"""Recommendation logic, independent of HTTP: external ids in, ranked external ids out.

Per micro-batch of sessions and items (``GET /items/{id}/similar``): map external ids, fetch the
graph-view rows of every item the encoder will read in one store round trip, encode all sessions in
one call, search the index once for the sessions' queries and the items' own fused rows together,
with room for the items to exclude, then drop excluded items and keep ``k``. Sessions with no known
item get the popularity ranking instead.

The rows of a version never change, so when the state holds an in-process copy of them (a table
of at most ``LOCAL_COPY_MAX_BYTES``) they are read there, and a Redis outage does not touch the
model path; a larger table is read from the store, whose errors propagate (a 503 upstream) to the
sessions that needed the store only when asked (:func:`answer_batch`, used by micro-batching).
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


#: A query of a micro-batch: a session (``POST /recommend``) or an item (``GET /similar``).
ModelQuery = Query | SimilarQuery
#: Its answer: a :class:`Result`, the similar items (``None``: unknown item), or the store error
#: that kept a session from the model.
ModelAnswer = Result | SimilarItems | None | StoreError


def recommend(state: ServingState, store: EmbeddingStore, queries: Sequence[Query],
              ) -> list[Result]:
    """Answer every session against one state (one model version); a store failure raises."""
    results = []
    for answer in answer_batch(state, store, queries):
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, Result)
        results.append(answer)
    return results


def answer_batch(state: ServingState, store: EmbeddingStore, queries: Sequence[ModelQuery],
                 ) -> list[ModelAnswer]:
    """One answer per query, in order, from one encoder call and one search: sessions are
    encoded, items read their own fused rows, and all rows are searched together.

    A store failure is returned in place of each answer that needed the store, so the other
    answers of the batch (popularity, similar items) still come back."""
    answers: list[ModelAnswer] = [None] * len(queries)
    sessions = {row: query for row, query in enumerate(queries) if isinstance(query, Query)}
    mapped = {row: map_items(state, query.session) for row, query in sessions.items()}
    excluded = {row: _excluded(state, query, mapped[row][0]) for row, query in sessions.items()}
    searched: list[int] = []  # rows of the queries in the search, in the order of `blocks`
    blocks: list[np.ndarray] = []  # query vectors [*, D]
    model_rows = [row for row in sessions if mapped[row][0]]
    if model_rows:
        tails = [np.asarray(mapped[row][0][-state.max_len:], dtype=np.int64) for row in model_rows]
        try:
            graph = fetch_graph_rows(state, store, tails)
        except (StoreUnavailable, VersionStateError) as error:
            for row in model_rows:
                answers[row] = error
        else:
            blocks.append(state.encoder([EncoderInput(tail, rows)
                                         for tail, rows in zip(tails, graph, strict=True)]))
            searched += model_rows
    similar = [(row, state.item_index.get(query.item)) for row, query in enumerate(queries)
               if isinstance(query, SimilarQuery)]
    known = [(row, index) for row, index in similar if index is not None]  # else None: unknown
    if known:
        for row, index in known:
            excluded[row] = {index}  # the item itself
        blocks.append(state.fused[[index for _, index in known]])
        searched += [row for row, _ in known]
    if searched:
        width = max(queries[row].k + len(excluded[row]) for row in searched)
        scores, labels = state.search(np.concatenate(blocks), width)  # [B width] each
        for position, row in enumerate(searched):
            items = _top_k(state, scores[position], labels[position], excluded[row],
                           queries[row].k)
            answers[row] = Result(items, "model", mapped[row][1]) if row in sessions else items
    for row, query in sessions.items():
        if answers[row] is None:
            answers[row] = Result(popular(state, query.k, excluded[row]), "popular",
                                  mapped[row][1])
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
