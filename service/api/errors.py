"""Exception handlers: every client mistake is a 4xx with a readable message, every store
failure a 503 with ``Retry-After``; nothing a client does should produce a traceback."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from service import metrics
from service.api.deps import ModelNotLoaded
from service.store import StoreUnavailable, VersionStateError


def install_error_handlers(app: FastAPI, retry_after_s: int) -> None:
    headers = {"Retry-After": str(retry_after_s)}

    async def unavailable(request: Request, error: Exception) -> Response:
        reasons: dict[type[Exception], str] = {
            StoreUnavailable: "unavailable", VersionStateError: "missing_data",
            ModelNotLoaded: "not_loaded"}
        reason = reasons.get(type(error), "other")
        metrics.STORE_ERRORS.labels(reason).inc()
        return JSONResponse({"detail": f"service temporarily unavailable: {error}"},
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
