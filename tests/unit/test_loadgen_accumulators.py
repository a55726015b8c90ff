"""The run's accumulators: recording, merging across processes through the wire format."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from loadgen.accumulators import RunResult, RunStats, merge_results
from loadgen.health import DownTarget
from loadgen.histogram import summarize
from loadgen.wire import result_from_wire, result_to_wire, stats_from_wire, stats_to_wire


def _stats(node: str, target: str, latencies_ms: list[float], errors: int = 0) -> RunStats:
    stats = RunStats()
    for ms in latencies_ms:
        stats.record_success(target, node, int(ms * 1000), service_us=int(ms * 500))
    for _ in range(errors):
        stats.record_error(target, "connect")
    return stats


def test_merge_across_processes_equals_recording_in_one() -> None:
    rng = random.Random(1)
    first = [rng.uniform(1, 100) for _ in range(300)]
    second = [rng.uniform(50, 500) for _ in range(200)]
    one = _stats("1", "http://a", first + second, errors=3)
    # Each process sends its wire form (as through the pipe); the parent merges.
    a = stats_from_wire(stats_to_wire(_stats("1", "http://a", first, errors=1)))
    b = stats_from_wire(stats_to_wire(_stats("1", "http://a", second, errors=2)))
    merged = RunStats()
    merged.merge(a)
    merged.merge(b)
    assert merged.requests == one.requests == 503
    assert merged.successes == 500
    assert merged.errors == {"connect": 3}
    assert list(merged.latency().counts) == list(one.latency().counts)
    assert summarize(merged.latency()) == summarize(one.latency())
    assert summarize(merged.service) == summarize(one.service)


def test_targets_down_survive_the_wire_and_add_up_across_processes() -> None:
    a, b = RunStats(), RunStats()
    a.record_target_down("http://dead", DownTarget(went_away=False, failed_connects=2))
    b.record_target_down("http://dead", DownTarget(went_away=True, failed_connects=3))
    b.record_target_down("http://other", DownTarget(went_away=False, failed_connects=1))
    b.record_error("http://dead", "not_sent", 5)
    merged = RunStats()
    merged.merge(stats_from_wire(stats_to_wire(a)))
    merged.merge(stats_from_wire(stats_to_wire(b)))
    assert merged.targets_down == {
        "http://dead": DownTarget(went_away=True, failed_connects=5),
        "http://other": DownTarget(went_away=False, failed_connects=1),
    }
    assert merged.errors == {"not_sent": 5}
    assert merged.target_errors == {"http://dead": 5}


def test_merged_minimum_is_the_true_minimum() -> None:
    # hdrh's add() into an empty histogram reports a minimum of 0; ours must not.
    merged = RunStats()
    merged.merge(_stats("1", "http://a", [7.0, 9.0]))
    merged.merge(_stats("1", "http://a", [8.0]))
    summary = summarize(merged.latency())
    assert summary is not None
    assert summary.min == pytest.approx(7.0, rel=1e-3)
    assert merged.nodes["1"].latency.get_min_value() > 0


def test_merge_results_spans_the_processes() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    a = RunResult(_stats("1", "http://a", [1.0]), t0, t0 + timedelta(seconds=2), 2.0)
    b = RunResult(
        _stats("2", "http://b", [1.0]),
        t0 + timedelta(seconds=0.1),
        t0 + timedelta(seconds=2.5),
        2.4,
        cut_short=True,
    )
    merged = merge_results(
        [result_from_wire(result_to_wire(a)), result_from_wire(result_to_wire(b))]
    )
    assert merged.stats.successes == 2
    assert merged.started_at == t0
    assert merged.finished_at == t0 + timedelta(seconds=2.5)
    assert merged.duration_s == 2.4
    assert merged.cut_short


def test_merge_results_needs_results() -> None:
    with pytest.raises(ValueError):
        merge_results([])
