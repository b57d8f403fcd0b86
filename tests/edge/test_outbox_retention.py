"""Outbox retention: pruning, the incremental backlog size, its alarm, and the two cap policies.

The keeper runs against a real database with a ManualClock; the delivery cursor is moved with
``mark_acked`` / ``rewind``, as the uplink and ``sync.replay`` move it. No broker is needed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from edge.api.app import create_api
from edge.app import EdgeApp
from edge.clock import ManualClock
from edge.config.sync import OutboxConfig
from edge.db import Database, Transaction, upgrade_to_head
from edge.db.tables import Parcel
from edge.demo.site import COURIER_CREDENTIAL, COURIER_ID, KIOSK_TOKEN, SimulatedSite
from edge.outbox import cursor, retention
from edge.outbox.retention import ROW_OVERHEAD, OutboxKeeper
from edge.outbox.store import OutboxFull

SITE = "retention-site"
CAP_MB = 0.05
CAP = int(CAP_MB * 1024 * 1024)  # 52428 bytes: a few dozen 1 kB events
FILLER = "test.filler"


# ---------------------------------------------------------------- helpers


@pytest.fixture
def db(tmp_path: Path, clock: ManualClock) -> Iterator[Database]:
    database = Database(tmp_path / "edge.db", SITE, clock)
    upgrade_to_head(database.engine)
    yield database
    database.close()


def keeper_for(db: Database, **config: Any) -> OutboxKeeper:
    config.setdefault("max_backlog_mb", CAP_MB)
    return OutboxKeeper(OutboxConfig(**config), db, db.clock)


async def emit(db: Database, count: int = 1, size: int = 1000) -> list[int]:
    """``count`` events of about ``size`` bytes of data, in one transaction; their seqs."""

    def work(tx: Transaction) -> list[int]:
        return [tx.emit(FILLER, {"pad": "x" * size}).seq for _ in range(count)]

    return await db.transact(work)


async def ack(db: Database, through_seq: int) -> None:
    await db.transact(lambda tx: cursor.mark_acked(tx.session, through_seq))


async def rewind(db: Database, to_seq: int) -> None:
    await db.transact(lambda tx: cursor.rewind(tx.session, to_seq))


async def position(db: Database) -> cursor.Position:
    return await db.read(cursor.position)


def _recount(session: Session) -> int:
    """The backlog from scratch: every stored event after the cursor, each row counted as
    the keeper counts it (its stored fields and ``ROW_OVERHEAD``)."""
    acked = cursor.position(session).acked
    rows = session.execute(
        text("SELECT data, type, id, ts FROM outbox_event WHERE seq > :acked"), {"acked": acked}
    ).all()
    return sum(
        len(data) + len(type_) + len(id_) + len(ts) + ROW_OVERHEAD for data, type_, id_, ts in rows
    )


async def recount(db: Database) -> int:
    return await db.read(_recount)


async def stored_seqs(db: Database) -> list[int]:
    def read(session: Session) -> list[int]:
        return list(session.execute(text("SELECT seq FROM outbox_event ORDER BY seq")).scalars())

    return await db.read(read)


async def stored_events(db: Database, type_: str) -> list[tuple[int, dict[str, Any]]]:
    def read(session: Session) -> list[tuple[int, dict[str, Any]]]:
        rows = session.execute(
            text("SELECT seq, data FROM outbox_event WHERE type = :type ORDER BY seq"),
            {"type": type_},
        ).all()
        return [(int(seq), json.loads(data)) for seq, data in rows]

    return await db.read(read)


async def emit_until(db: Database, done: Callable[[int], bool], size: int = 1000) -> None:
    """Emit events one by one until ``done(recounted backlog)``."""
    for _ in range(1000):
        if done(await recount(db)):
            return
        await emit(db, 1, size)
    raise AssertionError("the backlog never got there")


async def ack_until(db: Database, done: Callable[[int], bool]) -> None:
    """Move the cursor one event at a time until ``done(recounted backlog)``."""
    while not done(await recount(db)):
        now = await position(db)
        assert now.acked < now.last, "nothing left to deliver"
        await ack(db, now.acked + 1)


async def new_work(db: Database) -> int:
    """What a deposit does first: ask to be admitted, then record its first event."""

    def work(tx: Transaction) -> int:
        db.outbox.admit_new_work(tx.session)
        return tx.emit("door.commanded", {"compartment": "A01"}).seq

    return await db.transact(work)


async def assert_measured_exactly(db: Database, keeper: OutboxKeeper) -> None:
    where = await position(db)
    assert (keeper.backlog.acked, keeper.backlog.last) == (where.acked, where.last)
    assert keeper.backlog.pending == where.pending
    assert keeper.backlog.bytes == await recount(db)


# ---------------------------------------------------------------- pruning


async def test_prune_deletes_only_delivered_events_past_retention_in_chunks(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "PRUNE_CHUNK", 5)
    keeper = keeper_for(db, delivered_retention_h=24)
    await emit(db, 15, size=10)
    await ack(db, 12)  # 13..15 are as old, but not delivered
    await keeper.check()
    clock.advance(25 * 3600)
    assert await emit(db, 3, size=10) == [16, 17, 18]  # young

    commits = db.commits
    assert await keeper.prune() == 12
    assert db.commits - commits == 3  # chunks of 5, 5 and 2, one transaction each
    assert await stored_seqs(db) == list(range(13, 19))

    # Passed by the cursor after the last check: still part of its count, so kept for now.
    await ack(db, 18)
    assert await keeper.prune() == 0
    await keeper.check()
    assert await keeper.prune() == 3  # the old ones; 16..18 are delivered but young
    assert await stored_seqs(db) == [16, 17, 18]
    assert keeper.backlog.pruned_events == 15
    await keeper.check()
    await assert_measured_exactly(db, keeper)
    assert keeper.backlog.bytes == 0


async def test_prune_never_deletes_what_a_replay_made_undelivered_again(
    db: Database, clock: ManualClock
) -> None:
    keeper = keeper_for(db, delivered_retention_h=1)
    await emit(db, 10, size=10)
    await ack(db, 10)
    await keeper.check()
    await rewind(db, 4)  # sync.replay from seq 5, before the keeper looked again
    clock.advance(2 * 3600)
    assert await keeper.prune() == 4
    assert await stored_seqs(db) == list(range(5, 11))
    await keeper.check()
    await assert_measured_exactly(db, keeper)
    assert keeper.backlog.pending == 6


async def test_a_keeper_that_has_not_measured_yet_prunes_up_to_the_cursor(
    db: Database, clock: ManualClock
) -> None:
    await emit(db, 8, size=10)
    await ack(db, 5)
    clock.advance(200 * 3600)
    keeper = keeper_for(db)  # a restart: nothing counted yet
    assert await keeper.prune() == 5
    assert await stored_seqs(db) == [6, 7, 8]
    await keeper.check()
    await assert_measured_exactly(db, keeper)
    assert keeper.backlog.pending == 3


# ---------------------------------------------------------------- the incremental size


async def test_backlog_size_is_incremental_and_matches_a_recount(
    db: Database, clock: ManualClock
) -> None:
    """Appends, deliveries, replays and prunes in a random order; the count never drifts."""
    keeper = keeper_for(db, delivered_retention_h=1, max_backlog_mb=10)  # far from the cap
    rng = random.Random(20260301)
    checks = prunes = rewinds = 0
    for _ in range(300):
        where = await position(db)
        action = rng.random()
        if action < 0.4:
            await emit(db, rng.randint(1, 4), size=rng.randint(0, 600))
        elif action < 0.65 and where.last > where.acked:
            await ack(db, rng.randint(where.acked + 1, where.last))
        elif action < 0.72 and where.acked > 0:
            earliest = await db.read(cursor.earliest_retained)
            assert earliest is not None
            # Like sync.replay: only from an event still kept.
            floor = max(earliest - 1, 0)
            if floor < where.acked:
                await rewind(db, rng.randint(floor, where.acked - 1))
                rewinds += 1
        elif action < 0.82:
            clock.advance(rng.uniform(0, 2 * 3600))
            await keeper.prune()
            prunes += 1
            after = await position(db)
            stored = set(await stored_seqs(db))
            assert set(range(after.acked + 1, after.last + 1)) <= stored, "undelivered pruned"
        else:
            await keeper.check()
            checks += 1
            await assert_measured_exactly(db, keeper)
    await keeper.check()
    await assert_measured_exactly(db, keeper)
    assert keeper.backlog.pruned_events > 0 and keeper.backlog.bytes > 0
    assert checks > 20 and prunes > 20 and rewinds > 5


# ---------------------------------------------------------------- the alarm


async def test_backlog_alarm_is_raised_once_and_cleared_once_without_flapping(
    db: Database,
) -> None:
    keeper = keeper_for(db, backlog_alarm_ratio=0.5)
    alarm = keeper.alarm_bytes
    clear = alarm * retention.ALARM_CLEAR_RATIO
    assert alarm == CAP // 2

    await emit_until(db, lambda size: size >= alarm - 2000)
    await keeper.check()
    assert await stored_events(db, "outbox.backlog_high") == []

    await emit_until(db, lambda size: size >= alarm)
    measured = await recount(db)
    await keeper.check()
    where = await position(db)
    [(seq, data)] = await stored_events(db, "outbox.backlog_high")
    assert seq == where.last
    # Measured before the alarm event itself was written.
    assert data == {"pending": where.last - 1, "bytes": measured, "cap_bytes": CAP}

    await emit(db, 3)
    await keeper.check()
    await keeper.check()
    assert len(await stored_events(db, "outbox.backlog_high")) == 1

    # Below the threshold, but not below 80 % of it: still alarmed.
    await ack_until(db, lambda size: size < alarm)
    assert await recount(db) >= clear
    await keeper.check()
    assert await stored_events(db, "outbox.backlog_ok") == []
    assert keeper.backlog.alarmed

    await ack_until(db, lambda size: size < clear)
    await keeper.check()
    [(_, ok)] = await stored_events(db, "outbox.backlog_ok")
    assert ok["bytes"] < clear and ok["cap_bytes"] == CAP
    assert not keeper.backlog.alarmed

    # Back up into the band between the two lines: neither alarm again.
    await emit_until(db, lambda size: size >= clear)
    assert await recount(db) < alarm
    await keeper.check()
    await keeper.check()
    assert len(await stored_events(db, "outbox.backlog_high")) == 1
    assert len(await stored_events(db, "outbox.backlog_ok")) == 1


async def test_a_restart_neither_repeats_nor_forgets_the_alarm(db: Database) -> None:
    keeper = keeper_for(db)
    await emit_until(db, lambda size: size >= keeper.alarm_bytes)
    await keeper.check()
    assert len(await stored_events(db, "outbox.backlog_high")) == 1

    restarted = keeper_for(db)
    await restarted.check()
    assert restarted.backlog.alarmed
    assert len(await stored_events(db, "outbox.backlog_high")) == 1

    # Restarted again while in the band: still alarmed, so the drain is reported.
    clear = keeper.alarm_bytes * retention.ALARM_CLEAR_RATIO
    await ack_until(db, lambda size: size < keeper.alarm_bytes)
    assert await recount(db) >= clear
    again = keeper_for(db)
    await again.check()
    assert again.backlog.alarmed
    await ack_until(db, lambda size: size < clear)
    await again.check()
    assert len(await stored_events(db, "outbox.backlog_ok")) == 1

    last = keeper_for(db)
    await last.check()
    assert not last.backlog.alarmed
    assert len(await stored_events(db, "outbox.backlog_ok")) == 1
    assert len(await stored_events(db, "outbox.backlog_high")) == 1


async def test_a_check_whose_commit_fails_changes_nothing(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk fails the commit: no alarm flag without its event, no count of a trim
    that did not happen."""
    keeper = keeper_for(db)  # drop_oldest
    await emit_until(db, lambda size: size > CAP)
    stored = await stored_seqs(db)

    write_events = db.outbox.flush
    last_seq = text("SELECT value FROM counter WHERE name = 'outbox_seq'")

    def disk_full(session: Session) -> None:
        # Transactions that only read or delete go through; the first that writes events fails.
        before = session.execute(last_seq).scalar_one()
        write_events(session)
        if session.execute(last_seq).scalar_one() != before:
            raise OSError("database or disk is full")

    monkeypatch.setattr(db.outbox, "flush", disk_full)
    with pytest.raises(OSError):
        await keeper.check()
    monkeypatch.undo()
    assert await stored_seqs(db) == stored
    assert (await position(db)).acked == 0
    assert not keeper.backlog.alarmed and keeper.backlog.truncated_events == 0

    await keeper.check()
    assert len(await stored_events(db, "outbox.truncated")) == 1
    assert len(await stored_events(db, "outbox.backlog_high")) == 1
    await keeper.check()
    await assert_measured_exactly(db, keeper)


