"""``GET /demo``: a product page that shows the API where it is used (plain HTML/JS/CSS from
``service/static``, served under ``/static``; no build step)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"

router = APIRouter(tags=["demo"])


@router.get("/demo", include_in_schema=False)
async def demo_page() -> FileResponse:
    """The product page; ``?item=<id>`` picks the product (default: the most popular item)."""
    return FileResponse(STATIC_DIR / "demo.html", media_type="text/html")
