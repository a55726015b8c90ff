"""What a run counts: per-node latencies, errors by kind and by target, targets found down.

The hot path writes a :class:`RunStats` in each process; the parent merges them. Pure (no
I/O, no clocks).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hdrh.histogram import HdrHistogram

from loadgen.health import DownTarget
from loadgen.histogram import HistogramRecorder, merge_into, new_histogram

__all__ = ["NodeStats", "RunResult", "RunStats", "merge_results"]


class NodeStats:
    """What one node (by the ``node`` id in its answers) did for us: its successes' latency."""

    __slots__ = ("latency", "node", "record", "targets")

    def __init__(self, node: str, latency: HdrHistogram | None = None) -> None:
        self.node = node
        self.targets: set[str] = set()
        self.latency = latency if latency is not None else new_histogram()
        # The hot path calls this bound method once per successful answer.
        self.record = HistogramRecorder(self.latency).record

    @property
    def successes(self) -> int:
        """Successful answers (one latency value each)."""
        count: int = self.latency.get_total_count()
        return count


def _count(counter: dict[str, int], key: str, count: int) -> None:
    counter[key] = counter.get(key, 0) + count


class RunStats:
    """The mutable accumulator of one run in one process; the hot path writes it.

    Latencies of successful answers are recorded per node only; the run's histogram is their
    merge. They count from the actual send in a closed loop and from the intended start in
    an open loop, where ``uncorrected`` also keeps them from the actual send, to show what
    coordinated omission would have hidden. ``service`` holds the server-side service times.
    ``targets_down`` holds the targets whose last connect failed.
    """

    __slots__ = (
        "errors",
        "nodes",
        "record_service",
        "record_uncorrected",
        "service",
        "target_errors",
        "targets_down",
        "uncorrected",
    )

    def __init__(
        self, uncorrected: HdrHistogram | None = None, service: HdrHistogram | None = None
    ) -> None:
        self.errors: dict[str, int] = {}
        self.target_errors: dict[str, int] = {}
        self.targets_down: dict[str, DownTarget] = {}
        self.uncorrected = uncorrected if uncorrected is not None else new_histogram()
        self.service = service if service is not None else new_histogram()
        self.nodes: dict[str, NodeStats] = {}
        self.record_uncorrected = HistogramRecorder(self.uncorrected).record
        self.record_service = HistogramRecorder(self.service).record

    @property
    def successes(self) -> int:
        """Successful answers."""
        return sum(node.successes for node in self.nodes.values())

    @property
    def error_count(self) -> int:
        """Failed requests."""
        return sum(self.errors.values())

    @property
    def requests(self) -> int:
        """Requests that answered or failed."""
        return self.successes + self.error_count

    def node(self, name: str, target: str) -> NodeStats:
        """The stats of node ``name``, noting that it answered through ``target``."""
        stats = self.nodes.get(name)
        if stats is None:
            stats = self.nodes[name] = NodeStats(name)
        stats.targets.add(target)
        return stats

    def record_success(
        self,
        target: str,
        node: str,
        latency_us: int,
        service_us: int | None = None,
        uncorrected_us: int | None = None,
    ) -> None:
        """Count one successful answer from ``node`` reached through ``target``.

        Convenient and slower; the engine caches :meth:`node` and records directly.
        """
        self.node(node, target).record(latency_us)
        if service_us is not None:
            self.record_service(service_us)
        if uncorrected_us is not None:
            self.record_uncorrected(uncorrected_us)

    def record_error(self, target: str, kind: str, count: int = 1) -> None:
        """Count ``count`` failed requests to ``target`` of one kind: connect, down, timeout,
        not_sent, http_<status> or other."""
        _count(self.errors, kind, count)
        _count(self.target_errors, target, count)

    def record_target_down(self, target: str, down: DownTarget) -> None:
        """Note that ``target``'s last connect failed (another shard's view adds to it)."""
        seen = self.targets_down.get(target)
        if seen is not None:
            down = DownTarget(
                went_away=seen.went_away or down.went_away,
                failed_connects=seen.failed_connects + down.failed_connects,
            )
        self.targets_down[target] = down

    def latency(self) -> HdrHistogram:
        """All successful answers' latency: the merge of the per-node histograms."""
        merged = new_histogram()
        for stats in self.nodes.values():
            merge_into(merged, stats.latency)
        return merged

    def merge(self, other: RunStats) -> None:
        """Add ``other`` (another process, another shard) into this accumulator."""
        for kind, count in other.errors.items():
            _count(self.errors, kind, count)
        for target, count in other.target_errors.items():
            _count(self.target_errors, target, count)
        for target, down in other.targets_down.items():
            self.record_target_down(target, down)
        merge_into(self.uncorrected, other.uncorrected)
        merge_into(self.service, other.service)
        for name, theirs in other.nodes.items():
            ours = self.nodes.get(name)
            if ours is None:
                ours = self.nodes[name] = NodeStats(name)
            ours.targets |= theirs.targets
            merge_into(ours.latency, theirs.latency)


@dataclass
class RunResult:
    """One run (one sweep level) in one or several processes."""

    stats: RunStats
    started_at: datetime
    finished_at: datetime
    duration_s: float
    cut_short: bool = False  # the overall deadline stopped it


def merge_results(results: list[RunResult]) -> RunResult:
    """Merge the results of processes that ran side by side (started together)."""
    if not results:
        raise ValueError("no results to merge")
    stats = RunStats()
    for result in results:
        stats.merge(result.stats)
    return RunResult(
        stats=stats,
        started_at=min(r.started_at for r in results),
        finished_at=max(r.finished_at for r in results),
        # Side by side, the run lasted as long as its slowest process.
        duration_s=max(r.duration_s for r in results),
        cut_short=any(r.cut_short for r in results),
    )
