"""Phase 5, the retry storm: an open loop whose arrivals never wait for the site, retried.

Every request is its own task, started at its due time ``start + index / rate`` whatever the
targets are doing: the traffic does not slow down when the site does, which is what lets
retries pile onto an overloaded fleet. Each attempt has the plan's timeout; the
:class:`~loadgen.resilience.Retrier` (one for the run: its budget and breaker see every
outcome, as one client's would) says whether and when to retry, and its breaker may refuse
an attempt. A retry goes to the next target, as a load-balanced client's lands on another pod.

What is in flight is bounded: at most :func:`in_flight_cap` requests live at once (those
waiting out a backoff included); an arrival past it is refused (``refused``) rather than
queued, so the run's memory and sockets stay bounded however the storm grows.

Every offered request ends exactly once, as a success or as one of ``gave_up`` (its last
attempt failed, or the run's deadline cut it off), ``breaker_open`` (the breaker refused an
attempt) or ``refused``; those are the run's errors (:class:`RunStats`), so
``requests = successes + errors`` as in every report. Each failed attempt is counted too, by
what it came to (``timeout``, ``shed`` = 503, ``limited`` = 429, ``error`` = a failed
connection or another status), in the :class:`~loadgen.timeline.Timeline` and
:attr:`StormRun.attempt_errors`.

The trigger: at the run's start, before the first arrival, ``POST /fault`` with the nodes'
bearer token goes to every target; a target that refuses it fails the run
(:class:`TriggerRefused`), naming the target and why.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from loadgen import schedule
from loadgen.accumulators import RunResult, RunStats
from loadgen.engine import ProgressCallback, classify_error
from loadgen.health import DownTarget
from loadgen.plan import LoadPlan, Trigger
from loadgen.resilience import Outcome, Retrier, RetryPolicy, parse_retry_after
from loadgen.session import open_session, run_sync
from loadgen.timeline import Timeline

__all__ = [
    "END_KINDS",
    "RETRY_AFTER_CAP_S",
    "StormRun",
    "TriggerRefused",
    "in_flight_cap",
    "post_trigger",
    "request_lifetime_s",
    "run_storm",
    "run_storm_sync",
    "storm_deadline_s",
    "storm_policy",
]

# How a request that did not succeed ended; each offered request ends exactly once.
END_KINDS = ("gave_up", "breaker_open", "refused")
# A Retry-After past this is read as this: a lab's trigger lasts seconds, and the wait bounds
# every request's life (and so the run's deadline and its in-flight cap).
RETRY_AFTER_CAP_S = 10.0
TRIGGER_TIMEOUT_S = 10.0
TICK_S = 0.25

_REFUSALS = {
    401: "it took no bearer token (401): is the node's token file the one given?",
    403: "the fault token is wrong (403)",
    404: "it has no /fault (404): the node was started without --fault-token-file",
    422: "it refused the window (422)",
}


class TriggerRefused(RuntimeError):
    """The trigger could not be posted: the token file is unreadable, or a target refused."""


@dataclass
class StormRun:
    """A storm run's result: the usual :class:`RunResult` plus what only a storm has."""

    result: RunResult
    timeline: Timeline
    policy: RetryPolicy
    trigger: Trigger | None
    offered: int = 0
    attempts: int = 0
    retries: int = 0
    attempt_errors: dict[str, int] = field(default_factory=dict)
    in_flight_cap: int = 0
    peak_in_flight: int = 0
    breaker_transitions: int | None = None  # None: no breaker
    breaker_rejected: int | None = None
    budget_denied: int | None = None  # None: no budget


def storm_policy(plan: LoadPlan) -> RetryPolicy:
    """The plan's retry policy; one that never retries when the plan has none."""
    return plan.retry if plan.retry is not None else RetryPolicy()


