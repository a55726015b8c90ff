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

from loadgen.accumulators import RunResult
from loadgen.engine import ProgressCallback, classify_error, run_plan
from loadgen.health import BACKOFF_BASE_S, DownTarget
from loadgen.histogram import summarize
from loadgen.plan import LoadPlan
from loadgen.session import open_session
from tests.support.http_server import ANY_PATH, Handler, http_servers
from tests.support.processes import free_port

Serve = Callable[[Handler], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start aiohttp servers on 127.0.0.1 with one GET handler each; all stopped at the end."""
    async with http_servers() as servers:

        async def start(handler: Handler) -> str:
            return await servers.start({ANY_PATH: handler})

        yield start


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
    assert result.stats.targets_down == {nowhere: DownTarget(went_away=False, failed_connects=2)}


def most_connects(concurrency: int, duration_s: float) -> float:
    """Connect attempts a backed-off run can make: every client once, then at most one per
    half a base step (the shortest backoff) - far below a spinning client's thousands."""
    return concurrency + duration_s / (BACKOFF_BASE_S / 2)


async def test_a_dead_target_is_not_hammered_and_each_attempt_counts_once() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    plan = LoadPlan(targets=(nowhere,), concurrency=5, duration_s=1.5, timeout_s=1.0)
    result = await run(plan)
    attempts = result.stats.errors.get("connect", 0)
    # Nothing but connect attempts was counted, so they are all the requests there were.
    assert result.stats.errors == {"connect": attempts}
    assert plan.concurrency <= attempts <= most_connects(plan.concurrency, result.duration_s)
    assert result.stats.targets_down == {
        nowhere: DownTarget(went_away=False, failed_connects=attempts)
    }


async def test_a_request_count_against_a_dead_target_fails_fast_after_the_first_attempts() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    plan = LoadPlan(targets=(nowhere,), concurrency=5, requests=50)
    result = await run(plan)
    errors = result.stats.errors
    # The count bounds the run: no waiting for a target that is down, and no spinning either.
    assert errors["connect"] + errors["down"] == 50
    assert errors["connect"] <= most_connects(plan.concurrency, result.duration_s)


async def test_requests_for_a_dead_target_fail_fast_while_another_is_served(
    serve: Serve,
) -> None:
    alive = await serve(node_answer("a"))
    nowhere = f"http://127.0.0.1:{free_port()}"
    plan = LoadPlan(targets=(alive, nowhere), concurrency=2, requests=400)
    result = await run(plan)
    stats = result.stats
    assert stats.requests == 400
    assert stats.nodes["a"].successes == 200
    # Half the indices are the dead target's: a few connect attempts, the rest not tried.
    assert stats.target_errors == {nowhere: 200}
    assert set(stats.errors) == {"connect", "down"}
    assert stats.errors["connect"] <= most_connects(plan.concurrency, result.duration_s)


async def test_a_target_that_went_away_is_reported_as_such() -> None:
    answers = 0
    enough = asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        nonlocal answers
        answers += 1
        if answers == 10:
            enough.set()
        return web.json_response({"node": "a"})

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    target = f"http://127.0.0.1:{port}"

    async def stop_after_ten_answers() -> None:
        await enough.wait()
        await runner.cleanup()

    stopper = asyncio.create_task(stop_after_ten_answers())
    try:
        plan = LoadPlan(targets=(target,), concurrency=2, duration_s=2.0, timeout_s=1.0)
        result = await run(plan)
    finally:
        stopper.cancel()
        await asyncio.gather(stopper, return_exceptions=True)
        await runner.cleanup()
    stats = result.stats
    assert stats.successes >= 10
    down = stats.targets_down[target]
    assert down.went_away
    # Failed connects are counted once each, under connect (as are answers cut off by the stop).
    assert 1 <= down.failed_connects <= stats.errors["connect"]
    assert stats.errors["connect"] <= most_connects(plan.concurrency, result.duration_s)
    assert set(stats.errors) <= {"connect", "other"}


async def test_the_overall_deadline_stops_a_run_and_counts_cut_requests(serve: Serve) -> None:
    target = await serve(node_answer("slow", delay_s=5.0))
    started = time.monotonic()
    plan = LoadPlan(targets=(target,), concurrency=3, requests=100, deadline_s=0.3)
    result = await run(plan)
    assert time.monotonic() - started < 4.0  # well before any request could finish
    assert result.cut_short
    # The three in flight were cut off; the other 97 were never sent, and say so.
    assert result.stats.errors == {"timeout": 3, "not_sent": 97}
    assert result.stats.requests == 100


async def test_open_loop_counts_every_scheduled_request_against_a_server_that_never_answers() -> (
    None
):
    accepted: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # read nothing, answer nothing

    port = free_port()
    server = await asyncio.start_server(hold, "127.0.0.1", port)
    try:
        target = f"http://127.0.0.1:{port}"
        plan = LoadPlan(targets=(target,), rate=20.0, duration_s=1.5, timeout_s=0.5, concurrency=5)
        result = await run(plan)
        sent = result.stats.errors.get("timeout", 0)
        # Each request sent held its own connection until it timed out, so the server saw it.
        deadline = time.monotonic() + 10.0
        while len(accepted) < sent and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # poll interval of a condition wait
        assert len(accepted) == sent > 0
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    # 20/s for 1.5 s: 30 scheduled, each one counted.
    assert result.stats.errors == {"timeout": sent, "not_sent": 30 - sent}
    assert result.stats.requests == plan.scheduled == 30
    # Cut at the documented deadline (duration + timeout), not seconds later.
    assert result.cut_short
    assert plan.run_deadline_s() == 2.0
    assert result.duration_s < plan.run_deadline_s() + 5.0


async def test_open_loop_against_a_dead_target_accounts_for_its_whole_schedule() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    plan = LoadPlan(targets=(nowhere,), rate=50.0, duration_s=1.0, concurrency=5)
    result = await run(plan)
    errors = result.stats.errors
    assert set(errors) == {"connect", "down"}
    assert errors["connect"] + errors["down"] == plan.scheduled == 50
    assert errors["connect"] <= most_connects(plan.concurrency, result.duration_s)


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
