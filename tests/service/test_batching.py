"""Micro-batching: the batcher's list-in/list-out contract, length groups of the encoder, and
concurrent real requests against a real server (parity with unbatched answers, one version per
answer, the batch size limit, errors reported to every waiting request)."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading

import anyio.to_thread
import httpx
import numpy as np
import pytest
import redis
import torch
from prometheus_client import REGISTRY

from service.batching import BatchedAnswerer, MicroBatcher, model_answerers
from service.encoding import EncoderInput, QueryEncoder
from service.main import create_app
from service.publish import publish_version
from service.recommender import Query, Result, SimilarQuery, answer_batch
from service.state import build_state

from .conftest import NAME
from .live import LiveServer
from .test_api import assert_same_ranking

# --- the batcher on its own ---------------------------------------------------------------------


def run_batcher(handler, items, max_batch_size=4, max_wait_s=0.005):
    """Submit ``items`` concurrently; return each caller's outcome (result or exception)."""

    async def main():
        batcher = MicroBatcher(handler, max_batch_size, max_wait_s)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(item) for item in items),
                                        return_exceptions=True)
        finally:
            await batcher.aclose()

    return asyncio.run(main())


def test_each_caller_gets_its_own_result_in_batches_of_at_most_max():
    sizes = []

    async def double(batch):
        sizes.append(len(batch))
        await asyncio.sleep(0.001)
        return [2 * x for x in batch]

    results = run_batcher(double, list(range(50)), max_batch_size=8)
    assert results == [2 * x for x in range(50)]
    assert max(sizes) <= 8 and sum(sizes) == 50
    assert len(sizes) < 50  # concurrent submissions were batched


def test_a_failing_batch_fails_each_of_its_callers_and_only_them():
    async def fails_on_13(batch):
        if 13 in batch:
            raise ValueError("bad input 13")
        return list(batch)

    results = run_batcher(fails_on_13, list(range(20)), max_batch_size=4, max_wait_s=0.01)
    failed = [i for i, r in enumerate(results) if isinstance(r, ValueError)]
    assert 13 in failed and 1 <= len(failed) <= 4  # the batch of 13, nobody else
    assert all(results[i] == i for i in range(20) if i not in failed)


def test_a_result_list_of_the_wrong_length_is_an_error_for_the_batch():
    async def drops_one(batch):
        return list(batch)[1:]

    results = run_batcher(drops_one, [1, 2, 3])
    assert all(isinstance(r, RuntimeError) and "results for" in str(r) for r in results)


def test_cancelled_callers_are_not_computed():
    seen = []

    async def main():
        async def record(batch):
            seen.extend(batch)
            return list(batch)

        batcher = MicroBatcher(record, max_batch_size=8, max_wait_s=0.05)
        batcher.start()
        gone = asyncio.ensure_future(batcher.submit("gone"))
        await asyncio.sleep(0)  # queued
        gone.cancel()
        kept = await batcher.submit("kept")
        await batcher.aclose()
        return kept

    assert asyncio.run(main()) == "kept"
    assert seen == ["kept"]


def test_a_lone_client_stops_paying_the_wait_while_concurrent_traffic_is_still_batched():
    """With a 50 ms wait: one client sending a request after each answer learns within ~15
    requests that waits gather nothing, and then pays the wait only on the rare probe; clients
    arriving 5 ms apart on their own keep being gathered into batches."""
    sizes = []

    async def record(batch):
        sizes.append(len(batch))
        return list(batch)

    async def main():
        loop = asyncio.get_running_loop()
        batcher = MicroBatcher(record, max_batch_size=8, max_wait_s=0.05)
        batcher.start()
        try:
            lone = []
            for item in range(40):
                started = loop.time()
                assert await batcher.submit(item) == item
                lone.append(loop.time() - started)
            # a waited request takes the 50 ms wait, the others well under 1 ms (40 ms leaves
            # room for the timer's clock resolution)
            assert sum(seconds >= 0.04 for seconds in lone[:5]) == 5  # it started by waiting
            assert sum(seconds >= 0.04 for seconds in lone[-16:]) <= 1  # then only probes
            assert batcher.mean_gathered < batcher.MIN_GATHERED
            sizes.clear()
            arrivals = []
            for item in range(80):  # independent arrivals: a probe finds that waits pay again
                arrivals.append(asyncio.ensure_future(batcher.submit(item)))
                await asyncio.sleep(0.005)
            assert await asyncio.gather(*arrivals) == list(range(80))
            assert batcher.mean_gathered >= batcher.MIN_GATHERED
        finally:
            await batcher.aclose()

    asyncio.run(main())
    assert max(sizes[-5:]) >= 4  # waits gather again


