"""The shapes of the node's answers, and the OpenAPI document that states them.

The handlers build their answers by hand (JSON bytes, ``JSONResponse``), so these models are the
documentation of those answers, not their serializers; ``tests/integration/test_node_openapi.py``
runs schemathesis against a real node to keep the two the same. The document is built per app
from its settings, so the bounds it states (key length, ``/work`` query ranges) are the ones that
node enforces.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema

from node_service.settings import NodeSettings
from node_service.store import KEY_PATTERN

__all__ = [
    "RESPONSES",
    "FaultFailed",
    "FaultSchedule",
    "FaultState",
    "FieldError",
    "Health",
    "Invalid",
    "NotFound",
    "Overloaded",
    "RateLimited",
    "Refused",
    "StoreFull",
    "Stored",
    "TooLarge",
    "Unauthorized",
    "Value",
    "WorkDone",
    "data_item_schema",
    "install_openapi",
    "key_schema",
]


class _Answer(BaseModel):
    """Fields of every answer: which node and which worker process answered."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    node: str
    pid: int
    workers: int


class Health(_Answer):
    """``GET /health``."""

    status: Literal["ok"]
    service_factor: float
    extra_millis: int
    uptime_seconds: float
    in_flight: int


class Stored(_Answer):
    """``POST /data`` stored the value."""

    key: str
    stored: Literal[True]
    replaced: bool
    entry_bytes: int = Field(alias="bytes")
    store_keys: int
    store_bytes: int


class Value(_Answer):
    """``GET /data/{key}``: the value as it was stored."""

    key: str
    value: JsonValue


class NotFound(_Answer):
    """``GET /data/{key}`` of a key this worker does not hold."""

    error: Literal["not found"]
    key: str
    detail: str


class FieldError(BaseModel):
    """One problem of a request that failed validation."""

    model_config = ConfigDict(extra="forbid")

    field: str
    msg: str
    type: str


class Invalid(_Answer):
    """422: the request's shape is wrong (``detail`` lists every problem), or its key is
    refused (``limit`` names the rule)."""

    error: str
    field: str
    detail: list[FieldError] | SkipJsonSchema[None] = None
    limit: Literal["minKeyLength", "maxKeyLength", "keyCharacters"] | SkipJsonSchema[None] = None
    maximum: int | SkipJsonSchema[None] = Field(default=None, alias="max")
    actual: int | SkipJsonSchema[None] = None


class _Limited(_Answer):
    error: str
    field: str
    maximum: int = Field(alias="max")
    actual: int


class TooLarge(_Limited):
    """413: the value's compact JSON or the whole body is larger than the node takes."""

    limit: Literal["maxValueBytes", "maxBodyBytes"]


class StoreFull(_Limited):
    """507: storing would pass the worker store's key count or byte limit."""

    limit: Literal["maxKeys", "maxStoreBytes"]


class Refused(_Answer):
    """408 or 431: the client was too slow with its request, or its headers too large."""

    error: str
    field: Literal["headers", "body"]
    limit: Literal["headerTimeout", "bodyTimeout", "maxHeaderBytes"]
    maximum: int = Field(alias="max")
    actual: int | SkipJsonSchema[None] = None


class WorkDone(_Answer):
    """``GET /work``: what was computed, and where the time went (milliseconds).

    ``ioMillis`` is the wait asked for; a slow node waits ``serviceFactor`` times it, and
    ``extraMillis`` (and ``faultMillis``) more, all within ``serviceMillis``.
    """

    load_factor: int
    io_millis: int
    service_millis: float
    queue_millis: float
    fault_millis: int
    service_factor: float
    extra_millis: int
    result: int


class Overloaded(_Answer):
    """503: the worker's queue is full (``--max-queue``); retry after ``Retry-After`` s."""

    error: Literal["overloaded"]
    limit: Literal["maxQueue"]
    maximum: int = Field(alias="max")
    retry_after_seconds: int


class RateLimited(_Answer):
    """429: the worker's token bucket is empty (``--rate-limit``); a token in
    ``retryAfterSeconds`` (``Retry-After``: that, rounded up)."""

    error: Literal["rate limited"]
    limit: Literal["rateLimit"]
    rate: float
    burst: int
    retry_after_seconds: float


class FaultFailed(_Answer):
    """500 or 503 during a fault window of mode ``fail``: the simulated dependency is gone."""

    error: Literal["dependency failed"]
    fault: Literal["fail"]


