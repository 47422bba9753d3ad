"""Server-side sessions: append events, recommend from them, caps, TTLs, limits, and 50
concurrent writers on one session over real HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from service.main import create_app
from service.publish import publish_version
from service.sessions import MemorySessions

from .conftest import NAME
from .live import LiveServer


@pytest.fixture
def client(make_settings, redis_url, prefix, store, versions) -> Iterator[TestClient]:
    publish_version(store, versions[0], NAME)
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, session_max_events=5,
                             session_ttl_s=600, max_events_per_append=4, max_k=20)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def append(client, session_id: str, *items, kind: str = "view"):
    return client.post(f"/sessions/{session_id}/events",
                       json={"events": [{"item": item, "type": kind} for item in items]})


def test_recommendations_from_a_stored_session(client, versions, redis_url, prefix):
    ids = versions[0].item_ids[1:]
    first = append(client, "visit-1", ids[0], ids[1])
    assert first.json() == {"session_id": "visit-1", "length": 2, "ttl_s": 600}
    assert append(client, "visit-1", ids[2], kind="purchase").json()["length"] == 3
    stored = client.get("/sessions/visit-1/recommendations", params={"k": 5}).json()
    direct = client.post("/recommend", json={"session": ids[:3], "k": 5}).json()
    assert stored["session_id"] == "visit-1" and stored["session_length"] == 3
    assert stored["strategy"] == "model" and stored["model_version"] == versions[0].version
    assert [i["item"] for i in stored["items"]] == [i["item"] for i in direct["items"]]
    kept = client.get("/sessions/visit-1/recommendations",
                      params={"k": 20, "exclude_seen": False}).json()["items"]
    assert len(kept) == 20
    raw = redis.Redis.from_url(redis_url)
    key = f"{prefix}:session:visit-1"
    assert [json.loads(v) for v in raw.lrange(key, 0, -1)] == [
        {"item": ids[0], "type": "view"}, {"item": ids[1], "type": "view"},
        {"item": ids[2], "type": "purchase"}]
    assert 590 < raw.ttl(key) <= 600
    raw.close()


def test_an_unknown_session_gets_the_popular_fallback(client):
    body = client.get("/sessions/never-seen/recommendations", params={"k": 3}).json()
    assert body["strategy"] == "popular" and body["session_length"] == 0
    assert len(body["items"]) == 3


def test_the_cap_keeps_the_newest_events(client, versions):
    ids = versions[0].item_ids[1:]
    append(client, "capped", *ids[:4])
    assert append(client, "capped", *ids[4:8]).json()["length"] == 5
    body = client.get("/sessions/capped/recommendations", params={"exclude_seen": False}).json()
    assert body["session_length"] == 5
    direct = client.post("/recommend", json={"session": ids[3:8], "exclude_seen": False}).json()
    assert [i["item"] for i in body["items"]] == [i["item"] for i in direct["items"]]


@pytest.mark.parametrize(("path", "body", "fragment"), [
    ("/sessions/s/events", {"events": [{"item": "a"}] * 5}, "at most 4 per append"),
    ("/sessions/s/events", {"events": []}, "at least 1 item"),
    ("/sessions/s/events", {"events": [{"item": True}]}, "got bool"),
    ("/sessions/s/events", {"events": [{"item": "a", "type": "like"}]}, "'view' or 'purchase'"),
    ("/sessions/s/events", {"events": [{"item": "a", "extra": 1}]}, "Extra inputs"),
    ("/sessions/s/events", {"items": ["a"]}, "Field required"),
    ("/sessions/-bad/events", {"events": [{"item": "a"}]}, "should match pattern"),
    ("/sessions/" + "x" * 129 + "/events", {"events": [{"item": "a"}]}, "should match pattern"),
])
def test_bad_appends_are_a_clear_422(client, path, body, fragment):
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert fragment in response.text


@pytest.mark.parametrize("params", [{"k": 0}, {"k": 21}, {"k": "x"}, {"exclude_seen": "maybe"}])
def test_bad_session_queries_are_a_clear_422(client, params):
    response = client.get("/sessions/s/recommendations", params=params)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("cap", [1000, 150])
def test_50_concurrent_writers_lose_nothing(make_settings, redis_url, prefix, store, versions,
                                            cap, record_property):
    """50 threads append 5 times 2 events each to one session over real HTTP at once: the list
    holds every event (or, with a smaller cap, the newest ``cap``), each writer's events in the
    writer's own order (a suffix of them when capped)."""
    publish_version(store, versions[0], NAME)
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, session_max_events=cap,
                             max_concurrent_per_client=0)
    writers, appends = 50, 5
    start = threading.Barrier(writers)
    statuses: list[int] = []

    def write(writer: int, url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            start.wait()
            for n in range(appends):
                events = [{"item": f"w{writer:02d}-{2 * n + j:02d}"} for j in range(2)]
                response = http.post("/sessions/shared/events", json={"events": events})
                statuses.append(response.status_code)

    with LiveServer(create_app(settings)) as live:
        threads = [threading.Thread(target=write, args=(w, live.url)) for w in range(writers)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        record_property(f"writers_seconds_cap_{cap}", time.monotonic() - began)
        final = httpx.get(f"{live.url}/sessions/shared/recommendations").json()

    raw = redis.Redis.from_url(redis_url)
    stored = [json.loads(v)["item"] for v in raw.lrange(f"{prefix}:session:shared", 0, -1)]
    raw.close()
    total = writers * appends * 2
    assert statuses == [200] * (writers * appends)
    assert len(stored) == min(cap, total) == final["session_length"]
    assert len(set(stored)) == len(stored)
    for writer in range(writers):
        own = [int(item[4:]) for item in stored if item.startswith(f"w{writer:02d}-")]
        assert own == list(range(2 * appends - len(own), 2 * appends))  # in order, a suffix


def test_in_process_sessions_have_the_same_rules():
    sessions = MemorySessions(max_events=3, ttl_s=1)
    assert sessions.append("a", ["1", "2"]) == 2
    assert sessions.append("a", ["3", "4"]) == 3
    assert sessions.read("a") == ["2", "3", "4"]
    assert sessions.read("b") == []
    time.sleep(1.05)
    assert sessions.read("a") == []


def test_sessions_without_redis(make_settings, versions):
    """The quick start (no REDIS_URL) keeps sessions in process."""
    with TestClient(create_app(make_settings(redis_url=None))) as client:
        ids = versions[0].item_ids[1:]
        assert append(client, "local", *ids[:2]).json()["length"] == 2
        body = client.get("/sessions/local/recommendations").json()
        assert body["strategy"] == "model" and body["session_length"] == 2
