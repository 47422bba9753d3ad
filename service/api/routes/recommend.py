"""``POST /recommend`` and ``POST /recommend/batch``: next items for live sessions."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from service import metrics
from service.api.deps import SettingsDep, StateDep, StoreDep
from service.api.errors import error_responses, limit_error
from service.api.json_body import documented_body, read_json_body
from service.batching import Recommender
from service.config import Settings
from service.recommender import Query, Result, recommend

router = APIRouter(prefix="/recommend", tags=["recommend"],
                   responses=error_responses(400, 413, 429, 503))


def _item_id(value: Any) -> str | int:
    # bool is an int subclass and must not pass as an id
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise PydanticCustomError("item_id_type",
                              "item ids must be strings or integers, got {kind}",
                              {"kind": type(value).__name__})


ItemId = Annotated[str | int, PlainValidator(_item_id),
                   WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}]})]

_EXAMPLE: dict[str, Any] = {"session": ["cat03-sku004", "cat03-sku005", "cat03-sku006"], "k": 5,
            "exclude_seen": True, "exclude": ["cat03-sku010"]}


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    session: list[ItemId] = Field(
        description="External item ids, oldest first (MAX_SESSION_LENGTH at most; the model reads "
                    "the most recent L). Unknown ids are ignored and listed in the response.")
    k: StrictInt = Field(10, description="How many items to return, 1..MAX_K.")
    exclude_seen: StrictBool = Field(True, description="Leave out items of the session.")
    exclude: list[ItemId] = Field(default_factory=list,
                                  description="Items never to return (MAX_EXCLUDE at most).")


class ScoredItem(BaseModel):
    item: str
    score: float = Field(description="Inner product with the session query (model), or the "
                                     "training interaction count (popular).")


class RecommendResponse(BaseModel):
    items: list[ScoredItem]
    model_version: str
    strategy: Literal["model", "popular"] = Field(
        description="popular: empty or all-unknown session, ranked by training popularity")
    ignored_items: list[str | int]
    recommendation_id: str = Field(description="UUID to join impressions and clicks later")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"requests": [_EXAMPLE,
                                                                            {"session": []}]}]})

    requests: list[RecommendRequest] = Field(description="MAX_BATCH_REQUESTS at most")


class BatchResponse(BaseModel):
    results: list[RecommendResponse]
    model_version: str


@router.post("", response_model=RecommendResponse, openapi_extra=documented_body(RecommendRequest),
             responses=error_responses(422))
async def recommend_one(request: Request) -> Response:
    """Next items for one session (the model, or the popularity fallback). Concurrent calls are
    answered together in micro-batches (``BATCHING``), each by one model version."""
    body = await read_json_body(request, RecommendRequest)  # the hot path: see json_body
    query = checked_query(body, request.app.state.settings, ("body",))
    recommender: Recommender = request.app.state.recommender
    version, result = await recommender(query)
    count_recommendation(result)
    return JSONResponse(recommend_payload(result, version))


@router.post("/batch", response_model=BatchResponse)
def recommend_batch(body: BatchRequest, state: StateDep, store: StoreDep,
                    settings: SettingsDep) -> BatchResponse:
    """Several sessions in one call (one store round trip, one encoder pass, one search)."""
    if len(body.requests) > settings.max_batch_requests:
        raise limit_error(("body", "requests"),
                          f"{len(body.requests)} requests; at most "
                          f"{settings.max_batch_requests} per batch (MAX_BATCH_REQUESTS)")
    queries = [checked_query(request, settings, ("body", "requests", i))
               for i, request in enumerate(body.requests)]
    results = recommend(state, store, queries)
    return BatchResponse(results=[recommend_response(r, state.version) for r in results],
                         model_version=state.version)


def checked_query(body: RecommendRequest, settings: Settings, loc: tuple[str | int, ...],
                  ) -> Query:
    """The request as a :class:`Query`, after the limits that live in the settings (422)."""
    check_k(body.k, loc + ("k",), settings)
    if len(body.session) > settings.max_session_length:
        raise limit_error(loc + ("session",),
                          f"session has {len(body.session)} items; at most "
                          f"{settings.max_session_length} are accepted (MAX_SESSION_LENGTH)")
    if len(body.exclude) > settings.max_exclude:
        raise limit_error(loc + ("exclude",),
                          f"exclude has {len(body.exclude)} items; at most "
                          f"{settings.max_exclude} are accepted (MAX_EXCLUDE)")
    return Query(body.session, body.k, body.exclude_seen, body.exclude)


def check_k(k: int, loc: tuple[str | int, ...], settings: Settings) -> None:
    """A 422 unless ``1 <= k <= MAX_K``."""
    if not 1 <= k <= settings.max_k:
        raise limit_error(loc, f"k must be between 1 and {settings.max_k}, got {k}")


def recommend_response(result: Result, version: str) -> RecommendResponse:
    """The response body of one answered session (counted in the metrics)."""
    count_recommendation(result)
    return RecommendResponse.model_validate(recommend_payload(result, version))


def recommend_payload(result: Result, version: str) -> dict[str, Any]:
    """:class:`RecommendResponse` of one answered session as plain JSON values."""
    return {"items": [{"item": item, "score": score} for item, score in result.items],
            "model_version": version, "strategy": result.strategy,
            "ignored_items": list(result.ignored), "recommendation_id": str(uuid.uuid4())}


def count_recommendation(result: Result) -> None:
    metrics.RECOMMENDATIONS.labels(result.strategy).inc()
    metrics.IGNORED_ITEMS.inc(len(result.ignored))
