"""Prometheus metrics (process-wide, registered once on import) and the middleware that counts
requests."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("mvcrec_http_requests_total", "HTTP requests by route template and status",
                   ["method", "route", "status"])
LATENCY = Histogram("mvcrec_http_request_duration_seconds", "HTTP request latency by route",
                    ["method", "route"],
                    buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
RECOMMENDATIONS = Counter("mvcrec_recommendations_total",
                          "Sessions answered, by strategy (popular = fallback)", ["strategy"])
IGNORED_ITEMS = Counter("mvcrec_ignored_items_total", "Unknown item ids in sessions")
STORE_ERRORS = Counter("mvcrec_store_errors_total",
                       "Requests answered 503 because the store failed", ["reason"])
REFRESH_FAILURES = Counter("mvcrec_refresh_failures_total",
                           "Failed attempts to load the active version")
REPUBLISHES = Counter("mvcrec_republishes_total",
                      "Times this replica re-published its served version after Redis lost it")
BATCH_SIZE = Histogram("mvcrec_batch_size", "Requests per micro-batch, by endpoint", ["endpoint"],
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
SIMILAR_CACHE = Counter("mvcrec_similar_cache_total",
                        "GET /items/{id}/similar answers, by cache outcome", ["outcome"])
RATE_LIMITED = Counter("mvcrec_rate_limited_total", "Requests answered 429, by limit", ["limit"])
MODEL_VERSION = Gauge("mvcrec_model_version_info", "The served model version (value 1)",
                      ["name", "version"])


def set_model_version(name: str, version: str) -> None:
    MODEL_VERSION.clear()
    MODEL_VERSION.labels(name=name, version=version).set(1)


class MetricsMiddleware:
    """Counts every HTTP request and times it, labelled by the route *template*
    (``/items/{item_id}/similar``), so label values stay bounded."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = _route_template(scope)
            method = scope["method"]
            LATENCY.labels(method, route).observe(time.perf_counter() - start)
            REQUESTS.labels(method, route, str(status)).inc()


def _route_template(scope: Scope) -> str:
    """The matched route's path template (set in the scope by routing), else ``unmatched``."""
    return str(getattr(scope.get("route"), "path", "unmatched"))
