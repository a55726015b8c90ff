"""The hot path: one process's share of a run, over a session the caller provides.

``run_plan(plan, session)`` is a function of (plan, transport) -> result, so tests can hand it
any target. Per request it costs two clock reads, two regex searches of the answer, one or two
histogram records and a look at its target's health; nothing else (no per-request tasks,
progress redraws or dictionaries). Failed connects take a slower path (``loadgen.health``).

Which target a request goes to is the plan's ``balancing`` (:mod:`loadgen.balancing`).
Round-robin is request ``index mod len(targets)``, with no balancer at all. Any other
strategy has one balancer per shard (per process: it sees only its own requests), seeded by
the shard's index so a run's picks replay: it picks the target when the request is sent and
is told when it started and when it finished (answered, failed, timed out or cancelled), so
its outstanding counts always come back to zero. A picked target that is backing off after
failed connects gets its probe when one is due; otherwise the request goes to the least busy
target that is up, so a dead node, which never holds a request, does not draw them all.

With a request count or an open loop's schedule, every request index is counted exactly once:
answered, failed (``connect``, ``down`` when its target was backing off, ``timeout``, ...), or
``not_sent`` when the run ended first. A closed loop by duration counts what it sent.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp

from loadgen import schedule
from loadgen.accumulators import NodeStats, RunResult, RunStats
from loadgen.balancing import DEFAULT_STRATEGY, STRATEGIES, Balancer
from loadgen.health import TargetHealth
from loadgen.plan import LoadPlan

__all__ = ["ProgressCallback", "classify_error", "run_plan"]

# Called with (requests done, seconds elapsed) from a timer, never per request.
ProgressCallback = Callable[[int, float], None]

PROGRESS_INTERVAL_S = 0.25


def classify_error(exc: BaseException) -> str:
    """The report's error kind for an exception raised by a request."""
    # aiohttp's timeouts subclass both TimeoutError and ClientConnectionError: check first.
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectionError):
        return "connect"  # refused, reset, or dropped mid-answer (a node that died)
    return "other"


# The answers' fields the report needs, read without a full JSON parse (a regex search is
# about a tenth of json.loads on a node's answer). Node ids are plain strings or integers.
_NODE_FIELD = re.compile(rb'"node"\s*:\s*(?:"([^"\\]*)"|(-?[0-9]+))')
_SERVICE_FIELD = re.compile(rb'"serviceMillis"\s*:\s*([0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)')


class _RunEnded(Exception):
    """A closed loop's duration ended while a request waited for its target to come back."""


