"""A slow node (``--service-factor``, ``--extra-millis``): F times the CPU work and I/O wait, and
a fixed extra wait, all visible in its answers, its /health and its metrics.

The CPU part is checked by its count of fib calls, which is deterministic; the waits by what the
node asked ``asyncio.sleep`` for, and in shape only (an answer took at least its wait).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from node_service.app import create_app
from node_service.settings import NodeSettings
from node_service.work import WorkRunner, compute, cpu_plan, fib, fib_calls

LOAD_FACTOR = 15  # fib(15): 1973 calls, a millisecond or so
# The loop clock may wake a hair early.
EARLY = 0.9


def counted_fib_calls(n: int) -> int:
    calls = 0

    def counted(k: int) -> int:
        nonlocal calls
        calls += 1
        return k if k < 2 else counted(k - 1) + counted(k - 2)

    counted(n)
    return calls


@pytest.mark.parametrize("n", range(12))
def test_fib_calls_counts_the_calls_of_the_recursive_fib(n: int) -> None:
    assert fib_calls(n) == counted_fib_calls(n)


@pytest.mark.parametrize("factor", [1, 2, 3, 7])
def test_a_whole_factor_repeats_fib_n(factor: int) -> None:
    assert cpu_plan(20, factor) == (20,) * factor


@pytest.mark.parametrize("n", [0, 1, 2, 5, 15, 30])
@pytest.mark.parametrize("factor", [1.0001, 1.25, 1.5, 2.5, 2.999, 3.7])
def test_a_fractional_factor_does_that_fraction_of_the_calls(n: int, factor: float) -> None:
    plan = cpu_plan(n, factor)
    calls = sum(fib_calls(k) for k in plan)
    assert abs(calls - factor * fib_calls(n)) <= 0.5  # to the nearest call
    assert plan[: int(factor)] == (n,) * int(factor)
    assert all(0 <= k <= n for k in plan)
    assert len(plan) <= int(factor) + n + 1


def test_the_first_fib_is_the_answer() -> None:
    assert compute(cpu_plan(15, 2.5)) == fib(15) == 610


@pytest.mark.parametrize("factor", [0.0, 0.99, -1.0])
def test_a_factor_below_one_is_refused(factor: float) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        cpu_plan(10, factor)
    with pytest.raises(ValueError, match="at least 1"):
        WorkRunner(service_factor=factor)


@asynccontextmanager
async def node(**fields: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = NodeSettings(node_id="slow", load_factor=LOAD_FACTOR, **fields)
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        yield client


async def fib_calls_done(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    found = re.search(r"^nodelab_work_fib_calls_total (\S+)$", text, re.MULTILINE)
    assert found, text
    return float(found.group(1))


@pytest.mark.parametrize("factor", [3.0, 2.5])
async def test_a_slow_node_does_factor_times_the_cpu_work(factor: float) -> None:
    async with node() as fast, node(service_factor=factor) as slow:
        for client in (fast, slow):
            for _ in range(2):
                body = (await client.get("/work", params={"loadFactor": LOAD_FACTOR})).json()
                assert body["result"] == 610
        fast_calls, slow_calls = await fib_calls_done(fast), await fib_calls_done(slow)
    assert fast_calls == 2 * fib_calls(LOAD_FACTOR)
    assert abs(slow_calls - 2 * factor * fib_calls(LOAD_FACTOR)) <= 2 * 0.5
    assert slow_calls / fast_calls == pytest.approx(factor, abs=1e-3)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """What ``asyncio.sleep`` is asked for, in seconds (it still sleeps): in these in-process
    apps only the work runner sleeps."""
    asked: list[float] = []
    real_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def recorded(seconds: float) -> None:
        asked.append(seconds)
        await real_sleep(seconds)

    monkeypatch.setattr(asyncio, "sleep", recorded)
    return asked


async def test_a_slow_node_waits_factor_times_the_io_and_its_extra(sleeps: list[float]) -> None:
    async with node(service_factor=3.0, extra_millis=25) as client:
        body = (await client.get("/work", params={"loadFactor": 0, "ioMillis": 20})).json()
    assert sleeps == [pytest.approx((3 * 20 + 25) / 1000)]
    assert body["serviceMillis"] >= (3 * 20 + 25) * EARLY
    # The answer echoes the wait asked for and says how this node stretched it.
    assert (body["ioMillis"], body["serviceFactor"], body["extraMillis"]) == (20, 3.0, 25)


async def test_extra_millis_alone_adds_its_wait(sleeps: list[float]) -> None:
    async with node(extra_millis=40) as client:
        body = (await client.get("/work", params={"loadFactor": 0, "ioMillis": 0})).json()
    assert sleeps == [pytest.approx(0.040)]
    assert body["serviceMillis"] >= 40 * EARLY
    assert (body["serviceFactor"], body["extraMillis"], body["faultMillis"]) == (1.0, 40, 0)


async def test_a_fast_node_does_not_sleep_without_io(sleeps: list[float]) -> None:
    async with node() as client:
        body = (await client.get("/work", params={"loadFactor": 5})).json()
    assert sleeps == []
    assert (body["serviceFactor"], body["extraMillis"]) == (1.0, 0)


async def test_the_extra_wait_holds_the_worker(sleeps: list[float]) -> None:
    async with node(extra_millis=30) as client:
        answers = await asyncio.gather(
            *(client.get("/work", params={"loadFactor": 0}) for _ in range(3))
        )
    # Served one at a time: the last one queued behind two extra waits.
    assert max(a.json()["queueMillis"] for a in answers) >= 2 * 30 * EARLY


async def test_health_and_metrics_say_which_node_is_slow() -> None:
    async with node(service_factor=2.5, extra_millis=50) as client:
        health = (await client.get("/health")).json()
        text = (await client.get("/metrics")).text
    assert (health["serviceFactor"], health["extraMillis"]) == (2.5, 50)
    assert "nodelab_node_service_factor 2.5" in text
    assert "nodelab_node_extra_millis 50.0" in text


async def test_the_openapi_document_states_the_new_fields() -> None:
    async with node() as client:
        schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    for answer in ("WorkDone", "Health"):
        assert {"serviceFactor", "extraMillis"} <= set(schemas[answer]["properties"])
