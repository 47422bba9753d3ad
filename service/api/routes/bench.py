"""``POST /bench/trivial``: the web stack's ceiling for load tests (``BENCH_ENDPOINT=true`` only).

It takes the body of ``POST /recommend`` through the same app, middleware, validation and
response model, and answers a fixed list without touching the model, Redis or FAISS; the load
test (``bench/serving.py``) measures it beside ``/recommend`` in the same run. It is left out of
the OpenAPI schema and not registered by default.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from service.api.json_body import read_json_body
from service.api.routes.recommend import (
    RecommendRequest,
    RecommendResponse,
    checked_query,
    recommend_payload,
)
from service.recommender import Result

router = APIRouter(prefix="/bench", include_in_schema=False)

FIXED = [(f"trivial-{i}", float(100 - i)) for i in range(100)]


@router.post("/trivial", response_model=RecommendResponse)
async def trivial(request: Request) -> Response:
    """The first ``k`` of a fixed list, after the same reading and checks as ``POST
    /recommend``, answered the same way."""
    body = await read_json_body(request, RecommendRequest)
    query = checked_query(body, request.app.state.settings, ("body",))
    return JSONResponse(recommend_payload(Result(FIXED[:query.k], "popular"), "trivial"))