class _Shard:
    """The state of one process's share of a run: its clients share one index counter."""

    def __init__(
        self,
        plan: LoadPlan,
        session: aiohttp.ClientSession,
        shard: tuple[int, int],
        balancer: Balancer | None = None,
    ):
        self.session = session
        self.targets = plan.targets
        self.urls = tuple(target + plan.path for target in plan.targets)
        self.timeout = aiohttp.ClientTimeout(total=plan.timeout_s)
        self.stats = RunStats()
        self.rate = plan.rate
        self.next_index, self.stride = shard
        scheduled = plan.scheduled
        self.limit: int | float = math.inf if scheduled is None else scheduled
        self.health = TargetHealth(len(plan.targets))
        # None: round-robin by request index, with no bookkeeping per request.
        if balancer is None and plan.balancing != DEFAULT_STRATEGY:
            balancer = STRATEGIES[plan.balancing](
                len(plan.targets), random.Random(shard[0]), time.perf_counter
            )
        self.balancer = balancer
        # Only /work answers carry a service time; other paths skip the search.
        self.wants_service = plan.path.startswith("/work")
        self.start = 0.0
        self.stop_at = math.inf
        # Per target: the raw node id in an answer -> that node's stats (no per-request
        # decoding, dictionary building or set updates).
        self.node_cache: list[dict[bytes | None, NodeStats]] = [{} for _ in plan.targets]
        self.http_kinds: dict[int, str] = {}

    async def closed_client(self) -> None:
        """Send, wait for the answer, send the next: until the count or the duration is done."""
        perf_counter = time.perf_counter
        send = self.send
        while True:
            index = self.next_index
            if index >= self.limit or perf_counter() >= self.stop_at:
                return
            self.next_index = index + self.stride
            try:
                await send(index, 0.0)
            except _RunEnded:
                return

    async def open_client(self) -> None:
        """Take the next scheduled request, wait for its intended start, send it."""
        assert self.rate is not None
        perf_counter = time.perf_counter
        send = self.send
        while True:
            index = self.next_index
            if index >= self.limit:
                return
            self.next_index = index + self.stride
            intended = schedule.intended_start(self.start, index, self.rate)
            delay = intended - perf_counter()
            if delay > 0:
                try:
                    await asyncio.sleep(delay)
                except asyncio.CancelledError:
                    self.stats.record_error(self.targets[index % len(self.targets)], "not_sent")
                    raise
            await send(index, intended)

    async def send(self, index: int, intended: float) -> None:
        """One request, recorded in ``self.stats``: to target ``index mod len(targets)``, or
        to the one the balancer picks.

        ``intended`` is the open loop's scheduled start (0.0 in a closed loop).
        """
        balancer = self.balancer
        if balancer is None:
            slot = index % len(self.urls)
            if self.health.retry_at[slot] and not await self._may_send(slot):
                return
        else:
            slot = balancer.pick()
            if self.health.retry_at[slot]:
                slot = await self._route_around(slot)
                if slot < 0:
                    return
            balancer.started(slot)
        sent = time.perf_counter()
        status = 0
        try:
            async with self.session.get(self.urls[slot], timeout=self.timeout) as response:
                body = await response.read()
                status = response.status
        except asyncio.CancelledError:
            # The overall deadline cut this request off: it never answered in time.
            self.stats.record_error(self.targets[slot], "timeout")
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            if isinstance(exc, aiohttp.ClientConnectorError):
                self.health.connect_failed(slot, time.perf_counter())
            self.stats.record_error(self.targets[slot], classify_error(exc))
            return
        finally:
            # Whatever ended the request (an answer, an error, the deadline's cancellation).
            if balancer is not None:
                balancer.finished(slot, time.perf_counter() - sent, 200 <= status < 300)
        finished = time.perf_counter()
        if self.health.retry_at[slot]:
            self.health.answered_by(slot)
        if not 200 <= status < 300:
            self.health.answered[slot] = True
            kind = self.http_kinds.get(status)
            if kind is None:
                kind = self.http_kinds[status] = f"http_{status}"
            self.stats.record_error(self.targets[slot], kind)
            return
        match = _NODE_FIELD.search(body)
        raw_node = match[match.lastindex or 1] if match is not None else None
        node = self.node_cache[slot].get(raw_node)
        if node is None:
            node = self._register(slot, raw_node)
        if intended:
            node.record(schedule.corrected_latency_us(intended, finished))
            self.stats.record_uncorrected(int((finished - sent) * 1_000_000))
        else:
            node.record(int((finished - sent) * 1_000_000))
        if self.wants_service and (service := _SERVICE_FIELD.search(body)) is not None:
            self.stats.record_service(int(float(service[1]) * 1000))

    async def _route_around(self, slot: int) -> int:
        """The target a balanced request goes to when its pick, ``slot``, is backing off.

        ``slot`` itself when its probe is due (claimed here); else the up target with the
        fewest outstanding requests, scanning from the one after ``slot``; with none up,
        :meth:`_may_send` decides for ``slot``: -1 when the request is not sent.
        """
        health = self.health
        if not health.claim(slot, time.perf_counter()):
            return slot
        assert self.balancer is not None
        outstanding = self.balancer.outstanding
        retry_at = health.retry_at
        n = len(retry_at)
        best = -1
        for offset in range(1, n):
            index = slot + offset
            if index >= n:
                index -= n
            if not retry_at[index] and (best < 0 or outstanding[index] < outstanding[best]):
                best = index
        if best >= 0:
            return best
        return slot if await self._may_send(slot) else -1

    async def _may_send(self, slot: int) -> bool:
        """Whether a request for ``slot``, a target whose connects failed, may go now.

        Once its delay has passed, one request probes it. Before that a request for it fails
        at once as ``down`` (no connect is tried), except in a closed loop by duration with
        every target down: nothing bounds that loop but the clock, so it waits for the probe
        instead of spinning, until the duration ends (:class:`_RunEnded`) or the deadline
        cancels it (``not_sent``). A request count or an open loop's schedule bounds the rest.
        """
        perf_counter = time.perf_counter
        target = self.targets[slot]
        while True:
            now = perf_counter()
            retry_at = self.health.claim(slot, now)
            if not retry_at:
                return True
            if self.stop_at == math.inf or self.health.any_up():
                self.stats.record_error(target, "down")
                return False
            if now >= self.stop_at:
                raise _RunEnded
            try:
                await asyncio.sleep(min(retry_at, self.stop_at) - now)
            except asyncio.CancelledError:
                self.stats.record_error(target, "not_sent")
                raise

    def count_unsent(self) -> None:
        """Count the indices of the schedule (or request count) no client took as ``not_sent``."""
        if self.limit == math.inf or self.next_index >= self.limit:
            return
        counts = schedule.count_by_slot(
            self.next_index, int(self.limit), self.stride, len(self.targets)
        )
        for slot, count in enumerate(counts):
            if count:
                self.stats.record_error(self.targets[slot], "not_sent", count)

    def record_health(self) -> None:
        """Note in the stats every target whose last connect failed."""
        for slot, down in self.health.down().items():
            self.stats.record_target_down(self.targets[slot], down)

    def _register(self, slot: int, raw_node: bytes | None) -> NodeStats:
        target = self.targets[slot]
        self.health.answered[slot] = True
        # An answer without a node id is counted under the target it came from.
        name = target if raw_node is None else raw_node.decode("utf-8", "replace")
        node = self.node_cache[slot][raw_node] = self.stats.node(name, target)
        return node


