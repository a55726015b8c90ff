"""What a load run does: targets, how much load, when it stops and how it is judged.

A :class:`LoadPlan` is the load generator's settings object, built once from flags
(:mod:`loadgen.cli`) or by other components (the local runtime, the operator's builders),
and validated on construction so every user gets the same errors.
"""

from __future__ import annotations

import math
import urllib.parse
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from loadgen import schedule
from loadgen.balancing import DEFAULT_STRATEGY, StrategyError, StrategyName, parse_strategy
from loadgen.resilience import RetryPolicy

__all__ = [
    "DEFAULT_PATH",
    "DEFAULT_REQUESTS",
    "DEFAULT_TARGETS",
    "FAULT_STATUSES",
    "LoadPlan",
    "PlanError",
    "Trigger",
    "TriggerMode",
]

# The workshop's three nodes (module 1, step 1).
DEFAULT_TARGETS: tuple[str, ...] = (
    "http://127.0.0.1:5001",
    "http://127.0.0.1:5002",
    "http://127.0.0.1:5003",
)
DEFAULT_PATH = "/work"
DEFAULT_REQUESTS = 50


class PlanError(ValueError):
    """A plan field has a value the load generator cannot run; ``field`` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


TriggerMode = Literal["slow", "fail"]
# What the node's POST /fault accepts (node_service.fault): checked here so a bad trigger is a
# usage error before the run, not a 422 from every node at its start.
FAULT_STATUSES = (500, 503)
_FAULT_SECONDS_MAX = 3600.0
_EXTRA_MILLIS_MAX = 60_000


@dataclass(frozen=True)
class Trigger:
    """The retry storm's trigger: a fault window on every target, ``start_s`` seconds into the
    run for ``duration_s`` seconds; ``slow`` adds ``extra_millis`` to each /work, ``fail``
    answers it ``status`` (503 when None)."""

    start_s: float
    duration_s: float
    mode: TriggerMode = "slow"
    extra_millis: int | None = None
    status: int | None = None

    def __post_init__(self) -> None:
        if not _is_number(self.start_s) or not 0 <= self.start_s <= _FAULT_SECONDS_MAX:
            raise PlanError("trigger.start_s", f"must be 0..3600 seconds, got {self.start_s!r}")
        if not _is_number(self.duration_s) or not 0 < self.duration_s <= _FAULT_SECONDS_MAX:
            raise PlanError(
                "trigger.duration_s", f"must be a positive number of seconds up to 3600, "
                f"got {self.duration_s!r}",
            )  # fmt: skip
        if self.mode not in ("slow", "fail"):
            raise PlanError("trigger.mode", f"must be slow or fail, got {self.mode!r}")
        if self.mode == "slow":
            extra = self.extra_millis
            if extra is None:
                raise PlanError("trigger.extra_millis", "mode slow needs the wait it adds (ms)")
            if isinstance(extra, bool) or not isinstance(extra, int):
                raise PlanError("trigger.extra_millis", f"must be an integer, got {extra!r}")
            if not 1 <= extra <= _EXTRA_MILLIS_MAX:
                raise PlanError("trigger.extra_millis", f"must be 1..60000 ms, got {extra}")
            if self.status is not None:
                raise PlanError("trigger.status", "is for mode fail")
        else:
            if self.extra_millis is not None:
                raise PlanError("trigger.extra_millis", "is for mode slow")
            if self.status is not None and self.status not in FAULT_STATUSES:
                raise PlanError("trigger.status", f"must be 500 or 503, got {self.status!r}")

    @property
    def end_s(self) -> float:
        """Seconds into the run at which the window ends (exclusive)."""
        return self.start_s + self.duration_s

    def fault_body(self) -> dict[str, Any]:
        """The body of the node's ``POST /fault`` for this window, posted at the run's start."""
        body: dict[str, Any] = {
            "startsInSeconds": self.start_s,
            "durationSeconds": self.duration_s,
            "mode": self.mode,
        }
        if self.mode == "slow":
            body["extraMillis"] = self.extra_millis
        elif self.status is not None:
            body["status"] = self.status
        return body

    def to_report(self) -> dict[str, Any]:
        """``lastRun.trigger``: the window in seconds from the run's start, and what it did."""
        window: dict[str, Any] = {
            "startSeconds": _plain(self.start_s),
            "endSeconds": _plain(self.end_s),
            "durationSeconds": _plain(self.duration_s),
            "mode": self.mode,
        }
        if self.mode == "slow":
            window["extraMillis"] = self.extra_millis
        else:
            window["status"] = self.status or 503
        return window


