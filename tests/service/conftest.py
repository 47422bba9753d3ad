"""Service fixtures: exported versions of the tiny trained model, a real Redis, unique keys."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from model.artifact import Artifact, load_artifact, write_artifact
from service.config import Settings
from service.store import RedisStore
from training.export import export_run

from .redis_server import RedisServer, free_port

NAME = "tiny"


@pytest.fixture(scope="session")
def artifact_root(tmp_path_factory: pytest.TempPathFactory, trained_run: Path,
                  prepared: Any) -> Path:
    """Two versions of ``tiny``: the exported model, and a copy with scaled item tables (so the
    two rank differently and are told apart by their scores)."""
    root = tmp_path_factory.mktemp("artifacts")
    first = load_artifact(export_run(trained_run, root, NAME, data=prepared))
    assert first.graph_item_emb is not None
    write_artifact(root, NAME, first.encoder, first.manifest["encoder"], first.item_ids,
                   first.graph_item_emb * 1.5, first.fused_item_emb * 2.0, first.popularity,
                   {"dataset": "tiny", "model": "mvcrec-scaled"})
    return root


@pytest.fixture(scope="session")
def versions(artifact_root: Path) -> list[Artifact]:
    """Both versions, oldest first."""
    paths = [p for p in (artifact_root / NAME).iterdir() if not p.name.startswith(".")]
    artifacts = sorted((load_artifact(p) for p in paths), key=lambda a: a.manifest["created_at"])
    assert len(artifacts) == 2
    return artifacts


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards."""
    value = f"test-{uuid.uuid4().hex[:12]}"
    yield value
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{value}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def store(redis_url: str, prefix: str) -> Iterator[RedisStore]:
    store = RedisStore(redis_url, prefix)
    yield store
    store.close()


@pytest.fixture
def make_settings(artifact_root: Path) -> Callable[..., Settings]:
    """Settings for a test app: no env file, CPU, tiny model; keywords override."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"artifact_dir": artifact_root, "model_name": NAME,
                                  "device": "cpu", "poll_interval_s": 60.0, **overrides}
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A ``redis-server`` of the test's own, on its own port, without persistence."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not found on PATH")
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()
