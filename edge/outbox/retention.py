"""Keeping the outbox within its disk budget.

Delivered events are pruned once older than the retention age. Undelivered events (the
backlog of a site that has been offline) are measured against ``max_backlog_mb``: an alarm
event and a metric go up at ``backlog_alarm_ratio`` of the cap, long before the cap, and at the
cap the configured policy applies: ``drop_oldest`` deletes the oldest undelivered events and
records the range in ``outbox.truncated``; ``refuse_new`` drops nothing and has the writer
refuse new customer and courier work (``OutboxWriter.admit_new_work``), while events of work
already under way are still written.

The backlog size is kept incrementally: each check reads only the events written since the
last one and those the cursor passed since, so a large backlog does not mean a large scan.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
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
# What one row counts for (the stored fields and ROW_OVERHEAD); both queries count the same.
_SUM_BETWEEN = (
    "SELECT COALESCE(SUM(LENGTH(data) + LENGTH(type) + LENGTH(id) + LENGTH(ts) + :overhead), 0) "
    "FROM outbox_event WHERE seq > :after AND seq <= :through"
)
_EACH_AFTER = (
    "SELECT seq, LENGTH(data) + LENGTH(type) + LENGTH(id) + LENGTH(ts) + :overhead "
    "FROM outbox_event WHERE seq > :after ORDER BY seq"
)
BACKLOG_HIGH = "outbox.backlog_high"
BACKLOG_OK = "outbox.backlog_ok"


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
        text(_SUM_BETWEEN),
        {"after": after, "through": through, "overhead": ROW_OVERHEAD},
    ).scalar_one()
    return int(value)


class OutboxKeeper:
    """Measures the backlog, raises and clears its alarm, applies the cap, prunes.

    ``backlog`` is the state as of the last committed check: each check works on a copy inside
    its transaction and publishes it only once that has committed, so a failed commit (a full
    disk, say) cannot leave the count, the cursor it belongs to or the alarm flag ahead of the
    database. Checks and prune chunks take turns (``_turn``): each starts from the state the
    previous one committed.
    """

    def __init__(self, config: OutboxConfig, db: Database, clock: Clock) -> None:
        self.config = config
        self.db = db
        self.clock = clock
        self.backlog = Backlog()
        self.cap_bytes = int(config.max_backlog_mb * 1024 * 1024)
        self._measured = False
        """Whether ``backlog`` holds a committed measurement (else the first check counts all)."""
        self._turn = asyncio.Lock()

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
        """Bring the backlog size up to date; alarm, trim or limit as the policy says.

        One transaction: the size, the trim and the alarm see the same cursor, so a trim never
        drops events the broker acknowledged in the meantime (nor reports them lost).
        """
        async with self._turn:
            self.backlog = await self.db.transact(self._check)
            self._measured = True
            self._limit_writer()
        return self.backlog

    def _check(self, tx: Transaction) -> Backlog:
        b = replace(self.backlog)
        self._measure(tx.session, b)
        if self.config.when_full == "drop_oldest" and b.bytes > self.cap_bytes:
            self._drop_oldest(tx, b)
        self._alarm(tx, b)
        return b

    def _measure(self, session: Session, b: Backlog) -> None:
        position = cursor.position(session)
        if not self._measured:
            # Count everything after the cursor, once. What upstream was last told about the
            # backlog is in the outbox itself: a restart neither repeats nor forgets an alarm.
            b.acked = b.last = position.acked
            b.bytes = 0
            b.alarmed = _last_alarm_was_high(session)
        acked, last = position.acked, max(position.last, position.acked)
        if acked > b.acked:
            # Events the cursor passed since the last check were counted in; take them out.
            b.bytes -= _bytes_between(session, b.acked, min(acked, b.last))
        elif acked < b.acked:
            # Rewound for a replay: what will be sent again is pending again.
            b.bytes += _bytes_between(session, acked, b.acked)
        b.bytes += _bytes_between(session, max(b.last, acked), last)
        b.acked, b.last = acked, last
        b.bytes = max(b.bytes, 0)

    def _drop_oldest(self, tx: Transaction, b: Backlog) -> None:
        """Delete the oldest undelivered events down to ``TRIM_TO_RATIO`` of the cap, move the
        cursor past them and record the range; right after ``_measure``, in its transaction."""
        session = tx.session
        excess = b.bytes - int(self.cap_bytes * TRIM_TO_RATIO)
        rows = session.execute(text(_EACH_AFTER), {"after": b.acked, "overhead": ROW_OVERHEAD})
        dropped, first, through = 0, None, b.acked
        for seq, size in rows:
            if dropped >= excess:
                break
            dropped += int(size)
            first = int(seq) if first is None else first
            through = int(seq)
        rows.close()
        if first is None:
            return
        deleted = session.execute(
            text("DELETE FROM outbox_event WHERE seq > :acked AND seq <= :through"),
            {"acked": b.acked, "through": through},
        )
        count = int(deleted.rowcount)  # type: ignore[attr-defined]
        cursor.mark_acked(session, through)
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
        b.bytes = max(b.bytes - dropped, 0)
        b.acked = through
        log.error(
            "outbox over its cap: oldest undelivered events dropped",
            extra={"first_seq": first, "last_seq": through, "count": count},
        )

    def _alarm(self, tx: Transaction, b: Backlog) -> None:
        data = {"pending": b.pending, "bytes": b.bytes, "cap_bytes": self.cap_bytes}
        if not b.alarmed and b.bytes >= self.alarm_bytes:
            b.alarmed = True
            tx.emit(BACKLOG_HIGH, data)
            log.warning("outbox backlog high", extra=data)
        elif b.alarmed and b.bytes < self.alarm_bytes * ALARM_CLEAR_RATIO:
            b.alarmed = False
            tx.emit(BACKLOG_OK, data)
            log.info("outbox backlog back to normal", extra=data)

    def _limit_writer(self) -> None:
        """Under ``refuse_new``, how far new work may go (``OutboxWriter.admit_new_work``).

        The headroom left under the cap, in events of the backlog's average size; none at or
        over the cap. Set after every check, so a refusal ends with the first check after the
        backlog has drained below the cap.
        """
        if self.config.when_full != "refuse_new":
            self.db.outbox.refuse_after_seq = None
            return
        b = self.backlog
        average = b.bytes // b.pending if b.pending else 1024
        headroom = max(0, self.cap_bytes - b.bytes) // max(average, 1)
        self.db.outbox.refuse_after_seq = b.last + headroom

    async def prune(self) -> int:
        """Delete delivered events older than the retention age, in chunks (a transaction
        each, so that other writers wait for one chunk at most)."""
        cutoff = rfc3339(self.clock.now() - timedelta(hours=self.config.delivered_retention_h))
        total = 0
        while True:
            async with self._turn:
                deleted = await self.db.transact(lambda tx: self._prune_chunk(tx.session, cutoff))
                self.backlog.pruned_events += deleted
            total += deleted
            if deleted < PRUNE_CHUNK:
                break
        if total:
            log.info("delivered events pruned", extra={"count": total, "older_than": cutoff})
        return total

    def _prune_chunk(self, session: Session, cutoff: str) -> int:
        # Delivered: at or below the cursor as it is now (a replay may have moved it back since
        # the last check), and at or below the cursor of the last check (the count still holds
        # the events after that one, so deleting them would put it out).
        through = cursor.position(session).acked
        if self._measured:
            through = min(through, self.backlog.acked)
        # Seq order is time order (but for clock steps), so the oldest go first.
        result = session.execute(
            text(
                "DELETE FROM outbox_event WHERE seq IN (SELECT seq FROM outbox_event "
                "WHERE seq <= :through AND ts < :cutoff ORDER BY seq LIMIT :chunk)"
            ),
            {"through": through, "cutoff": cutoff, "chunk": PRUNE_CHUNK},
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def _last_alarm_was_high(session: Session) -> bool:
    """Whether the last backlog alarm in the outbox is a ``backlog_high`` not yet cleared."""
    last = session.execute(
        text("SELECT type FROM outbox_event WHERE type IN (:high, :ok) ORDER BY seq DESC LIMIT 1"),
        {"high": BACKLOG_HIGH, "ok": BACKLOG_OK},
    ).scalar_one_or_none()
    return last == BACKLOG_HIGH
