"""Temperature history for the operator console: readings folded into one row per minute.

A minute is written when its first later reading arrives (or at a stop), so the database sees
one small write per sensor and minute whatever the poll interval. Rows older than ``KEEP`` go.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, delete, select

from edge.clock import Clock, as_utc, rfc3339
from edge.db import Database, Transaction
from edge.db.tables import TemperatureMinute

KEEP = timedelta(days=7)
PRUNE_EVERY = timedelta(hours=1)


@dataclass
class _Minute:
    start: datetime
    zone: str
    low: float
    high: float
    total: float
    readings: int

    def add(self, celsius: float) -> None:
        self.low, self.high = min(self.low, celsius), max(self.high, celsius)
        self.total += celsius
        self.readings += 1

    def row(self, sensor: str) -> TemperatureMinute:
        return TemperatureMinute(
            sensor=sensor,
            minute=self.start,
            zone=self.zone,
            min_c=self.low,
            max_c=self.high,
            mean_c=round(self.total / self.readings, 2),
            readings=self.readings,
        )


class TemperatureHistory:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._open: dict[str, _Minute] = {}
        self._pruned_at: datetime | None = None

    async def record(self, sensor: str, zone: str, celsius: float) -> None:
        now = self.clock.now()
        start = now.replace(second=0, microsecond=0)
        current = self._open.get(sensor)
        if current is not None and current.start == start:
            current.add(celsius)
            return
        self._open[sensor] = _Minute(start, zone, celsius, celsius, celsius, 1)
        if current is not None:
            await self.db.transact(lambda tx: self._write(tx, [current.row(sensor)], now))

    async def flush(self) -> None:
        """Write the minutes still open (a stop): a restart loses no reading."""
        rows = [minute.row(sensor) for sensor, minute in self._open.items()]
        self._open.clear()
        if rows:
            await self.db.transact(lambda tx: self._write(tx, rows, self.clock.now()))

    def _write(self, tx: Transaction, rows: list[TemperatureMinute], now: datetime) -> None:
        for row in rows:
            tx.session.merge(row)  # a minute flushed at a stop, then read on after a quick restart
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            cutoff = now - KEEP
            tx.session.exec(delete(TemperatureMinute).where(col(TemperatureMinute.minute) < cutoff))
            self._pruned_at = now

    async def since(self, hours: float) -> dict[str, list[dict[str, Any]]]:
        """Each sensor's minutes over the last ``hours``, oldest first, the open minute last."""
        cutoff = self.clock.now() - timedelta(hours=hours)

        def load(s: Session) -> list[TemperatureMinute]:
            query = (
                select(TemperatureMinute)
                .where(col(TemperatureMinute.minute) >= cutoff)
                .order_by(col(TemperatureMinute.sensor), col(TemperatureMinute.minute))
            )
            return list(s.exec(query).all())

        rows = await self.db.read(load)
        for sensor, minute in self._open.items():
            if minute.start >= cutoff:
                rows.append(minute.row(sensor))
        series: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            series.setdefault(row.sensor, []).append(
                {
                    "t": rfc3339(as_utc(row.minute)),
                    "mean_c": row.mean_c,
                    "min_c": row.min_c,
                    "max_c": row.max_c,
                }
            )
        return series
