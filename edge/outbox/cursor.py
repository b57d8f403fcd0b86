"""Reading the outbox for delivery, and the cursor that says how far the broker acknowledged.

Batches are read with plain SQL and assembled from the stored JSON text: the drain of a large
backlog is bound by this code, and re-parsing every event only to serialise it again would
halve its rate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session

ACKED_COUNTER = "outbox_acked"
SEQ_COUNTER = "outbox_seq"

# Envelope text around the stored fields; json.dumps quotes the strings.
_ENVELOPE = '{{"id":{id},"seq":{seq},"type":{type},"ts":{ts},"site":{site},"data":{data}}}'


@dataclass(frozen=True)
class Batch:
    """Consecutive events as one ``events`` message: a JSON array of envelopes."""

    first_seq: int
    last_seq: int
    payload: bytes

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1


@dataclass(frozen=True)
class Position:
    acked: int
    """Highest ``seq`` the broker acknowledged."""
    last: int
    """Highest ``seq`` written."""

    @property
    def pending(self) -> int:
        return self.last - self.acked


def position(session: Session) -> Position:
    rows = dict(
        session.execute(
            text("SELECT name, value FROM counter WHERE name IN (:acked, :seq)"),
            {"acked": ACKED_COUNTER, "seq": SEQ_COUNTER},
        ).all()
    )
    return Position(acked=int(rows[ACKED_COUNTER]), last=int(rows[SEQ_COUNTER]))


def oldest_pending_ts(session: Session, acked: int) -> str | None:
    """When the oldest event not yet delivered was written (its ``ts``), or None if none waits."""
    ts: str | None = session.execute(
        text("SELECT ts FROM outbox_event WHERE seq > :acked ORDER BY seq LIMIT 1"),
        {"acked": acked},
    ).scalar()
    return ts


def read_batches(
    session: Session,
    site: str,
    after_seq: int,
    *,
    max_events: int,
    max_bytes: int,
    max_batches: int = 1,
) -> list[Batch]:
    """Up to ``max_batches`` messages of consecutive events after ``after_seq``.

    Each holds at most ``max_events`` envelopes and ``max_bytes`` of payload; a single event
    larger than ``max_bytes`` still goes alone (the writer bounds event size, not this reader).
    """
    rows = session.execute(
        text(
            "SELECT seq, id, type, ts, data FROM outbox_event WHERE seq > :after "
            "ORDER BY seq LIMIT :limit"
        ),
        {"after": after_seq, "limit": max_events * max_batches},
    ).all()
    site_json = json.dumps(site)
    batches: list[Batch] = []
    parts: list[str] = []
    size = 2  # the brackets
    first = expected = after_seq + 1
    for seq, id_, type_, ts, data in rows:
        if seq != expected:
            break  # a hole would mean a pruned or truncated range: never publish across it
        envelope = _ENVELOPE.format(
            id=json.dumps(id_),
            seq=seq,
            type=json.dumps(type_),
            ts=json.dumps(ts),
            site=site_json,
            data=data,
        )
        grown = size + len(envelope.encode()) + (1 if parts else 0)
        if parts and (len(parts) >= max_events or grown > max_bytes):
            batches.append(_batch(first, expected - 1, parts))
            if len(batches) == max_batches:
                return batches
            parts, size, first = [], 2, seq
            grown = size + len(envelope.encode())
        parts.append(envelope)
        size = grown
        expected = seq + 1
    if parts:
        batches.append(_batch(first, expected - 1, parts))
    return batches


def _batch(first: int, last: int, parts: list[str]) -> Batch:
    return Batch(first_seq=first, last_seq=last, payload=("[" + ",".join(parts) + "]").encode())


def mark_acked(session: Session, through_seq: int) -> None:
    """Move the cursor forward (never back: a late acknowledgement changes nothing)."""
    session.execute(
        text("UPDATE counter SET value = :seq WHERE name = :name AND value < :seq"),
        {"seq": through_seq, "name": ACKED_COUNTER},
    )


def rewind(session: Session, to_seq: int) -> None:
    """Move the cursor back to ``to_seq`` (never forward), so what follows is sent again."""
    session.execute(
        text("UPDATE counter SET value = :seq WHERE name = :name AND value > :seq"),
        {"seq": max(to_seq, 0), "name": ACKED_COUNTER},
    )


def earliest_retained(session: Session) -> int | None:
    value = session.execute(text("SELECT MIN(seq) FROM outbox_event")).scalar_one()
    return None if value is None else int(value)


def next_seq_after(session: Session, after_seq: int) -> int | None:
    value = session.execute(
        text("SELECT MIN(seq) FROM outbox_event WHERE seq > :after"), {"after": after_seq}
    ).scalar_one()
    return None if value is None else int(value)
