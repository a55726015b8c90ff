"""The node's protections: the token bucket on a fake clock, the bounded queue's shedding
decision, and both as the app answers them (429 / 503 with Retry-After, counted in /metrics)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from node_service.app import create_app
from node_service.bucket import TokenBucket
from node_service.front import Front
from node_service.settings import NodeSettings, Protection
from node_service.work import QueueFull, WorkRunner
from tests.support.clock import FakeClock


def test_bucket_admits_a_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)  # one token every 1/rate seconds
    clock.now += 0.25
    assert bucket.take() == pytest.approx(0.25)  # refused requests take nothing
    clock.now += 0.25
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.5)


def test_bucket_never_holds_more_than_its_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, burst=2, clock=clock)
    clock.now += 3600
    assert bucket.tokens == 2
    assert [bucket.take() for _ in range(3)][:2] == [0.0, 0.0]


def test_bucket_survives_a_clock_that_steps_back() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=1, clock=clock)
    assert bucket.take() == 0.0
    clock.now -= 50
    assert bucket.take() == pytest.approx(1.0)
    clock.now += 1
    assert bucket.take() == 0.0


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_bucket_refuses_nonsense(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst, clock=FakeClock())


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


async def test_a_full_queue_sheds_at_once_and_a_free_slot_admits_again() -> None:
    runner = WorkRunner(max_queue=2)

    # One request in service (held by a long wait), two queued behind it: the queue is full.
    serving = asyncio.create_task(runner.run(0, 60_000))
    await wait_until(lambda: runner.waiting == 1 and runner.queued == 0)
    queued = [asyncio.create_task(runner.run(0, 0)) for _ in range(2)]
    await wait_until(lambda: runner.queued == 2)
    assert runner.full()
    with pytest.raises(QueueFull) as info:
        await runner.run(0, 0)
    assert info.value.max_queue == 2
    assert runner.queued == 2  # the shed request never joined
    serving.cancel()
    await asyncio.wait_for(asyncio.gather(*queued), timeout=5)
    assert (runner.queued, runner.waiting, runner.full()) == (0, 0, False)
    assert (await runner.run(0, 0)).result == 0


def test_an_unbounded_queue_never_sheds() -> None:
    runner = WorkRunner()
    runner.queued = 10**6
    assert not runner.full()


@pytest.fixture
def shedding() -> Front:
    protection = Protection(max_queue=1, retry_after_seconds=7)
    front = create_app(NodeSettings(node_id="p", load_factor=0, protection=protection))
    assert isinstance(front, Front)
    return front


@pytest.fixture
async def client(shedding: Front) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=shedding)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        yield client


async def test_the_app_sheds_with_503_retry_after_and_counts_it(
    shedding: Front, client: httpx.AsyncClient
) -> None:
    runner = shedding.state.work
    serving = asyncio.create_task(client.get("/work", params={"ioMillis": 60_000}))
    await wait_until(lambda: runner.waiting == 1)
    queued = asyncio.create_task(client.get("/work", params={"ioMillis": 0}))
    await wait_until(lambda: runner.queued == 1)
    response = await client.get("/work")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    body = response.json()
    assert (body["error"], body["limit"], body["max"]) == ("overloaded", "maxQueue", 1)
    assert (body["retryAfterSeconds"], body["node"]) == (7, "p")
    # /health and /metrics are never shed.
    assert (await client.get("/health")).status_code == 200
    text = (await client.get("/metrics")).text
    assert "nodelab_work_shed_total 1.0" in text
    assert 'nodelab_http_requests_total{path="/work",status="503"} 1.0' in text
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    assert (await asyncio.wait_for(queued, timeout=5)).status_code == 200


async def test_the_app_rate_limits_with_429_and_the_seconds_until_a_token() -> None:
    protection = Protection(rate_limit=0.5, rate_burst=2)
    app = create_app(NodeSettings(load_factor=0, protection=protection))
    assert isinstance(app, Front)
    clock = FakeClock()
    assert app.state.bucket is not None
    app.state.bucket = TokenBucket(0.5, 2, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://n") as c:
        assert [(await c.get("/work")).status_code for _ in range(2)] == [200, 200]
        clock.now += 0.5
        response = await c.get("/work")
        assert response.status_code == 429
        assert response.headers["retry-after"] == "2"  # 1.5 s, rounded up to whole seconds
        body = response.json()
        assert (body["error"], body["limit"], body["rate"], body["burst"]) == (
            "rate limited",
            "rateLimit",
            0.5,
            2,
        )
        assert body["retryAfterSeconds"] == pytest.approx(1.5)
        assert (await c.get("/data/x")).status_code == 404  # only /work is limited
        clock.now += 1.5
        assert (await c.get("/work")).status_code == 200
        text = (await c.get("/metrics")).text
    assert "nodelab_work_rate_limited_total 1.0" in text
    assert "nodelab_work_shed_total 0.0" in text


async def test_no_protection_means_no_bucket_and_no_bound() -> None:
    app = create_app(NodeSettings())
    assert isinstance(app, Front)
    assert app.state.bucket is None and app.state.work.max_queue == 0


async def test_the_openapi_document_states_the_refusals() -> None:
    app = create_app(NodeSettings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://n") as c:
        document = (await c.get("/openapi.json")).json()
    responses = document["paths"]["/work"]["get"]["responses"]
    assert {"200", "422", "429", "500", "503"} <= set(responses)
    assert set(responses["503"]["content"]) == {"application/json", "text/plain"}
    assert "faultMillis" in document["components"]["schemas"]["WorkDone"]["properties"]
    assert "/fault" not in document["paths"]
