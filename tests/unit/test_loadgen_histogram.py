"""Latency histograms: the hot-path recorder, percentiles, the encoding."""

from __future__ import annotations

import random

import pytest
from hdrh.histogram import HdrHistogram

from loadgen.histogram import (
    HIGHEST_TRACKABLE_US,
    HistogramRecorder,
    decode_histogram,
    encode_histogram,
    new_histogram,
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
