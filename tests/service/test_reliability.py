"""Faults against the real processes: Redis killed, hung and emptied under traffic; a version
swapped under a few thousand requests; corrupt artifacts refused; one-command rollback."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from service import publish
from service.main import create_app
from service.publish import publish_version
from service.store import RedisStore

from .conftest import NAME
from .live import LiveServer
from .test_api import assert_same_ranking

TOKEN = "reliability-admin-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def sessions_of(versions, count: int = 8) -> list[list[str]]:
    ids = versions[0].item_ids[1:]
    return [ids[3 * i:3 * i + 3] for i in range(count)]


def test_kill_redis_during_a_stream_of_requests(server, make_settings, versions,
                                                record_property):
    """SIGKILL the Redis server under a stream of recommend and session requests, restart it
    empty: /recommend never fails (in-process copy), session calls get 503 + Retry-After while
    Redis is down, and the replica re-publishes its version and is fully ready within seconds."""
    store = RedisStore(server.url, "kill")
    publish_version(store, versions[0], NAME)
    settings = make_settings(redis_url=server.url, key_prefix="kill", poll_interval_s=0.2,
                             redis_timeout_s=0.2, store_cooldown_s=0.5)
    requests = sessions_of(versions)
    records: list[tuple[float, str, int, bool, float]] = []  # at, kind, status, retry, seconds
    stop = threading.Event()

    def stream(worker: int, url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            for n in itertools.count():
                if stop.is_set():
                    return
                kind = ("recommend", "append", "session")[n % 3]
                start = time.monotonic()
                if kind == "recommend":
                    response = http.post("/recommend", json={"session": requests[n % 8], "k": 5})
                elif kind == "append":
                    response = http.post(f"/sessions/visit-{worker}/events",
                                         json={"events": [{"item": requests[n % 8][0]}]})
                else:
                    response = http.get(f"/sessions/visit-{worker}/recommendations")
                records.append((start, kind, response.status_code,
                                "retry-after" in response.headers, time.monotonic() - start))

    with LiveServer(create_app(settings)) as live:
        workers = [threading.Thread(target=stream, args=(w, live.url)) for w in range(2)]
        for worker in workers:
            worker.start()
        time.sleep(2)
        killed = time.monotonic()
        assert server.process is not None
        server.process.kill()
        server.process.wait()
        server.process = None
        time.sleep(0.5)
        down = httpx.get(f"{live.url}/readyz").json()
        time.sleep(2.5)
        restarted = time.monotonic()
        server.start()  # empty: no persistence
        while True:
            ready = httpx.get(f"{live.url}/readyz")
            if ready.status_code == 200 and not ready.json()["degraded"]:
                break
            assert time.monotonic() - restarted < 10, ready.json()
            time.sleep(0.05)
        recovered = time.monotonic()
        time.sleep(2)
        stop.set()
        for worker in workers:
            worker.join()

    statuses = Counter((kind, status) for _, kind, status, _, _ in records)
    for name, value in [("kill_requests", len(records)), ("kill_recovery_s", recovered - restarted),
                        *((f"kill_{kind}_{status}", n) for (kind, status), n in statuses.items())]:
        record_property(name, value)
    assert down["ready"] is True and down["degraded"] is True
    assert "store (Redis) is not answering; serving from the in-process copy" in down["reasons"]
    assert {status for _, _, status, _, _ in records} <= {200, 503}
    assert all(retry for _, _, status, retry, _ in records if status == 503)
    assert statuses[("recommend", 503)] == 0 and statuses[("recommend", 200)] > 50
    assert statuses[("append", 503)] > 0  # the outage was seen
    assert all(killed - 0.5 <= at <= recovered for at, _, status, _, _ in records if status == 503)
    assert all(status == 200 for at, _, status, _, _ in records if at > recovered + 0.5)
    assert recovered - restarted < 5
    assert max(seconds for *_, seconds in records) < 2  # no request hung on the dead Redis
    assert store.active(NAME) == versions[0].version  # re-published by the replica itself
    store.close()


def test_hung_redis_costs_a_timeout_not_a_hang(server, make_settings, versions):
    """A Redis that accepts connections but never answers (SIGSTOP): requests return within the
    timeout, from the in-process copy or with a 503, and everything works after SIGCONT."""
    store = RedisStore(server.url, "hung")
    publish_version(store, versions[0], NAME)
    settings = make_settings(redis_url=server.url, key_prefix="hung", redis_timeout_s=0.2,
                             store_cooldown_s=2)
    request = {"session": sessions_of(versions)[0], "k": 5}
    assert server.process is not None
    with TestClient(create_app(settings)) as client:
        reference = client.post("/recommend", json=request).json()
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            timings = []
            for _ in range(3):
                start = time.monotonic()
                response = client.post("/recommend", json=request)
                timings.append(time.monotonic() - start)
                assert response.status_code == 200
                assert response.json()["items"] == reference["items"]
            assert max(timings) < 0.5  # the model reads the in-process copy, never Redis
            event = {"events": [{"item": "a"}]}
            start = time.monotonic()
            appended = client.post("/sessions/v/events", json=event)
            assert appended.status_code == 503 and appended.headers["retry-after"] == "5"
            assert appended.json() == {"detail": "service temporarily unavailable: "
                                                 "Redis is unavailable"}
            assert time.monotonic() - start < 1.5  # two attempts of 0.2 s
            start = time.monotonic()
            assert client.post("/sessions/v/events", json=event).status_code == 503
            assert time.monotonic() - start < 0.2  # the cooldown fails fast
            ready = client.get("/readyz").json()
            assert ready["ready"] is True and ready["degraded"] is True
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        deadline = time.monotonic() + 5  # the cooldown ends, Redis answers again
        while client.post("/sessions/v/events", json={"events": [{"item": "a"}]}).status_code \
                != 200:
            assert time.monotonic() < deadline, "no recovery after SIGCONT"
            time.sleep(0.1)
        assert client.get("/readyz").json()["degraded"] is False
    store.close()


def test_swap_under_traffic(make_settings, redis_url, prefix, store, versions, record_property):
    """Publish and activate version 2 over the admin API while 2 clients send 2000 requests:
    no failures, every response carries one of the two versions and exactly that version's
    answer, and every request sent after the switch is answered by the new version."""
    first, second = versions
    publish_version(store, first, NAME)
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, admin_token=TOKEN,
                             poll_interval_s=0.1, max_concurrent_per_client=0)
    requests = [{"session": session, "k": 5} for session in sessions_of(versions)]
    total = 2000
    results: list[tuple[float, int, int, str | None, list]] = []  # sent, which, status, ...
    counter = itertools.count()

    def client(url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            while (n := next(counter)) < total:
                sent = time.monotonic()
                response = http.post("/recommend", json=requests[n % len(requests)])
                body = response.json() if response.status_code == 200 else {}
                results.append((sent, n % len(requests), response.status_code,
                                body.get("model_version"), body.get("items", [])))

    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url,
                                                               timeout=30) as admin:
        reference = {first.version: [admin.post("/recommend", json=r).json()["items"]
                                     for r in requests]}
        started = time.monotonic()
        clients = [threading.Thread(target=client, args=(live.url,)) for _ in range(2)]
        for thread in clients:
            thread.start()
        while len(results) < total // 3:
            time.sleep(0.01)
        published = admin.put(f"/admin/versions/{second.version}", headers=AUTH)
        assert published.status_code == 200, published.text
        assert published.json()["active"] == first.version
        switched_after = len(results)
        activated = admin.post(f"/admin/versions/{second.version}/activate", headers=AUTH)
        switched = time.monotonic()
        assert activated.json() == {"active": second.version, "previous": first.version,
                                    "served": second.version}
        for thread in clients:
            thread.join()
        elapsed = time.monotonic() - started
        reference[second.version] = [admin.post("/recommend", json=r).json()["items"]
                                     for r in requests]

    by_version = Counter(version for _, _, _, version, _ in results)
    failures = sum(status != 200 for _, _, status, _, _ in results)
    for name, value in [("swap_requests", len(results)), ("swap_failures", failures),
                        ("swap_old_version", by_version[first.version]),
                        ("swap_new_version", by_version[second.version]),
                        ("swap_requests_before_switch", switched_after),
                        ("swap_seconds", elapsed)]:
        record_property(name, value)
    assert len(results) == total and failures == 0
    assert set(by_version) == {first.version, second.version}
    assert reference[first.version] != reference[second.version]
    for sent, which, _, version, items in results:
        # the answer of exactly the version it names (scores up to the float noise of
        # micro-batching: a batch pads its sessions to the longest one)
        assert_same_ranking(items, reference[version][which])
        if sent > switched:
            assert version == second.version


@pytest.fixture
def local_artifacts(tmp_path: Path, versions) -> Path:
    """An artifact directory with the first version and a corruptible copy of the second."""
    first, second = versions
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / first.version).symlink_to(first.path)
    shutil.copytree(second.path, tmp_path / NAME / second.version)
    return tmp_path


@pytest.mark.parametrize("damage", ["flipped byte", "missing file", "truncated manifest"])
def test_corrupt_or_incomplete_artifact_is_refused(make_settings, redis_url, prefix, store,
                                                   versions, local_artifacts, damage):
    """A damaged artifact is refused before anything is written or switched, over the admin API
    and the command line; the served version keeps serving."""
    first, second = versions
    publish_version(store, first, NAME)
    path = local_artifacts / NAME / second.version
    if damage == "flipped byte":
        data = bytearray((path / "graph_item_emb.npy").read_bytes())
        data[-5] ^= 0xFF
        (path / "graph_item_emb.npy").write_bytes(bytes(data))
    elif damage == "missing file":
        (path / "fused_item_emb.npy").unlink()
    else:
        manifest = (path / "manifest.json").read_text()
        (path / "manifest.json").write_text(manifest[:len(manifest) // 2])
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, admin_token=TOKEN,
                             artifact_dir=local_artifacts)
    with TestClient(create_app(settings)) as client:
        refused = client.put(f"/admin/versions/{second.version}", params={"activate": True},
                             headers=AUTH)
        assert refused.status_code == 409
        assert refused.json()["detail"].startswith("artifact refused: ")
        assert store.versions(NAME) == [first.version]  # nothing written
        assert store.active(NAME) == first.version
        assert client.get("/readyz").json()["model_version"] == first.version
        assert client.post("/recommend", json={"session": sessions_of(versions)[0]}).json()[
            "model_version"] == first.version
    assert publish.main(["--artifact-dir", str(local_artifacts), "--version", second.version,
                         "--name", NAME, "--redis-url", redis_url, "--key-prefix", prefix]) == 1
    assert store.versions(NAME) == [first.version]


def test_a_corrupt_local_copy_of_an_activated_version_is_not_served(
        make_settings, redis_url, prefix, store, versions, local_artifacts):
    """Another tool activates a good version 2, but this replica's copy is corrupt: the replica
    keeps serving version 1 and says why."""
    first, second = versions
    publish_version(store, first, NAME)
    publish_version(store, second, NAME, activate=False)
    graph = local_artifacts / NAME / second.version / "graph_item_emb.npy"
    graph.write_bytes(graph.read_bytes()[:-8])
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, admin_token=TOKEN,
                             artifact_dir=local_artifacts)
    with TestClient(create_app(settings)) as client:
        switched = client.post(f"/admin/versions/{second.version}/activate", headers=AUTH)
        assert switched.status_code == 200
        assert switched.json()["served"] == first.version
        status = client.get("/admin/versions", headers=AUTH).json()
        assert status["active"] == second.version and status["served"] == first.version
        assert "graph_item_emb.npy" in status["last_error"]
        assert client.get("/readyz").json()["model_version"] == first.version
        body = client.post("/recommend", json={"session": sessions_of(versions)[0]}).json()
        assert body["model_version"] == first.version


def test_an_incomplete_version_cannot_be_activated(make_settings, redis_url, prefix, store,
                                                   versions):
    first, second = versions
    publish_version(store, first, NAME)
    store.begin_version(NAME, second.version, {"dim": "16"})  # a publish that died midway
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, admin_token=TOKEN)
    with TestClient(create_app(settings)) as client:
        refused = client.post(f"/admin/versions/{second.version}/activate", headers=AUTH)
        assert refused.status_code == 409
        assert "not completely published" in refused.json()["detail"]
        assert store.active(NAME) == first.version
        listed = client.get("/admin/versions", headers=AUTH).json()["versions"]
        assert [v["complete"] for v in listed if v["version"] == second.version] == [False]


def test_rollback_is_one_command(make_settings, redis_url, prefix, store, versions, capsys):
    first, second = versions
    publish_version(store, first, NAME)
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, admin_token=TOKEN)
    with TestClient(create_app(settings)) as client:
        nothing = client.post("/admin/rollback", headers=AUTH)
        assert nothing.status_code == 409 and "no previous version" in nothing.text
        put = client.put(f"/admin/versions/{second.version}", params={"activate": True},
                         headers=AUTH)
        assert put.status_code == 200 and put.json()["served"] == second.version
        back = client.post("/admin/rollback", headers=AUTH)
        assert back.json() == {"active": first.version, "previous": second.version,
                               "served": first.version}
        assert client.post("/recommend", json={"session": []}).json()["model_version"] == \
            first.version
        common = ["--name", NAME, "--redis-url", redis_url, "--key-prefix", prefix]
        assert publish.main(["rollback", *common]) == 0  # and forward again, from a shell
        assert f"active: {NAME} {second.version}" in capsys.readouterr().out
        assert client.post("/admin/reload", headers=AUTH).json()["served"] == second.version
        assert client.post("/admin/rollback", headers=AUTH).json()["active"] == first.version
        deleted = client.delete(f"/admin/versions/{second.version}", headers=AUTH)
        assert deleted.status_code == 204
        assert client.post("/admin/rollback", headers=AUTH).status_code == 409  # target gone


def test_emptied_redis_is_repaired_by_the_replica(make_settings, redis_url, prefix, store,
                                                  versions):
    """Every key lost (a FLUSH, or a restart without persistence): answers continue from the
    in-process copy, readiness says degraded, and the next poll re-publishes the served version
    (the watcher's poll is called by hand here; the kill test shows the watcher doing it)."""
    publish_version(store, versions[0], NAME)
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, poll_interval_s=60)
    request = {"session": sessions_of(versions)[0], "k": 5}
    with TestClient(create_app(settings)) as client:
        reference = client.post("/recommend", json=request).json()["items"]
        raw = redis.Redis.from_url(redis_url)
        raw.delete(*raw.scan_iter(match=f"{prefix}:*"))
        raw.close()
        assert client.post("/recommend", json=request).json()["items"] == reference
        ready = client.get("/readyz").json()
        assert ready["ready"] is True and ready["degraded"] is True
        assert "no complete copy" in ready["reasons"][0]
        before = REGISTRY.get_sample_value("mvcrec_republishes_total") or 0
        assert client.app.state.runtime.refresh() is False  # same version, re-published
        assert store.active(NAME) == versions[0].version
        assert client.get("/readyz").json()["degraded"] is False
        assert REGISTRY.get_sample_value("mvcrec_republishes_total") == before + 1
        assert client.post("/recommend", json=request).json()["items"] == reference
