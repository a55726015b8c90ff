"""The storm run's accounting against small aiohttp servers of our own on 127.0.0.1.

Each server answers exactly as told (503 with Retry-After, timeouts, a refused /fault), so the
counts can be checked exactly: every offered request ends once (a success, ``gave_up``,
``breaker_open`` or ``refused``), and without a breaker the attempts are the offered requests
plus the retries granted.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp import web

from loadgen import storm
from loadgen.plan import LoadPlan, Trigger
from loadgen.report import build_report
from loadgen.resilience import BreakerSettings, RetryPolicy
from loadgen.schema import REPORT_SCHEMA
from loadgen.session import open_session
from tests.support.http_server import Handler, http_servers

Serve = Callable[..., Awaitable[str]]

IMMEDIATE = RetryPolicy(kind="immediate", max_attempts=3)
TOKEN = "unit-fault-token"


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start aiohttp servers on 127.0.0.1 (GET /work, optionally POST /fault); stop them all."""
    async with http_servers() as servers:

        async def start(work: Handler, fault: Handler | None = None) -> str:
            return await servers.start({"/work": work}, {"/fault": fault} if fault else None)

        yield start


def answers(*statuses: int, then: int = 200, retry_after: str | None = None) -> Handler:
    """A /work that answers ``statuses`` in turn, then ``then`` for ever."""
    queue = list(statuses)

    async def handler(request: web.Request) -> web.Response:
        status = queue.pop(0) if queue else then
        headers = {"Retry-After": retry_after} if retry_after and status in (429, 503) else {}
        return web.json_response(
            {"node": "n1", "serviceMillis": 1.5}, status=status, headers=headers
        )

    return handler


async def storm_run(plan: LoadPlan, **kwargs: Any) -> storm.StormRun:
    async with open_session(storm.in_flight_cap(plan), plan.timeout_s) as session:
        return await storm.run_storm(plan, session, rng=random.Random(7), **kwargs)


def ends(run: storm.StormRun) -> dict[str, int]:
    errors = run.result.stats.errors
    return {kind: errors.get(kind, 0) for kind in ("gave_up", "breaker_open", "refused")}


def assert_every_request_ends_once(run: storm.StormRun, plan: LoadPlan) -> None:
    stats = run.result.stats
    assert run.offered == plan.scheduled
    assert stats.successes + sum(ends(run).values()) == run.offered
    assert stats.requests == plan.scheduled  # the report's requests = successes + errors
    seconds = run.timeline.seconds
    assert sum(s.offered for s in seconds) == run.offered
    assert sum(s.attempts for s in seconds) == run.attempts
    assert sum(s.successes for s in seconds) == stats.successes
    failed_attempts = sum(run.attempt_errors.values())
    assert run.attempts == stats.successes + failed_attempts


async def test_503s_are_retried_and_every_request_ends_once(serve: Serve) -> None:
    # Two sheds: no request meets three, whatever the order of arrivals and retries.
    target = await serve(answers(503, 503))
    plan = LoadPlan(targets=(target,), rate=100.0, requests=40, timeout_s=2.0, retry=IMMEDIATE)
    run = await storm_run(plan)
    assert_every_request_ends_once(run, plan)
    assert run.attempts == run.offered + run.retries
    assert run.attempt_errors == {"shed": 2} and run.retries == 2
    assert run.result.stats.successes == 40 and ends(run) == dict.fromkeys(ends(run), 0)
    assert [row.node for row in run.result.stats.nodes.values()] == ["n1"]
    assert run.result.stats.service.get_total_count() == 40


async def test_a_request_that_keeps_failing_gives_up_once(serve: Serve) -> None:
    target = await serve(answers(then=500))
    plan = LoadPlan(targets=(target,), rate=200.0, requests=30, timeout_s=2.0, retry=IMMEDIATE)
    run = await storm_run(plan)
    assert_every_request_ends_once(run, plan)
    assert ends(run)["gave_up"] == 30
    assert run.attempts == 90 == run.offered + run.retries
    assert run.attempt_errors == {"error": 90}
    assert sum(s.errors.get("gave_up", 0) for s in run.timeline.seconds) == 30


async def test_timeouts_are_attempt_errors(serve: Serve) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    target = await serve(hang)
    plan = LoadPlan(targets=(target,), rate=50.0, requests=10, timeout_s=0.1, retry=IMMEDIATE)
    run = await storm_run(plan)
    assert_every_request_ends_once(run, plan)
    assert run.attempt_errors == {"timeout": 30}
    assert ends(run)["gave_up"] == 10


async def test_the_breaker_refuses_and_the_request_ends(serve: Serve) -> None:
    target = await serve(answers(then=503))
    policy = RetryPolicy(
        kind="immediate",
        max_attempts=3,
        breaker=BreakerSettings(failure_ratio=0.5, min_calls=5, open_seconds=30, probes=1),
    )
    plan = LoadPlan(targets=(target,), rate=50.0, requests=40, timeout_s=2.0, retry=policy)
    run = await storm_run(plan)
    assert_every_request_ends_once(run, plan)
    # Five failed calls open it for longer than the run: everything after is refused (a few
    # more may have been let go while the fifth was in flight).
    assert 5 <= run.attempts <= 15
    assert ends(run)["breaker_open"] >= 25
    assert ends(run)["gave_up"] + ends(run)["breaker_open"] == 40
    assert run.breaker_rejected == ends(run)["breaker_open"]
    assert {s.breaker for s in run.timeline.seconds} >= {"open"}


