"""Server-side sessions: the items a visitor viewed or bought, kept by the service so a front-end
sends one event at a time and asks for recommendations by session id.

Key layout (next to the embedding keys of :mod:`service.store`)::

    {prefix}:session:{session_id}    list    JSON events, oldest first; the newest
                                             SESSION_MAX_EVENTS are kept, SESSION_TTL_S after
                                             the last append the list expires

An append is one ``MULTI/EXEC`` transaction (``RPUSH``, ``LTRIM``, ``EXPIRE``): concurrent appends
never lose events, and the events of one append, and of one writer's successive appends, keep
their order.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol, cast

from service.store import EmbeddingStore, RedisStore

MEMORY_MAX_SESSIONS = 10_000


class SessionStore(Protocol):
    def append(self, session_id: str, events: Sequence[str]) -> int:
        """Append encoded events atomically, keep the newest ``max_events`` and renew the TTL;
        return how many events the session holds now."""

    def read(self, session_id: str) -> list[str]:
        """The session's events, oldest first (empty for an unknown or expired session)."""


class RedisSessions:
    """:class:`SessionStore` in Redis, through the embedding store's client: the same timeouts,
    and the same fail-fast cooldown after an outage."""

    def __init__(self, store: RedisStore, max_events: int, ttl_s: int) -> None:
        self.store = store
        self.max_events = max_events
        self.ttl_s = ttl_s

    def key(self, session_id: str) -> str:
        return f"{self.store.keys.prefix}:session:{session_id}"

    def append(self, session_id: str, events: Sequence[str]) -> int:
        key = self.key(session_id)
        with self.store.guard():
            pipe = self.store.client.pipeline(transaction=True)
            pipe.rpush(key, *events)
            pipe.ltrim(key, -self.max_events, -1)
            pipe.expire(key, self.ttl_s)
            length = pipe.execute()[0]
        return min(int(length), self.max_events)

    def read(self, session_id: str) -> list[str]:
        with self.store.guard():
            values = cast(list[bytes], self.store.client.lrange(self.key(session_id), 0, -1))
        return [value.decode() for value in values]  # the client never decodes responses


class MemorySessions:
    """:class:`SessionStore` inside the process (quick start): the same cap and TTL, and at most
    ``MEMORY_MAX_SESSIONS`` sessions, the least recently used dropped first."""

    def __init__(self, max_events: int, ttl_s: int) -> None:
        self.max_events = max_events
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, tuple[float, list[str]]] = OrderedDict()

    def append(self, session_id: str, events: Sequence[str]) -> int:
        now = time.monotonic()
        with self._lock:
            stored = self._live(session_id, now)
            stored = (stored + list(events))[-self.max_events:]
            self._sessions[session_id] = (now + self.ttl_s, stored)
            self._sessions.move_to_end(session_id)
            while len(self._sessions) > MEMORY_MAX_SESSIONS:
                self._sessions.popitem(last=False)
            return len(stored)

    def read(self, session_id: str) -> list[str]:
        with self._lock:
            return list(self._live(session_id, time.monotonic()))

    def _live(self, session_id: str, now: float) -> list[str]:
        expires, events = self._sessions.get(session_id, (now, []))
        if expires <= now:
            self._sessions.pop(session_id, None)
            return []
        return events


def create_sessions(store: EmbeddingStore, max_events: int, ttl_s: int) -> SessionStore:
    """Sessions next to the embeddings: in Redis when the store is Redis, else in process."""
    if isinstance(store, RedisStore):
        return RedisSessions(store, max_events, ttl_s)
    return MemorySessions(max_events, ttl_s)
