"""Keeping the outbox within its disk budget.

Delivered events are pruned once older than the retention age. Undelivered events (the
backlog of a site that has been offline) are measured against ``max_backlog_mb``: an alarm
event and a metric go up at ``backlog_alarm_ratio`` of the cap, long before the cap, and at the
cap the configured policy applies (``drop_oldest`` or ``refuse_new``, see OutboxConfig).

The backlog size is kept incrementally: each check reads only the events written since the
last one and those the cursor passed since, so a large backlog does not mean a large scan.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import text
from sqlmodel import Session

from edge.clock import Clock, rfc3339
from edge.config.sync import OutboxConfig
from edge.db import Database, Transaction
from edge.outbox import cursor

log = logging.getLogger(__name__)

# Per-row bytes beyond the stored fields (keys, index entries): an estimate, on the safe side.
ROW_OVERHEAD = 64
# Below this share of the alarm threshold the alarm clears (no flapping around the line).
ALARM_CLEAR_RATIO = 0.8
# drop_oldest trims to this share of the cap, so it does not run again on the next event.
TRIM_TO_RATIO = 0.9
PRUNE_CHUNK = 5000


@dataclass
class Backlog:
    acked: int = 0
    """The cursor when ``bytes`` was last brought up to date."""
    last: int = 0
    bytes: int = 0
    alarmed: bool = False
    truncated_events: int = 0
    pruned_events: int = 0

    @property
    def pending(self) -> int:
        return self.last - self.acked


def _bytes_between(session: Session, after: int, through: int) -> int:
    if through <= after:
        return 0
    value = session.execute(
        text(
            "SELECT COALESCE(SUM(LENGTH(data) + LENGTH(type) + LENGTH(id) + LENGTH(ts)), 0) "
            "+ COUNT(*) * :overhead FROM outbox_event WHERE seq > :after AND seq <= :through"
        ),
        {"after": after, "through": through, "overhead": ROW_OVERHEAD},
    ).scalar_one()
    return int(value)


class OutboxKeeper:
    def __init__(self, config: OutboxConfig, db: Database, clock: Clock) -> None:
        self.config = config
        self.db = db
        self.clock = clock
        self.backlog = Backlog()
        self.cap_bytes = int(config.max_backlog_mb * 1024 * 1024)
        self._measured = False

    @property
    def alarm_bytes(self) -> int:
        return int(self.cap_bytes * self.config.backlog_alarm_ratio)

    async def run_forever(self, check_interval_s: float = 10.0) -> None:
        next_prune = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await self.check()
            if loop.time() >= next_prune:
                await self.prune()
                next_prune = loop.time() + self.config.prune_interval_s
            await asyncio.sleep(check_interval_s)

    async def check(self) -> Backlog:
        """Bring the backlog size up to date; alarm, trim or limit as the policy says."""
        await self.db.transact(self._measure)
        if self.backlog.bytes > self.cap_bytes and self.config.when_full == "drop_oldest":
            await self.db.transact(self._drop_oldest)
        await self.db.transact(self._alarm)
        self._limit_writer()
        return self.backlog

    def _measure(self, tx: Transaction) -> None:
        session, b = tx.session, self.backlog
        position = cursor.position(session)
        if not self._measured:
            b.acked = b.last = position.acked
            self._measured = True
        # Events the cursor passed since the last check were counted in; take them out.
        b.bytes -= _bytes_between(session, b.acked, min(position.acked, b.last))
        b.bytes += _bytes_between(session, max(b.last, position.acked), position.last)
        b.acked, b.last = position.acked, max(position.last, position.acked)
        b.bytes = max(b.bytes, 0)

    def _drop_oldest(self, tx: Transaction) -> None:
        session, b = tx.session, self.backlog
        excess = b.bytes - int(self.cap_bytes * TRIM_TO_RATIO)
        rows = session.execute(
            text(
                "SELECT seq, LENGTH(data) + LENGTH(type) + LENGTH(id) + LENGTH(ts) "
                "FROM outbox_event WHERE seq > :acked ORDER BY seq"
            ),
            {"acked": b.acked},
        )
        dropped, through = 0, b.acked
        for seq, size in rows:
            if dropped >= excess:
                break
            dropped += int(size) + ROW_OVERHEAD
            through = int(seq)
        rows.close()
        if through <= b.acked:
            return
        first = b.acked + 1
        session.execute(
            text("DELETE FROM outbox_event WHERE seq > :acked AND seq <= :through"),
            {"acked": b.acked, "through": through},
        )
        cursor.mark_acked(session, through)
        count = through - first + 1
        tx.emit(
            "outbox.truncated",
            {
                "first_seq": first,
                "last_seq": through,
                "count": count,
                "reason": f"undelivered backlog passed its cap of {self.cap_bytes} bytes",
            },
        )
        b.truncated_events += count
        b.bytes -= dropped
        b.acked = through
        log.error(
            "outbox over its cap: oldest undelivered events dropped",
            extra={"first_seq": first, "last_seq": through, "count": count},
        )

    def _alarm(self, tx: Transaction) -> None:
        b = self.backlog
        data = {"pending": b.pending, "bytes": b.bytes, "cap_bytes": self.cap_bytes}
        if not b.alarmed and b.bytes >= self.alarm_bytes:
            b.alarmed = True
            tx.emit("outbox.backlog_high", data)
            log.warning("outbox backlog high", extra=data)
        elif b.alarmed and b.bytes < self.alarm_bytes * ALARM_CLEAR_RATIO:
            b.alarmed = False
            tx.emit("outbox.backlog_ok", data)
            log.info("outbox backlog back to normal", extra=data)

    def _limit_writer(self) -> None:
        if self.config.when_full != "refuse_new":
            self.db.outbox.refuse_after_seq = None
            return
        b = self.backlog
        average = b.bytes // b.pending if b.pending else 1024
        headroom = max(0, self.cap_bytes - b.bytes) // max(average, 1)
        self.db.outbox.refuse_after_seq = b.last + headroom

    async def prune(self) -> int:
        """Delete delivered events older than the retention age, in chunks."""
        cutoff = rfc3339(self.clock.now() - timedelta(hours=self.config.delivered_retention_h))
        through = self.backlog.acked if self._measured else 0
        total = 0
        while True:
            deleted = await self.db.transact(lambda tx: _prune_chunk(tx.session, through, cutoff))
            total += deleted
            if deleted < PRUNE_CHUNK:
                break
        if total:
            self.backlog.pruned_events += total
            log.info("delivered events pruned", extra={"count": total, "older_than": cutoff})
        return total


def _prune_chunk(session: Session, through: int, cutoff: str) -> int:
    # Only events the cursor has passed; seq order is time order, so the oldest go first.
    result = session.execute(
        text(
            "DELETE FROM outbox_event WHERE seq IN (SELECT seq FROM outbox_event "
            "WHERE seq <= :through AND ts < :cutoff ORDER BY seq LIMIT :chunk)"
        ),
        {"through": through, "cutoff": cutoff, "chunk": PRUNE_CHUNK},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
