"""A circuit breaker: stop sending to a target that keeps failing, then probe it.

Closed, every call goes and its outcome is kept in a window of the last ``window``
outcomes. Once the window holds at least ``min_calls`` outcomes and the failed share of
them reaches ``failure_ratio``, the breaker opens: calls are rejected at once (and
counted) for ``open_seconds``. Then it is half-open: up to ``probes`` trial calls go;
when all of them succeed it closes with an empty window, and the first failure opens it
again for another ``open_seconds``.

A failure ratio over recent calls, rather than a run of consecutive failures, is the
trigger because an overloaded node fails only part of its requests (it sheds some and
answers the rest): consecutive failures would rarely line up, and the breaker would stay
closed through exactly the overload it exists for.

The clock is injected (monotonic seconds); the open -> half-open step happens when the
state is next looked at, so nothing needs a timer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import StrEnum

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    """Where a circuit breaker is: calls go, are rejected, or go as probes."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Closed / open / half-open over the last ``window`` outcomes (``min_calls`` if None).

    Before each call, :meth:`allow`; after it, :meth:`record` with whether it succeeded.
    ``transitions`` counts state changes and ``rejected`` the calls :meth:`allow` refused.
    """

    __slots__ = (
        "_clock",
        "_failures",
        "_next",
        "_opened_at",
        "_outcomes",
        "_probe_successes",
        "_probes_admitted",
        "_recorded",
        "_state",
        "failure_ratio",
        "min_calls",
        "open_seconds",
        "probes",
        "rejected",
        "transitions",
        "window",
    )

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        failure_ratio: float,
        min_calls: int,
        open_seconds: float,
        probes: int,
        window: int | None = None,
    ) -> None:
        if (
            isinstance(failure_ratio, bool)
            or not isinstance(failure_ratio, int | float)
            or not 0 < failure_ratio <= 1
        ):
            raise ValueError(f"failure_ratio must be in (0, 1], got {failure_ratio!r}")
        _check_count("min_calls", min_calls)
        if (
            isinstance(open_seconds, bool)
            or not isinstance(open_seconds, int | float)
            or not math.isfinite(open_seconds)
            or open_seconds <= 0
        ):
            raise ValueError(f"open_seconds must be a positive number, got {open_seconds!r}")
        _check_count("probes", probes)
        if window is None:
            window = min_calls
        _check_count("window", window)
        if window < min_calls:
            raise ValueError(f"window must be >= min_calls ({min_calls}), got {window}")
        self.failure_ratio = float(failure_ratio)
        self.min_calls = min_calls
        self.open_seconds = float(open_seconds)
        self.probes = probes
        self.window = window
        self.transitions = 0
        self.rejected = 0
        self._clock = clock
        self._state = BreakerState.CLOSED
        # A ring of the last ``window`` outcomes (True: failed) and the failures among them.
        self._outcomes = [False] * window
        self._next = 0
        self._recorded = 0
        self._failures = 0
        self._opened_at = 0.0
        self._probes_admitted = 0
        self._probe_successes = 0

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose ``open_seconds`` have passed is half-open)."""
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.open_seconds
        ):
            self._move_to(BreakerState.HALF_OPEN)
            self._probes_admitted = 0
            self._probe_successes = 0
        return self._state

    def allow(self) -> bool:
        """Whether a call may go now; a refusal is counted in ``rejected``."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and self._probes_admitted < self.probes:
            self._probes_admitted += 1
            return True
        self.rejected += 1
        return False

    def record(self, success: bool) -> None:
        """Note the outcome of a call that :meth:`allow` let go.

        Outcomes that arrive while open belong to calls let go before it opened and are
        dropped; half-open, an outcome counts as a probe's (the breaker cannot tell a probe
        from a call still in flight from before it opened, and either says how the target
        is doing now).
        """
        state = self.state
        if state is BreakerState.CLOSED:
            self._remember(failed=not success)
            if (
                self._recorded >= self.min_calls
                and self._failures >= self.failure_ratio * self._recorded
            ):
                self._open()
        elif state is BreakerState.HALF_OPEN:
            if not success:
                self._open()
                return
            self._probe_successes += 1
            if self._probe_successes >= self.probes:
                self._forget()
                self._move_to(BreakerState.CLOSED)

    def _remember(self, *, failed: bool) -> None:
        if self._recorded == self.window:
            self._failures -= self._outcomes[self._next]
        else:
            self._recorded += 1
        self._outcomes[self._next] = failed
        self._failures += failed
        self._next = (self._next + 1) % self.window

    def _forget(self) -> None:
        self._outcomes = [False] * self.window
        self._next = 0
        self._recorded = 0
        self._failures = 0

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._move_to(BreakerState.OPEN)

    def _move_to(self, state: BreakerState) -> None:
        self._state = state
        self.transitions += 1

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(state={self._state.value!r}, failure_ratio={self.failure_ratio!r}, "
            f"min_calls={self.min_calls!r}, open_seconds={self.open_seconds!r}, "
            f"probes={self.probes!r}, window={self.window!r})"
        )


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