# ---------------------------------------------------------------- drop_oldest


async def test_drop_oldest_truncates_to_90_percent_and_the_reader_goes_on(db: Database) -> None:
    keeper = keeper_for(db, when_full="drop_oldest")
    await emit(db, 5)
    await ack(db, 5)  # delivered: not part of the backlog, not touched by the trim
    await emit_until(db, lambda size: size > CAP + 5000)
    written = (await position(db)).last

    await keeper.check()
    where = await position(db)
    [(seq, truncated)] = await stored_events(db, "outbox.truncated")
    assert truncated == {
        "first_seq": 6,
        "last_seq": where.acked,
        "count": where.acked - 5,
        "reason": f"undelivered backlog passed its cap of {CAP} bytes",
    }
    assert seq == written + 1  # recorded after everything that was there
    assert await stored_seqs(db) == [*range(1, 6), *range(where.acked + 1, where.last + 1)]
    # Only as many as needed: one event fewer would have left it above 90 % of the cap.
    target = int(CAP * retention.TRIM_TO_RATIO)
    assert target - 1200 < keeper.backlog.bytes <= target
    assert keeper.backlog.truncated_events == where.acked - 5

    # A reader after the cursor continues with the next event that exists, without a gap.
    batches = await db.read(
        lambda s: cursor.read_batches(
            s, SITE, where.acked, max_events=500, max_bytes=256 * 1024, max_batches=10
        )
    )
    envelopes = [e for batch in batches for e in json.loads(batch.payload)]
    assert [e["seq"] for e in envelopes] == list(range(where.acked + 1, where.last + 1))
    assert envelopes[-2]["type"] == "outbox.truncated"
    assert envelopes[-1]["type"] == "outbox.backlog_high"

    await keeper.check()
    await assert_measured_exactly(db, keeper)
    assert len(await stored_events(db, "outbox.truncated")) == 1

    # Over the cap again: a second range, starting where the first backlog now starts.
    first_undelivered = where.acked + 1
    await emit_until(db, lambda size: size > CAP)
    await keeper.check()
    ranges = [data for _, data in await stored_events(db, "outbox.truncated")]
    assert len(ranges) == 2
    assert ranges[1]["first_seq"] == first_undelivered
    assert ranges[1]["last_seq"] == (await position(db)).acked
    await keeper.check()
    await assert_measured_exactly(db, keeper)
    assert len(await stored_events(db, "outbox.backlog_high")) == 1
    assert db.outbox.refuse_after_seq is None  # drop_oldest never refuses
    await new_work(db)


