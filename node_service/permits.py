"""One queue per node: at most ``workers`` /work requests in service at once, first come first
served, whichever worker process the kernel handed the connection to.

uvicorn's workers share one listening socket, and a busy worker's event loop stays free (so
``/health`` answers), so it keeps accepting connections: with a lock per worker, requests queue
behind a busy worker while its siblings idle, and a 10-worker node served like 2-3 workers in
I/O mode. Instead the node's main process keeps the permits (:class:`PermitDesk`, a thread with
a Unix socket in the node's private directory) and every worker asks it (:class:`NodePermits`).
A permit is a connection: granted with one byte, returned when the worker closes it, or when the
worker dies, so a crashed worker never leaks one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator

__all__ = ["PERMITS_ENV", "NodePermits", "PermitDesk"]

PERMITS_ENV = "NODELAB_PERMITS_SOCKET"
_GRANT = b"!"


class PermitDesk:
    """Hands out ``permits`` permits over a Unix socket at ``path``, in arrival order."""

    def __init__(self, path: str, permits: int) -> None:
        self.path = path
        self.free = permits
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, name="nodelab-permits", daemon=True)

    def start(self) -> None:
        """Start serving in a daemon thread; returns once the socket accepts."""
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError(f"permit desk did not start on {self.path}")

    def stop(self) -> None:
        """Stop serving (the workers are gone by then)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        server = loop.run_until_complete(asyncio.start_unix_server(self._handle, self.path))
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            # Holders still connected at shutdown: let their handlers end inside the loop.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending))
            loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        self._hand_out()
        try:
            await turn
            writer.write(_GRANT)
            await writer.drain()
            await reader.read(1)  # EOF: the worker is done (or gone)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if turn.done():
                self.free += 1
            else:
                turn.cancel()
                self._waiting.remove(turn)
            writer.close()
            self._hand_out()

    def _hand_out(self) -> None:
        while self.free > 0 and self._waiting:
            turn = self._waiting.popleft()
            self.free -= 1
            turn.set_result(None)


class NodePermits:
    """A worker's side of the desk: ``async with permits.hold():`` serves one request."""

    def __init__(self, path: str) -> None:
        self.path = path

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Wait for a permit of the node, hold it for the block, give it back."""
        reader, writer = await asyncio.open_unix_connection(self.path)
        try:
            if await reader.readexactly(1) != _GRANT:
                raise RuntimeError("permit desk answered nonsense")
            yield
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