def test_submit_needs_a_started_batcher_and_bad_limits_are_refused():
    async def identity(batch):
        return list(batch)

    async def main():
        batcher = MicroBatcher(identity, 2, 0.0)
        with pytest.raises(RuntimeError, match="not running"):
            await batcher.submit(1)

    asyncio.run(main())
    with pytest.raises(ValueError):
        MicroBatcher(identity, 0, 0.0)


def test_the_state_is_read_once_per_batch(versions, store):
    """Every batch reads the served state once, so no batch mixes versions."""
    publish_version(store, versions[0], NAME)
    publish_version(store, versions[1], NAME, activate=False)
    states = [build_state(v, NAME, torch.device("cpu"), "off") for v in versions]
    reads = itertools.count()

    def read_state():
        # the version changes with every read: a batch that read twice would mix them
        return states[next(reads) % 2]

    session = versions[0].item_ids[1:4]

    async def main():
        answerer, _, batcher = model_answerers(read_state, store, batching=True,
                                               max_batch_size=5, max_wait_s=0.02)
        assert batcher is not None
        batcher.start()
        try:
            return await asyncio.gather(*(answerer(Query(session, 5)) for _ in range(20)))
        finally:
            await batcher.aclose()

    before = batch_sizes()[0]
    answers = asyncio.run(main())
    assert next(reads) == batch_sizes()[0] - before  # one read per batch
    assert 4 <= batch_sizes()[0] - before < 20  # at most 5 per batch, and batched
    ranked = {}
    for version, result in answers:  # one ranking per version: no answer mixes the two
        ranked.setdefault(version, set()).add(tuple(item for item, _ in result.items))
    assert set(ranked) == {v.version for v in versions}
    assert all(len(rankings) == 1 for rankings in ranked.values())


# --- one encoder call per batch ----------------------------------------------------------------


def test_a_batch_of_mixed_lengths_gives_each_session_its_own_query(versions):
    """The packed encoder call never mixes sessions: each query equals the session's alone."""
    artifact = versions[0]
    graph = artifact.graph_item_emb
    rng = np.random.default_rng(0)
    sessions = []
    for length in [1, 2, 50, 3, 1, 7, 10, 2, 4]:
        length = min(length, artifact.manifest["max_len"])
        ids = rng.integers(1, artifact.num_items + 1, size=length)
        sessions.append(EncoderInput(ids, graph[ids]))
    encoder = QueryEncoder(artifact.encoder, torch.device("cpu"))
    alone = [encoder([session])[0] for session in sessions]
    np.testing.assert_allclose(np.stack(encoder(sessions)), np.stack(alone), atol=1e-5, rtol=0)


# --- concurrent real requests -------------------------------------------------------------------


def post_concurrently(url: str, bodies: list[dict]) -> list[httpx.Response]:
    """Every body at once over separate connections."""

    async def main():
        limits = httpx.Limits(max_connections=len(bodies))
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            return await asyncio.gather(*(client.post("/recommend", json=b) for b in bodies))

    return asyncio.run(main())


def batch_sizes(endpoint: str = "recommend") -> tuple[float, float, float]:
    """Batches so far, requests in them, and batches of at most 4 (process-wide histogram)."""
    get = REGISTRY.get_sample_value
    labels = {"endpoint": endpoint}
    return (get("mvcrec_batch_size_count", labels) or 0.0,
            get("mvcrec_batch_size_sum", labels) or 0.0,
            get("mvcrec_batch_size_bucket", {**labels, "le": "4.0"}) or 0.0)


