"""Where the graph-view item embeddings of each published version live: Redis, or a process-local
store with the same interface for the quick start.

Key layout (``{prefix}`` defaults to ``mvcrec``; the braces around the model name are a Redis
Cluster hash tag, so every key of one model lands in one slot and the Lua scripts may touch them
together)::

    {prefix}:{{name}}:active                 string   the active version
    {prefix}:{{name}}:previous               string   the version active before it (rollback)
    {prefix}:{{name}}:versions               set      every version written (complete or not)
    {prefix}:{{name}}:v:{version}:graph      hash     item index (decimal) → d float32 (LE)
    {prefix}:{{name}}:v:{version}:meta       hash     dim, num_items, sha256, published_at, complete

A version is written with ``complete=0``, read back and compared, then marked ``complete=1``; only
a complete version can become active, and the active one cannot be deleted. Both rules are checked
inside the same atomic step that changes the keys (a Lua script in Redis, a lock here).

Every Redis call has a connect and read timeout; after a failure the store answers
:class:`StoreUnavailable` at once for ``cooldown_s`` instead of waiting on Redis again, so an
outage costs a request milliseconds, not timeouts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, cast

import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

ROW_DTYPE = np.dtype("<f4")


class StoreUnavailable(RuntimeError):
    """The store did not answer (connection refused, timeout)."""


class VersionStateError(RuntimeError):
    """An operation the version's state forbids (activating an incomplete one, deleting the
    active one) or data the service needs that is missing from the store."""


class Keys:
    """Key names of one prefix (see the module docstring)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def active(self, name: str) -> str:
        return f"{self.prefix}:{{{name}}}:active"

    def previous(self, name: str) -> str:
        return f"{self.prefix}:{{{name}}}:previous"

    def versions(self, name: str) -> str:
        return f"{self.prefix}:{{{name}}}:versions"

    def graph(self, name: str, version: str) -> str:
        return f"{self.prefix}:{{{name}}}:v:{version}:graph"

    def meta(self, name: str, version: str) -> str:
        return f"{self.prefix}:{{{name}}}:v:{version}:meta"


class EmbeddingStore(Protocol):
    """The small interface the service and the publish step use."""

    def ping(self) -> bool: ...

    def active(self, name: str) -> str | None: ...

    def previous(self, name: str) -> str | None:
        """The version that was active before the active one (the rollback target)."""

    def versions(self, name: str) -> list[str]: ...

    def meta(self, name: str, version: str) -> dict[str, str]: ...

    def begin_version(self, name: str, version: str, meta: Mapping[str, str]) -> None:
        """Register ``version`` as incomplete and drop any rows an earlier attempt left."""

    def write_rows(self, name: str, version: str, rows: Mapping[int, bytes]) -> None: ...

    def row_count(self, name: str, version: str) -> int: ...

    def read_rows(self, name: str, version: str, indices: Sequence[int]) -> list[bytes | None]:
        """Rows of ``indices`` in one round trip; ``None`` where a row is absent."""

    def mark_complete(self, name: str, version: str) -> None: ...

    def activate(self, name: str, version: str, only_if_unset: bool = False) -> str | None:
        """Point ``active`` at a complete version and remember the one it replaces as
        ``previous``; return that one. With ``only_if_unset`` nothing changes when a version is
        already active."""

    def delete(self, name: str, version: str) -> None:
        """Remove an inactive version's keys (and forget it as the rollback target)."""

    def close(self) -> None: ...


_ACTIVATE = """
if redis.call('HGET', KEYS[2], 'complete') ~= '1' then
  return redis.error_reply('NOTCOMPLETE version ' .. ARGV[1] .. ' is not completely published')
end
local previous = redis.call('GET', KEYS[1])
if ARGV[2] == '1' and previous then
  return previous
end
redis.call('SET', KEYS[1], ARGV[1])
if previous and previous ~= ARGV[1] then
  redis.call('SET', KEYS[3], previous)
end
return previous
"""

_DELETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.error_reply('ACTIVE version ' .. ARGV[1] .. ' is active; activate another first')
end
if redis.call('GET', KEYS[5]) == ARGV[1] then
  redis.call('DEL', KEYS[5])
