"""Appending events to the outbox, with a gap-free per-site ``seq``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, text
from sqlmodel import Session

from edge.clock import Clock, rfc3339
from edge.db.tables import OutboxEvent
from edge.outbox.cursor import SEQ_COUNTER


@dataclass(frozen=True)
class Envelope:
    """The event envelope of CONTRACT.md §3."""

    id: str
    seq: int
    type: str
    ts: str
    site: str
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seq": self.seq,
            "type": self.type,
            "ts": self.ts,
            "site": self.site,
            "data": self.data,
        }


class OutboxFull(RuntimeError):
    """New work refused: the undelivered backlog is at its cap under ``refuse_new``.

    Raised only by ``OutboxWriter.admit_new_work``, before anything has moved; events that
    record what already happened are always written (see ``admit_new_work``).
    """

    def __init__(self) -> None:
        super().__init__(
            "the site takes no new work until the upstream link delivers its backlog of events"
        )


class OutboxWriter:
    def __init__(self, site: str, clock: Clock) -> None:
        self.site = site
        self.clock = clock
        self.refuse_after_seq: int | None = None
        """Set by the retention keeper under ``refuse_new`` (None otherwise): new work is
        admitted only while its first event would get a ``seq`` up to this one."""

    def admit_new_work(self, session: Session) -> None:
        """Raise ``OutboxFull`` if the backlog is at its cap under ``refuse_new``.

        Called in the transaction that begins new customer or courier work (a deposit, a
        pickup, a courier's return), before any door is commanded: refusing then leaves
        nothing half done. ``append`` itself never refuses: an event that reports what
        already happened (a door closing on a pickup under way, a device going offline, the
        answer to a command) must be recorded, or the database would disagree with reality.
        So the cap is exceeded by the events of work admitted before it was reached.
        """
        limit = self.refuse_after_seq
        if limit is not None and self._pending(session).next_seq > limit:
            raise OutboxFull()  # the caller's transaction rolls back: nothing was recorded

    def append(self, session: Session, type_: str, data: dict[str, Any]) -> Envelope:
        """Number an event and queue it for the transaction's ``flush``."""
        pending = self._pending(session)
        seq = pending.next_seq
        pending.next_seq += 1
        envelope = Envelope(
            id=str(uuid.uuid4()),
            seq=seq,
            type=type_,
            ts=rfc3339(self.clock.now()),
            site=self.site,
            data=data,
        )
        pending.rows.append(
            {"seq": seq, "id": envelope.id, "type": type_, "ts": envelope.ts, "data": data}
        )
        return envelope

    def _pending(self, session: Session) -> PendingEvents:
        pending: PendingEvents | None = session.info.get(_PENDING)
        if pending is None:
            current = session.execute(
                text("SELECT value FROM counter WHERE name = :name"), {"name": SEQ_COUNTER}
            ).scalar_one()
            pending = session.info[_PENDING] = PendingEvents(next_seq=int(current) + 1)
        return pending

    def flush(self, session: Session) -> None:
        """Write the queued events and the counter, inside the caller's transaction.

        The counter moves in the same transaction as the events: a rollback takes the numbers
        back with them, so consumers never see a gap.
        """
        pending: PendingEvents | None = session.info.pop(_PENDING, None)
        if pending is None or not pending.rows:
            return
        session.execute(insert(OutboxEvent), pending.rows)
        session.execute(
            text("UPDATE counter SET value = :value WHERE name = :name"),
            {"value": pending.next_seq - 1, "name": SEQ_COUNTER},
        )


@dataclass
class PendingEvents:
    next_seq: int
    rows: list[dict[str, Any]] = field(default_factory=list)


_PENDING = "edge.outbox.pending"


def envelope_of(row: OutboxEvent, site: str) -> Envelope:
    return Envelope(id=row.id, seq=row.seq, type=row.type, ts=row.ts, site=site, data=row.data)
