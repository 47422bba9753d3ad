"""Server-side sessions: ``POST /sessions/{session_id}/events`` records what a visitor viewed or
bought, ``GET /sessions/{session_id}/recommendations`` recommends from it.

Anyone who knows a session id can read its recommendations and append to it: front-ends should
use a random id (a UUID) per visit, not a user id.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

import anyio.to_thread
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import RecommenderDep, SessionsDep, SettingsDep
from service.api.errors import error_responses, limit_error
from service.api.routes.recommend import (
    ItemId,
    RecommendResponse,
    check_k,
    recommend_response,
)
from service.recommender import Query as RecommendQuery

router = APIRouter(prefix="/sessions", tags=["sessions"],
                   responses=error_responses(400, 413, 429, 503))

SessionId = Annotated[str, Path(
    pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$", examples=["5f0c6a1e-visit"],
    description="Chosen by the client: 1-128 letters, digits and _.:- (a random UUID per visit)")]


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item: ItemId = Field(description="External item id")
    type: Literal["view", "purchase"] = "view"


class AppendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"events": [{"item": "cat03-sku004"}, {"item": "cat03-sku005", "type": "purchase"}]}]})

    events: list[Event] = Field(min_length=1,
                                description="Oldest first; MAX_EVENTS_PER_APPEND at most")


class AppendResponse(BaseModel):
    session_id: str
    length: int = Field(description="Events the session holds now (SESSION_MAX_EVENTS at most)")
    ttl_s: int = Field(description="Seconds the session lives without another append")


class SessionRecommendations(RecommendResponse):
    session_id: str
    session_length: int = Field(description="Events the recommendation was made from")


@router.post("/{session_id}/events", response_model=AppendResponse)
def append_events(session_id: SessionId, body: AppendRequest, sessions: SessionsDep,
                  settings: SettingsDep) -> AppendResponse:
    """Append events to the session (atomically: concurrent appends lose nothing); the oldest
    events beyond SESSION_MAX_EVENTS are dropped and the TTL starts again."""
    if len(body.events) > settings.max_events_per_append:
        raise limit_error(("body", "events"),
                          f"{len(body.events)} events; at most {settings.max_events_per_append} "
                          "per append (MAX_EVENTS_PER_APPEND)")
    encoded = [json.dumps(event.model_dump(), separators=(",", ":")) for event in body.events]
    length = sessions.append(session_id, encoded)
    return AppendResponse(session_id=session_id, length=length, ttl_s=settings.session_ttl_s)


@router.get("/{session_id}/recommendations", response_model=SessionRecommendations)
async def session_recommendations(
    session_id: SessionId, recommender: RecommenderDep, sessions: SessionsDep,
    settings: SettingsDep,
    k: Annotated[int, Query(description="How many items, 1..MAX_K")] = 10,
    exclude_seen: Annotated[bool, Query(description="Leave out the session's items")] = True,
) -> SessionRecommendations:
    """Next items for the stored session; an unknown or expired session gets the popularity
    fallback, like an empty one. Answered with ``POST /recommend``'s concurrent calls, in the
    same micro-batches (``BATCHING``)."""
    check_k(k, ("query", "k"), settings)
    stored = await anyio.to_thread.run_sync(sessions.read, session_id)  # a store round trip
    session = [json.loads(value)["item"] for value in stored]
    version, result = await recommender(RecommendQuery(session, k, exclude_seen))
    return SessionRecommendations(**recommend_response(result, version).model_dump(),
                                  session_id=session_id, session_length=len(session))
