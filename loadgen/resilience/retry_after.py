"""Read an HTTP ``Retry-After`` value as seconds to wait (RFC 9110 §10.2.3).

The value is either delay-seconds (``120``) or an HTTP-date (§5.6.7) in any of its three
forms, which a recipient must all accept: IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``),
the obsolete RFC 850 form (``Sunday, 06-Nov-94 08:49:37 GMT``) and asctime's
(``Sun Nov  6 08:49:37 1994``). Anything else is garbage and reads as None: a client that
cannot read the hint falls back to its own backoff rather than fail the request.

The wait is capped, because the header is the server's word and a client that waits an
hour on it stalls the run; a date in the past reads as no wait.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["RETRY_AFTER_CAP_S", "parse_retry_after"]

RETRY_AFTER_CAP_S = 60.0

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
_MONTH = "(" + "|".join(_MONTHS) + ")"
_DAY = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_LONG_DAY = "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_TIME = "([0-9]{2}):([0-9]{2}):([0-9]{2})"
# HTTP-date is case-sensitive (§5.6.7), hence no IGNORECASE; ASCII keeps other digits out.
_IMF_FIXDATE = re.compile(rf"{_DAY}, ([0-9]{{2}}) {_MONTH} ([0-9]{{4}}) {_TIME} GMT", re.ASCII)
_RFC850_DATE = re.compile(rf"{_LONG_DAY}, ([0-9]{{2}})-{_MONTH}-([0-9]{{2}}) {_TIME} GMT", re.ASCII)
_ASCTIME_DATE = re.compile(rf"{_DAY} {_MONTH} ([0-9 ][0-9]) {_TIME} ([0-9]{{4}})", re.ASCII)
_DELAY_SECONDS = re.compile(r"[0-9]+", re.ASCII)
# More digits than this is longer than any cap; int() is not asked to read thousands of them.
_MAX_DELAY_DIGITS = 12


def parse_retry_after(
    value: str | None,
    *,
    now: Callable[[], float],
    cap_s: float = RETRY_AFTER_CAP_S,
) -> float | None:
    """Seconds a ``Retry-After`` value asks to wait, at most ``cap_s``; None if unreadable.

    ``now`` gives wall-clock seconds since the epoch (``time.time``) and is read only for
    an HTTP-date.
    """
    if (
        isinstance(cap_s, bool)
        or not isinstance(cap_s, int | float)
        or not math.isfinite(cap_s)
        or cap_s < 0
    ):
        raise ValueError(f"cap_s must be a number >= 0, got {cap_s!r}")
    if value is None:
        return None
    # Field values arrive without their surrounding whitespace (SP / HTAB), but be lenient.
    text = value.strip(" \t")
    if _DELAY_SECONDS.fullmatch(text):
        if len(text.lstrip("0")) > _MAX_DELAY_DIGITS:
            return float(cap_s)
        return min(float(int(text)), float(cap_s))
    at = _http_date(text, now)
    if at is None:
        return None
    return min(max(0.0, at - now()), float(cap_s))


def _http_date(text: str, now: Callable[[], float]) -> float | None:
    """Seconds since the epoch of an HTTP-date, or None if ``text`` is not one."""
    if match := _IMF_FIXDATE.fullmatch(text):
        day, month, year, hour, minute, second = match.groups()
        return _epoch(int(year), month, day, hour, minute, second)
    if match := _ASCTIME_DATE.fullmatch(text):
        month, day, hour, minute, second, year = match.groups()
        return _epoch(int(year), month, day.strip(), hour, minute, second)
    if match := _RFC850_DATE.fullmatch(text):
        day, month, short_year, hour, minute, second = match.groups()
        # RFC 9110: a two-digit year more than 50 years ahead is the most recent past year
        # with those digits.
        this_year = datetime.fromtimestamp(now(), UTC).year
        year = this_year - this_year % 100 + int(short_year)
        if year > this_year + 50:
            year -= 100
        return _epoch(year, month, day, hour, minute, second)
    return None


def _epoch(year: int, month: str, day: str, hour: str, minute: str, second: str) -> float | None:
    try:
        # Built from second 0 and added on, so a leap second (60, allowed by §5.6.7) reads as
        # the next minute's first instead of an invalid date.
        minute_start = datetime(year, _MONTHS[month], int(day), int(hour), int(minute), tzinfo=UTC)
    except ValueError:
        return None
    seconds = int(second)
    if seconds > 60:
        return None
    return (minute_start + timedelta(seconds=seconds)).timestamp()