def bodies_of(versions, count: int = 48) -> list[dict]:
    ids = versions[0].item_ids[1:]
    rng = random.Random(3)
    bodies = []
    for _ in range(count):
        session = rng.sample(ids, rng.randint(1, 12))
        bodies.append({"session": session, "k": rng.choice([3, 5, 10])})
    bodies.append({"session": [], "k": 4})  # a popularity answer inside a batch
    return bodies


def test_concurrent_requests_get_their_own_unbatched_answer(make_settings, redis_url, prefix,
                                                            store, versions):
    publish_version(store, versions[0], NAME)
    bodies = bodies_of(versions)
    common = {"redis_url": redis_url, "key_prefix": prefix, "max_concurrent_per_client": 0}
    with LiveServer(create_app(make_settings(batching=False, **common))) as live, \
            httpx.Client(base_url=live.url, timeout=30) as client:
        reference = [client.post("/recommend", json=body).json() for body in bodies]
    before = batch_sizes()
    settings = make_settings(batching=True, batch_max_size=4, batch_max_wait_s=0.01, **common)
    with LiveServer(create_app(settings)) as live:
        responses = post_concurrently(live.url, bodies)
    batches, requests, small = (now - then for now, then in zip(batch_sizes(), before,
                                                                  strict=True))
    assert all(response.status_code == 200 for response in responses)
    for body, response, expected in zip(bodies, responses, reference, strict=True):
        answer = response.json()
        assert answer["strategy"] == expected["strategy"]
        assert len(answer["items"]) == body["k"]
        assert_same_ranking(answer["items"], expected["items"])
    assert requests == len(bodies)
    assert small == batches  # no batch above BATCH_MAX_SIZE
    assert batches < len(bodies)  # and requests were batched


def test_every_answer_names_the_one_version_it_came_from(make_settings, redis_url, prefix, store,
                                                         versions):
    """Requests in flight while the served version switches: each answer equals the reference
    answer of the version it names."""
    first, second = versions
    publish_version(store, first, NAME)
    publish_version(store, second, NAME, activate=False)
    bodies = bodies_of(versions, 24)
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, poll_interval_s=0.05,
                             max_concurrent_per_client=0, batch_max_size=6,
                             batch_max_wait_s=0.002)
    reference = {}
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url,
                                                               timeout=30) as client:
        reference[first.version] = [client.post("/recommend", json=b).json()["items"]
                                    for b in bodies]

        async def traffic():
            answers, counter = [], itertools.count()
            async with httpx.AsyncClient(base_url=live.url, timeout=30,
                                         limits=httpx.Limits(max_connections=16)) as http:
                async def worker():
                    while (n := next(counter)) < 400:
                        if n == 100:  # switch while the other workers keep sending
                            await asyncio.get_running_loop().run_in_executor(
                                None, store.activate, NAME, second.version)
                        which = n % len(bodies)
                        answers.append((which, await http.post("/recommend",
                                                               json=bodies[which])))

                await asyncio.gather(*(worker() for _ in range(16)))
            return answers

        answers = asyncio.run(traffic())
        reference[second.version] = [client.post("/recommend", json=b).json()["items"]
                                     for b in bodies]
    served = {response.json()["model_version"] for _, response in answers}
    assert served == {first.version, second.version}
    assert reference[first.version] != reference[second.version]
    for which, response in answers:
        assert response.status_code == 200
        body = response.json()
        assert_same_ranking(body["items"], reference[body["model_version"]][which])


def test_a_store_failure_fails_each_waiting_model_request(make_settings, redis_url, prefix,
                                                         store, versions):
    """The version's rows vanish from Redis (no in-process copy, no self-repair): every model
    request of the concurrent batches gets the documented 503; popularity answers still 200."""
    publish_version(store, versions[0], NAME)
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, local_copy_max_bytes=0,
                             auto_publish=False, max_concurrent_per_client=0, batch_max_size=8,
                             batch_max_wait_s=0.01)
    bodies = bodies_of(versions, 24)
    with LiveServer(create_app(settings)) as live:
        client = redis.Redis.from_url(redis_url)
        client.delete(f"{prefix}:{{{NAME}}}:v:{versions[0].version}:graph")
        client.close()
        responses = post_concurrently(live.url, bodies)
    for body, response in zip(bodies, responses, strict=True):
        if body["session"]:
            assert response.status_code == 503
            assert "missing from the store" in response.json()["detail"]
            assert response.headers["retry-after"]
        else:
            assert response.status_code == 200 and response.json()["strategy"] == "popular"


