"""The FastAPI part of the node: ``/data``, ``/work``, ``/metrics`` and (with a fault token)
``/fault``, and uniform JSON errors.

Every error body is ``{"error": ..., "field": ...}`` (plus the limit's figures where one was hit)
and names the node and worker pid that answered, because with several workers "which process said
that" is the first question.
"""

# No `from __future__ import annotations`: the routes' parameter types carry this node's bounds
# (locals of build_api), and FastAPI can only read annotations evaluated where they are written.
import contextlib
import json
import math
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, JsonValue, ValidationError
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException

from node_service.answers import RESPONSES, data_item_schema, install_openapi, key_schema
from node_service.fault import FaultInvalid, authorize, fault_body_schema, parse_fault, stamp
from node_service.metrics import CONTENT_TYPE_LATEST
from node_service.state import WorkerState
from node_service.store import StoreError, encode_value
from node_service.work import QueueFull

__all__ = ["DataItem", "build_api"]


class DataItem(BaseModel):
    """Body of ``POST /data``: any JSON value under a string key."""

    key: str
    value: JsonValue


_WHERE = frozenset({"body", "query", "path", "header", "cookie"})


def _field_of(loc: Sequence[Any]) -> str:
    # ("key",) or ("body", "key") -> "key"; ("query", "loadFactor") -> "loadFactor". An empty
    # location (a JSON syntax error) or a body of the wrong shape is the body's fault.
    names = [part for part in loc if isinstance(part, str) and part not in _WHERE]
    return names[-1] if names else "body"


