"""Baselines for the node's light path: the same ``/health`` JSON from bare Starlette and raw ASGI.

Run each under the same uvicorn settings as the node, for example::

    uvicorn bench.targets:starlette_app --factory --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["health_body", "raw_asgi_app", "starlette_app"]

_STARTED = time.time()

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


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


def raw_asgi_app() -> ASGIApp:
    """Raw ASGI: the floor any Python framework's overhead is measured from (uvicorn factory)."""
    import json

    async def app(
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        body = json.dumps(health_body(), separators=(",", ":")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
