"""The outbox: envelopes per CONTRACT §3; a gap-free ``seq`` across rollbacks and restarts."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from edge.clock import ManualClock, rfc3339
from edge.db import Database, Transaction, upgrade_to_head
from edge.db.tables import Compartment, Counter, OutboxEvent
from edge.outbox.store import Envelope, envelope_of

SITE = "outbox-site"
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def open_db(path: Path, clock: ManualClock | None = None) -> Database:
    db = Database(path, SITE, clock)
    upgrade_to_head(db.engine)
    return db


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "edge.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    database = open_db(db_path, ManualClock(datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)))
    yield database
    database.close()


def stored_seqs(path: Path) -> list[int]:
    """What another process would see: only committed rows."""
    raw = sqlite3.connect(path)
    try:
        return [row[0] for row in raw.execute("SELECT seq FROM outbox_event ORDER BY seq")]
    finally:
        raw.close()


def counter_value(path: Path) -> int:
    raw = sqlite3.connect(path)
    try:
        value: int = raw.execute("SELECT value FROM counter WHERE name='outbox_seq'").fetchone()[0]
        return value
    finally:
        raw.close()


def add_compartment(tx: Transaction, compartment_id: str) -> None:
    tx.session.add(
        Compartment(
            id=compartment_id,
            bus="main",
            board=1,
            lock=int(compartment_id[1:]),
            size="S",
            zone="ambient",
            state="free",
            updated_at=datetime.now(UTC),
        )
    )


async def test_envelope_has_the_contract_fields(db: Database) -> None:
    envelope = await db.transact(
        lambda tx: tx.emit("parcel.deposited", {"parcel_code": "PKG-1", "compartment": "A01"})
    )
    document = envelope.as_dict()
    assert list(document) == ["id", "seq", "type", "ts", "site", "data"]
    assert uuid.UUID(document["id"]).version == 4
    assert document["seq"] == 1 and isinstance(document["seq"], int)
    assert document["type"] == "parcel.deposited"
    assert document["ts"] == "2026-03-04T05:06:07.890Z"
    assert RFC3339_UTC.match(document["ts"])
    assert datetime.fromisoformat(document["ts"]).utcoffset() == timedelta(0)
    assert document["site"] == SITE
    assert document["data"] == {"parcel_code": "PKG-1", "compartment": "A01"}
    assert json.loads(json.dumps(document)) == document

    # What was stored is what was told: the publisher rebuilds the same envelope from the row.
    row = await db.read(lambda s: s.exec(select(OutboxEvent)).one())
    assert envelope_of(row, SITE) == envelope


def test_timestamps_are_utc_whatever_the_clock_zone() -> None:
    moment = datetime(2026, 6, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(moment) == "2026-06-01T12:00:00.123Z"


async def test_ids_are_unique(db: Database) -> None:
    def many(tx: Transaction) -> list[Envelope]:
        return [tx.emit("door.opened", {"n": n}) for n in range(200)]

    envelopes = await db.transact(many)
    assert len({e.id for e in envelopes}) == 200


async def test_seq_is_gap_free_across_transactions_and_restarts(db_path: Path) -> None:
    told: list[Envelope] = []
    for run in range(3):
        db = open_db(db_path)
        db.add_event_listener(told.extend)
        try:
            for n in range(20):

                def work(tx: Transaction, n: int = n, run: int = run) -> None:
                    # 0..3 events per transaction; some transactions emit nothing.
                    for i in range(n % 4):
                        tx.emit("door.closed", {"run": run, "n": n, "i": i})

                await db.transact(work)
        finally:
            db.close()
    expected = list(range(1, len(told) + 1))
    assert len(told) == 3 * sum(n % 4 for n in range(20))
    assert [e.seq for e in told] == expected
    assert stored_seqs(db_path) == expected
    assert counter_value(db_path) == len(told)


async def test_a_failed_transaction_takes_back_its_event_its_seq_and_its_change(
    db: Database, db_path: Path
) -> None:
    told: list[Envelope] = []
    db.add_event_listener(told.extend)
    first = await db.transact(lambda tx: tx.emit("compartment.enabled", {"n": 1}))

    def fails_after_emit(tx: Transaction) -> None:
        add_compartment(tx, "A01")
        tx.emit("compartment.enabled", {"n": 2})
        tx.emit("compartment.enabled", {"n": 3})
        raise RuntimeError("board said no")

    with pytest.raises(RuntimeError, match="board said no"):
        await db.transact(fails_after_emit)
    assert stored_seqs(db_path) == [1]
    assert counter_value(db_path) == 1
    assert await db.read(lambda s: s.get(Compartment, "A01")) is None
    assert told == [first]  # listeners never heard of the rolled-back events

    def succeeds(tx: Transaction) -> Envelope:
        add_compartment(tx, "A02")
        return tx.emit("compartment.enabled", {"n": 4})

    after = await db.transact(succeeds)
    assert after.seq == first.seq + 1
    assert stored_seqs(db_path) == [1, 2]
    assert await db.read(lambda s: s.get(Compartment, "A02")) is not None
    assert told == [first, after]


async def test_a_failed_synchronous_transaction_rolls_back_too(db: Database, db_path: Path) -> None:
    def fails(tx: Transaction) -> None:
        tx.emit("door.opened", {})
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        db.transact_sync(fails)
    assert stored_seqs(db_path) == []
    assert db.transact_sync(lambda tx: tx.emit("door.opened", {})).seq == 1


async def test_concurrent_transactions_get_unique_gap_free_seqs(
    db: Database, db_path: Path
) -> None:
    async def worker(n: int) -> list[int]:
        envelopes = await db.transact(
            lambda tx: [tx.emit("door.opened", {"task": n, "i": i}) for i in range(3)]
        )
        return [e.seq for e in envelopes]

    results = await asyncio.gather(*(worker(n) for n in range(50)))
    every = sorted(seq for seqs in results for seq in seqs)
    assert every == list(range(1, 151))
    for seqs in results:
        # One transaction's events are consecutive: nobody else's land in between.
        assert seqs == list(range(seqs[0], seqs[0] + 3))
    assert stored_seqs(db_path) == every


async def test_listeners_hear_only_after_commit(db: Database, db_path: Path) -> None:
    """A listener (the uplink) must never see an event that another reader cannot find yet."""
    visible_when_told: list[list[int]] = []

    def listener(envelopes: list[Envelope]) -> None:
        visible_when_told.append(stored_seqs(db_path))
        assert [e.seq for e in envelopes] == stored_seqs(db_path)[-len(envelopes) :]

    db.add_event_listener(listener)
    await db.transact(lambda tx: [tx.emit("door.opened", {}), tx.emit("door.closed", {})])
    assert visible_when_told == [[1, 2]]


async def test_listeners_are_told_in_seq_order_before_transact_returns(db: Database) -> None:
    told: list[int] = []
    db.add_event_listener(lambda envelopes: told.extend(e.seq for e in envelopes))

    async def one() -> tuple[int, list[int]]:
        envelope = await db.transact(lambda tx: tx.emit("door.opened", {}))
        return envelope.seq, list(told)

    for seq, seen in await asyncio.gather(*(one() for _ in range(20))):
        assert seq in seen
    assert told == list(range(1, 21))


async def test_a_failing_listener_does_not_stop_the_others(db: Database) -> None:
    told: list[Envelope] = []

    def broken(_envelopes: list[Envelope]) -> None:
        raise RuntimeError("listener bug")

    db.add_event_listener(broken)
    db.add_event_listener(told.extend)
    envelope = await db.transact(lambda tx: tx.emit("door.opened", {}))
    assert told == [envelope]


async def test_listeners_hear_of_a_commit_whose_caller_was_cancelled(db: Database) -> None:
    """Cancelling the caller cannot undo a commit already under way; it must still be told."""
    loop = asyncio.get_running_loop()
    heard: asyncio.Future[list[Envelope]] = loop.create_future()

    def listener(envelopes: list[Envelope]) -> None:
        if not heard.done():
            heard.set_result(envelopes)

    db.add_event_listener(listener)
    started, release = threading.Event(), threading.Event()

    def slow(tx: Transaction) -> Envelope:
        envelope = tx.emit("parcel.deposited", {"parcel_code": "PKG-9"})
        started.set()
        assert release.wait(10)
        return envelope

    caller = asyncio.create_task(db.transact(slow))
    assert await asyncio.to_thread(started.wait, 10)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    release.set()
    envelopes = await asyncio.wait_for(heard, 10)
    assert [e.data for e in envelopes] == [{"parcel_code": "PKG-9"}]
    # The next transaction continues the sequence.
    assert (await db.transact(lambda tx: tx.emit("door.opened", {}))).seq == 2


async def test_the_counter_is_the_only_source_of_seq(db: Database) -> None:
    """A restored or migrated database whose counter is ahead continues from the counter."""

    def bump(tx: Transaction) -> None:
        counter = tx.session.get(Counter, "outbox_seq")
        assert counter is not None
        counter.value = 41

    await db.transact(bump)
    envelope: Any = await db.transact(lambda tx: tx.emit("door.opened", {}))
    assert envelope.seq == 42
