"""The HTTP API against a real Redis: answers, fallbacks, limits, readiness, metrics, swaps."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from model.artifact import latest_version
from service.main import create_app
from service.publish import publish_version

from .conftest import NAME


@pytest.fixture
def client(make_settings, redis_url, prefix, store, versions) -> Iterator[TestClient]:
    """The app serving the first version, published by the publish step beforehand."""
    publish_version(store, versions[0], NAME)
    with TestClient(create_app(make_settings(redis_url=redis_url, key_prefix=prefix,
                                             max_body_bytes=4096, max_session_length=50,
                                             max_k=20))) as test_client:
        yield test_client


def items_of(versions, count: int = 4) -> list[str]:
    return versions[0].item_ids[1:count + 1]


def assert_same_ranking(got: list[dict], expected: list[dict]) -> None:
    """Same items in the same order; scores equal up to float noise (batch padding differs)."""
    assert [i["item"] for i in got] == [i["item"] for i in expected]
    assert [i["score"] for i in got] == pytest.approx([i["score"] for i in expected], abs=1e-5)


def test_recommend_happy_path(client, versions):
    session = items_of(versions, 3)
    response = client.post("/recommend", json={"session": session, "k": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["strategy"] == "model"
    assert body["model_version"] == versions[0].version
    assert body["ignored_items"] == []
    assert len(body["items"]) == 5
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert not set(session) & {item["item"] for item in body["items"]}  # exclude_seen default
    assert len(body["recommendation_id"]) == 36
    again = client.post("/recommend", json={"session": session, "k": 5}).json()
    assert again["items"] == body["items"]
    assert again["recommendation_id"] != body["recommendation_id"]


def test_unknown_ids_are_ignored_and_listed(client, versions):
    session = ["nope", *items_of(versions, 2), 123456, ""]
    body = client.post("/recommend", json={"session": session}).json()
    assert body["strategy"] == "model"
    assert body["ignored_items"] == ["nope", 123456, ""]
    known_only = client.post("/recommend", json={"session": items_of(versions, 2)}).json()
    assert_same_ranking(body["items"], known_only["items"])


@pytest.mark.parametrize("session", [[], ["unknown-a", "unknown-b"]])
def test_popularity_fallback(client, versions, session):
    body = client.post("/recommend", json={"session": session, "k": 3}).json()
    assert body["strategy"] == "popular"
    assert body["ignored_items"] == session
    popularity = versions[0].popularity
    expected = sorted(range(1, len(popularity)), key=lambda i: (-popularity[i], i))[:3]
    assert [item["item"] for item in body["items"]] == [versions[0].item_ids[i] for i in expected]
    assert [item["score"] for item in body["items"]] == [float(popularity[i]) for i in expected]


def test_popular_fallback_respects_exclude(client, versions):
    top = client.post("/recommend", json={"session": [], "k": 3}).json()["items"]
    body = client.post("/recommend", json={"session": [], "k": 3,
                                           "exclude": [top[0]["item"]]}).json()
    assert [i["item"] for i in body["items"]] == [i["item"] for i in top[1:]] + [
        body["items"][-1]["item"]]


def test_exclude_seen_and_exclude(client, versions):
    session = items_of(versions, 3)
    full = client.post("/recommend", json={"session": session, "k": 20, "exclude_seen": False})
    ranked = [i["item"] for i in full.json()["items"]]
    seen_kept = [i for i in ranked if i in session]
    if not seen_kept:
        pytest.skip("no session item ranks in the top 20 without exclusion")
    excluded = client.post("/recommend", json={"session": session, "k": 10}).json()["items"]
    assert not {i["item"] for i in excluded} & set(session)
    assert [i["item"] for i in excluded] == [i for i in ranked if i not in session][:10]
    explicit = client.post("/recommend", json={"session": session, "k": 10,
                                               "exclude_seen": False,
                                               "exclude": [ranked[0], "unknown"]}).json()
    assert [i["item"] for i in explicit["items"]] == ranked[1:11]


def test_long_session_uses_the_last_l_items(client, versions):
    max_len = versions[0].manifest["max_len"]
    ids = versions[0].item_ids[1:]
    session = [ids[i % len(ids)] for i in range(max_len + 15)]
    tail = session[-max_len:]
    long = client.post("/recommend", json={"session": session, "exclude_seen": False}).json()
    short = client.post("/recommend", json={"session": tail, "exclude_seen": False}).json()
    assert_same_ranking(long["items"], short["items"])


def test_batch_matches_single_requests(client, versions):
    requests = [{"session": items_of(versions, 3), "k": 4}, {"session": []},
                {"session": ["x", items_of(versions, 1)[0]], "k": 2, "exclude_seen": False}]
    response = client.post("/recommend/batch", json={"requests": requests})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == versions[0].version
    assert [r["strategy"] for r in body["results"]] == ["model", "popular", "model"]
    for request, result in zip(requests, body["results"], strict=True):
        single = client.post("/recommend", json=request).json()
        assert_same_ranking(result["items"], single["items"])
        assert result["ignored_items"] == single["ignored_items"]


def test_similar_items(client, versions):
    item = versions[0].item_ids[5]
    body = client.get(f"/items/{item}/similar", params={"k": 4}).json()
    assert body["item"] == item and body["model_version"] == versions[0].version
    assert len(body["items"]) == 4
    assert item not in [i["item"] for i in body["items"]]
    fused = versions[0].fused_item_emb
    scores = fused[1:] @ fused[5]
    scores[4] = -float("inf")  # row 5 is index 4 of rows 1..N
    expected = [versions[0].item_ids[i + 1] for i in scores.argsort()[::-1][:4]]
    assert [i["item"] for i in body["items"]] == expected


@pytest.mark.parametrize(("body", "fragment"), [
    ({}, "Field required"),
    ({"session": "abc"}, "valid array"),
    ({"session": None}, "valid array"),
    ({"session": [True]}, "got bool"),
    ({"session": [1.5]}, "got float"),
    ({"session": [{"id": 1}]}, "got dict"),
    ({"session": [None]}, "got NoneType"),
    ({"session": ["a"], "k": 0}, "between 1 and 20"),
    ({"session": ["a"], "k": -3}, "between 1 and 20"),
    ({"session": ["a"], "k": 21}, "between 1 and 20"),
    ({"session": ["a"], "k": "ten"}, "valid integer"),
    ({"session": ["a"], "k": True}, "valid integer"),
    ({"session": ["a"], "exclude_seen": "yes"}, "valid boolean"),
    ({"session": ["a"], "exclude": [False]}, "got bool"),
    ({"session": ["a"], "sesion": []}, "Extra inputs"),
    ({"session": ["a"] * 51}, "at most 50 are accepted (MAX_SESSION_LENGTH)"),
])
def test_bad_input_is_a_clear_422(client, body, fragment):
    response = client.post("/recommend", json=body)
    assert response.status_code == 422, response.text
    assert fragment in response.text


def test_bad_batches(client):
    too_many = {"requests": [{"session": []}] * 65}
    assert client.post("/recommend/batch", json=too_many).status_code in (413, 422)
    response = client.post("/recommend/batch", json={"requests": [{"session": []}, {"k": 1}]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "requests", 1, "session"]
    response = client.post("/recommend/batch", json={"requests": [{"session": [], "k": 99}]})
    assert response.status_code == 422 and "between 1 and 20" in response.text


def test_batch_count_limit(make_settings, redis_url, prefix, store, versions):
    publish_version(store, versions[0], NAME)
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, max_batch_requests=2)
    with TestClient(create_app(settings)) as client:
        response = client.post("/recommend/batch", json={"requests": [{"session": []}] * 3})
    assert response.status_code == 422
    assert "at most 2 per batch" in response.text


@pytest.mark.parametrize("payload", [b"{\"session\": [", b"not json", b"{\"session\": [1,]}"])
def test_malformed_json_is_a_422(client, payload):
    response = client.post("/recommend", content=payload,
                           headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "malformed JSON" in response.text


def test_body_over_the_limit_is_413(client):
    big = {"session": ["x" * 100] * 50}  # > 4096 bytes
    response = client.post("/recommend", json=big)
    assert response.status_code == 413
    assert "4096 bytes" in response.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: the streamed size is counted
        yield b'{"session": ['
        for _ in range(100):
            yield b'"' + b"y" * 60 + b'",'
        yield b'"z"]}'

    response = client.post("/recommend", content=chunks(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_similar_errors(client):
    assert client.get("/items/no-such-item/similar").status_code == 404
    assert "unknown item" in client.get("/items/no-such-item/similar").text
    item = "x"
    for k in ("0", "21", "abc"):
        response = client.get(f"/items/{item}/similar", params={"k": k})
        assert response.status_code == 422, k


def test_health_readiness_docs(client, versions):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body.pop("blas_min_queries") >= 1  # measured: an exact CPU index
    assert body == {"ready": True, "degraded": False, "model_version": versions[0].version,
                    "index": "faiss-cpu", "device": "cpu", "reasons": []}
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "/recommend" in schema["paths"] and "/items/{item_id}/similar" in schema["paths"]
    assert schema["components"]["schemas"]["RecommendRequest"]["examples"]
    recommend = schema["paths"]["/recommend"]["post"]  # read by json_body: documented by hand
    body_schema = recommend["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/RecommendRequest"}
    assert {"200", "422"} <= set(recommend["responses"])
    answer = recommend["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/RecommendResponse"}


def test_metrics(client, versions):
    client.post("/recommend", json={"session": items_of(versions, 2)})
    client.post("/recommend", json={"session": []})
    client.get(f"/items/{versions[0].item_ids[1]}/similar")
    text = client.get("/metrics").text
    assert 'mvcrec_http_requests_total{method="POST",route="/recommend",status="200"}' in text
    assert 'route="/items/{item_id}/similar"' in text
    assert 'mvcrec_http_request_duration_seconds_bucket{le="0.005",method="POST"' in text
    assert 'mvcrec_recommendations_total{strategy="popular"}' in text
    assert (f'mvcrec_model_version_info{{name="{NAME}",version="{versions[0].version}"}} 1.0'
            in text)


def test_in_process_store_quick_start(make_settings, artifact_root, versions):
    """No REDIS_URL: the newest local version is published into a process-local store."""
    with TestClient(create_app(make_settings(redis_url=None))) as client:
        ready = client.get("/readyz").json()
        assert ready["ready"] is True
        assert ready["model_version"] == latest_version(artifact_root, NAME).name
        body = client.post("/recommend", json={"session": items_of(versions, 3)}).json()
        assert body["strategy"] == "model" and len(body["items"]) == 10


def test_auto_publish_when_nothing_is_active(make_settings, redis_url, prefix, store,
                                            artifact_root):
    with TestClient(create_app(make_settings(redis_url=redis_url, key_prefix=prefix))) as client:
        assert client.get("/readyz").status_code == 200
    assert store.active(NAME) == latest_version(artifact_root, NAME).name


def test_not_ready_without_a_model(make_settings, redis_url, prefix, tmp_path):
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, artifact_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "model not loaded" in ready.json()["reasons"][0]
        response = client.post("/recommend", json={"session": ["a"]})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert "no model version loaded" in response.json()["detail"]


def test_new_version_is_picked_up_and_never_mixed(make_settings, redis_url, prefix, store,
                                                  versions):
    """Publishing and activating version 2 swaps the service over; every response during the
    swap equals the reference answer of the version it names."""
    first, second = versions
    publish_version(store, first, NAME)
    publish_version(store, second, NAME, activate=False)
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, poll_interval_s=0.02)
    request = {"session": items_of(versions, 3), "k": 5}
    with TestClient(create_app(settings)) as client:
        reference = {first.version: client.post("/recommend", json=request).json()["items"]}
        store.activate(NAME, second.version)
        seen = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            body = client.post("/recommend", json=request).json()
            seen.append((body["model_version"], body["items"]))
            if body["model_version"] == second.version and len(seen) > 3:
                break
        reference[second.version] = seen[-1][1]
        assert reference[second.version] != reference[first.version]
        assert all(items == reference[version] for version, items in seen)
        assert client.get("/readyz").json()["model_version"] == second.version
        store.activate(NAME, first.version)  # rollback
        deadline = time.monotonic() + 10
        while client.get("/readyz").json()["model_version"] != first.version:
            assert time.monotonic() < deadline, "rollback not picked up"
            time.sleep(0.02)
        assert client.post("/recommend", json=request).json()["items"] == reference[
            first.version]


def test_a_version_missing_locally_keeps_the_served_one(make_settings, redis_url, prefix, store,
                                                        versions, tmp_path):
    first = versions[0]
    publish_version(store, first, NAME)
    only_first = tmp_path / NAME
    only_first.mkdir()
    (only_first / first.version).symlink_to(first.path)
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, artifact_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        publish_version(store, versions[1], NAME)  # active now, but not on this replica's disk
        runtime = client.app.state.runtime
        assert runtime.refresh() is False
        assert runtime.state.version == first.version
        assert "no artifact directory" in runtime.last_error
        assert client.post("/recommend", json={"session": []}).status_code == 200


def test_a_loaded_version_is_kept_out_of_the_cyclic_gc(make_settings, redis_url, prefix, store,
                                                      versions, artifact_root):
    publish_version(store, versions[0], NAME)
    gc.unfreeze()
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, artifact_dir=artifact_root)
    with TestClient(create_app(settings)) as client:
        assert client.app.state.runtime.state.version == versions[0].version
        assert gc.get_freeze_count() > 0, "full collections would walk the whole loaded heap"
