"""What every row gets: the run's settings, a progress line on stderr, and small statistics."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Context", "hdr_percentile", "median", "say"]

_STARTED = time.monotonic()


def say(message: str) -> None:
    """One progress line on stderr, stamped with the seconds since the bench started."""
    print(f"{time.monotonic() - _STARTED:6.1f}s {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    """The median; the rows take medians of interleaved rounds to damp a busy machine."""
    return float(statistics.median(values))


def hdr_percentile(values: Sequence[float], percentile: float) -> float:
    """The percentile by HdrHistogram's rank rule, as the load generator reports it: the value
    of rank ``max(1, int(percentile / 100 * n + 0.5))`` in sorted order."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, int(percentile / 100.0 * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Context:
    """The run's settings, shared by every row."""

    quick: bool
    wrk: str | None  # path of the wrk binary; None when it could not be installed
