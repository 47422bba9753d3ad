"""Publish → verify → activate, list, rollback and delete, on Redis and on the in-process store."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from model.artifact import Artifact
from service import publish
from service.config import get_settings
from service.publish import graph_rows, publish_version, verify_version
from service.store import ROW_DTYPE, EmbeddingStore, MemoryStore, RedisStore, VersionStateError

from .conftest import NAME


@pytest.fixture(params=["redis", "memory"])
def any_store(request: pytest.FixtureRequest) -> EmbeddingStore:
    if request.param == "memory":
        return MemoryStore()
    store: RedisStore = request.getfixturevalue("store")
    return store


def test_publish_writes_verified_rows_and_activates(any_store, versions):
    first = versions[0]
    assert any_store.active(NAME) is None
    assert publish_version(any_store, first, NAME) is True
    assert any_store.active(NAME) == first.version
    meta = any_store.meta(NAME, first.version)
    assert meta["complete"] == "1"
    assert meta["dim"] == str(first.manifest["dim"])
    assert meta["num_items"] == str(first.num_items)
    assert any_store.row_count(NAME, first.version) == first.num_items
    assert first.graph_item_emb is not None
    row = any_store.read_rows(NAME, first.version, [3])[0]
    assert row is not None
    np.testing.assert_array_equal(np.frombuffer(row, dtype=ROW_DTYPE), first.graph_item_emb[3])
    assert any_store.read_rows(NAME, first.version, [0, first.num_items + 1]) == [None, None]
    # publishing an identical complete copy again writes nothing
    assert publish_version(any_store, first, NAME) is False


def test_switch_list_rollback_delete(any_store, versions):
    first, second = versions
    publish_version(any_store, first, NAME)
    publish_version(any_store, second, NAME, activate=False)
    assert any_store.active(NAME) == first.version
    assert any_store.versions(NAME) == sorted([first.version, second.version])
    assert any_store.activate(NAME, second.version) == first.version
    assert any_store.active(NAME) == second.version
    assert any_store.activate(NAME, first.version) == second.version  # rollback
    with pytest.raises(VersionStateError, match="active"):
        any_store.delete(NAME, first.version)
    any_store.delete(NAME, second.version)
    assert any_store.versions(NAME) == [first.version]
    assert any_store.meta(NAME, second.version) == {}
    assert any_store.row_count(NAME, second.version) == 0
    with pytest.raises(VersionStateError, match="not completely published"):
        any_store.activate(NAME, second.version)


def test_only_if_unset_keeps_an_active_version(any_store, versions):
    first, second = versions
    publish_version(any_store, first, NAME)
    publish_version(any_store, second, NAME, activate=False)
    assert any_store.activate(NAME, second.version, only_if_unset=True) == first.version
    assert any_store.active(NAME) == first.version


def test_incomplete_version_cannot_be_activated(any_store, versions):
    first = versions[0]
    any_store.begin_version(NAME, first.version, {"dim": "16"})
    with pytest.raises(VersionStateError, match="not completely published"):
        any_store.activate(NAME, first.version)
    assert any_store.active(NAME) is None


def test_verification_finds_a_corrupt_row(store: RedisStore, versions: list[Artifact]):
    first = versions[0]
    publish_version(store, first, NAME)
    rows = graph_rows(first)
    assert verify_version(store, NAME, first.version, rows) is None
    store.client.hset(store.keys.graph(NAME, first.version), "5", b"\x00" * 4)
    assert verify_version(store, NAME, first.version, rows) == "row 5 differs from the artifact"
    store.client.hdel(store.keys.graph(NAME, first.version), "7")
    assert "rows stored" in (verify_version(store, NAME, first.version, rows) or "")
    # a re-publish notices the damage and rewrites the version
    assert publish_version(store, first, NAME) is True
    assert verify_version(store, NAME, first.version, rows) is None


def test_key_layout_is_version_namespaced_with_a_hash_tag(store, versions, prefix, redis_url):
    first = versions[0]
    publish_version(store, first, NAME)
    client = redis.Redis.from_url(redis_url)
    keys = sorted(k.decode() for k in client.scan_iter(match=f"{prefix}:*"))
    assert keys == sorted([f"{prefix}:{{{NAME}}}:active", f"{prefix}:{{{NAME}}}:versions",
                           f"{prefix}:{{{NAME}}}:v:{first.version}:graph",
                           f"{prefix}:{{{NAME}}}:v:{first.version}:meta"])
    assert client.type(f"{prefix}:{{{NAME}}}:v:{first.version}:graph") == b"hash"
    client.close()


def test_command_line(redis_url, prefix, artifact_root, versions, capsys):
    first, second = versions
    common = ["--name", NAME, "--redis-url", redis_url, "--key-prefix", prefix]
    assert publish.main(["--artifact-dir", str(artifact_root), "--version", first.version,
                         *common]) == 0
    assert publish.main(["publish", "--artifact-dir", str(artifact_root), "--version",
                         second.version, "--no-activate", *common]) == 0
    capsys.readouterr()
    assert publish.main(["list", *common]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[[second.version in line for line in listing].index(True)].startswith(" ")
    assert any(line.startswith(f"* {first.version}  complete") for line in listing)
    assert publish.main(["activate", "--version", second.version, *common]) == 0
    assert publish.main(["delete", "--version", second.version, *common]) == 1  # active
    assert publish.main(["activate", "--version", first.version, *common]) == 0
    assert publish.main(["delete", "--version", second.version, *common]) == 0
    assert publish.main(["activate", "--version", "no-such-version", *common]) == 1
    assert publish.main(["--artifact-dir", str(artifact_root), "--version", "nope",
                         *common]) == 1  # load_artifact refuses a missing version
    capsys.readouterr()
    assert publish.main(["list", *common]) == 0
    assert capsys.readouterr().out.split()[:2] == ["*", first.version]


def test_command_line_needs_redis(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    get_settings.cache_clear()
    try:
        assert publish.main(["list", "--name", NAME]) == 2
    finally:
        get_settings.cache_clear()
