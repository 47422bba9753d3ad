"""``GET /items/{item_id}/similar``: "you may also like" for a product page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel

from service.api.deps import SettingsDep, SimilarFinderDep
from service.api.errors import error_responses
from service.api.routes.recommend import ScoredItem, check_k
from service.recommender import SimilarQuery

router = APIRouter(prefix="/items", tags=["items"], responses=error_responses(404, 429, 503))


class SimilarResponse(BaseModel):
    item: str
    items: list[ScoredItem]
    model_version: str


@router.get("/{item_id}/similar", response_model=SimilarResponse)
async def similar_items(
    item_id: Annotated[str, Path(examples=["cat03-sku004"])],
    finder: SimilarFinderDep, settings: SettingsDep,
    k: Annotated[int, Query(description="How many items, 1..MAX_K")] = 10,
) -> SimilarResponse:
    """Items nearest to ``item_id`` by fused item embedding (the item itself left out).
    Concurrent calls are answered together in micro-batches (``BATCHING``)."""
    check_k(k, ("query", "k"), settings)
    version, items = await finder(SimilarQuery(item_id, k))
    if items is None:
        raise HTTPException(404, f"unknown item {item_id!r} (not in model version {version})")
    return SimilarResponse(item=item_id, items=[ScoredItem(item=i, score=s) for i, s in items],
                           model_version=version)
