"""Remembered ``GET /items/{id}/similar`` answers.

An item's similar items are a function of the model version, the item and ``k`` alone (no user
state), and product-page traffic asks for the same popular items over and over; so answers are
kept in a bounded LRU and a repeat costs a dictionary lookup instead of a FAISS search. The cache
holds one version: every call reads the served version first and empties the cache when it
changed, so nothing of an old version is served once a newer one is.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from service import metrics
from service.batching import SimilarFinder
from service.recommender import SimilarItems, SimilarQuery
from service.state import ServingState


class CachedSimilarFinder:
    """An answerer for ``GET /items/{id}/similar`` that asks ``finder`` only on a miss; at most
    ``max_entries`` answers are kept (least recently used out first). Event-loop use only.

    Each call reads the served version first (``read_state``); a version other than the cached
    one empties the cache, and an answer is kept only if ``finder`` gave it with that version.
    """

    def __init__(self, read_state: Callable[[], ServingState], finder: SimilarFinder,
                 max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1 (leave the cache out to disable it)")
        self.read_state = read_state
        self.finder = finder
        self.max_entries = max_entries
        self._version = ""
        self._answers: OrderedDict[tuple[str, int], SimilarItems] = OrderedDict()

    async def __call__(self, query: SimilarQuery) -> tuple[str, SimilarItems | None]:
        version = self.read_state().version
        if version != self._version:
            self._answers.clear()
            self._version = version
        key = (query.item, query.k)
        answer = self._answers.get(key)
        if answer is not None:
            self._answers.move_to_end(key)
            metrics.SIMILAR_CACHE.labels("hit").inc()
            return version, answer
        metrics.SIMILAR_CACHE.labels("miss").inc()
        answered_by, items = await self.finder(query)
        if items is not None and answered_by == self._version:
            self._answers[key] = items
            if len(self._answers) > self.max_entries:
                self._answers.popitem(last=False)
        return answered_by, items

    def __len__(self) -> int:
        return len(self._answers)
