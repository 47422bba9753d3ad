"""The FastAPI application and its entry point.

    python -m service                     # uvicorn with host/port from the settings
    uvicorn service.main:create_app --factory --host 0.0.0.0 --port 8000
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator

import anyio.to_thread
import faiss
import torch
import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from service.api.body_limit import BodyLimitMiddleware
from service.api.deps import served_state
from service.api.errors import install_error_handlers
from service.api.limits import ClientLimitMiddleware
from service.api.routes import admin, bench, demo, health, items, recommend, sessions
from service.batching import model_answerers
from service.config import Settings, get_settings
from service.metrics import MetricsMiddleware
from service.runtime import Runtime
from service.sessions import create_sessions
from service.similar_cache import CachedSimilarFinder
from service.store import create_store
from training.device import pick_device

log = logging.getLogger(__name__)

DESCRIPTION = """Next-item recommendations from an MVCrec model.

The session encoder runs on `DEVICE`, graph-view item embeddings come from Redis (the active
version), and retrieval is an inner-product FAISS search over fused item embeddings (exact, or IVF
for large catalogs). Concurrent `POST /recommend` calls are answered together in micro-batches.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the model, index and store client are created in its lifespan."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.cpu_threads:
            torch.set_num_threads(settings.cpu_threads)
            faiss.omp_set_num_threads(settings.cpu_threads)
        store = create_store(settings.redis_url, settings.key_prefix, settings.redis_timeout_s,
                             settings.store_cooldown_s)
        if settings.redis_url is None:
            log.warning("REDIS_URL is not set: using an in-process store (quick start only)")
        runtime = Runtime(settings, store, pick_device(settings.device))
        await anyio.to_thread.run_sync(runtime.refresh)
        app.state.runtime = runtime
        app.state.sessions = create_sessions(store, settings.session_max_events,
                                             settings.session_ttl_s)
        read_state = functools.partial(served_state, runtime)
        recommender, similar_finder, batcher = model_answerers(
            read_state, store, settings.batching, settings.batch_max_size,
            settings.batch_max_wait_s)
        app.state.recommender = recommender
        app.state.similar_finder = (
            CachedSimilarFinder(read_state, similar_finder, settings.similar_cache_size)
            if settings.similar_cache_size else similar_finder)
        if batcher is not None:
            batcher.start()
        watcher = asyncio.create_task(runtime.watch())
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if batcher is not None:
                await batcher.aclose()
            store.close()

    telemetry = settings.opentelemetry  # off: FastAPI skips its per-request provider checks
    app = FastAPI(title="MVCrec recommendations", version="1.0", description=DESCRIPTION,
                  lifespan=lifespan,
                  telemetry={"tracing": telemetry, "metrics": telemetry, "logs": telemetry})
    app.state.settings = settings
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ClientLimitMiddleware, max_concurrent=settings.max_concurrent_per_client,
                       rate_per_s=settings.rate_limit_per_s, burst=settings.rate_limit_burst)
    app.add_middleware(MetricsMiddleware)
    install_error_handlers(app, settings.retry_after_s)
    for router in routers_in_match_order(settings.bench_endpoint):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=demo.STATIC_DIR), name="static")
    return app


def routers_in_match_order(bench_endpoint: bool) -> list[APIRouter]:
    """The routers, hot paths first: FastAPI tries routes in order, and every route tried before
    the one that matches costs the request a few microseconds (on a slow core, ``POST
    /bench/trivial`` last took 25 % more time than first). The load test's trivial endpoint,
    the web stack's ceiling, is tried first: it never pays more routing than ``/recommend``."""
    hot = [*([bench.router] if bench_endpoint else []), recommend.router, items.router]
    return [*hot, sessions.router, admin.router, health.router, demo.router]


def main() -> None:
    """Serve with uvicorn; host, port and log level come from the settings."""
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run("service.main:create_app", factory=True, host=settings.host, port=settings.port,
                log_level=settings.log_level)


if __name__ == "__main__":
    main()
