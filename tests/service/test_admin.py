"""The admin API: disabled without a token, 401 for a wrong one, and nothing changes either way."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.config import Settings, get_settings
from service.main import create_app
from service.publish import publish_version

from .conftest import NAME

TOKEN = "admin-token-0123456789abcdef"


def admin_calls(version: str) -> list[tuple[str, str]]:
    """Every admin operation, aimed at ``version``."""
    return [("GET", "/admin/versions"), ("PUT", f"/admin/versions/{version}"),
            ("POST", f"/admin/versions/{version}/activate"), ("POST", "/admin/rollback"),
            ("DELETE", f"/admin/versions/{version}"), ("POST", "/admin/reload")]


@pytest.fixture
def published(store, versions):
    """Version 1 active, version 2 published and inactive."""
    publish_version(store, versions[0], NAME)
    publish_version(store, versions[1], NAME, activate=False)
    return versions


def test_without_a_token_the_admin_api_is_disabled(make_settings, redis_url, prefix, store,
                                                   published):
    settings = make_settings(redis_url=redis_url, key_prefix=prefix)
    with TestClient(create_app(settings)) as client:
        for method, path in admin_calls(published[1].version):
            response = client.request(method, path, headers={"Authorization": "Bearer x" * 20})
            assert response.status_code == 403, (method, path)
            assert response.json() == {
                "detail": "admin API disabled: set ADMIN_TOKEN to enable it"}
    assert store.active(NAME) == published[0].version
    assert store.versions(NAME) == sorted(v.version for v in published)


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}",
                                    f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer "])
def test_a_missing_or_wrong_token_is_refused(make_settings, redis_url, prefix, store, published,
                                             header):
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, admin_token=TOKEN)
    headers = {} if header is None else {"Authorization": header}
    with TestClient(create_app(settings)) as client:
        for method, path in admin_calls(published[1].version):
            response = client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json() == {"detail": "missing or wrong admin token"}
        # refused before anything else is looked at: a bad path is still a 401, not a 422
        assert client.post("/admin/versions/-x/activate", headers=headers).status_code == 401
    assert store.active(NAME) == published[0].version
    assert store.versions(NAME) == sorted(v.version for v in published)


def test_the_right_token_works(make_settings, redis_url, prefix, store, published):
    first, second = published
    settings = make_settings(redis_url=redis_url, key_prefix=prefix, admin_token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(settings)) as client:
        listing = client.get("/admin/versions", headers=auth).json()
        assert listing["active"] == first.version and listing["served"] == first.version
        assert listing["previous"] is None and listing["last_error"] is None
        assert {v["version"]: v["complete"] for v in listing["versions"]} == {
            first.version: True, second.version: True}
        again = client.put(f"/admin/versions/{second.version}", headers=auth).json()
        assert again == {"version": second.version, "written": False,
                         "active": first.version, "served": first.version}
        assert client.put("/admin/versions/no-such-version", headers=auth).status_code == 404
        for bad in ("-x", "a%20b", "..."):  # never a path outside ARTIFACT_DIR
            assert client.put(f"/admin/versions/{bad}", headers=auth).status_code == 422
        refused = client.delete(f"/admin/versions/{first.version}", headers=auth)
        assert refused.status_code == 409 and "is active" in refused.json()["detail"]
        assert client.delete(f"/admin/versions/{second.version}", headers=auth).status_code == 204
        assert store.versions(NAME) == [first.version]
        reloaded = client.post("/admin/reload", headers=auth).json()
        assert reloaded == {"served": first.version, "last_error": None}


def test_admin_token_settings(monkeypatch):
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(_env_file=None, admin_token="short")
    monkeypatch.setenv("ADMIN_TOKEN", "")
    get_settings.cache_clear()
    try:
        assert get_settings().admin_token is None  # empty: disabled, not "any token"
        monkeypatch.setenv("ADMIN_TOKEN", TOKEN)
        get_settings.cache_clear()
        token = get_settings().admin_token
        assert token is not None and token.get_secret_value() == TOKEN
        assert TOKEN not in repr(get_settings())
    finally:
        get_settings.cache_clear()