async def run_plan(
    plan: LoadPlan,
    session: aiohttp.ClientSession,
    *,
    shard: tuple[int, int] = (0, 1),
    on_progress: ProgressCallback | None = None,
    balancer: Balancer | None = None,
) -> RunResult:
    """Run ``plan`` (one level: ``plan.sweep`` is ignored) over ``session``; return its stats.

    ``shard=(i, n)`` sends only the global request indices ``i, i+n, ...`` (process ``i`` of
    ``n``); ``plan.concurrency`` is this shard's own number of clients. The run ends when the
    count or the duration is done, or at the plan's overall deadline, whichever comes first;
    requests cut off by the deadline count as timeouts, and the requests it left unsent as
    ``not_sent``. ``balancer`` replaces the one ``plan.balancing`` names (over as many targets),
    so a caller can watch its counts.
    """
    index, shards = shard
    if not 0 <= index < shards:
        raise ValueError(f"bad shard {shard!r}")
    state = _Shard(plan, session, shard, balancer)
    started_at = datetime.now(UTC)
    state.start = time.perf_counter()
    if plan.duration_s is not None and plan.rate is None:
        state.stop_at = state.start + plan.duration_s
    client = state.open_client if plan.rate is not None else state.closed_client
    clients = [asyncio.create_task(client()) for _ in range(plan.concurrency)]
    ticker = None
    if on_progress is not None:
        ticker = asyncio.create_task(_tick(state, on_progress))
    try:
        done, pending = await asyncio.wait(clients, timeout=plan.run_deadline_s())
    finally:
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        if ticker is not None:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
    for task in done:
        if not task.cancelled() and (exc := task.exception()) is not None:
            raise exc
    finished = time.perf_counter()
    state.count_unsent()
    state.record_health()
    if on_progress is not None:
        on_progress(state.stats.requests, finished - state.start)
    return RunResult(
        stats=state.stats,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        duration_s=finished - state.start,
        cut_short=bool(pending),
    )


async def _tick(state: _Shard, on_progress: ProgressCallback) -> None:
    while True:
        on_progress(state.stats.requests, time.perf_counter() - state.start)
        await asyncio.sleep(PROGRESS_INTERVAL_S)