def get_concurrently(url: str, paths: list[str]) -> list[httpx.Response]:
    """Every GET at once over separate connections."""

    async def main():
        limits = httpx.Limits(max_connections=len(paths))
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            return await asyncio.gather(*(client.get(path) for path in paths))

    return asyncio.run(main())


def test_concurrent_similar_requests_are_batched_and_answered_as_alone(
        make_settings, redis_url, prefix, store, versions):
    """``GET /items/{id}/similar`` micro-batched: each answer equals the unbatched one (unknown
    items still 404), and the requests were searched together."""
    publish_version(store, versions[0], NAME)
    rng = random.Random(5)
    paths = [f"/items/{item}/similar?k={rng.choice([1, 4, 10])}"
             for item in rng.sample(versions[0].item_ids[1:], 40)]
    paths.append("/items/no-such-item/similar?k=3")
    common = {"redis_url": redis_url, "key_prefix": prefix, "max_concurrent_per_client": 0}
    with LiveServer(create_app(make_settings(batching=False, **common))) as live, \
            httpx.Client(base_url=live.url, timeout=30) as client:
        reference = [client.get(path) for path in paths]
    before = batch_sizes("similar")
    settings = make_settings(batching=True, batch_max_size=4, batch_max_wait_s=0.01, **common)
    with LiveServer(create_app(settings)) as live:
        responses = get_concurrently(live.url, paths)
    batches, requests, small = (now - then for now, then in zip(batch_sizes("similar"), before,
                                                                  strict=True))
    for response, expected in zip(responses, reference, strict=True):
        assert response.status_code == expected.status_code
        if expected.status_code == 404:
            assert "unknown item 'no-such-item'" in response.json()["detail"]
            continue
        answer = response.json()
        assert answer["item"] not in [entry["item"] for entry in answer["items"]]
        assert_same_ranking(answer["items"], expected.json()["items"])
    assert [r.status_code for r in reference].count(404) == 1
    assert requests == len(paths)
    assert small == batches  # no batch above BATCH_MAX_SIZE
    assert batches < len(paths)  # and requests were batched


def test_stored_sessions_are_answered_in_the_same_batches(make_settings, redis_url, prefix,
                                                         store, versions):
    """``GET /sessions/{id}/recommendations`` goes through the batcher too: concurrent reads of
    stored sessions share batches, and each answer equals ``POST /recommend`` on the same
    items."""
    publish_version(store, versions[0], NAME)
    bodies = [body for body in bodies_of(versions, 24) if body["session"]]
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, max_concurrent_per_client=0,
                             batch_max_size=4, batch_max_wait_s=0.01)
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url,
                                                               timeout=30) as client:
        for n, body in enumerate(bodies):
            events = [{"item": item} for item in body["session"]]
            assert client.post(f"/sessions/visit-{n}/events",
                               json={"events": events}).status_code == 200
        reference = [client.post("/recommend", json=body).json() for body in bodies]
        before = batch_sizes()
        responses = get_concurrently(live.url, [f"/sessions/visit-{n}/recommendations?k={b['k']}"
                                                for n, b in enumerate(bodies)])
    batches, requests, small = (now - then for now, then in zip(batch_sizes(), before,
                                                                  strict=True))
    for n, (response, expected) in enumerate(zip(responses, reference, strict=True)):
        assert response.status_code == 200
        answer = response.json()
        assert answer["session_id"] == f"visit-{n}"
        assert answer["model_version"] == expected["model_version"]
        assert_same_ranking(answer["items"], expected["items"])
    assert requests == len(bodies)
    assert small == batches  # no batch above BATCH_MAX_SIZE
    assert batches < len(bodies)  # and requests were batched


