"""How long a client waits before it retries: capped exponential backoff with full jitter.

Full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter") draws each wait
uniformly from zero up to the capped exponential step, ``min(cap, base * 2**retry)``:
clients that failed together spread their retries over the whole step instead of
returning in lockstep, which is what turns one overload into a retry storm.

A backoff is a function of the retry number (0 for the first retry) to seconds, so the
caller owns the random source and every sequence of waits is reproducible.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

__all__ = ["Backoff", "FullJitter", "immediate"]

# Seconds to wait before retry number ``retry`` (0 for the first retry).
Backoff = Callable[[int], float]


def immediate(retry: int) -> float:
    """No wait: retry at once (the naive client whose retries feed the storm)."""
    _check_retry(retry)
    return 0.0


class FullJitter:
    """Capped exponential backoff with full jitter: ``uniform(0, min(cap_s, base_s * 2**retry))``.

    ``rng`` is the only source of randomness, so a seeded one repeats the same waits.
    """

    __slots__ = ("_doublings_to_cap", "_rng", "base_s", "cap_s")

    def __init__(self, base_s: float, cap_s: float, rng: random.Random) -> None:
        if not _positive_finite(base_s):
            raise ValueError(f"base_s must be a positive number of seconds, got {base_s!r}")
        if not _positive_finite(cap_s) or cap_s < base_s:
            raise ValueError(f"cap_s must be a number >= base_s ({base_s!r}), got {cap_s!r}")
        self.base_s = float(base_s)
        self.cap_s = float(cap_s)
        self._rng = rng
        # Past this many doublings the step is the cap; checking it first keeps 2**retry from
        # overflowing however many retries a caller counts.
        self._doublings_to_cap = math.log2(self.cap_s / self.base_s)

    def bound_s(self, retry: int) -> float:
        """The upper end of the wait before retry number ``retry``: the capped step."""
        _check_retry(retry)
        if retry >= self._doublings_to_cap:
            return self.cap_s
        return min(self.cap_s, self.base_s * 2.0**retry)

    def __call__(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry)."""
        return self._rng.uniform(0.0, self.bound_s(retry))

    def __repr__(self) -> str:
        return f"FullJitter(base_s={self.base_s!r}, cap_s={self.cap_s!r})"


def _check_retry(retry: int) -> None:
    if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
        raise ValueError(f"retry must be an integer >= 0, got {retry!r}")


def _positive_finite(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and value > 0
    )
