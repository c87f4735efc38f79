"""Counting windows aligned to UTC clock boundaries: minute, hour, day, calendar month.

The one place their bounds are computed: the data plane's counters
(addons/counters.py) and the Core API's usage read-outs both use it.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

WINDOWS = ("minute", "hour", "day", "month")
FIXED_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def window_bounds(window: str, now: float) -> tuple[int, int]:
    """The (start, end) epoch seconds of the `window` holding `now`."""
    if window == "month":
        return month_bounds(now)
    size = FIXED_SECONDS[window]
    start = int(now // size) * size
    return start, start + size


_last_month = (0, 0)  # the calendar month computed last: nearly every call asks for it again


def month_bounds(now: float) -> tuple[int, int]:
    """The (start, end) epoch seconds of the calendar month (UTC) holding `now`."""
    global _last_month
    start, end = last = _last_month
    if start <= now < end:
        return last
    moment = datetime.fromtimestamp(now, UTC)
    start = calendar.timegm((moment.year, moment.month, 1, 0, 0, 0))
    year, month = moment.year, moment.month + 1
    if month == 13:
        year, month = year + 1, 1
    _last_month = bounds = (start, calendar.timegm((year, month, 1, 0, 0, 0)))
    return bounds
