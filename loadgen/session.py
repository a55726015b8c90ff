"""The real transport: one aiohttp session per process, sized to its concurrency.

Only this module, the CLI and the worker processes build sockets; :mod:`loadgen.engine`
takes whatever session it is given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import aiohttp

from loadgen.accumulators import RunResult
from loadgen.engine import ProgressCallback, run_plan
from loadgen.plan import LoadPlan

__all__ = ["open_session", "run_level", "run_sync"]

T = TypeVar("T")


def open_session(
    concurrency: int, timeout_s: float, *, fresh_connections: bool = False
) -> aiohttp.ClientSession:
    """A session with one connection per concurrent client: kept alive, or new per request."""
    connector = aiohttp.TCPConnector(
        limit=concurrency, limit_per_host=0, ttl_dns_cache=300, force_close=fresh_connections
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        # Answers are read as bytes; never pay for decompression or cookie handling.
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )


async def run_level(
    plan: LoadPlan,
    *,
    shard: tuple[int, int] = (0, 1),
    on_progress: ProgressCallback | None = None,
) -> RunResult:
    """Run one level of ``plan`` in this process over a fresh session."""
    async with open_session(
        plan.concurrency, plan.timeout_s, fresh_connections=plan.fresh_connections
    ) as session:
        return await run_plan(plan, session, shard=shard, on_progress=on_progress)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return None
    # uvloop's event loop costs the client noticeably less CPU per request.
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_sync(coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``coroutine()`` to completion in a new event loop (uvloop where available)."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(coroutine())
