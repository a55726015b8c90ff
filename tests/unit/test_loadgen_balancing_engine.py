"""The engine's balancer bookkeeping against small aiohttp servers of our own on 127.0.0.1.

Every request a balancer is told started is told finished, whatever ended it (an answer, a
5xx, a timeout, a refused connect, the overall deadline's cancellation), so its outstanding
counts never go negative and are all zero once the run is over.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from loadgen.accumulators import RunResult
from loadgen.balancing import STRATEGIES, Balancer, StrategyName
from loadgen.engine import run_plan
from loadgen.plan import LoadPlan
from loadgen.session import open_session
from tests.support.http_server import ANY_PATH, Handler, http_servers
from tests.support.processes import free_port

Serve = Callable[[Handler], Awaitable[str]]

BALANCED: list[StrategyName] = [name for name in STRATEGIES if name != "round-robin"]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start aiohttp servers on 127.0.0.1 with one GET handler each; all stopped at the end."""
    # Hung handlers are cancelled at once: nothing waits for them to answer.
    async with http_servers(shutdown_timeout=0.05) as servers:

        async def start(handler: Handler) -> str:
            return await servers.start({ANY_PATH: handler})

        yield start


def answering(node: str, delay_s: float = 0.0, status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        if delay_s:
            await asyncio.sleep(delay_s)
        return web.json_response({"node": node, "serviceMillis": delay_s * 1000}, status=status)

    return handler


class Watched:
    """A real strategy's balancer that checks its counts at every call and counts the calls."""

    def __init__(self, name: StrategyName, targets: int) -> None:
        self.inner = STRATEGIES[name](targets, random.Random(7), time.perf_counter)
        self.name: StrategyName = name
        self.outstanding = self.inner.outstanding
        self.starts = 0
        self.finishes = 0
        self.failures = 0
        self.peak = 0

    def pick(self) -> int:
        return self.inner.pick()

    def started(self, index: int) -> None:
        self.inner.started(index)
        self.starts += 1
        self.peak = max(self.peak, sum(self.outstanding))

    def finished(self, index: int, latency_s: float, ok: bool) -> None:
        # The balancer itself raises on a finish without its start.
        self.inner.finished(index, latency_s, ok)
        assert min(self.outstanding) >= 0
        assert latency_s >= 0
        self.finishes += 1
        self.failures += not ok


async def run(plan: LoadPlan, balancer: Balancer | None = None) -> RunResult:
    async with open_session(plan.concurrency, plan.timeout_s) as session:
        return await run_plan(plan, session, balancer=balancer)


def assert_balanced_to_zero(watched: Watched, result: RunResult, concurrency: int) -> None:
    assert watched.starts == watched.finishes > 0
    assert watched.outstanding == [0] * len(watched.outstanding)
    assert watched.peak <= concurrency
    # Every request sent finished once, as an answer or a failure the stats count.
    assert watched.finishes - watched.failures == result.stats.successes


@pytest.mark.parametrize("name", BALANCED)
async def test_answers_5xx_and_timeouts_all_finish(serve: Serve, name: StrategyName) -> None:
    targets = (
        await serve(answering("fast")),
        await serve(answering("shedding", status=503)),
        await serve(answering("hung", delay_s=5.0)),
    )
    plan = LoadPlan(targets=targets, concurrency=6, requests=60, timeout_s=0.2, balancing=name)
    watched = Watched(name, len(targets))
    result = await run(plan, watched)
    stats = result.stats
    assert stats.requests == 60
    assert_balanced_to_zero(watched, result, plan.concurrency)
    assert set(stats.errors) <= {"http_503", "timeout"}
    assert stats.successes > 0


@pytest.mark.parametrize("rate", [None, 200.0])
@pytest.mark.parametrize("name", BALANCED)
async def test_requests_the_deadline_cancels_finish_too(
    serve: Serve, name: StrategyName, rate: float | None
) -> None:
    targets = (await serve(answering("a", delay_s=5.0)), await serve(answering("b", delay_s=5.0)))
    plan = LoadPlan(
        targets=targets,
        concurrency=4,
        requests=40,
        rate=rate,
        timeout_s=10.0,
        deadline_s=0.3,
        balancing=name,
    )
    watched = Watched(name, len(targets))
    result = await run(plan, watched)
    assert result.cut_short
    assert result.stats.requests == 40
    assert result.stats.errors["timeout"] == watched.starts
    assert_balanced_to_zero(watched, result, plan.concurrency)


@pytest.mark.parametrize("name", BALANCED)
async def test_a_dead_target_does_not_draw_the_requests(serve: Serve, name: StrategyName) -> None:
    live = await serve(answering("live"))
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    plan = LoadPlan(targets=(dead, live), concurrency=4, requests=200, balancing=name)
    watched = Watched(name, 2)
    result = await run(plan, watched)
    stats = result.stats
    assert stats.requests == 200
    assert_balanced_to_zero(watched, result, plan.concurrency)
    # Its requests went to the live target instead of failing as "down"; only probes tried it.
    assert "down" not in stats.errors
    assert set(stats.errors) <= {"connect"}
    assert stats.successes >= 0.8 * stats.requests
    assert [down.went_away for down in stats.targets_down.values()] == [False]


async def test_round_robin_is_blind_and_has_no_balancer(serve: Serve) -> None:
    targets = (await serve(answering("a")), await serve(answering("slow", delay_s=0.02)))
    result = await run(LoadPlan(targets=targets, concurrency=4, requests=40))
    assert {name: node.successes for name, node in result.stats.nodes.items()} == {
        "a": 20,
        "slow": 20,
    }


async def test_a_seeded_strategy_replays_its_picks(serve: Serve) -> None:
    targets = tuple([await serve(answering(name)) for name in ("a", "b", "c")])
    plan = LoadPlan(targets=targets, concurrency=1, requests=60, balancing="random")
    first, second = await run(plan), await run(plan)

    def counts(result: RunResult) -> dict[str, int]:
        return {name: node.successes for name, node in result.stats.nodes.items()}

    assert counts(first) == counts(second)
    assert sum(counts(first).values()) == 60
    assert sorted(counts(first).values()) != [20, 20, 20]  # random, not round-robin


async def test_least_outstanding_sends_a_slow_target_fewer(serve: Serve) -> None:
    lock = asyncio.Lock()  # one request at a time, like a one-worker node

    async def slow(request: web.Request) -> web.Response:
        async with lock:
            await asyncio.sleep(0.05)
        return web.json_response({"node": "slow"})

    targets = (await serve(answering("fast", delay_s=0.005)), await serve(slow))
    plan = LoadPlan(targets=targets, concurrency=4, requests=120, balancing="least-outstanding")
    watched = Watched("least-outstanding", 2)
    result = await run(plan, watched)
    assert_balanced_to_zero(watched, result, plan.concurrency)
    nodes = result.stats.nodes
    assert nodes["slow"].successes < 0.5 * nodes["fast"].successes
