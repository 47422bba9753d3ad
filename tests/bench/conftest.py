from __future__ import annotations

import pytest
import redis

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def redis_server() -> str:
    """The Redis server the load tests' services use (``.ci/run`` starts one)."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        pytest.skip(f"no Redis server at {REDIS_URL} ({error})")
    return REDIS_URL