# ---------------------------------------------------------------- refuse_new


async def test_refuse_new_refuses_new_work_at_the_cap_and_drops_nothing(db: Database) -> None:
    keeper = keeper_for(db, when_full="refuse_new")
    await keeper.check()
    limit = db.outbox.refuse_after_seq
    assert limit is not None and limit > (await position(db)).last
    await new_work(db)  # room: admitted

    await emit_until(db, lambda size: size >= CAP + 3000)
    await keeper.check()
    where = await position(db)
    assert db.outbox.refuse_after_seq == where.last - 1  # no room (the last one is the alarm)

    with pytest.raises(OutboxFull):
        await new_work(db)
    assert (await position(db)).last == where.last  # refused before anything was recorded

    # What reports something that already happened is always written, past the limit.
    late = await emit(db, 5)
    assert min(late) > db.outbox.refuse_after_seq
    await keeper.check()
    with pytest.raises(OutboxFull):
        await new_work(db)

    # Nothing was dropped, and the cursor did not move.
    where = await position(db)
    assert await stored_seqs(db) == list(range(1, where.last + 1))
    assert where.acked == 0
    assert await stored_events(db, "outbox.truncated") == []
    assert keeper.backlog.truncated_events == 0

    # Delivered below the cap: new work again, after the next check.
    await ack_until(db, lambda size: size < CAP - 5000)
    with pytest.raises(OutboxFull):
        await new_work(db)  # until the keeper has looked
    await keeper.check()
    await new_work(db)
    await keeper.check()
    await assert_measured_exactly(db, keeper)