def request_lifetime_s(plan: LoadPlan) -> float:
    """The longest one request can live: every attempt timing out, with the longest wait
    (the backoff's cap, or a capped Retry-After when honored) between attempts."""
    policy = storm_policy(plan)
    wait_s = policy.cap_millis / 1000 if policy.kind == "backoff" else 0.0
    if policy.honor_retry_after:
        wait_s = max(wait_s, RETRY_AFTER_CAP_S)
    return policy.max_attempts * plan.timeout_s + (policy.max_attempts - 1) * wait_s


def in_flight_cap(plan: LoadPlan) -> int:
    """Requests alive at once, at most: a second of arrivals more than the rate times the
    longest life (every arrival living its longest never meets it); at least ``concurrency``."""
    assert plan.rate is not None
    return max(plan.concurrency, math.ceil(plan.rate * (request_lifetime_s(plan) + 1.0)))


def storm_deadline_s(plan: LoadPlan) -> float:
    """The overall bound: ``deadline_s``, else the last arrival plus the longest life + 1 s."""
    if plan.deadline_s is not None:
        return plan.deadline_s
    assert plan.rate is not None and plan.scheduled is not None
    return plan.scheduled / plan.rate + request_lifetime_s(plan) + 1.0


def _read_token(plan: LoadPlan) -> str:
    path = plan.fault_token_file
    if path is None:
        raise TriggerRefused("the trigger needs the nodes' fault token: --fault-token-file")
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TriggerRefused(f"cannot read the fault token file {path}: {exc}") from None
    if not token:
        raise TriggerRefused(f"the fault token file {path} is empty")
    return token


async def post_trigger(plan: LoadPlan, session: aiohttp.ClientSession) -> None:
    """POST the plan's fault window to every target at once; raise :class:`TriggerRefused`
    naming each target that did not take it, and why."""
    trigger = plan.trigger
    if trigger is None:
        return
    token = _read_token(plan)
    headers = {"Authorization": f"Bearer {token}"}
    body = trigger.fault_body()
    timeout = aiohttp.ClientTimeout(total=TRIGGER_TIMEOUT_S)

    async def post(target: str) -> str | None:
        try:
            async with session.post(
                f"{target}/fault", json=body, headers=headers, timeout=timeout
            ) as response:
                text = await response.text(errors="replace")
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return f"{target}: could not post /fault: {type(exc).__name__}: {exc}"
        if status == 200:
            return None
        reason = _REFUSALS.get(status, f"it answered {status}")
        return f"{target}: {reason}: {text[:300]}"

    refusals = [r for r in await asyncio.gather(*(post(t) for t in plan.targets)) if r]
    if refusals:
        raise TriggerRefused("the trigger was refused by\n  " + "\n  ".join(refusals))


def _answer_fields(body: bytes) -> tuple[str | None, float | None]:
    """The ``node`` id and ``serviceMillis`` of an answer, when it is a JSON object with them."""
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(answer, dict):
        return None, None
    node = answer.get("node")
    service = answer.get("serviceMillis")
    return (
        None if node is None else str(node),
        float(service) if isinstance(service, int | float) else None,
    )


