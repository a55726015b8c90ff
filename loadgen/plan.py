"""What a load run does: targets, how much load, when it stops and how it is judged.

A :class:`LoadPlan` is the load generator's settings object, built once from flags
(:mod:`loadgen.cli`) or by other components (the local runtime, the operator's builders),
and validated on construction so every user gets the same errors.
"""

from __future__ import annotations

import math
import urllib.parse
from dataclasses import dataclass, field, replace

from loadgen import schedule

__all__ = [
    "DEFAULT_PATH",
    "DEFAULT_REQUESTS",
    "DEFAULT_TARGETS",
    "LoadPlan",
    "PlanError",
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
    if plan.generation is not None and (
        isinstance(plan.generation, bool) or not isinstance(plan.generation, int)
    ):
        raise PlanError("generation", f"must be an integer, got {plan.generation!r}")


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
