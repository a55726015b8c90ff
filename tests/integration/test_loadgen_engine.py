"""The engine over real sockets against small aiohttp servers of our own on 127.0.0.1.

These servers behave exactly as told (fixed service times, failures on demand), which the
real node cannot; tests/integration/test_loadgen_nodes.py runs against real nodes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from loadgen.engine import ProgressCallback, classify_error, run_plan
from loadgen.plan import LoadPlan
from loadgen.session import open_session
from loadgen.stats import RunResult, summarize
from tests.support.processes import free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Serve = Callable[[Handler], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start aiohttp servers on 127.0.0.1 with one GET handler each; all stopped at the end."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def node_answer(node: str, delay_s: float = 0.0) -> Handler:
    lock = asyncio.Lock()  # one request at a time, like a one-worker node

    async def handler(request: web.Request) -> web.Response:
        async with lock:
            started = time.perf_counter()
            if delay_s:
                await asyncio.sleep(delay_s)
            service_ms = (time.perf_counter() - started) * 1000
        return web.json_response({"node": node, "pid": 1, "serviceMillis": round(service_ms, 3)})

    return handler


async def run(
    plan: LoadPlan,
    *,
    shard: tuple[int, int] = (0, 1),
    on_progress: ProgressCallback | None = None,
) -> RunResult:
    async with open_session(plan.concurrency, plan.timeout_s) as session:
        return await run_plan(plan, session, shard=shard, on_progress=on_progress)


async def test_round_robin_over_targets_and_per_node_counts(serve: Serve) -> None:
    targets = tuple([await serve(node_answer(name)) for name in ("a", "b", "c")])
    result = await run(LoadPlan(targets=targets, concurrency=4, requests=30))
    stats = result.stats
    assert (stats.requests, stats.successes, stats.error_count) == (30, 30, 0)
    assert {name: node.successes for name, node in stats.nodes.items()} == {
        "a": 10,
        "b": 10,
        "c": 10,
    }
    assert {name: node.targets for name, node in stats.nodes.items()} == {
        "a": {targets[0]},
        "b": {targets[1]},
        "c": {targets[2]},
    }
    assert stats.service.get_total_count() == 30
    assert not result.cut_short


async def test_answers_without_a_node_id_count_under_their_target(serve: Serve) -> None:
    async def plain(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    target = await serve(plain)
    result = await run(LoadPlan(targets=(target,), path="/anything", concurrency=2, requests=6))
    assert list(result.stats.nodes) == [target]
    assert result.stats.service.get_total_count() == 0


async def test_numeric_node_ids_and_spaced_json(serve: Serve) -> None:
    async def spaced(request: web.Request) -> web.Response:
        return web.Response(
            text='{"node": 7, "serviceMillis": 1.5e0}', content_type="application/json"
        )

    target = await serve(spaced)
    result = await run(LoadPlan(targets=(target,), concurrency=1, requests=3))
    assert list(result.stats.nodes) == ["7"]
    service = summarize(result.stats.service)
    assert service is not None
    assert service.p50 == pytest.approx(1.5, rel=1e-3)


async def test_http_errors_are_counted_by_status(serve: Serve) -> None:
    calls = 0

    async def flaky(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls % 3 == 0:
            return web.json_response({"detail": "busy"}, status=503)
        return web.json_response({"node": "1"})

    target = await serve(flaky)
    result = await run(LoadPlan(targets=(target,), concurrency=1, requests=9))
    assert result.stats.errors == {"http_503": 3}
    assert result.stats.successes == 6


async def test_timeouts_and_refused_connections(serve: Serve) -> None:
    slow = await serve(node_answer("slow", delay_s=2.0))
    nowhere = f"http://127.0.0.1:{free_port()}"
    plan = LoadPlan(targets=(slow, nowhere), concurrency=2, requests=4, timeout_s=0.2)
    result = await run(plan)
    assert result.stats.errors == {"timeout": 2, "connect": 2}
    assert result.stats.target_errors == {slow: 2, nowhere: 2}


async def test_the_overall_deadline_stops_a_run_and_counts_cut_requests(serve: Serve) -> None:
    target = await serve(node_answer("slow", delay_s=5.0))
    started = time.monotonic()
    plan = LoadPlan(targets=(target,), concurrency=3, requests=100, deadline_s=0.3)
    result = await run(plan)
    assert time.monotonic() - started < 4.0  # well before any request could finish
    assert result.cut_short
    assert result.stats.errors == {"timeout": 3}


async def test_a_duration_run_stops_by_itself(serve: Serve) -> None:
    target = await serve(node_answer("1", delay_s=0.01))
    seen: list[int] = []
    result = await run(
        LoadPlan(targets=(target,), concurrency=2, duration_s=0.4),
        on_progress=lambda done, elapsed: seen.append(done),
    )
    assert 0.4 <= result.duration_s < 3.0
    assert result.stats.successes > 0
    assert seen[-1] == result.stats.requests
    assert seen == sorted(seen)


async def test_open_loop_above_capacity_corrects_for_coordinated_omission(serve: Serve) -> None:
    # Capacity 50/s (one request at a time, 20 ms each); scheduled at 200/s.
    target = await serve(node_answer("1", delay_s=0.02))
    plan = LoadPlan(targets=(target,), concurrency=4, requests=40, rate=200.0)
    result = await run(plan)
    corrected = summarize(result.stats.latency())
    uncorrected = summarize(result.stats.uncorrected)
    assert corrected is not None and uncorrected is not None
    assert corrected.count == uncorrected.count == 40
    # The backlog grows through the run: the last requests waited long past their start.
    assert corrected.p99 > uncorrected.p99
    assert corrected.max > 2 * uncorrected.max


async def test_open_loop_under_capacity_keeps_the_schedule(serve: Serve) -> None:
    target = await serve(node_answer("1"))
    result = await run(LoadPlan(targets=(target,), concurrency=4, requests=10, rate=50.0))
    # 10 requests at 50/s: the last is scheduled 0.18 s after the first.
    assert result.duration_s >= 0.18
    assert result.stats.successes == 10


async def test_shards_split_the_requests(serve: Serve) -> None:
    targets = tuple([await serve(node_answer(name)) for name in ("a", "b")])
    plan = LoadPlan(targets=targets, concurrency=2, requests=9)
    first = await run(plan, shard=(0, 2))
    second = await run(plan, shard=(1, 2))
    assert (first.stats.requests, second.stats.requests) == (5, 4)
    # Interleaved indices: shard 0 sends 0,2,4,6,8 -> all to target 0.
    assert set(first.stats.nodes) == {"a"}
    assert set(second.stats.nodes) == {"b"}


async def test_any_session_will_do(serve: Serve) -> None:
    target = await serve(node_answer("1"))
    async with aiohttp.ClientSession() as session:
        result = await run_plan(LoadPlan(targets=(target,), requests=5), session)
    assert result.stats.successes == 5


async def test_bad_shard_is_refused() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValueError):
            await run_plan(LoadPlan(), session, shard=(2, 2))


def test_classify_error() -> None:
    assert classify_error(TimeoutError()) == "timeout"
    assert classify_error(aiohttp.ServerTimeoutError()) == "timeout"
    assert classify_error(aiohttp.ServerDisconnectedError()) == "connect"
    assert classify_error(aiohttp.ClientOSError()) == "connect"
    assert classify_error(aiohttp.ClientPayloadError()) == "other"