# --- sessions and items in one batch ------------------------------------------------------------


def test_a_batch_mixing_sessions_and_items_answers_each_as_alone(versions, store):
    """One encoder call and one search for both kinds give each query its own answer: a session,
    the popularity fallback, a known item, an unknown item."""
    state = build_state(versions[0], NAME, torch.device("cpu"), "off",
                        local_copy_max_bytes=2**30)
    ids = versions[0].item_ids
    queries = [Query(ids[1:6], 5), SimilarQuery(ids[7], 3), Query([], 4),
               SimilarQuery("no-such-item", 2), Query(ids[2:3], 10, exclude=[ids[9]]),
               SimilarQuery(ids[2], 8)]
    together = answer_batch(state, store, queries)
    alone = [answer_batch(state, store, [query])[0] for query in queries]
    assert together[3] is None and alone[3] is None
    for mixed, single in zip(together, alone, strict=True):
        if isinstance(single, Result):
            assert isinstance(mixed, Result) and mixed.strategy == single.strategy
            mixed, single = mixed.items, single.items
        if single is not None:
            assert [i for i, _ in mixed] == [i for i, _ in single]
            assert [s for _, s in mixed] == pytest.approx([s for _, s in single], abs=1e-4)
    assert together[2].strategy == "popular"
    assert ids[7] not in [item for item, _ in together[1]]


def test_concurrent_sessions_and_items_share_batches(versions, store):
    """``POST /recommend`` and ``GET /similar`` submit to one batcher: concurrent calls of both
    kinds land in the same batches."""
    state = build_state(versions[0], NAME, torch.device("cpu"), "off",
                        local_copy_max_bytes=2**30)
    kinds_per_batch = []

    def recording(state, queries):
        kinds_per_batch.append({type(query) for query in queries})
        return answer_batch(state, store, queries)

    async def main():
        batcher = BatchedAnswerer(lambda: state, recording, max_batch_size=8, max_wait_s=0.02)
        batcher.start()
        try:
            ids = versions[0].item_ids
            calls = [batcher(Query(ids[i:i + 3], 4) if i % 2 else SimilarQuery(ids[i], 4))
                     for i in range(1, 17)]
            return await asyncio.gather(*calls)
        finally:
            await batcher.aclose()

    answers = asyncio.run(main())
    assert all(version == versions[0].version for version, _ in answers)
    assert {Query, SimilarQuery} in kinds_per_batch
    assert len(kinds_per_batch) < len(answers)


def test_batches_run_in_their_own_thread_even_when_the_shared_pool_is_full(versions, store):
    """Batches run one at a time in one thread of the answerer's own, not in anyio's pool,
    which sync endpoints (``POST /recommend/batch``) can fill: with every token of that pool
    held, batches are still answered, all by the same thread."""
    state = build_state(versions[0], NAME, torch.device("cpu"), "off",
                        local_copy_max_bytes=2**30)
    threads = []

    def recording(state, queries):
        threads.append(threading.current_thread())
        return answer_batch(state, store, queries)

    async def main():
        limiter = anyio.to_thread.current_default_thread_limiter()
        held = [object() for _ in range(int(limiter.total_tokens))]
        for borrower in held:  # as sync endpoints in flight would
            await limiter.acquire_on_behalf_of(borrower)
        batcher = BatchedAnswerer(lambda: state, recording, max_batch_size=4, max_wait_s=0.005)
        batcher.start()
        try:
            ids = versions[0].item_ids
            with anyio.fail_after(10):
                return await asyncio.gather(*(batcher(Query(ids[i:i + 3], 4))
                                              for i in range(1, 13)))
        finally:
            await batcher.aclose()
            for borrower in held:
                limiter.release_on_behalf_of(borrower)

    answers = asyncio.run(main())
    assert len(answers) == 12 and len(threads) >= 3  # batched, and every batch answered
    assert len(set(threads)) == 1 and threads[0] is not threading.main_thread()
    assert threads[0].name.startswith("batch")
