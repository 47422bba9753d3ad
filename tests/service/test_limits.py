"""Per-client rate and concurrency limits (429 + Retry-After), and errors that reveal nothing
about the machine behind the service."""

from __future__ import annotations

import socket

import httpx
from fastapi.testclient import TestClient

from service.main import create_app
from service.publish import publish_version

from .conftest import NAME
from .live import LiveServer
from .redis_server import free_port


def test_rate_limit(make_settings, redis_url, prefix, store, versions):
    publish_version(store, versions[0], NAME)
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, rate_limit_per_s=0.5,
                             rate_limit_burst=3)
    with TestClient(create_app(settings)) as client:
        statuses = [client.post("/recommend", json={"session": []}).status_code
                    for _ in range(3)]
        assert statuses == [200, 200, 200]
        limited = client.get(f"/items/{versions[0].item_ids[1]}/similar")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "2"  # one token at 0.5 per second
        assert "rate limit exceeded" in limited.json()["detail"]
        assert client.get("/healthz").status_code == 200  # probes are never limited
        assert client.get("/readyz").status_code == 200
        assert 'mvcrec_rate_limited_total{limit="rate"}' in client.get("/metrics").text


def test_concurrency_limit(make_settings, redis_url, prefix, store, versions):
    """One request held open (its body half sent) uses the client's only slot: a second one gets
    429 until the first completes."""
    publish_version(store, versions[0], NAME)
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, max_concurrent_per_client=1)
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url) as http:
        body = b'{"session": []}'
        held = socket.create_connection(("127.0.0.1", live.port))
        held.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
        try:
            for _ in range(100):  # until the server has read the held request's headers
                second = http.post("/recommend", json={"session": []})
                if second.status_code == 429:
                    break
            assert second.status_code == 429
            assert second.headers["retry-after"] == "1"
            assert "too many concurrent requests" in second.json()["detail"]
            held.sendall(body[5:])
            assert held.recv(4096).startswith(b"HTTP/1.1 200")
        finally:
            held.close()
        assert http.post("/recommend", json={"session": []}).status_code == 200


def test_errors_reveal_no_internals(make_settings, versions, tmp_path):
    """Redis unreachable and no model: the 503s and readiness name the problem, not the host,
    port, paths or exception text behind it."""
    port = free_port()
    settings = make_settings(redis_url=f"redis://127.0.0.1:{port}/0", artifact_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        texts = [client.post("/recommend", json={"session": ["a"]}).text,
                 client.get("/items/a/similar").text,
                 client.post("/sessions/s/events", json={"events": [{"item": "a"}]}).text,
                 client.get("/sessions/s/recommendations").text,
                 client.get("/readyz").text]
        internal = client.app.state.runtime.last_error
    assert str(port) in internal  # the log and the admin API get the details ...
    for text in texts:  # ... clients do not
        assert str(port) not in text and "127.0.0.1" not in text
        assert str(tmp_path) not in text and "Error" not in text and "Traceback" not in text
    assert "no model version loaded yet (Redis is unavailable)" in texts[0]
    assert "service temporarily unavailable: Redis is unavailable" in texts[2]
