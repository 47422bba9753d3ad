"""Exception handlers: every client mistake is a 4xx with a readable message, every store
failure a 503 with ``Retry-After``; nothing a client does should produce a traceback, and no
error shows a client hosts, paths or exception text (those go to the log)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from service import metrics
from service.api.deps import ModelNotLoaded
from service.store import StoreUnavailable, VersionStateError

log = logging.getLogger(__name__)

# metric label and client-facing text of each 503 cause (ModelNotLoaded's text is already safe)
_UNAVAILABLE: dict[type[Exception], tuple[str, str | None]] = {
    StoreUnavailable: ("unavailable", "Redis is unavailable"),
    VersionStateError: ("missing_data", "the model's data is missing from the store"),
    ModelNotLoaded: ("not_loaded", None),
}


class ErrorMessage(BaseModel):
    detail: str


class InvalidField(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class InvalidRequest(BaseModel):
    """A 422: what is wrong, and where (``loc``, e.g. ``["body", "session", 0]``)."""

    detail: list[InvalidField]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route may answer (for ``responses=``)."""
    text = {
        400: "The body could not be read (not UTF-8)",
        401: "Missing or wrong admin token",
        403: "Admin API disabled (no ADMIN_TOKEN configured)",
        404: "Unknown item (not in the served model) or resource",
        409: "The version's state forbids it",
        413: "Request body over MAX_BODY_BYTES",
        422: "Invalid request: malformed JSON, a wrong type, or a value outside a limit",
        429: "Per-client concurrency or rate limit; retry after Retry-After seconds",
        503: "Redis or the model is unavailable; retry after Retry-After seconds",
    }
    return {code: {"model": InvalidRequest if code == 422 else ErrorMessage,
                   "description": text[code]} for code in codes}


def install_error_handlers(app: FastAPI, retry_after_s: int) -> None:
    headers = {"Retry-After": str(retry_after_s)}

    async def unavailable(request: Request, error: Exception) -> Response:
        reason, text = _UNAVAILABLE[type(error)]
        metrics.STORE_ERRORS.labels(reason).inc()
        log.debug("503 for %s: %s", request.url.path, error)
        return JSONResponse({"detail": f"service temporarily unavailable: {text or error}"},
                            status_code=503, headers=headers)

    async def invalid(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        return JSONResponse({"detail": [_describe(e) for e in error.errors()]}, status_code=422)

    for kind in (StoreUnavailable, VersionStateError, ModelNotLoaded):
        app.add_exception_handler(kind, unavailable)
    app.add_exception_handler(RequestValidationError, invalid)


def _describe(error: dict[str, Any]) -> dict[str, Any]:
    """A validation error without the offending input (which may be a huge session)."""
    message = error["msg"]
    if error["type"] == "json_invalid":
        message = f"malformed JSON: {error.get('ctx', {}).get('error', 'cannot be parsed')}"
    return jsonable_encoder({"loc": error["loc"], "msg": message, "type": error["type"]})


def limit_error(loc: tuple[str | int, ...], message: str) -> RequestValidationError:
    """A 422 for a value outside a limit that lives in the settings (so not in the schema)."""
    return RequestValidationError([{"type": "limit", "loc": loc, "msg": message}])