async def test_retry_after_is_honored(serve: Serve) -> None:
    target = await serve(answers(503, retry_after="1"))
    policy = RetryPolicy(kind="backoff", max_attempts=2, base_millis=1, cap_millis=1,
                         honor_retry_after=True)  # fmt: skip
    plan = LoadPlan(targets=(target,), rate=100.0, requests=1, timeout_s=2.0, retry=policy)
    run = await storm_run(plan)
    assert_every_request_ends_once(run, plan)
    assert run.retries == 1 and run.result.stats.successes == 1
    latency = run.result.stats.latency()
    assert latency.get_min_value() >= 1_000_000  # waited out the 1 s the node asked for


async def test_arrivals_past_the_cap_are_refused(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"node": "n1"})

    target = await serve(held)
    plan = LoadPlan(targets=(target,), rate=200.0, requests=20, timeout_s=5.0, retry=IMMEDIATE)
    monkeypatch.setattr(storm, "in_flight_cap", lambda plan: 3)
    async with open_session(10, plan.timeout_s) as session:
        task = asyncio.create_task(storm.run_storm(plan, session))
        # 20 arrivals take 0.1 s; the held three answer once all have come.
        later = asyncio.get_running_loop().call_later(0.5, release.set)
        run = await task
        later.cancel()
    assert_every_request_ends_once(run, plan)
    assert run.peak_in_flight == 3
    assert ends(run)["refused"] == 17
    assert run.result.stats.successes == 3


async def test_the_deadline_ends_requests_as_gave_up_and_unsent_as_not_sent(
    serve: Serve,
) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.json_response({})

    target = await serve(hang)
    plan = LoadPlan(
        targets=(target,), rate=20.0, requests=40, timeout_s=5.0, retry=IMMEDIATE, deadline_s=0.5
    )
    run = await storm_run(plan)
    stats = run.result.stats
    assert run.result.cut_short
    assert 0 < run.offered < 40
    assert stats.errors["gave_up"] == run.offered
    assert stats.errors["not_sent"] == 40 - run.offered
    assert stats.requests == 40
    # Each offered request was in its one attempt (or, the last, perhaps not yet started).
    assert run.offered - 1 <= run.attempt_errors["timeout"] <= run.offered
    assert set(run.attempt_errors) == {"timeout"}


def fault_handler(seen: list[tuple[str | None, Any]], status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        seen.append((request.headers.get("Authorization"), await request.json()))
        return web.json_response({"fault": {}}, status=status)

    return handler


def trigger_plan(targets: tuple[str, ...], token_file: Path) -> LoadPlan:
    return LoadPlan(
        targets=targets,
        rate=50.0,
        duration_s=1.0,
        timeout_s=1.0,
        trigger=Trigger(start_s=0.2, duration_s=0.3, mode="slow", extra_millis=50),
        fault_token_file=str(token_file),
    )


async def test_the_trigger_is_posted_to_every_target_with_the_token(
    serve: Serve, tmp_path: Path
) -> None:
    seen: list[tuple[str | None, Any]] = []
    targets = tuple([await serve(answers(), fault_handler(seen)) for _ in range(2)])
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    plan = trigger_plan(targets, token_file)
    run = await storm_run(plan)
    body = {"startsInSeconds": 0.2, "durationSeconds": 0.3, "mode": "slow", "extraMillis": 50}
    assert seen == [(f"Bearer {TOKEN}", body)] * 2
    assert_every_request_ends_once(run, plan)
    report = build_report(plan, run.result, storm=run)
    jsonschema.validate(report, REPORT_SCHEMA)
    assert report["storm"]["triggerWindow"] == {"startSeconds": 0.2, "endSeconds": 0.5}
    assert report["trigger"]["mode"] == "slow"
    assert report["retry"]["kind"] == "none"
    assert report["timeline"]["secondsPerPoint"] == 1


@pytest.mark.parametrize(
    ("status", "why"), [(401, "no bearer token"), (403, "wrong"), (404, "no /fault"), (422, "422")]
)
async def test_a_refused_trigger_fails_the_run_naming_the_target(
    serve: Serve, tmp_path: Path, status: int, why: str
) -> None:
    good = await serve(answers(), fault_handler([]))
    bad = await serve(answers(), fault_handler([], status=status))
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    with pytest.raises(storm.TriggerRefused) as refused:
        await storm_run(trigger_plan((good, bad), token_file))
    assert bad in str(refused.value) and why in str(refused.value)
    assert good not in str(refused.value)


async def test_an_unreadable_token_file_fails_the_run(serve: Serve, tmp_path: Path) -> None:
    target = await serve(answers(), fault_handler([]))
    with pytest.raises(storm.TriggerRefused, match="fault token file"):
        await storm_run(trigger_plan((target,), tmp_path / "missing"))


def test_the_cap_and_the_deadline_follow_the_longest_life() -> None:
    plan = LoadPlan(rate=10.0, duration_s=20, timeout_s=0.5, retry=IMMEDIATE)
    assert storm.request_lifetime_s(plan) == 1.5
    assert storm.in_flight_cap(plan) == 25  # 10/s x (1.5 s + 1 s)
    assert storm.storm_deadline_s(plan) == 20 + 1.5 + 1
    backoff = RetryPolicy(kind="backoff", max_attempts=3, cap_millis=1000, honor_retry_after=True)
    plan = LoadPlan(rate=10.0, duration_s=20, timeout_s=0.5, retry=backoff, concurrency=500)
    assert storm.request_lifetime_s(plan) == 1.5 + 2 * storm.RETRY_AFTER_CAP_S
    assert storm.in_flight_cap(plan) == 500  # never below concurrency
