"""Small aiohttp servers of a test's own on 127.0.0.1: each answers exactly as its handlers
say (fixed service times, failures on demand), which a real node cannot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

from aiohttp import web

from tests.support.processes import free_port

__all__ = ["ANY_PATH", "Handler", "HttpServers", "http_servers"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A route that matches every path.
ANY_PATH = "/{tail:.*}"


class HttpServers:
    """The servers one test started; :func:`http_servers` stops them all."""

    def __init__(self, shutdown_timeout: float) -> None:
        self._shutdown_timeout = shutdown_timeout
        self._runners: list[web.AppRunner] = []

    async def start(
        self, get: Mapping[str, Handler], post: Mapping[str, Handler] | None = None
    ) -> str:
        """Start a server on a free port with these GET (and POST) routes; its base URL."""
        app = web.Application()
        for path, handler in get.items():
            app.router.add_get(path, handler)
        for path, handler in (post or {}).items():
            app.router.add_post(path, handler)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        self._runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop every server started, in the order they started."""
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()


@asynccontextmanager
async def http_servers(shutdown_timeout: float = 0.5) -> AsyncIterator[HttpServers]:
    """Servers to start while inside; all stopped on the way out. A handler still running at
    the stop is cancelled after ``shutdown_timeout`` seconds."""
    servers = HttpServers(shutdown_timeout)
    try:
        yield servers
    finally:
        await servers.stop()
