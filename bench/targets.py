"""Baselines for the node's light path: the same ``/health`` JSON from bare Starlette and raw ASGI.

Run each under the same uvicorn settings as the node, for example::

    uvicorn bench.targets:starlette_app --factory --loop uvloop --http httptools --no-access-log

``sleep_app`` is the latency row's target: ``/work`` with an exact, known service time, one
request at a time (a FIFO single server, as the node's worker lock makes it).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["SERVICE_MS_ENV", "health_body", "raw_asgi_app", "sleep_app", "starlette_app"]

_STARTED = time.time()


def health_body() -> dict[str, Any]:
    """The node's ``/health`` answer, field for field."""
    return {
        "status": "ok",
        "node": "1",
        "pid": os.getpid(),
        "workers": 1,
        "uptimeSeconds": round(time.time() - _STARTED, 3),
        "inFlight": 0,
    }


def starlette_app() -> Starlette:
    """Bare Starlette: one route, no middleware (uvicorn factory)."""

    async def health(_: Request) -> JSONResponse:
        return JSONResponse(health_body())

    return Starlette(routes=[Route("/health", health)])


async def _send_json(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def raw_asgi_app() -> ASGIApp:
    """Raw ASGI: the floor any Python framework's overhead is measured from (uvicorn factory)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await _send_json(send, 200, json.dumps(health_body(), separators=(",", ":")).encode())

    return app


SERVICE_MS_ENV = "NODELAB_BENCH_SERVICE_MS"
# uvloop's timers tick in whole milliseconds: sleep to this close to the deadline, then yield to
# the event loop until it passes, so every service time is exact to a few microseconds.
_SPIN_S = 0.002


def sleep_app() -> ASGIApp:
    """``GET /work``: a FIFO single server whose service time is exactly
    ``$NODELAB_BENCH_SERVICE_MS`` ms (default 50) of waiting; answers ``serviceMillis`` and
    ``queueMillis`` as the node does. ``GET /health`` answers at once (uvicorn factory).

    One request at a time by arithmetic, not by a lock: each service starts when its request
    arrives or when the previous one is scheduled to end, whichever is later, and ends exactly
    S later. A lock would add the event loop's hand-off between requests (a serial fraction of
    a millisecond) to every service, so the server would no longer be the model it stands for.
    """
    service_s = float(os.environ.get(SERVICE_MS_ENV, "50")) / 1000.0
    perf_counter = time.perf_counter
    free_at = 0.0  # when the service of the last request taken ends, on the schedule

    async def serve() -> bytes:
        nonlocal free_at
        arrived = perf_counter()
        started = max(arrived, free_at)
        deadline = free_at = started + service_s
        coarse = deadline - _SPIN_S - perf_counter()
        if coarse > 0:
            await asyncio.sleep(coarse)
        while perf_counter() < deadline:
            await asyncio.sleep(0)
        finished = perf_counter()
        return b'{"node":"sleep","serviceMillis":%.3f,"queueMillis":%.3f}' % (
            (finished - started) * 1000.0,
            (started - arrived) * 1000.0,
        )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/work":
            status, body = 200, await serve()
        elif scope["path"] == "/health":
            status, body = 200, json.dumps(health_body(), separators=(",", ":")).encode()
        else:
            status, body = 404, b'{"error":"not found"}'
        await _send_json(send, status, body)

    return app
