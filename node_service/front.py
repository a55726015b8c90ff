"""The outer raw-ASGI layer: answers ``/health`` itself and measures everything else.

``/health`` is the path probes and benchmarks hit hardest; FastAPI's routing, validation and
response machinery would cost more than half its throughput, so it never reaches FastAPI.
Every other request passes through here to count it, time it, track it as in flight and, for
``POST /data``, to read its body with a hard size bound before anything parses it.
"""

from __future__ import annotations

import asyncio
import json
import time

from pydantic import JsonValue
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node_service.metrics import route_label
from node_service.state import WorkerState

__all__ = ["Front"]

_JSON_HEADERS = [(b"content-type", b"application/json")]
# Status recorded when the client went away before an answer (nginx's convention).
_CLIENT_CLOSED = 499


class Front:
    """Raw ASGI app in front of the FastAPI app ``inner``."""

    def __init__(self, state: WorkerState, inner: ASGIApp) -> None:
        self.state = state
        self.inner = inner
        self._metrics = state.metrics
        ident = state.identity()
        settings = state.settings
        self._health_head = (
            b'{"status":"ok","node":%s,"pid":%d,"workers":%d,"serviceFactor":%s,"extraMillis":%d,'
            b'"uptimeSeconds":'
            % (
                json.dumps(ident["node"]).encode(),
                state.pid,
                settings.workers,
                json.dumps(settings.service_factor).encode(),
                settings.extra_millis,
            )
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        if scope["path"] == "/health":
            await self._health(scope, send)
            return
        await self._measured(scope, receive, send)

    async def _health(self, scope: Scope, send: Send) -> None:
        started = time.perf_counter()
        headers = _JSON_HEADERS
        if scope["method"] not in ("GET", "HEAD"):
            status = 405
            body = b'{"error":"method not allowed","allow":"GET, HEAD"}'
            headers = [*headers, (b"allow", b"GET, HEAD")]  # RFC 9110 asks it of every 405
        else:
            status = 200
            body = self._health_head + b'%.3f,"inFlight":%d}' % (
                self.state.uptime(),
                self.state.in_flight,
            )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", b"%d" % len(body))],
            }
        )
        if scope["method"] == "HEAD":
            body = b""
        await send({"type": "http.response.body", "body": body})
        self._metrics.observe("/health", status, time.perf_counter() - started)

    async def _measured(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        label = route_label(scope["path"])
        status = _CLIENT_CLOSED

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.state.in_flight += 1
        self._metrics.in_flight.inc()
        try:
            if label == "/data" and scope["method"] == "POST":
                bounded = await self._read_bounded(scope, receive, send_and_note)
                if bounded is None:
                    return
                receive = bounded
            await self.inner(scope, receive, send_and_note)
        finally:
            self.state.in_flight -= 1
            self._metrics.in_flight.dec()
            self._metrics.observe(label, status, time.perf_counter() - started)

    async def _read_bounded(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Read the whole body if it is within the size and time bounds; else answer 413 or 408
        and return None."""
        cap = self.state.settings.limits.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > cap:
                await self._too_large(send, cap, int(value))
                return None
        chunks: list[bytes] = []
        size = 0
        timeout = self.state.settings.connections.body_timeout
        try:
            async with asyncio.timeout(timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > cap:
                        await self._too_large(send, cap, size)
                        return None
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            # A body trickled in (or promised and never sent) would hold the connection and
            # what came of it for as long as the client likes.
            error = "request body took too long"
            limit: dict[str, JsonValue] = {"field": "body", "limit": "bodyTimeout", "max": timeout}
            await self._refuse(send, 408, {"error": error, **limit})
            return None
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    async def _too_large(self, send: Send, cap: int, actual: int) -> None:
        error = "request body too large"
        limit: dict[str, JsonValue] = {
            "field": "body",
            "limit": "maxBodyBytes",
            "max": cap,
            "actual": actual,
        }
        await self._refuse(send, 413, {"error": error, **limit})

    async def _refuse(self, send: Send, status: int, error: dict[str, JsonValue]) -> None:
        body = json.dumps({**error, **self.state.identity()}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                # The rest of the body stays unread: closing the connection discards it.
                "headers": [
                    *_JSON_HEADERS,
                    (b"content-length", b"%d" % len(body)),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