def _plain(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(float(value), 3)


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


@dataclass(frozen=True)
class LoadPlan:
    """One load run (or one sweep of runs) against a set of targets.

    ``requests`` and ``duration_s`` are mutually exclusive; with neither, ``requests`` is 50.
    With ``rate`` set the run is an open loop and ``concurrency`` bounds the requests in flight.
    """

    targets: tuple[str, ...] = DEFAULT_TARGETS
    path: str = DEFAULT_PATH
    concurrency: int = 5
    requests: int | None = None
    duration_s: float | None = None
    rate: float | None = None
    timeout_s: float = 30.0
    processes: int = 1
    slo_p99_ms: float = 5000.0
    sweep: tuple[int, ...] | None = None
    calibrate: int = 0
    generation: int | None = None
    expand_dns: bool = False
    # A new connection per request, as the workshop's client makes: a node's uvicorn workers
    # share one listening socket, so each request gets its own chance to meet an idle worker
    # instead of riding a keep-alive connection that one busy worker accepted for good.
    fresh_connections: bool = False
    # Overall bound on one run (one sweep level); None derives it from the stop condition.
    deadline_s: float | None = field(default=None)
    # Phase 6, fast and slow nodes: which target each request goes to (loadgen.balancing).
    # round-robin keeps the engine's plain ``index % targets`` path.
    balancing: StrategyName = DEFAULT_STRATEGY
    # Phase 5, the retry storm: how a request is retried (None: never), the fault window
    # posted to every target at the run's start, and the file holding the nodes' fault token.
    # A plan that retries or has a trigger runs through loadgen.storm.
    retry: RetryPolicy | None = None
    trigger: Trigger | None = None
    fault_token_file: str | None = None

    def __post_init__(self) -> None:
        # Tuples keep the plan hashable and frozen even when callers pass lists.
        object.__setattr__(self, "targets", tuple(str(t).rstrip("/") for t in self.targets))
        if self.sweep is not None:
            object.__setattr__(self, "sweep", tuple(self.sweep))
        if self.requests is None and self.duration_s is None:
            object.__setattr__(self, "requests", DEFAULT_REQUESTS)
        _validate(self)

    @property
    def mode(self) -> str:
        """``"open"`` with a fixed rate, else ``"closed"``."""
        return "open" if self.rate is not None else "closed"

    @property
    def storm(self) -> bool:
        """Whether the run goes through the storm path (a retry policy that retries, or a
        trigger): every arrival its own task, retried as the policy says."""
        return self.trigger is not None or (self.retry is not None and self.retry.retries)

    @property
    def scheduled(self) -> int | None:
        """Requests the run is to send: the count, or the open loop's schedule over the
        duration; None for a closed loop that runs for a duration."""
        if self.requests is not None:
            return self.requests
        if self.rate is not None and self.duration_s is not None:
            return schedule.scheduled_requests(self.rate, self.duration_s)
        return None

    def with_concurrency(self, concurrency: int) -> LoadPlan:
        """The same plan at another concurrency (one sweep level); processes never exceed it."""
        return replace(
            self, concurrency=concurrency, processes=min(self.processes, concurrency), sweep=None
        )

    def run_deadline_s(self) -> float:
        """Seconds after which one run is cut short whatever happens (the overall bound).

        ``deadline_s`` when set, else the longest the stop condition allows plus one
        ``timeout_s`` (time for the last request sent to answer): the duration, the open
        loop's last intended start (``requests / rate``), or a closed loop's every round
        timing out (``ceil(requests / concurrency) * timeout_s``, at most a day).
        """
        if self.deadline_s is not None:
            return self.deadline_s
        if self.duration_s is not None:
            return self.duration_s + self.timeout_s
        assert self.requests is not None
        if self.rate is not None:
            return self.requests / self.rate + self.timeout_s
        rounds = math.ceil(self.requests / self.concurrency)
        return min(rounds * self.timeout_s, 24 * 3600.0) + self.timeout_s


def _validate(plan: LoadPlan) -> None:
    if not plan.targets:
        raise PlanError("targets", "at least one target is needed")
    for target in plan.targets:
        _check_url(target)
    if not plan.path.startswith("/"):
        raise PlanError("path", f"must start with '/', got {plan.path!r}")
    _positive_int("concurrency", plan.concurrency)
    _positive_int("processes", plan.processes)
    if plan.requests is not None and plan.duration_s is not None:
        raise PlanError("duration_s", "set requests or a duration, not both")
    if plan.requests is not None:
        _positive_int("requests", plan.requests)
    for name, value in (
        ("duration_s", plan.duration_s),
        ("rate", plan.rate),
        ("deadline_s", plan.deadline_s),
    ):
        if value is not None:
            _positive_number(name, value)
    _positive_number("timeout_s", plan.timeout_s)
    _positive_number("slo_p99_ms", plan.slo_p99_ms)
    if plan.sweep is not None:
        if not plan.sweep:
            raise PlanError("sweep", "needs at least one concurrency level")
        for level in plan.sweep:
            _positive_int("sweep", level)
        if plan.rate is not None:
            raise PlanError("sweep", "varies the closed loop's concurrency; not with a rate")
    # A sweep runs each level with min(processes, level) processes.
    most_clients = max(plan.sweep) if plan.sweep else plan.concurrency
    if plan.processes > most_clients:
        raise PlanError(
            "processes",
            f"{plan.processes} processes need at least as many concurrent clients "
            f"(concurrency is {most_clients})",
        )
    if plan.requests is not None and plan.processes > plan.requests:
        raise PlanError("processes", f"more processes ({plan.processes}) than requests")
    if isinstance(plan.calibrate, bool) or not isinstance(plan.calibrate, int):
        raise PlanError("calibrate", f"must be an integer, got {plan.calibrate!r}")
    if plan.calibrate < 0:
        raise PlanError("calibrate", f"must be zero or positive, got {plan.calibrate}")
    _validate_storm(plan)
    _validate_balancing(plan)
    if plan.generation is not None and (
        isinstance(plan.generation, bool) or not isinstance(plan.generation, int)
    ):
        raise PlanError("generation", f"must be an integer, got {plan.generation!r}")


def _validate_storm(plan: LoadPlan) -> None:
    if plan.retry is not None and not isinstance(plan.retry, RetryPolicy):
        raise PlanError("retry", f"must be a RetryPolicy, got {plan.retry!r}")
    if plan.trigger is not None and not isinstance(plan.trigger, Trigger):
        raise PlanError("trigger", f"must be a Trigger, got {plan.trigger!r}")
    if plan.fault_token_file is not None and (
        not isinstance(plan.fault_token_file, str) or not plan.fault_token_file
    ):
        raise PlanError("fault_token_file", f"must be a file path, got {plan.fault_token_file!r}")
    if plan.storm and plan.rate is None:
        what = "trigger" if plan.trigger is not None else "retry"
        raise PlanError(what, "the storm run is an open loop: it needs a rate")
    trigger = plan.trigger
    if trigger is None:
        return
    if plan.duration_s is None:
        raise PlanError("trigger", "needs a run of a duration, not a request count")
    if trigger.end_s >= plan.duration_s:
        raise PlanError(
            "trigger.duration_s",
            f"the window ({_plain(trigger.start_s)} s + {_plain(trigger.duration_s)} s) must end "
            f"before the run does ({_plain(plan.duration_s)} s), to show what comes after it",
        )
    if plan.fault_token_file is None:
        raise PlanError("fault_token_file", "a trigger posts /fault, which needs the nodes' token")


def _validate_balancing(plan: LoadPlan) -> None:
    try:
        parse_strategy(plan.balancing, field="balancing")
    except StrategyError as exc:
        raise PlanError("balancing", exc.message) from None
    if plan.storm and plan.balancing != DEFAULT_STRATEGY:
        # The storm path sends (and retries on the next target) round-robin; a report naming
        # another strategy would describe a run that did not happen.
        raise PlanError("balancing", "a storm run (retries or a trigger) balances round-robin")


def _check_url(target: str) -> None:
    try:
        parts = urllib.parse.urlsplit(target)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise PlanError("targets", f"bad URL {target!r}: {exc}") from None
    if parts.scheme not in {"http", "https"}:
        raise PlanError("targets", f"{target!r}: scheme must be http or https")
    if not parts.hostname:
        raise PlanError("targets", f"{target!r}: no host")
    if parts.path not in {"", "/"} or parts.query or parts.fragment:
        raise PlanError("targets", f"{target!r}: give the base URL only (the path is --path)")
    del port


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise PlanError(name, f"must be a positive integer, got {value!r}")


def _positive_number(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise PlanError(name, f"must be a positive number, got {value!r}")
