"""Statistics of a run: histogram recording, percentiles, merging across processes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hdrh.histogram import HdrHistogram

from loadgen.health import DownTarget
from loadgen.stats import (
    HIGHEST_TRACKABLE_US,
    HistogramRecorder,
    RunResult,
    RunStats,
    decode_histogram,
    encode_histogram,
    merge_results,
    new_histogram,
    node_rows,
    rate_per_second,
    summarize,
)


def test_histogram_covers_one_microsecond_to_one_hour_with_three_digits() -> None:
    histogram = new_histogram()
    assert histogram.lowest_trackable_value == 1
    assert histogram.highest_trackable_value == 3_600_000_000
    assert histogram.significant_figures == 3


def test_recorder_matches_hdrh_record_value_exactly() -> None:
    rng = random.Random(7)
    values = [0, 1, 2, 1023, 1024, 2047, 2048, 2049, 999_999, HIGHEST_TRACKABLE_US]
    values += [int(rng.lognormvariate(9, 2.5)) % HIGHEST_TRACKABLE_US for _ in range(5000)]
    reference = new_histogram()
    fast = new_histogram()
    recorder = HistogramRecorder(fast)
    for value in values:
        reference.record_value(value)
        recorder.record(value)
    assert list(fast.counts) == list(reference.counts)
    assert fast.get_total_count() == reference.get_total_count()
    assert fast.get_max_value() == reference.get_max_value()
    assert fast.get_min_value() == reference.get_min_value()
    assert encode_histogram(fast) == encode_histogram(reference)


def test_recorder_clamps_values_out_of_range() -> None:
    histogram = new_histogram()
    recorder = HistogramRecorder(histogram)
    recorder.record(-5)
    recorder.record(HIGHEST_TRACKABLE_US * 10)
    assert histogram.get_total_count() == 2
    assert histogram.get_value_at_percentile(0.0) == 0
    assert histogram.values_are_equivalent(histogram.get_max_value(), HIGHEST_TRACKABLE_US)


def test_summarize_percentiles_of_one_to_a_thousand_ms() -> None:
    histogram = new_histogram()
    for ms in range(1, 1001):
        histogram.record_value(ms * 1000)
    summary = summarize(histogram)
    assert summary is not None
    assert summary.count == 1000
    # 3 significant digits: each figure within 0.1% of the exact one.
    for got, exact in [
        (summary.min, 1.0),
        (summary.p50, 500.0),
        (summary.p90, 900.0),
        (summary.p95, 950.0),
        (summary.p99, 990.0),
        (summary.max, 1000.0),
        (summary.mean, 500.5),
    ]:
        assert got == pytest.approx(exact, rel=1e-3)


def test_summarize_empty_histogram_is_none() -> None:
    assert summarize(new_histogram()) is None


def test_summaries_are_milliseconds_with_two_decimals() -> None:
    histogram = new_histogram()
    histogram.record_value(1234)  # 1.234 ms
    summary = summarize(histogram)
    assert summary is not None
    assert summary.p50 == 1.23
    assert summary.min == 1.23


def test_encode_decode_roundtrip_keeps_every_count() -> None:
    histogram = new_histogram()
    for value in (5, 50, 500, 5000, 50_000, 5_000_000):
        histogram.record_value(value, 3)
    decoded = decode_histogram(encode_histogram(histogram))
    assert list(decoded.counts) == list(histogram.counts)
    assert decoded.get_total_count() == 18
    assert isinstance(HdrHistogram.decode(encode_histogram(histogram)), HdrHistogram)


def test_decode_of_empty_string_is_an_empty_histogram() -> None:
    assert decode_histogram("").get_total_count() == 0


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
    a = RunStats.from_wire(_stats("1", "http://a", first, errors=1).to_wire())
    b = RunStats.from_wire(_stats("1", "http://a", second, errors=2).to_wire())
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
    merged.merge(RunStats.from_wire(a.to_wire()))
    merged.merge(RunStats.from_wire(b.to_wire()))
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


def test_node_rows_charge_errors_to_the_node_behind_a_target() -> None:
    stats = _stats("1", "http://a", [10.0] * 4)
    stats.merge(_stats("2", "http://b", [20.0] * 3, errors=2))
    rows = {row.node: row for row in node_rows(stats)}
    assert set(rows) == {"1", "2"}
    assert (rows["2"].successes, rows["2"].errors, rows["2"].requests) == (3, 2, 5)
    assert rows["2"].target == "http://b"
    assert sum(row.requests for row in rows.values()) == stats.requests


def test_node_rows_keep_a_target_that_never_answered_under_its_url() -> None:
    stats = _stats("1", "http://a", [10.0])
    stats.record_error("http://dead", "connect")
    rows = node_rows(stats)
    assert [(row.node, row.successes, row.errors) for row in rows] == [
        ("1", 1, 0),
        ("http://dead", 0, 1),
    ]
    assert rows[1].latency is None


def test_node_rows_keep_errors_of_a_load_balanced_target_apart() -> None:
    # One Service address answering as two pods: a failure there belongs to neither pod.
    stats = _stats("pod-a", "http://svc", [10.0])
    stats.merge(_stats("pod-b", "http://svc", [10.0], errors=1))
    assert [row.node for row in node_rows(stats)] == ["http://svc", "pod-a", "pod-b"]


def test_node_rows_sort_numbers_naturally() -> None:
    stats = RunStats()
    for node in ("node-10", "node-2", "node-1"):
        stats.record_success("http://a", node, 1000)
    assert [row.node for row in node_rows(stats)] == ["node-1", "node-2", "node-10"]


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
    merged = merge_results([RunResult.from_wire(a.to_wire()), RunResult.from_wire(b.to_wire())])
    assert merged.stats.successes == 2
    assert merged.started_at == t0
    assert merged.finished_at == t0 + timedelta(seconds=2.5)
    assert merged.duration_s == 2.4
    assert merged.cut_short


def test_merge_results_needs_results() -> None:
    with pytest.raises(ValueError):
        merge_results([])


def test_rate_per_second() -> None:
    assert rate_per_second(50, 12.3) == 4.07
    assert rate_per_second(5, 0.0) == 0.0
