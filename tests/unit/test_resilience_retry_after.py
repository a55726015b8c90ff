"""Retry-After values (RFC 9110 §10.2.3): delay-seconds, the three HTTP-date forms, garbage."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loadgen.resilience.retry_after import RETRY_AFTER_CAP_S, parse_retry_after

# The wall clock the dates below are read against: 1994-11-06 08:49:00 UTC.
NOW = datetime(1994, 11, 6, 8, 49, 0, tzinfo=UTC).timestamp()


def now() -> float:
    return NOW


def unused_clock() -> float:
    raise AssertionError("delay-seconds need no clock")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("7", 7.0),
        ("45", 45.0),
        (" 3\t", 3.0),
        ("007", 7.0),
        ("9" * 5000, RETRY_AFTER_CAP_S),
    ],
)
def test_delay_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=unused_clock) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850
        "Sun Nov  6 08:49:37 1994",  # asctime
    ],
)
def test_every_http_date_form_reads_as_the_time_until_it(value: str) -> None:
    assert parse_retry_after(value, now=now) == pytest.approx(37.0)


def test_a_date_in_the_past_means_no_wait() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now=now) == 0.0


def test_a_leap_second_is_the_next_minutes_first() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:60 GMT", now=now) == pytest.approx(60.0)


def test_waits_are_capped() -> None:
    assert parse_retry_after("3600", now=now, cap_s=30.0) == 30.0
    assert parse_retry_after("Mon, 07 Nov 1994 08:49:00 GMT", now=now, cap_s=30.0) == 30.0
    assert parse_retry_after("3600", now=now) == RETRY_AFTER_CAP_S


def test_a_two_digit_year_more_than_50_years_ahead_is_in_the_past() -> None:
    # Read in 2030: "94" is 1994 (2094 is more than 50 years ahead), "40" is 2040.
    in_2030 = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    assert parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now=lambda: in_2030) == 0.0
    wait = parse_retry_after("Monday, 01-Jan-40 00:00:00 GMT", now=lambda: in_2030, cap_s=1e12)
    assert wait == pytest.approx(datetime(2040, 1, 1, tzinfo=UTC).timestamp() - in_2030)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "soon",
        "-5",
        "+5",
        "1.5",
        "1e3",
        "٣",  # an Arabic-Indic digit is not a DIGIT
        "Sun, 06 Nov 1994 08:49:37 UTC",  # HTTP-date is GMT
        "sun, 06 nov 1994 08:49:37 GMT",  # and case-sensitive
        "Sun, 6 Nov 1994 08:49:37 GMT",  # IMF-fixdate's day has two digits
        "Sun, 31 Feb 1994 08:49:37 GMT",  # no such day
        "Sun, 06 Nov 1994 25:00:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT trailing",
        "Sun Nov 6 08:49:37 1994",  # asctime pads the day with a space
    ],
)
def test_garbage_reads_as_none(value: str | None) -> None:
    assert parse_retry_after(value, now=now) is None


@pytest.mark.parametrize("cap_s", [-1.0, float("nan"), float("inf")])
def test_a_bad_cap_is_refused(cap_s: float) -> None:
    with pytest.raises(ValueError, match=r"^cap_s "):
        parse_retry_after("5", now=now, cap_s=cap_s)
