"""Redis goes away mid-run and comes back empty, without the in-process copy: 503s (never 500s),
then recovery on re-publish (test_reliability.py covers the default, self-healing setup)."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from service.main import create_app
from service.publish import publish_version
from service.store import RedisStore

from .conftest import NAME


def test_redis_restart_without_a_local_copy(server, make_settings, versions):
    """With the in-process copy and self-repair turned off: 503s while Redis is down or empty,
    recovery on a manual re-publish."""
    store = RedisStore(server.url, "restart")
    publish_version(store, versions[0], NAME)
    settings = make_settings(redis_url=server.url, key_prefix="restart", poll_interval_s=0.05,
                             retry_after_s=7, local_copy_max_bytes=0, auto_publish=False,
                             store_cooldown_s=0)
    request = {"session": versions[0].item_ids[1:4], "k": 5}
    with TestClient(create_app(settings)) as client:
        before = client.post("/recommend", json=request)
        assert before.status_code == 200

        server.stop()
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "store (Redis) is not answering" in ready.json()["reasons"]
        down = client.post("/recommend", json=request)
        assert down.status_code == 503
        assert down.headers["retry-after"] == "7"
        assert "Redis is unavailable" in down.json()["detail"]
        batch = client.post("/recommend/batch", json={"requests": [request]})
        assert batch.status_code == 503
        # the popularity fallback needs no Redis
        assert client.post("/recommend", json={"session": []}).status_code == 200
        time.sleep(0.2)  # the watcher polls a dead Redis a few times without crashing

        server.start()  # back, but empty
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "re-publish" in ready.json()["reasons"][0]
        missing = client.post("/recommend", json=request)
        assert missing.status_code == 503 and "missing from the store" in missing.text

        publish_version(store, versions[0], NAME)
        assert client.get("/readyz").status_code == 200
        after = client.post("/recommend", json=request)
        assert after.status_code == 200
        assert after.json()["items"] == before.json()["items"]
        metrics = client.get("/metrics").text
        assert 'mvcrec_store_errors_total{reason="unavailable"}' in metrics
        assert 'mvcrec_http_requests_total{method="POST",route="/recommend",status="500"}' \
            not in metrics
    store.close()


def test_start_while_redis_is_down(server, make_settings, versions):
    """The app starts without Redis, is not ready, and loads the model once Redis is back."""
    server.stop()
    settings = make_settings(redis_url=server.url, key_prefix="late", poll_interval_s=0.05)
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["reasons"][0].startswith("model not loaded: Redis is unavailable")
        assert client.post("/recommend", json={"session": []}).status_code == 503
        server.start()
        deadline = time.monotonic() + 10
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the model was not loaded after Redis came back"
            time.sleep(0.05)
        body = client.post("/recommend", json={"session": versions[0].item_ids[1:3]}).json()
        assert body["strategy"] == "model"
