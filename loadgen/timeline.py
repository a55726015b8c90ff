"""A run second by second: offered requests, attempts sent, successes, errors by kind, the
successes' latency and the circuit breaker's state. Pure: the caller passes every time.

Phase 5 (the retry storm) is read off this timeline: offered vs attempts shows the retries'
amplification, successes per second (goodput) shows the collapse and whether it recovers.
Seconds count from the run's start. A request is *offered* in the second it was due (an open
loop's arrival), an attempt is counted in the second it was sent, a success or an error in the
second it ended. A success's latency runs from the request's due time to its final answer,
retries included: what the user waited.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from loadgen.histogram import HIGHEST_TRACKABLE_US, LOWEST_TRACKABLE_US, merge_into

__all__ = [
    "MAX_POINTS",
    "RECOVERY_RATIO",
    "RECOVERY_SECONDS",
    "Second",
    "StormFigures",
    "Timeline",
    "storm_figures",
]

# Two significant digits: a per-second p99 needs no more, and a second's histogram stays small.
_DIGITS = 2

# status.lastRun must stay far below etcd's object size limit (1.5 MiB): at most this many
# points, each about 150 bytes; a longer run merges neighbouring seconds into one point.
MAX_POINTS = 120

# Recovered: the first moment after the trigger from which goodput stays >= 95% of the offered
# load for 3 seconds in a row.
RECOVERY_RATIO = 0.95
RECOVERY_SECONDS = 3


def _histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_TRACKABLE_US, HIGHEST_TRACKABLE_US, _DIGITS)


@dataclass
class Second:
    """What happened in one second of the run (or in one merged point of several)."""

    offered: int = 0
    attempts: int = 0
    successes: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latency: HdrHistogram = field(default_factory=_histogram)
    breaker: str | None = None  # the breaker's state at the end of the second, if there is one

    def merge(self, other: Second) -> None:
        """Add ``other``'s counts; the later breaker state wins."""
        self.offered += other.offered
        self.attempts += other.attempts
        self.successes += other.successes
        for kind, count in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + count
        merge_into(self.latency, other.latency)
        if other.breaker is not None:
            self.breaker = other.breaker


