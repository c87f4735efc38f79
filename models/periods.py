"""Telemetry periods: minute, hour, day and month buckets in UTC, and their `sKey` names."""

from __future__ import annotations

from datetime import UTC, datetime

RESOLUTIONS = ("minute", "hour", "day", "month")
PARENT = {"minute": "hour", "hour": "day", "day": "month"}
SKEY_FORMATS = {
    "minute": "%Y-%m-%d-%H-%M",
    "hour": "%Y-%m-%d-%H",
    "day": "%Y-%m-%d",
    "month": "%Y-%m",
}
FIXED_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def period_start(epoch: float, resolution: str) -> int:
    """The start (epoch seconds) of the `resolution` period holding `epoch`."""
    if resolution in FIXED_SECONDS:
        size = FIXED_SECONDS[resolution]
        return int(epoch // size * size)
    moment = datetime.fromtimestamp(epoch, UTC)
    return int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp())


def period_end(start: int, resolution: str) -> int:
    """The start of the period after the one starting at `start`."""
    if resolution in FIXED_SECONDS:
        return start + FIXED_SECONDS[resolution]
    moment = datetime.fromtimestamp(start, UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


def skey(start: int, resolution: str) -> str:
    """`2025-09-10-02` for the hour starting at 2025-09-10T02:00Z (seed 000's time keys)."""
    return datetime.fromtimestamp(start, UTC).strftime(SKEY_FORMATS[resolution])


POINT_SECONDS = 10  # metrics history: one point per proxy per 10 s window (seed 004)


def point_time(epoch: float) -> int:
    """The `capturedAt` (epoch s) of the metrics point whose window holds `epoch`: its end."""
    return (int(epoch) // POINT_SECONDS + 1) * POINT_SECONDS