def _invalid(errors: Sequence[Any], identity: dict[str, JsonValue]) -> JSONResponse:
    """422 naming the first offending field, with every error listed."""
    detail: list[JsonValue] = [
        {"field": _field_of(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
        for e in errors
    ]
    first = errors[0] if errors else {"msg": "invalid request"}
    body = {"error": first.get("msg"), "field": _field_of(first.get("loc", ())), "detail": detail}
    return JSONResponse({**body, **identity}, status_code=422)


class _AnyKey(Convertor[str]):
    """Whatever follows ``/data/``, so that the key rules refuse a bad key with 422.

    Starlette's default (``[^/]+``) leaves an empty key or one with an encoded "/" unrouted: a
    bare 404 no document describes. Its ``path`` convertor (``.*``) stops at a newline, and
    ``$`` matches before a trailing one, so ``/data/a%0A`` would read key ``a``.
    """

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


def build_api(state: WorkerState) -> FastAPI:
    """The FastAPI app of one worker, its handlers bound to that worker's ``state``."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        state.metrics.worker_stopped()

    settings = state.settings
    api = FastAPI(title="NodeLab node", lifespan=lifespan)
    install_openapi(api)
    store = state.store

    @api.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid(exc.errors(), state.identity())

    @api.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        return JSONResponse(
            {"error": exc.detail, **state.identity()},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    # POST /data reads its body itself (below), so its schema is declared by hand.
    data_body = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": data_item_schema(settings)}},
        }
    }

    @api.post(
        "/data",
        status_code=201,
        operation_id="put_data",
        response_model=None,
        responses=RESPONSES["put"],
        openapi_extra=data_body,
    )
    async def put_data(request: Request) -> JSONResponse:
        """Store ``value`` under ``key`` in this worker's store."""
        # Parsed here rather than by FastAPI: JSON is accepted whatever the Content-Type says
        # (a bare `curl -d` sends a form type), identically on every FastAPI version.
        try:
            item = DataItem.model_validate_json(await request.body())
        except ValidationError as exc:
            return _invalid(exc.errors(), state.identity())
        try:
            value = encode_value(item.value)
        except ValueError:
            msg = "NaN, Infinity and numbers out of a float's range cannot be stored as JSON"
            error = {"loc": ("value",), "msg": msg, "type": "json_number"}
            return _invalid([error], state.identity())
        try:
            result = store.put(item.key, value)
        except StoreError as exc:
            return JSONResponse({**exc.to_json(), **state.identity()}, status_code=exc.status)
        state.metrics.store_keys.set(result.keys)
        state.metrics.store_bytes.set(result.store_bytes)
        body = {
            "key": item.key,
            **state.identity(),
            "stored": True,
            "replaced": result.replaced,
            "bytes": result.entry_bytes,
            "storeKeys": result.keys,
            "storeBytes": result.store_bytes,
        }
        return JSONResponse(body, status_code=201)

    register_url_convertor("nodelab_key", _AnyKey())

    @api.get(
        "/data/{key:nodelab_key}",
        operation_id="get_data",
        response_model=None,
        responses=RESPONSES["get"],
    )
    async def get_data(
        key: Annotated[str, Path(json_schema_extra=key_schema(settings))],
    ) -> Response:
        """The value under ``key`` in this worker's store, or 404 saying whose store was asked."""
        try:
            store.check_key(key)
        except StoreError as exc:
            return JSONResponse({**exc.to_json(), **state.identity()}, status_code=exc.status)
        if key not in store:
            workers = settings.workers
            detail = (
                "this worker has no such key; stores are per worker process "
                f"({workers} workers on this node) and per node"
                if workers > 1
                else "this node has no such key; stores are per node"
            )
            body = {"error": "not found", "key": key, "detail": detail, **state.identity()}
            return JSONResponse(body, status_code=404)
        # The stored JSON goes out as it is: decoding it would rebuild the objects it replaced.
        head = json.dumps({"key": key}, separators=(",", ":"))[:-1]
        tail = json.dumps(state.identity(), separators=(",", ":"))[1:]
        answer = b'%s,"value":%s,%s' % (head.encode(), store.get(key), tail.encode())
        return Response(answer, media_type="application/json")

    protection = settings.protection
    shed_headers = {"Retry-After": str(protection.retry_after_seconds)}
    slowed = state.metrics.fault_affected.labels("slow")
    failed = state.metrics.fault_affected.labels("fail")

    def slow_millis() -> int:
        # Asked when service starts: a dependency is slow for the requests that call it then.
        window = state.faults.active(state.clock())
        if window is None or window.mode != "slow":
            return 0
        slowed.inc()
        return window.extra_millis

    @api.get("/work", operation_id="work", response_model=None, responses=RESPONSES["work"])
    async def work(
        load_factor: Annotated[
            int, Query(alias="loadFactor", ge=0, le=settings.max_load_factor)
        ] = settings.load_factor,
        io_millis: Annotated[
            int, Query(alias="ioMillis", ge=0, le=settings.max_io_millis)
        ] = settings.io_millis,
    ) -> JSONResponse:
        """Compute fib(loadFactor) and wait ioMillis, when one of the node's workers is free.

        A slow node does serviceFactor times the CPU work and I/O wait, and waits extraMillis
        more; serviceMillis includes all of it.

        Refused at once, cheapest check first: 429 past the rate limit, 500/503 in a fault
        window of mode fail, 503 when this worker's queue is full.
        """
        if state.bucket is not None:
            wait = state.bucket.take()
            if wait:
                state.metrics.rate_limited.inc()
                limited = {
                    "error": "rate limited",
                    "limit": "rateLimit",
                    "rate": protection.rate_limit,
                    "burst": state.bucket.burst,
                    "retryAfterSeconds": round(wait, 3),
                }
                return JSONResponse(
                    {**limited, **state.identity()},
                    status_code=429,
                    headers={"Retry-After": str(math.ceil(wait))},
                )
        window = state.faults.active(state.clock())
        if window is not None and window.mode == "fail":
            failed.inc()
            gone = {"error": "dependency failed", "fault": "fail", **state.identity()}
            return JSONResponse(gone, status_code=window.status)
        try:
            done = await state.work.run(load_factor, io_millis, slow_millis)
        except QueueFull as exc:
            state.metrics.shed.inc()
            overloaded = {
                "error": "overloaded",
                "limit": "maxQueue",
                "max": exc.max_queue,
                "retryAfterSeconds": protection.retry_after_seconds,
            }
            return JSONResponse(
                {**overloaded, **state.identity()}, status_code=503, headers=shed_headers
            )
        state.metrics.work_service.observe(done.service_millis / 1000)
        state.metrics.work_queue.observe(done.queue_millis / 1000)
        state.metrics.fib_calls.inc(done.fib_calls)
        body = {
            **state.identity(),
            "loadFactor": done.load_factor,
            "ioMillis": done.io_millis,
            "serviceMillis": done.service_millis,
            "queueMillis": done.queue_millis,
            "faultMillis": done.fault_millis,
            "serviceFactor": settings.service_factor,
            "extraMillis": settings.extra_millis,
            "result": done.result,
        }
        return JSONResponse(body)

    if state.fault_token is not None:
        _fault_routes(api, state, state.fault_token)

    @api.get(
        "/metrics",
        operation_id="metrics",
        response_class=PlainTextResponse,
        responses={200: {"description": "Prometheus text exposition format."}},
    )
    async def metrics() -> Response:
        """Prometheus text exposition of the whole node."""
        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return api


def _fault_routes(api: FastAPI, state: WorkerState, token: str) -> None:
    """``GET`` and ``POST /fault``: only on a node started with a fault token."""

    def refused(request: Request) -> JSONResponse | None:
        status = authorize(request.headers.get("authorization"), token)
        if status == 200:
            return None
        if status == 401:
            body = {"error": "needs Authorization: Bearer <fault token>", **state.identity()}
            headers = {"WWW-Authenticate": 'Bearer realm="nodelab-fault"'}
            return JSONResponse(body, status_code=401, headers=headers)
        body = {"error": "wrong fault token", **state.identity()}
        return JSONResponse(body, status_code=403)

    def schedule() -> JSONResponse:
        now = state.clock()
        window = state.faults.current()
        body = {
            "fault": None if window is None else window.to_json(now),
            "now": stamp(now),
            **state.identity(),
        }
        return JSONResponse(body)

    @api.get("/fault", operation_id="get_fault", response_model=None, responses=RESPONSES["fault"])
    async def get_fault(request: Request) -> JSONResponse:
        """The node's fault window: scheduled, active or over (null if none was posted)."""
        denied = refused(request)
        return schedule() if denied is None else denied

    @api.post(
        "/fault",
        operation_id="put_fault",
        response_model=None,
        responses=RESPONSES["fault"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": fault_body_schema()}},
            }
        },
    )
    async def put_fault(request: Request) -> JSONResponse:
        """Schedule the node's fault window (replacing any earlier one) for all its workers."""
        # Authenticated before the body is read: a stranger's body is never parsed.
        denied = refused(request)
        if denied is not None:
            return denied
        try:
            window = parse_fault(await request.body(), state.clock())
        except FaultInvalid as exc:
            return _invalid(exc.errors, state.identity())
        state.faults.publish(window)
        return schedule()