class Timeline:
    """The per-second accumulator of one run in one process."""

    def __init__(self) -> None:
        self.seconds: list[Second] = []

    def _at(self, t: float) -> Second:
        index = max(int(t), 0)
        while len(self.seconds) <= index:
            self.seconds.append(Second())
        return self.seconds[index]

    def offered(self, t: float) -> None:
        """A request was due at ``t`` seconds into the run."""
        self._at(t).offered += 1

    def attempt(self, t: float) -> None:
        """An attempt (first or retry) was sent at ``t``."""
        self._at(t).attempts += 1

    def success(self, t: float, latency_us: int) -> None:
        """A request ended with an answer at ``t``, ``latency_us`` after it was due."""
        second = self._at(t)
        second.successes += 1
        second.latency.record_value(min(max(latency_us, LOWEST_TRACKABLE_US), HIGHEST_TRACKABLE_US))

    def error(self, t: float, kind: str) -> None:
        """An attempt failed at ``t`` (``timeout``, ``shed``, ``limited``, ``error``...), or a
        request was given up (``gave_up``) or refused by the breaker (``breaker_open``)."""
        errors = self._at(t).errors
        errors[kind] = errors.get(kind, 0) + 1

    def breaker(self, t: float, state: str) -> None:
        """The breaker's state as seen at ``t``."""
        self._at(t).breaker = state

    def merge(self, other: Timeline) -> None:
        """Add another process's timeline of the same run (same start)."""
        for index, second in enumerate(other.seconds):
            self._at(index).merge(second)

    # --- the wire format between load processes ----------------------------------------------

    def encode(self) -> list[dict[str, Any]]:
        """JSON-able form (histograms in the standard compressed encoding)."""
        out: list[dict[str, Any]] = []
        for second in self.seconds:
            encoded = second.latency.encode() if second.latency.get_total_count() else b""
            out.append(
                {
                    "offered": second.offered,
                    "attempts": second.attempts,
                    "successes": second.successes,
                    "errors": dict(second.errors),
                    "latency": encoded.decode("ascii") if isinstance(encoded, bytes) else encoded,
                    "breaker": second.breaker,
                }
            )
        return out

    @classmethod
    def decode(cls, rows: Iterable[Mapping[str, Any]]) -> Timeline:
        """The inverse of :meth:`encode`."""
        timeline = cls()
        for row in rows:
            second = Second(
                offered=int(row["offered"]),
                attempts=int(row["attempts"]),
                successes=int(row["successes"]),
                errors={str(k): int(v) for k, v in dict(row["errors"]).items()},
                breaker=row.get("breaker"),
            )
            if row.get("latency"):
                merge_into(second.latency, HdrHistogram.decode(row["latency"]))
            timeline.seconds.append(second)
        return timeline

    # --- the report ------------------------------------------------------------------------

    def points(self, max_points: int = MAX_POINTS) -> tuple[int, list[dict[str, Any]]]:
        """(seconds per point, the points) for the report: at most ``max_points`` points."""
        if max_points < 1:
            raise ValueError("max_points must be >= 1")
        width = max(1, -(-len(self.seconds) // max_points))
        points: list[dict[str, Any]] = []
        for start in range(0, len(self.seconds), width):
            merged = Second()
            for second in self.seconds[start : start + width]:
                merged.merge(second)
            points.append(_point(start, width, merged))
        return width, points


def _point(start: int, width: int, second: Second) -> dict[str, Any]:
    point: dict[str, Any] = {
        "t": start,
        "offered": round(second.offered / width, 2),
        "attempts": round(second.attempts / width, 2),
        "successes": round(second.successes / width, 2),
    }
    if second.errors:
        point["errors"] = {k: round(v / width, 2) for k, v in sorted(second.errors.items())}
    if second.latency.get_total_count():
        point["p50Millis"] = round(second.latency.get_value_at_percentile(50.0) / 1000, 1)
        point["p99Millis"] = round(second.latency.get_value_at_percentile(99.0) / 1000, 1)
    if second.breaker is not None:
        point["breaker"] = second.breaker
    return point


@dataclass(frozen=True)
class StormFigures:
    """What phase 5 is read by: amplification, goodput and the time to recover."""

    amplification: float | None  # attempts / offered requests over the run
    trigger_amplification: float | None  # the same inside the trigger window
    goodput_during: float | None  # successes / offered inside the trigger window
    goodput_after: float | None  # successes / offered from the trigger's end to the run's end
    recovery_s: int | None  # seconds from the trigger's end to recovery; None: did not recover

    @property
    def recovered(self) -> bool:
        """Whether goodput came back within the run (the metastable verdict is the opposite)."""
        return self.recovery_s is not None

    def to_report(self) -> dict[str, Any]:
        """camelCase fields for ``lastRun.storm``; ``recovered`` says whether it came back."""
        out: dict[str, Any] = {"recovered": self.recovered}
        for key, value in (
            ("amplification", self.amplification),
            ("triggerAmplification", self.trigger_amplification),
            ("goodputDuringTrigger", self.goodput_during),
            ("goodputAfterTrigger", self.goodput_after),
            ("recoverySeconds", self.recovery_s),
        ):
            if value is not None:
                out[key] = round(value, 3) if isinstance(value, float) else value
        return out


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def storm_figures(
    seconds: Sequence[Second], trigger_start_s: float | None, trigger_end_s: float | None
) -> StormFigures:
    """The figures of a run whose trigger covered [start, end) seconds (or no trigger)."""
    offered = sum(s.offered for s in seconds)
    attempts = sum(s.attempts for s in seconds)
    if trigger_start_s is None or trigger_end_s is None:
        return StormFigures(_ratio(attempts, offered), None, None, None, None)
    first, end = int(trigger_start_s), int(-(-trigger_end_s // 1))
    inside = seconds[first:end]
    after = seconds[end:]
    recovery: int | None = None
    for index in range(len(after) - RECOVERY_SECONDS + 1):
        window = after[index : index + RECOVERY_SECONDS]
        if all(s.offered and s.successes >= RECOVERY_RATIO * s.offered for s in window):
            recovery = index
            break
    return StormFigures(
        amplification=_ratio(attempts, offered),
        trigger_amplification=_ratio(
            sum(s.attempts for s in inside), sum(s.offered for s in inside)
        ),
        goodput_during=_ratio(sum(s.successes for s in inside), sum(s.offered for s in inside)),
        goodput_after=_ratio(sum(s.successes for s in after), sum(s.offered for s in after)),
        recovery_s=recovery,
    )
