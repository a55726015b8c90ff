"""A retry budget: retries may add only a fixed share to the load a client sends.

Per attempt, retrying looks harmless; across clients it multiplies the load on a server
that is already failing (three attempts per request is three times the load, exactly when
the server has the least to spare). A budget bounds that amplification, as the Google SRE
book's per-client retry budget, gRPC's retry throttling and Finagle's ``RetryBudget`` do:
within a sliding window, retries may be at most ``ratio`` of the first attempts, plus a
small floor of ``min_per_second`` so a client that sends little can still retry at all.

The window is ``window_s`` one-second buckets in a ring, so memory stays bounded whatever
the request rate, and it slides a whole second at a time. The clock is injected
(monotonic seconds) and nothing here sleeps or reads the time on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MIN_PER_SECOND",
    "DEFAULT_RATIO",
    "DEFAULT_WINDOW_S",
    "RetryBudget",
]

DEFAULT_RATIO = 0.1
# Finagle's floor is 10 retries a second for a whole client; one load generator process is a
# small client, and a floor that large would let a quiet run's retries double its load.
DEFAULT_MIN_PER_SECOND = 1.0
DEFAULT_WINDOW_S = 10
DEFAULT_MAX_ATTEMPTS = 3


class RetryBudget:
    """Retries allowed while, over the last ``window_s`` seconds, they stay within
    ``ratio * first_attempts + min_per_second * window_s``; at most ``max_attempts`` per
    request.

    Call :meth:`record_request` once per request (its first attempt), and
    :meth:`try_spend_retry` before each retry: it says whether the retry may go, and counts
    it if so.
    """

    __slots__ = (
        "_clock",
        "_requests",
        "_retries",
        "_second",
        "_window_requests",
        "_window_retries",
        "denied",
        "max_attempts",
        "min_per_second",
        "ratio",
        "window_s",
    )

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        ratio: float = DEFAULT_RATIO,
        min_per_second: float = DEFAULT_MIN_PER_SECOND,
        window_s: int = DEFAULT_WINDOW_S,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        if not _non_negative_finite(ratio):
            raise ValueError(f"ratio must be a number >= 0, got {ratio!r}")
        if not _non_negative_finite(min_per_second):
            raise ValueError(f"min_per_second must be a number >= 0, got {min_per_second!r}")
        if isinstance(window_s, bool) or not isinstance(window_s, int) or window_s < 1:
            raise ValueError(f"window_s must be a whole number of seconds >= 1, got {window_s!r}")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts must be an integer >= 1, got {max_attempts!r}")
        self.ratio = float(ratio)
        self.min_per_second = float(min_per_second)
        self.window_s = window_s
        self.max_attempts = max_attempts
        self.denied = 0  # retries refused, by the window or by max_attempts
        self._clock = clock
        self._requests = [0] * window_s
        self._retries = [0] * window_s
        self._window_requests = 0
        self._window_retries = 0
        self._second = math.floor(clock())

    @property
    def requests(self) -> int:
        """First attempts recorded in the current window."""
        self._advance()
        return self._window_requests

    @property
    def retries(self) -> int:
        """Retries spent in the current window."""
        self._advance()
        return self._window_retries

    def allowance(self) -> float:
        """Retries the current window allows in all (spent ones included)."""
        self._advance()
        return self._allowance()

    def record_request(self) -> None:
        """Count a request's first attempt: it earns ``ratio`` of a retry for the window."""
        self._advance()
        self._requests[self._second % self.window_s] += 1
        self._window_requests += 1

    def try_spend_retry(self, attempts_made: int) -> bool:
        """Whether a request that has made ``attempts_made`` attempts may retry; if so the
        retry is counted against the window."""
        if attempts_made >= self.max_attempts:
            self.denied += 1
            return False
        self._advance()
        if self._window_retries + 1 > self._allowance():
            self.denied += 1
            return False
        self._retries[self._second % self.window_s] += 1
        self._window_retries += 1
        return True

    def _allowance(self) -> float:
        return self.ratio * self._window_requests + self.min_per_second * self.window_s

    def _advance(self) -> None:
        """Empty the buckets of the seconds that have left the window since the last call."""
        second = math.floor(self._clock())
        # A clock read that goes backwards (it should not) keeps the current bucket.
        if second <= self._second:
            return
        size = self.window_s
        for passed in range(max(self._second + 1, second - size + 1), second + 1):
            slot = passed % size
            self._window_requests -= self._requests[slot]
            self._window_retries -= self._retries[slot]
            self._requests[slot] = 0
            self._retries[slot] = 0
        self._second = second

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio!r}, min_per_second={self.min_per_second!r}, "
            f"window_s={self.window_s!r}, max_attempts={self.max_attempts!r})"
        )


def _non_negative_finite(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and value >= 0
    )