# ---------------------------------------------------------------- through the kiosk API

KIOSK = {"X-Kiosk-Token": KIOSK_TOKEN}


async def test_at_the_cap_refuse_new_turns_new_work_away_and_finishes_work_under_way(
    start_app: Callable[..., Any], site: SimulatedSite
) -> None:
    app: EdgeApp = await start_app(outbox={"when_full": "refuse_new", "max_backlog_mb": CAP_MB})
    assert site.boards is not None
    api = httpx.ASGITransport(app=create_api(app))
    async with httpx.AsyncClient(transport=api, base_url="http://edge", timeout=15) as http:
        r = await http.post(
            "/api/v1/kiosk/courier/sessions",
            headers=KIOSK,
            json={"courier_id": COURIER_ID, "credential": COURIER_CREDENTIAL},
        )
        assert r.status_code == 201, r.text
        courier = {**KIOSK, "X-Courier-Session": r.json()["token"]}

        codes = []
        for parcel in ("PKG-1", "PKG-2"):
            r = await http.post(
                "/api/v1/kiosk/deposits", headers=courier, json={"parcel_code": parcel, "size": "S"}
            )
            assert r.status_code == 201, r.text
            site.close_door(r.json()["compartment"])
            r = await http.get(
                f"/api/v1/kiosk/operations/{r.json()['operation_id']}",
                headers=KIOSK,
                params={"wait": 5},
            )
            assert r.json()["state"] == "completed", r.text
            codes.append(r.json()["pickup_code"])

        # A pickup under way (its door is open) when the backlog reaches the cap.
        r = await http.post("/api/v1/kiosk/pickups", headers=KIOSK, json={"code": codes[0]})
        assert r.status_code == 201, r.text
        pickup = r.json()
        await emit_until(app.db, lambda size: size >= CAP, size=4000)
        await app.keeper.check()
        limit = app.db.outbox.refuse_after_seq
        assert limit is not None and limit <= (await position(app.db)).last
        unlocked = list(site.boards.unlock_log)
        commanded = len(app.events.of_type("door.commanded"))  # type: ignore[attr-defined]

        # New work is refused before any door moves, with nothing recorded.
        r = await http.post(
            "/api/v1/kiosk/deposits", headers=courier, json={"parcel_code": "PKG-3", "size": "S"}
        )
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "outbox_full"
        assert site.boards.unlock_log == unlocked
        assert len(app.events.of_type("door.commanded")) == commanded  # type: ignore[attr-defined]
        refused = await app.db.read(
            lambda s: s.exec(select(Parcel).where(Parcel.code == "PKG-3")).first()
        )
        assert refused is None
        r = await http.get(f"/api/v1/kiosk/operations/{pickup['operation_id']}", headers=KIOSK)
        assert r.json()["state"] == "opened"

        # A resident still collects a parcel that is inside: that takes work away, not adds it.
        r = await http.post("/api/v1/kiosk/pickups", headers=KIOSK, json={"code": codes[1]})
        assert r.status_code == 201, r.text
        site.close_door(r.json()["compartment"])

        # The pickup under way completes, and what happened is recorded past the limit.
        site.close_door(pickup["compartment"])
        picked = await app.events.wait_for(  # type: ignore[attr-defined]
            "parcel.picked_up", lambda e: e.data["parcel_code"] == "PKG-1"
        )
        closed = await app.events.wait_for(  # type: ignore[attr-defined]
            "door.closed", lambda e: e.data["operation"] == pickup["operation_id"]
        )
        assert picked.seq > limit and closed.seq > limit
        r = await http.get(f"/api/v1/kiosk/operations/{pickup['operation_id']}", headers=KIOSK)
        assert r.json()["state"] == "completed"
        assert picked.seq in [seq for seq, *_ in await stored_events(app.db, "parcel.picked_up")]

        # Once the backlog is delivered, the site takes new work again.
        await ack(app.db, (await position(app.db)).last)
        await app.keeper.check()
        r = await http.post(
            "/api/v1/kiosk/deposits", headers=courier, json={"parcel_code": "PKG-3", "size": "S"}
        )
        assert r.status_code == 201, r.text
        site.close_door(r.json()["compartment"])
        await app.events.wait_for(  # type: ignore[attr-defined]
            "parcel.deposited", lambda e: e.data["parcel_code"] == "PKG-3"
        )
