"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel

from service.api.deps import RuntimeDep
from service.store import StoreUnavailable

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    model_version: str | None
    index: str | None
    device: str
    reasons: list[str]


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (says nothing about Redis or the model)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness,
            responses={503: {"model": Readiness, "description": "Not ready; see reasons"}})
def readyz(runtime: RuntimeDep) -> Response:
    """Ready when a model is loaded, its index built, and the store answers and holds the
    served version's graph rows."""
    state = runtime.state
    reasons = []
    if state is None:
        reasons.append(f"model not loaded: {runtime.last_error or 'starting'}")
    if not runtime.store.ping():
        reasons.append("store (Redis) is not answering")
    elif state is not None:
        try:
            complete = runtime.store.meta(state.name, state.version).get("complete") == "1"
        except StoreUnavailable as error:
            reasons.append(str(error))
        else:
            if not complete:
                reasons.append(f"store holds no complete copy of version {state.version}; "
                               "re-publish it")
    body = Readiness(ready=not reasons, model_version=None if state is None else state.version,
                     index=None if state is None else state.index_kind, device=str(runtime.device),
                     reasons=reasons)
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get("/metrics", response_class=Response)
def prometheus_metrics() -> Response:
    """Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
