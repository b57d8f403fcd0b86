"""Time, in one place: aware UTC wall-clock for records, monotonic for timeouts."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import overload


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock(Clock):
    """A clock that moves only when told: lets tests cross a 24-hour expiry without waiting."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
        self._offset = 0.0

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._offset)

    def monotonic(self) -> float:
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """A datetime as it was stored: SQLite keeps UTC but hands it back without its zone."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def rfc3339(moment: datetime) -> str:
    """``2026-01-01T12:00:00.123Z``: RFC 3339 in UTC, as the contract's envelopes carry it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
