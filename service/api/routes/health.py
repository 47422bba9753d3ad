"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel, Field

from service.api.deps import RuntimeDep
from service.runtime import Runtime
from service.state import ServingState
from service.store import StoreUnavailable

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    degraded: bool = Field(description="Ready, but Redis is down or lost the served version: "
                                       "answers come from the in-process copy, sessions fail")
    model_version: str | None
    index: str | None
    blas_min_queries: int | None = Field(
        description="Exact CPU index: batches of at least this many queries are searched with "
                    "one BLAS product (BLAS_MIN_QUERIES, or measured when the version loaded)")
    device: str
    reasons: list[str]


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (says nothing about Redis or the model)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness,
            responses={503: {"model": Readiness, "description": "Not ready; see reasons"}})
def readyz(runtime: RuntimeDep) -> Response:
    """Ready when a model is loaded, its index built, and its graph rows can be read: from the
    store, or (degraded) from the in-process copy while the store fails or lacks them."""
    state = runtime.state
    reasons = []
    if state is None:
        reasons.append(f"model not loaded: {runtime.public_error or 'starting'}")
    problem = _store_problem(runtime, state)
    covered = state is not None and not state.needs_store
    if problem is not None:
        reasons.append(f"{problem}; serving from the in-process copy" if covered else problem)
    ready = state is not None and (problem is None or covered)
    body = Readiness(ready=ready, degraded=ready and problem is not None,
                     model_version=None if state is None else state.version,
                     index=None if state is None else state.index_kind,
                     blas_min_queries=state.blas_min_queries if state is not None
                     and state.blas_min_queries else None,
                     device=str(runtime.device), reasons=reasons)
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


def _store_problem(runtime: Runtime, state: ServingState | None) -> str | None:
    """What is wrong with the store for serving ``state``, if anything."""
    if not runtime.store.ping():
        return "store (Redis) is not answering"
    if state is None:
        return None
    try:
        complete = runtime.store.meta(state.name, state.version).get("complete") == "1"
    except StoreUnavailable:
        return "store (Redis) is not answering"
    return None if complete else (f"store holds no complete copy of version {state.version}; "
                                  "re-publish it")


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}},
                             "description": "Prometheus text format"}})
def prometheus_metrics() -> Response:
    """Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