end
redis.call('UNLINK', KEYS[2], KEYS[3])
return redis.call('SREM', KEYS[4], ARGV[1])
"""


class RedisStore:
    """:class:`EmbeddingStore` on a Redis server. Connection failures and timeouts raise
    :class:`StoreUnavailable` after one quick retry, so a request never hangs on a dead Redis;
    for ``cooldown_s`` after one, every call raises it at once (see :meth:`guard`)."""

    def __init__(self, url: str, prefix: str = "mvcrec", timeout_s: float = 0.5,
                 cooldown_s: float = 0.0) -> None:
        self.keys = Keys(prefix)
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1), health_check_interval=30)
        self.cooldown_s = cooldown_s
        self._down_until = 0.0
        self._activate = self.client.register_script(_ACTIVATE)
        self._delete = self.client.register_script(_DELETE)

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Wrap Redis calls: connection errors and timeouts become :class:`StoreUnavailable` and
        start a cooldown during which the store fails fast without calling Redis."""
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("Redis is unavailable (a recent call failed)")
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as error:
            self._down_until = time.monotonic() + self.cooldown_s
            raise StoreUnavailable(f"Redis is unavailable: {error}") from error

    def ping(self) -> bool:
        try:
            with self.guard():
                return bool(self.client.ping())
        except (StoreUnavailable, redis.RedisError):
            return False

    def active(self, name: str) -> str | None:
        with self.guard():
            value = self.client.get(self.keys.active(name))
        return None if value is None else _text(value)

    def previous(self, name: str) -> str | None:
        with self.guard():
            value = self.client.get(self.keys.previous(name))
        return None if value is None else _text(value)

    def versions(self, name: str) -> list[str]:
        with self.guard():
            members = self.client.smembers(self.keys.versions(name))
        return sorted(_text(member) for member in members)

    def meta(self, name: str, version: str) -> dict[str, str]:
        with self.guard():
            raw = self.client.hgetall(self.keys.meta(name, version))
        return {_text(key): _text(value) for key, value in raw.items()}

    def begin_version(self, name: str, version: str, meta: Mapping[str, str]) -> None:
        with self.guard():
            pipe = self.client.pipeline(transaction=True)
            pipe.unlink(self.keys.graph(name, version), self.keys.meta(name, version))
            fields: dict[Any, Any] = {**meta, "complete": "0"}
            pipe.hset(self.keys.meta(name, version), mapping=fields)
            pipe.sadd(self.keys.versions(name), version)
            pipe.execute()

    def write_rows(self, name: str, version: str, rows: Mapping[int, bytes]) -> None:
        if not rows:
            return
        with self.guard():
            self.client.hset(self.keys.graph(name, version),
                             mapping={str(index): row for index, row in rows.items()})

    def row_count(self, name: str, version: str) -> int:
        with self.guard():
            return int(self.client.hlen(self.keys.graph(name, version)))

    def read_rows(self, name: str, version: str, indices: Sequence[int]) -> list[bytes | None]:
        if not indices:
            return []
        with self.guard():
            values = self.client.hmget(self.keys.graph(name, version), [str(i) for i in indices])
        return cast(list[bytes | None], values)  # the client never decodes responses

    def mark_complete(self, name: str, version: str) -> None:
        with self.guard():
            self.client.hset(self.keys.meta(name, version), "complete", "1")

    def activate(self, name: str, version: str, only_if_unset: bool = False) -> str | None:
        keys = [self.keys.active(name), self.keys.meta(name, version), self.keys.previous(name)]
        try:
            with self.guard():
                previous = self._activate(keys=keys, args=[version, "1" if only_if_unset else "0"])
        except redis.ResponseError as error:
            raise VersionStateError(_script_message(error)) from None
        return None if previous is None else _text(previous)

    def delete(self, name: str, version: str) -> None:
        keys = [self.keys.active(name), self.keys.graph(name, version),
                self.keys.meta(name, version), self.keys.versions(name), self.keys.previous(name)]
        try:
            with self.guard():
                self._delete(keys=keys, args=[version])
        except redis.ResponseError as error:
            raise VersionStateError(_script_message(error)) from None

    def close(self) -> None:
        self.client.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _script_message(error: redis.ResponseError) -> str:
    """Lua ``error_reply`` text without its leading code word."""
    return str(error).split(" ", 1)[-1]


class MemoryStore:
    """:class:`EmbeddingStore` inside the process: the same rules, no persistence, no sharing
    between replicas. For the quick start and tests only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[str, str] = {}
        self._previous: dict[str, str] = {}
        self._meta: dict[tuple[str, str], dict[str, str]] = {}
        self._rows: dict[tuple[str, str], dict[int, bytes]] = {}

    def ping(self) -> bool:
        return True

    def active(self, name: str) -> str | None:
        return self._active.get(name)

    def previous(self, name: str) -> str | None:
        return self._previous.get(name)

    def versions(self, name: str) -> list[str]:
        with self._lock:
            return sorted(version for owner, version in self._meta if owner == name)

    def meta(self, name: str, version: str) -> dict[str, str]:
        with self._lock:
            return dict(self._meta.get((name, version), {}))

    def begin_version(self, name: str, version: str, meta: Mapping[str, str]) -> None:
        with self._lock:
            self._meta[name, version] = {**meta, "complete": "0"}
            self._rows[name, version] = {}

    def write_rows(self, name: str, version: str, rows: Mapping[int, bytes]) -> None:
        with self._lock:
            self._rows.setdefault((name, version), {}).update(rows)

    def row_count(self, name: str, version: str) -> int:
        with self._lock:
            return len(self._rows.get((name, version), {}))

    def read_rows(self, name: str, version: str, indices: Sequence[int]) -> list[bytes | None]:
        with self._lock:
            rows = self._rows.get((name, version), {})
            return [rows.get(index) for index in indices]

    def mark_complete(self, name: str, version: str) -> None:
        with self._lock:
            self._meta.setdefault((name, version), {})["complete"] = "1"

    def activate(self, name: str, version: str, only_if_unset: bool = False) -> str | None:
        with self._lock:
            if self._meta.get((name, version), {}).get("complete") != "1":
                raise VersionStateError(f"version {version} is not completely published")
            previous = self._active.get(name)
            if only_if_unset and previous is not None:
                return previous
            self._active[name] = version
            if previous is not None and previous != version:
                self._previous[name] = previous
            return previous

    def delete(self, name: str, version: str) -> None:
        with self._lock:
            if self._active.get(name) == version:
                raise VersionStateError(f"version {version} is active; activate another first")
            if self._previous.get(name) == version:
                del self._previous[name]
            self._meta.pop((name, version), None)
            self._rows.pop((name, version), None)

    def close(self) -> None:
        return None


def create_store(redis_url: str | None, prefix: str, timeout_s: float,
                 cooldown_s: float) -> EmbeddingStore:
    """Redis when a URL is given, the process-local store otherwise."""
    if redis_url is None:
        return MemoryStore()
    return RedisStore(redis_url, prefix, timeout_s, cooldown_s)
