"""``GET /items/{item_id}/similar``: "you may also like" for a product page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel

from service.api.deps import SettingsDep, StateDep
from service.api.errors import limit_error
from service.api.routes.recommend import ScoredItem
from service.recommender import similar

router = APIRouter(prefix="/items", tags=["items"])


class SimilarResponse(BaseModel):
    item: str
    items: list[ScoredItem]
    model_version: str


@router.get("/{item_id}/similar", response_model=SimilarResponse,
            responses={404: {"description": "The item is not in the served model"}})
def similar_items(
    item_id: Annotated[str, Path(examples=["cat03-sku004"])],
    state: StateDep, settings: SettingsDep,
    k: Annotated[int, Query(description="How many items, 1..MAX_K")] = 10,
) -> SimilarResponse:
    """Items nearest to ``item_id`` by fused item embedding (the item itself left out)."""
    if not 1 <= k <= settings.max_k:
        raise limit_error(("query", "k"), f"k must be between 1 and {settings.max_k}, got {k}")
    index = state.item_index.get(item_id)
    if index is None:
        raise HTTPException(404, f"unknown item {item_id!r} (not in model version "
                                 f"{state.version})")
    items = similar(state, index, k)
    return SimilarResponse(item=item_id, items=[ScoredItem(item=i, score=s) for i, s in items],
                           model_version=state.version)
