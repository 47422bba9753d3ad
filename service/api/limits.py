"""Per-client limits: requests in flight and a token-bucket request rate, answered with 429 and
``Retry-After`` beyond either.

The client is the peer address uvicorn reports; behind a reverse proxy, run uvicorn with
``--proxy-headers --forwarded-allow-ips <proxy>`` so that it is the visitor's address, not the
proxy's. Health probes and metrics are never limited.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Receive, Scope, Send

from service import metrics

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_TRACKED_CLIENTS = 10_000


@dataclass
class _Client:
    tokens: float
    refilled_at: float = field(default_factory=time.monotonic)
    in_flight: int = 0


class ClientLimitMiddleware:
    """``max_concurrent`` requests in flight per client (0: no limit) and a bucket of ``burst``
    tokens refilled at ``rate_per_s`` per client (0: no rate limit). The state is in process (per
    replica) and bounded: the least recently seen clients beyond ``MAX_TRACKED_CLIENTS`` are
    forgotten."""

    def __init__(self, app: ASGIApp, max_concurrent: int, rate_per_s: float, burst: int) -> None:
        self.app = app
        self.max_concurrent = max_concurrent
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._lock = threading.Lock()  # never held across an await
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["path"] in EXEMPT_PATHS
                or not (self.max_concurrent or self.rate_per_s)):
            await self.app(scope, receive, send)
            return
        peer = scope.get("client")
        client, refusal = self._admit(peer[0] if peer else "unknown")
        if refusal is not None:
            limit, message, retry_after = refusal
            metrics.RATE_LIMITED.labels(limit).inc()
            await _send_429(send, message, retry_after)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            with self._lock:
                client.in_flight -= 1

    def _admit(self, key: str) -> tuple[_Client, tuple[str, str, int] | None]:
        """Count the request in, or say which limit refuses it and when to retry."""
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = _Client(tokens=float(self.burst))
                while len(self._clients) > MAX_TRACKED_CLIENTS:
                    self._clients.popitem(last=False)
            self._clients.move_to_end(key)
            if self.max_concurrent and client.in_flight >= self.max_concurrent:
                return client, ("concurrency", f"too many concurrent requests from this client "
                                f"(at most {self.max_concurrent}); retry later", 1)
            if self.rate_per_s:
                now = time.monotonic()
                client.tokens = min(float(self.burst), client.tokens
                                    + (now - client.refilled_at) * self.rate_per_s)
                client.refilled_at = now
                if client.tokens < 1:
                    wait = math.ceil((1 - client.tokens) / self.rate_per_s)
                    return client, ("rate", f"rate limit exceeded ({self.rate_per_s:g} requests "
                                    f"per second, bursts of {self.burst}); retry later", wait)
                client.tokens -= 1
            client.in_flight += 1
            return client, None


async def _send_429(send: Send, message: str, retry_after: int) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"retry-after", str(retry_after).encode())]})
    await send({"type": "http.response.body", "body": body})
