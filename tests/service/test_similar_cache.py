"""The ``GET /items/{id}/similar`` answer cache: repeats skip the search, a new version empties
it, and it stays within its size."""

from __future__ import annotations

import asyncio

import pytest
import torch
from prometheus_client import REGISTRY

from service.batching import model_answerers
from service.recommender import SimilarQuery
from service.similar_cache import CachedSimilarFinder
from service.state import build_state

from .conftest import NAME


def cache_counts() -> tuple[float, float]:
    get = REGISTRY.get_sample_value
    return (get("mvcrec_similar_cache_total", {"outcome": "hit"}) or 0.0,
            get("mvcrec_similar_cache_total", {"outcome": "miss"}) or 0.0)


@pytest.fixture
def states(versions):
    return [build_state(v, NAME, torch.device("cpu"), "off") for v in versions]


def ask(states, store, served, queries, max_entries=100):
    """Answer ``queries`` in order through a cache over the real (unbatched) finder; ``served``
    is a one-element list holding the index of the served state, changeable between queries."""

    async def main():
        def read_state():
            return states[served[0]]

        _, finder, _ = model_answerers(read_state, store, batching=False, max_batch_size=1,
                                       max_wait_s=0.0)
        cache = CachedSimilarFinder(read_state, finder, max_entries)
        answers = []
        for query in queries:
            if query == "switch":
                served[0] = 1
                continue
            answers.append(await cache(query))
        return cache, answers

    return asyncio.run(main())


def test_a_repeat_is_answered_from_the_cache(states, store, versions):
    item = versions[0].item_ids[3]
    before = cache_counts()
    _, answers = ask(states, store, [0], [SimilarQuery(item, 4)] * 3 + [SimilarQuery(item, 2)])
    hits, misses = (now - then for now, then in zip(cache_counts(), before, strict=True))
    assert (hits, misses) == (2, 2)  # k is part of the key
    assert answers[0] == answers[1] == answers[2]
    assert answers[3][1] == answers[0][1][:2]


def test_a_new_version_is_never_answered_from_the_old_ones_cache(states, store, versions):
    item = versions[0].item_ids[5]
    _, answers = ask(states, store, [0], [SimilarQuery(item, 3), "switch", SimilarQuery(item, 3)])
    (old_version, old), (new_version, new) = answers
    assert (old_version, new_version) == (versions[0].version, versions[1].version)
    # the second version's fused table is the first one doubled: same items, and the scores
    # (the item's own row against the others) four times as high
    assert [i for i, _ in new] == [i for i, _ in old]
    assert [s for _, s in new] == pytest.approx([4 * s for _, s in old], rel=1e-5)


def test_the_cache_keeps_the_most_recently_used_answers_only(states, store, versions):
    first, second, third = (SimilarQuery(item, 3) for item in versions[0].item_ids[1:4])
    cache, _ = ask(states, store, [0], [first, second, first, third], max_entries=2)
    assert len(cache) == 2
    before = cache_counts()
    asyncio.run(cache(first))  # used more recently than `second`, so kept
    asyncio.run(cache(second))  # evicted by `third`
    hits, misses = (now - then for now, then in zip(cache_counts(), before, strict=True))
    assert (hits, misses) == (1, 1)


def test_unknown_items_are_not_remembered(states, store):
    cache, answers = ask(states, store, [0], [SimilarQuery("no-such-item", 3)] * 2)
    assert [items for _, items in answers] == [None, None]
    assert len(cache) == 0
