"""Which targets accept connections, and when to try again one that refused.

A load generator that retries a dead target at once spins: one refused connect costs
microseconds, so a closed loop against a node that died makes thousands of failed attempts a
second, each one counted as a request. After a failed connect a target therefore backs off:
it is tried again only after a capped, jittered exponential delay, by one request (the
probe) while the others wait or go elsewhere, and the first answer clears it.

Pure: the caller passes the clock, and the random source is injectable.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BACKOFF_BASE_S", "BACKOFF_CAP_S", "DownTarget", "TargetHealth", "backoff_s"]

BACKOFF_BASE_S = 0.05
# A restarted pod is tried within a second of listening again; a dead one costs each process
# at most two attempts a second (every wait is at least half the cap).
BACKOFF_CAP_S = 1.0


def backoff_s(failures: int, uniform: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait after ``failures`` failed connects in a row (``failures >= 1``).

    The step doubles from ``BACKOFF_BASE_S`` up to ``BACKOFF_CAP_S``; the wait is half the
    step plus a random part of the other half, so attempts stay spaced and processes and
    targets do not retry in lockstep.
    """
    step = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** min(max(failures, 1) - 1, 30))
    return step / 2 + uniform(0.0, step / 2)


@dataclass(frozen=True)
class DownTarget:
    """A target whose last connect failed: had it answered before, and how often it failed."""

    went_away: bool  # it answered earlier in the run, then refused connections
    failed_connects: int  # failed connects since its last answer


class TargetHealth:
    """Per target (by its index): failed connects since the last answer, and the next try.

    ``retry_at[slot]`` is 0.0 while a target is up, so the hot path tests one list item.
    """

    __slots__ = ("_uniform", "answered", "failures", "retry_at")

    def __init__(
        self, targets: int, uniform: Callable[[float, float], float] = random.uniform
    ) -> None:
        self.retry_at = [0.0] * targets
        self.failures = [0] * targets
        self.answered = [False] * targets
        self._uniform = uniform

    def any_up(self) -> bool:
        """Whether some target has no failed connect since its last answer."""
        return 0.0 in self.retry_at

    def claim(self, slot: int, now: float) -> float:
        """0.0 when a request may go to ``slot`` now, else when it may be tried again.

        A target that is backing off lets one request through once its delay has passed:
        that request is the probe, and the next try moves on as if it will fail, so the
        requests waiting meanwhile do not all rush in at once.
        """
        retry_at = self.retry_at[slot]
        if retry_at > now:
            return retry_at
        if retry_at:
            self.retry_at[slot] = now + backoff_s(self.failures[slot] + 1, self._uniform)
        return 0.0

    def connect_failed(self, slot: int, now: float) -> None:
        """A connect to ``slot`` failed: back off from ``now``."""
        failures = self.failures[slot] = self.failures[slot] + 1
        self.retry_at[slot] = now + backoff_s(failures, self._uniform)

    def answered_by(self, slot: int) -> None:
        """``slot`` answered (any status): it is up."""
        self.answered[slot] = True
        self.retry_at[slot] = 0.0
        self.failures[slot] = 0

    def down(self) -> dict[int, DownTarget]:
        """The targets whose last connect failed, by index."""
        return {
            slot: DownTarget(went_away=self.answered[slot], failed_connects=failures)
            for slot, failures in enumerate(self.failures)
            if failures
        }
