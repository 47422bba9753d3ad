"""A JSON body validated by pydantic straight from its bytes (the answer: a plain ``JSONResponse``).

FastAPI's own path for ``async def endpoint(body: Model) -> Model`` reads the body, decodes it to
Python objects, validates them field by field through its dependency machinery, then, for the
response model, dumps the returned model, validates the dump and serializes it again. For the
hot endpoints (``POST /recommend`` and its load-test twin ``POST /bench/trivial``) that was 40 %
of the web stack's time per request in-process (271 against 167 µs on one slow core, the two
interleaved in one process). Here pydantic validates the raw bytes in one call (its Rust JSON
parser), and the answer, built by our own code from typed values, is returned as a
``JSONResponse`` of plain values, serialized once.

The OpenAPI schema stays what FastAPI would write: :func:`documented_body` puts the model's
schema in the request body (as a component, so clients see one ``RecommendRequest``), and
the route keeps ``response_model`` for the documented answer.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

Body = TypeVar("Body", bound=BaseModel)


async def read_json_body(request: Request, model: type[Body]) -> Body:
    """The request body as ``model``, or a 422 whose errors are located under ``body`` as
    FastAPI's would be (malformed JSON included)."""
    raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise RequestValidationError(
            [{**detail, "loc": ("body", *detail["loc"])}
             for detail in error.errors(include_url=False)]) from None


def documented_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` of a route that reads ``model`` with :func:`read_json_body`."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}
