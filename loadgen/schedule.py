"""The open loop's schedule: when each request was meant to start, and what its latency is.

A fixed-rate client that waits for a slow answer before sending the next request silently
skips the requests it should have sent meanwhile ("coordinated omission"), so the slow
period looks like one slow sample. As wrk2 does, each request ``k`` has an intended start
``start + k / rate`` and its latency counts from that instant, not from when it was sent.
"""

from __future__ import annotations

import math

__all__ = [
    "corrected_latency_us",
    "count_by_slot",
    "intended_start",
    "scheduled_requests",
    "shard_indices",
    "split_evenly",
]


def intended_start(start: float, index: int, rate: float) -> float:
    """When request ``index`` (0-based, global over all processes) should start.

    Computed from the index rather than accumulated, so rounding never drifts.
    """
    return start + index / rate


def corrected_latency_us(intended: float, finished: float) -> int:
    """Latency from the intended start to the answer, in whole microseconds (never negative)."""
    return max(0, int((finished - intended) * 1_000_000))


def scheduled_requests(rate: float, duration_s: float) -> int:
    """How many requests a schedule of ``rate`` per second holds in ``duration_s`` seconds."""
    return max(1, math.floor(rate * duration_s + 1e-9))


def shard_indices(total: int, shard: int, shards: int) -> range:
    """The global request indices one of ``shards`` processes sends: shard, shard + shards, ...

    Interleaving keeps the processes' schedules evenly spread over time and over targets.
    """
    return range(shard, total, shards)


def split_evenly(total: int, parts: int) -> list[int]:
    """Split ``total`` into ``parts`` integers that differ by at most one, largest first."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def count_by_slot(start: int, stop: int, stride: int, slots: int) -> list[int]:
    """How many of the indices ``range(start, stop, stride)`` fall on each ``index % slots``.

    Arithmetic over one period of the slots, not a walk over the indices: the tail of a long
    schedule can hold millions.
    """
    counts = [0] * slots
    total = len(range(start, stop, stride))
    period = slots // math.gcd(stride, slots)
    rounds, rest = divmod(total, period)
    for k in range(min(period, total)):
        counts[(start + k * stride) % slots] += rounds + (1 if k < rest else 0)
    return counts
