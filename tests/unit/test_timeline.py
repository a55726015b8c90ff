"""The per-second timeline: bucketing, merging, the wire format, the size bound, the figures."""

from __future__ import annotations

import json

import pytest

from loadgen.timeline import MAX_POINTS, Second, Timeline, storm_figures


def _steady(timeline: Timeline, second: int, offered: int, successes: int, attempts: int) -> None:
    for _ in range(offered):
        timeline.offered(second + 0.1)
    for _ in range(attempts):
        timeline.attempt(second + 0.2)
    for _ in range(successes):
        timeline.success(second + 0.5, 20_000)
    for _ in range(attempts - successes):
        timeline.error(second + 0.5, "timeout")


def test_events_land_in_the_second_they_happen() -> None:
    timeline = Timeline()
    timeline.offered(0.0)
    timeline.attempt(0.99)
    timeline.success(2.5, 1500)
    timeline.error(1.01, "shed")
    timeline.breaker(1.5, "open")
    first, second, third = timeline.seconds
    assert (first.offered, first.attempts, first.successes) == (1, 1, 0)
    assert second.errors == {"shed": 1} and second.breaker == "open"
    assert third.successes == 1 and third.latency.get_total_count() == 1


def test_merge_adds_counts_and_keeps_the_later_breaker_state() -> None:
    a, b = Timeline(), Timeline()
    _steady(a, 0, 10, 8, 12)
    _steady(b, 0, 5, 5, 5)
    _steady(b, 1, 3, 0, 6)
    b.breaker(1.2, "half-open")
    a.merge(b)
    assert [s.offered for s in a.seconds] == [15, 3]
    assert a.seconds[0].errors == {"timeout": 4}
    assert a.seconds[1].errors == {"timeout": 6} and a.seconds[1].breaker == "half-open"
    assert a.seconds[0].latency.get_total_count() == 13


def test_the_wire_format_round_trips_through_json() -> None:
    timeline = Timeline()
    for t in range(4):
        _steady(timeline, t, 10, 10 - t, 10 + t)
    timeline.breaker(3.0, "closed")
    back = Timeline.decode(json.loads(json.dumps(timeline.encode())))
    assert back.points() == timeline.points()


def test_points_are_bounded_and_keep_per_second_rates() -> None:
    timeline = Timeline()
    for t in range(300):
        _steady(timeline, t, 4, 4, 4)
    width, points = timeline.points()
    assert len(points) <= MAX_POINTS and width == 3
    assert points[1]["t"] == 3 and points[1]["offered"] == 4.0  # a rate, not a sum
    assert len(json.dumps(points)) < 150 * MAX_POINTS
    width, points = timeline.points(max_points=1000)
    assert width == 1 and len(points) == 300
    with pytest.raises(ValueError):
        timeline.points(max_points=0)


def _run(shape: list[tuple[int, int, int]]) -> list[Second]:
    timeline = Timeline()
    for t, (offered, successes, attempts) in enumerate(shape):
        _steady(timeline, t, offered, successes, attempts)
    return timeline.seconds


def test_a_storm_that_never_recovers() -> None:
    # 10/s offered; trigger at [2, 4); after it, retries keep goodput near zero.
    seconds = _run([(10, 10, 10)] * 2 + [(10, 0, 30)] * 2 + [(10, 1, 30)] * 6)
    figures = storm_figures(seconds, 2.0, 4.0)
    assert figures.trigger_amplification == pytest.approx(3.0)
    assert figures.goodput_during == 0.0
    assert figures.goodput_after == pytest.approx(0.1)
    assert figures.recovery_s is None and not figures.recovered
    assert figures.amplification == pytest.approx((20 + 60 + 180) / 100)
    assert figures.to_report()["recovered"] is False
    assert "recoverySeconds" not in figures.to_report()


def test_recovery_is_the_first_of_three_good_seconds_after_the_trigger() -> None:
    # After the trigger: one bad second, a good one, a bad one, then three good: recovery at 3.
    tail = [(10, 2, 20), (10, 10, 10), (10, 5, 12)] + [(10, 10, 10)] * 3 + [(10, 9, 10)]
    seconds = _run([(10, 10, 10)] * 2 + [(10, 0, 20)] * 2 + tail)
    figures = storm_figures(seconds, 2.0, 4.0)
    assert figures.recovery_s == 3
    assert figures.to_report()["recoverySeconds"] == 3


def test_without_a_trigger_only_amplification_is_measured() -> None:
    figures = storm_figures(_run([(10, 10, 11)] * 3), None, None)
    assert figures.amplification == pytest.approx(1.1)
    assert figures.goodput_during is None and figures.recovery_s is None


def test_merging_keeps_the_true_minimum_latency() -> None:
    # hdrh's add() into an empty histogram keeps its minimum at 0 for ever.
    a, b = Timeline(), Timeline()
    b.success(0.5, 40_000)
    b.success(0.6, 90_000)
    a.merge(b)
    assert 39_000 < a.seconds[0].latency.get_min_value() <= 40_000
    merged = Second()
    for row in Timeline.decode(b.encode()).seconds:
        merged.merge(row)
    assert 39_000 < merged.latency.get_min_value() <= 40_000