class _Storm:
    """One storm run's state: the arrivals' tasks, the retrier, the counters."""

    def __init__(
        self,
        plan: LoadPlan,
        session: aiohttp.ClientSession,
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        assert plan.rate is not None and plan.scheduled is not None
        self.plan = plan
        self.session = session
        self.clock = clock
        self.rate = plan.rate
        self.scheduled = plan.scheduled
        self.targets = plan.targets
        self.urls = tuple(target + plan.path for target in plan.targets)
        self.timeout = aiohttp.ClientTimeout(total=plan.timeout_s)
        self.retrier = Retrier(storm_policy(plan), clock, rng, retry_after_cap_s=RETRY_AFTER_CAP_S)
        self.stats = RunStats()
        self.timeline = Timeline()
        self.cap = in_flight_cap(plan)
        self.live: set[asyncio.Task[None]] = set()
        # Tasks created and not yet running -> their target slot: cancelled before they start
        # (the deadline), their coroutine never runs, so their end is counted for them.
        self.unstarted: dict[asyncio.Task[None], int] = {}
        self.start = 0.0
        self.next_index = 0
        self.ended = 0
        self.attempts = 0
        self.peak = 0
        self.attempt_errors: dict[str, int] = {}
        # Per target: whether it ever answered, and failed connects since its last answer.
        self.answered = [False] * len(plan.targets)
        self.failed_connects = [0] * len(plan.targets)

    # --- arrivals ----------------------------------------------------------------------------

    async def dispatch(self) -> None:
        """Start each request at its due time, or refuse it when the cap is reached."""
        perf_counter = self.clock
        while self.next_index < self.scheduled:
            index = self.next_index
            due = schedule.intended_start(self.start, index, self.rate)
            delay = due - perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self.next_index = index + 1
            self.timeline.offered(due - self.start)
            if len(self.live) >= self.cap:
                self._end(index % len(self.targets), "refused")
                continue
            task = asyncio.create_task(self.request(index, due))
            self.live.add(task)
            self.unstarted[task] = index % len(self.targets)
            task.add_done_callback(self._done)
            if len(self.live) > self.peak:
                self.peak = len(self.live)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.live.discard(task)
        slot = self.unstarted.pop(task, None)
        if slot is not None:
            self._end(slot, "gave_up")

    def count_unsent(self) -> None:
        """The arrivals the deadline left unoffered (only a short ``deadline_s`` does that)."""
        for index in range(self.next_index, self.scheduled):
            self.stats.record_error(self.targets[index % len(self.targets)], "not_sent")

    # --- one request -------------------------------------------------------------------------

    async def request(self, index: int, due: float) -> None:
        """Attempts of request ``index`` until one succeeds or the retrier gives up."""
        task = asyncio.current_task()
        if task is not None:
            self.unstarted.pop(task, None)
        retrier = self.retrier
        slot = index % len(self.targets)
        attempt = 0
        sending = False
        try:
            while True:
                if not retrier.admit():
                    self._end(slot, "breaker_open")
                    return
                attempt += 1
                self.attempts += 1
                sent = self.clock()
                self.timeline.attempt(sent - self.start)
                sending = True
                outcome, body, retry_after_s = await self.attempt(slot)
                sending = False
                finished = self.clock()
                if outcome == "ok":
                    retrier.decide(attempt, "ok")
                    self._succeed(slot, body, due, sent, finished)
                    return
                self._attempt_failed(finished, outcome)
                delay = retrier.decide(attempt, outcome, retry_after_s)
                if delay is None:
                    self._end(slot, "gave_up")
                    return
                if delay > 0:
                    await asyncio.sleep(delay)
                slot = (slot + 1) % len(self.targets)
        except asyncio.CancelledError:
            # The run's deadline: the attempt in flight timed out, and the request gave up.
            if sending:
                self._attempt_failed(self.clock(), "timeout")
            self._end(slot, "gave_up")
            raise

    async def attempt(self, slot: int) -> tuple[Outcome, bytes, float | None]:
        """One attempt: (what it came to, the body of a 2xx, the Retry-After when present)."""
        try:
            async with self.session.get(self.urls[slot], timeout=self.timeout) as response:
                body = await response.read()
                status = response.status
                hint = response.headers.get("Retry-After")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            if isinstance(exc, aiohttp.ClientConnectorError):
                self.failed_connects[slot] += 1
            return ("timeout" if classify_error(exc) == "timeout" else "error"), b"", None
        self.answered[slot] = True
        self.failed_connects[slot] = 0
        if 200 <= status < 300:
            return "ok", body, None
        outcome: Outcome = "shed" if status == 503 else "limited" if status == 429 else "error"
        retry_after_s = None
        if hint is not None:
            retry_after_s = parse_retry_after(hint, now=time.time, cap_s=RETRY_AFTER_CAP_S)
        return outcome, b"", retry_after_s

    def _succeed(self, slot: int, body: bytes, due: float, sent: float, finished: float) -> None:
        target = self.targets[slot]
        node, service_ms = _answer_fields(body)
        latency_us = schedule.corrected_latency_us(due, finished)
        self.stats.record_success(
            target,
            target if node is None else node,
            latency_us,
            service_us=None if service_ms is None else int(service_ms * 1000),
            uncorrected_us=int((finished - sent) * 1_000_000),
        )
        self.timeline.success(finished - self.start, latency_us)
        self.ended += 1

    def _attempt_failed(self, t: float, outcome: str) -> None:
        self.attempt_errors[outcome] = self.attempt_errors.get(outcome, 0) + 1
        self.timeline.error(t - self.start, outcome)

    def _end(self, slot: int, kind: str) -> None:
        self.stats.record_error(self.targets[slot], kind)
        self.timeline.error(self.clock() - self.start, kind)
        self.ended += 1

    # --- the run ---------------------------------------------------------------------------

    async def tick(self, on_progress: ProgressCallback | None) -> None:
        """Note the breaker's state and report progress, a few times a second."""
        breaker = self.retrier.breaker
        while True:
            now = self.clock() - self.start
            if breaker is not None:
                self.timeline.breaker(now, breaker.state.value)
            if on_progress is not None:
                on_progress(self.ended, now)
            await asyncio.sleep(TICK_S)

    async def finish(self, dispatcher: asyncio.Task[None]) -> None:
        await dispatcher
        while self.live:
            await asyncio.wait(set(self.live))

    def record_health(self) -> None:
        for slot, failed in enumerate(self.failed_connects):
            if failed:
                down = DownTarget(went_away=self.answered[slot], failed_connects=failed)
                self.stats.record_target_down(self.targets[slot], down)


async def run_storm(
    plan: LoadPlan,
    session: aiohttp.ClientSession,
    *,
    on_progress: ProgressCallback | None = None,
    clock: Callable[[], float] = time.perf_counter,
    rng: random.Random | None = None,
) -> StormRun:
    """Post the plan's trigger, then run its arrivals over ``session`` (see the module)."""
    if not plan.storm or plan.rate is None or plan.scheduled is None:
        raise ValueError("a storm run needs a plan with a rate and a retry policy or trigger")
    await post_trigger(plan, session)
    state = _Storm(plan, session, clock, rng or random.Random())
    started_at = datetime.now(UTC)
    state.start = clock()
    dispatcher = asyncio.create_task(state.dispatch())
    ticker = asyncio.create_task(state.tick(on_progress))
    cut_short = False
    try:
        await asyncio.wait_for(state.finish(dispatcher), timeout=storm_deadline_s(plan))
    except TimeoutError:
        cut_short = True
    finally:
        tasks = [dispatcher, ticker, *state.live]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finished = clock()
    breaker = state.retrier.breaker
    if breaker is not None:
        state.timeline.breaker(finished - state.start, breaker.state.value)
    state.count_unsent()
    state.record_health()
    if on_progress is not None:
        on_progress(state.ended, finished - state.start)
    budget = state.retrier.budget
    return StormRun(
        result=RunResult(
            stats=state.stats,
            started_at=started_at,
            finished_at=datetime.now(UTC),
            duration_s=finished - state.start,
            cut_short=cut_short,
        ),
        timeline=state.timeline,
        policy=state.retrier.policy,
        trigger=plan.trigger,
        offered=state.next_index,
        attempts=state.attempts,
        retries=state.retrier.retries,
        attempt_errors=dict(sorted(state.attempt_errors.items())),
        in_flight_cap=state.cap,
        peak_in_flight=state.peak,
        breaker_transitions=None if breaker is None else breaker.transitions,
        breaker_rejected=None if breaker is None else breaker.rejected,
        budget_denied=None if budget is None else budget.denied,
    )


def run_storm_sync(plan: LoadPlan, on_progress: ProgressCallback | None = None) -> StormRun:
    """:func:`run_storm` in a new event loop over a session sized to the in-flight cap."""

    async def run() -> StormRun:
        async with open_session(
            in_flight_cap(plan), plan.timeout_s, fresh_connections=plan.fresh_connections
        ) as session:
            return await run_storm(plan, session, on_progress=on_progress)

    return run_sync(run)