class FaultState(BaseModel):
    """The node's fault window as seen when answering (seconds relative to ``now``)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    mode: Literal["slow", "fail"]
    extra_millis: int | SkipJsonSchema[None] = None
    status: Literal[500, 503] | SkipJsonSchema[None] = None
    state: Literal["scheduled", "active", "over"]
    starts_at: str
    ends_at: str
    duration_seconds: float
    starts_in_seconds: float
    ends_in_seconds: float


class FaultSchedule(_Answer):
    """``GET``/``POST /fault``: the node's window (null before any was posted)."""

    fault: FaultState | None
    now: str


class Unauthorized(_Answer):
    """401 (no bearer token) or 403 (the wrong one) from ``/fault``."""

    error: str


def key_schema(settings: NodeSettings) -> dict[str, Any]:
    """JSON Schema of a key this node accepts (the same rules ``Store.check_key`` applies)."""
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": settings.limits.max_key_length,
        "pattern": KEY_PATTERN,
    }


def data_item_schema(settings: NodeSettings) -> dict[str, Any]:
    """JSON Schema of a ``POST /data`` body."""
    return {
        "type": "object",
        "required": ["key", "value"],
        "properties": {
            "key": key_schema(settings),
            "value": {
                "description": (
                    "Any JSON value whose compact encoding is at most "
                    f"{settings.limits.max_value_bytes} bytes (413 past it)."
                )
            },
        },
    }


def _json(model: object, description: str) -> dict[str, Any]:
    # ``model`` is a model class or a union of them.
    return {"model": model, "description": description}


# Any request may get these from the connection's bounds, before or without a route's answer:
# node_service.protocol (408, 431), the front's body read (408) and uvicorn (503).
_TRANSPORT: dict[str, Any] = {
    "408": {
        "description": "The request's headers (or a POST /data body) took too long to arrive.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Refused"}}},
    },
    "431": {
        "description": "The request line and headers are larger than the node takes.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Refused"}}},
    },
    "503": {
        "description": "The worker already serves as many connections as it takes.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
}

# Per route: status -> FastAPI's `responses` entry.
RESPONSES: dict[str, dict[int | str, dict[str, Any]]] = {
    "put": {
        201: {
            **_json(Stored, "Stored in the store of the worker that answered."),
            "links": {
                "GetData": {
                    "operationId": "get_data",
                    "parameters": {"key": "$request.body#/key"},
                    "description": "Read it back (from the same worker: stores are per worker).",
                }
            },
        },
        413: _json(TooLarge, "The value or the body is too large."),
        422: _json(Invalid, "The body is not JSON of the right shape, or its key is refused."),
        507: _json(StoreFull, "The worker's store is full."),
    },
    "get": {
        200: _json(Value, "The value, as it was stored."),
        404: _json(NotFound, "This worker's store has no such key (stores are per worker)."),
        422: _json(Invalid, "The key is refused."),
    },
    "work": {
        200: _json(WorkDone, "The work was done."),
        422: _json(Invalid, "A query parameter is out of bounds or not an integer."),
        429: _json(RateLimited, "The worker's rate limit is spent (--rate-limit)."),
        500: _json(FaultFailed, "A fault window of mode fail with status 500."),
        503: {
            **_json(
                Overloaded | FaultFailed,
                "The worker's queue is full (--max-queue), a fault window of mode fail with "
                "status 503, or (text/plain) the worker serves as many connections as it takes.",
            ),
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
    },
    "fault": {
        200: _json(FaultSchedule, "The node's fault window."),
        401: _json(Unauthorized, "No Authorization: Bearer token."),
        403: _json(Unauthorized, "The wrong token."),
        422: _json(Invalid, "The body is not a fault window (field names the wrong one)."),
    },
}


def _document(api: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=api.title,
        version=api.version,
        description=api.description,
        routes=api.routes,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (Health, Refused):
        schemas[model.__name__] = model.model_json_schema(
            by_alias=True, mode="serialization", ref_template="#/components/schemas/{model}"
        )
    # /health is answered by the raw-ASGI front (node_service.front) and never reaches FastAPI.
    doc["paths"]["/health"] = {
        "get": {
            "summary": "Health",
            "description": "The worker is up: uptime of the node, requests in flight here.",
            "operationId": "health",
            "responses": {
                "200": {
                    "description": "Up.",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
                    },
                }
            },
        }
    }
    for operations in doc["paths"].values():
        for operation in operations.values():
            for status, response in _TRANSPORT.items():
                operation["responses"].setdefault(status, response)
    return doc


def install_openapi(api: FastAPI) -> None:
    """Make ``api`` serve the node's document at ``/openapi.json`` (built once, on first use).

    The routes carry the bounds of the node's settings; this adds what FastAPI cannot see:
    ``/health`` (answered in front of FastAPI) and the answers of the transport layer.
    """

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            api.openapi_schema = _document(api)
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
