"""uvicorn's httptools protocol, with a deadline and a size bound on every request's headers.

uvicorn bounds the idle time between requests (``timeout_keep_alive``) and the number of
connections it serves (``limit_concurrency``), but nothing bounds the time a client takes to send
a request's headers, nor their size with httptools: a client trickling a header one byte at a
time holds its connection forever (100 such clients were all still held after 20 s), and one
sending an endless header grows the worker by all of it. This protocol closes a connection whose
headers have not all arrived ``header_timeout`` seconds after it opened or after its last answer
(408 if part of a request came), and answers 431 to headers larger than ``max_header_bytes``.
Both answers are JSON, like every error of the node.

uvicorn builds one protocol object per connection in each worker; the limits come from the
worker's settings, read once from the environment the CLI prepared (as the app's are).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Sequence
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from node_service.settings import NodeSettings, settings_from_env

__all__ = ["BoundedHttpToolsProtocol", "refusal"]


@functools.cache
def _worker_settings() -> NodeSettings:
    return settings_from_env()


def refusal(
    settings: NodeSettings,
    status: int,
    body: dict[str, Any],
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> bytes:
    """A complete HTTP/1.1 answer that refuses a request and closes its connection."""
    identity = {"node": settings.node_id, "pid": os.getpid(), "workers": settings.workers}
    content = json.dumps({**body, **identity}, separators=(",", ":")).encode()
    return b"".join(
        [
            STATUS_LINE[status],
            *(b"%s: %s\r\n" % header for header in headers),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(content),
            b"connection: close\r\n\r\n",
            content,
        ]
    )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """One connection of a worker: uvicorn's, plus the header deadline and header size bound."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._settings = _worker_settings()
        self._header_deadline: asyncio.TimerHandle | None = None
        # True from a request's first byte until its headers are complete.
        self._in_headers = False
        self._header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_headers and not self.transport.is_closing():
            # A whole read counts, although it may begin with the end of a pipelined request's
            # body: the count errs high by less than one read, never low.
            self._header_bytes += len(data)
            limit = self._settings.connections.max_header_bytes
            if self._header_bytes > limit:
                self._refuse(
                    431,
                    {
                        "error": "request headers too large",
                        "field": "headers",
                        "limit": "maxHeaderBytes",
                        "max": limit,
                        "actual": self._header_bytes,
                    },
                )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm_header_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        # The next request's headers are due from now; a pipelined one already has them all.
        if not pipelined and not self.transport.is_closing():
            self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(
            self._settings.connections.header_timeout, self._header_timed_out
        )

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_timed_out(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if not self._in_headers:
            # Nothing of a request came: close quietly, as uvicorn closes an idle keep-alive.
            self.transport.close()
            return
        self._refuse(
            408,
            {
                "error": "request headers took too long",
                "field": "headers",
                "limit": "headerTimeout",
                "max": self._settings.connections.header_timeout,
            },
        )

    def _refuse(self, status: int, body: dict[str, Any]) -> None:
        self._disarm_header_deadline()
        headers = self.server_state.default_headers  # date and server, as uvicorn sends
        self.transport.write(refusal(self._settings, status, body, headers))
        self.transport.close()
