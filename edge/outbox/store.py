"""Appending events to the outbox, with a gap-free per-site ``seq``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
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
    """The undelivered backlog is at its cap and the configured policy is ``refuse_new``."""

    def __init__(self) -> None:
        super().__init__(
            "the site cannot record more events until the upstream link delivers its backlog"
        )


class OutboxWriter:
    def __init__(self, site: str, clock: Clock) -> None:
        self.site = site
        self.clock = clock
        self.refuse_after_seq: int | None = None
        """Set by the retention keeper under ``refuse_new``: no event beyond this ``seq``."""

    def append(self, session: Session, type_: str, data: dict[str, Any]) -> Envelope:
        # The counter row is bumped inside the caller's transaction: a rollback takes the number
        # back with the event, so consumers never see a gap.
        seq = session.execute(
            text("UPDATE counter SET value = value + 1 WHERE name = :name RETURNING value"),
            {"name": SEQ_COUNTER},
        ).scalar_one()
        if self.refuse_after_seq is not None and seq > self.refuse_after_seq:
            raise OutboxFull()  # the whole transaction rolls back: the change is refused
        envelope = Envelope(
            id=str(uuid.uuid4()),
            seq=int(seq),
            type=type_,
            ts=rfc3339(self.clock.now()),
            site=self.site,
            data=data,
        )
        session.add(
            OutboxEvent(
                seq=envelope.seq,
                id=envelope.id,
                type=envelope.type,
                ts=envelope.ts,
                data=envelope.data,
            )
        )
        return envelope


def envelope_of(row: OutboxEvent, site: str) -> Envelope:
    return Envelope(id=row.id, seq=row.seq, type=row.type, ts=row.ts, site=site, data=row.data)
