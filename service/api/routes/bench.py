"""``POST /bench/trivial``: the web stack's ceiling for load tests (``BENCH_ENDPOINT=true`` only).

It takes the body of ``POST /recommend`` through the same app, middleware, validation and
response model, and answers a fixed list without touching the model, Redis or FAISS; the load
test (``bench/serving.py``) measures it beside ``/recommend`` in the same run. It is left out of
the OpenAPI schema and not registered by default.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from service.api.deps import SettingsDep
from service.api.routes.recommend import (
    RecommendRequest,
    RecommendResponse,
    ScoredItem,
    checked_query,
)

router = APIRouter(prefix="/bench", include_in_schema=False)

FIXED = [(f"trivial-{i}", float(100 - i)) for i in range(100)]


@router.post("/trivial", response_model=RecommendResponse)
async def trivial(body: RecommendRequest, settings: SettingsDep) -> RecommendResponse:
    """The first ``k`` of a fixed list, after the same checks as ``POST /recommend``."""
    query = checked_query(body, settings, ("body",))
    return RecommendResponse(
        items=[ScoredItem(item=item, score=score) for item, score in FIXED[:query.k]],
        model_version="trivial", strategy="popular", ignored_items=[],
        recommendation_id=str(uuid.uuid4()))
