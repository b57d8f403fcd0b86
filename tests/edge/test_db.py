"""The SQLite database: durable settings on every connection, and migrations that keep data."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, col, select

from edge.cli import main
from edge.db import Database, Transaction, upgrade_to_head
from edge.db.database import create_sqlite_engine
from edge.db.migrate import current_revision, head_revision
from edge.db.tables import Compartment, Counter, OutboxEvent, Parcel
from edge.outbox.cursor import position as outbox_position

SITE = "db-site"


@pytest.fixture
def db(tmp_path: Path) -> Any:
    database = Database(tmp_path / "data" / "edge.db", SITE)
    upgrade_to_head(database.engine)
    yield database
    database.close()


def pragmas(connection: Any) -> dict[str, Any]:
    return {
        name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
        for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
    }


DURABLE = {"journal_mode": "wal", "foreign_keys": 1, "synchronous": 2, "busy_timeout": 30000}


def test_every_app_connection_is_durable(db: Database) -> None:
    # Two connections checked out at once: two real sqlite3 connections, both configured.
    # (Every transaction begins IMMEDIATE, so the first ends its own before the second starts.)
    with db.engine.connect() as first:
        assert pragmas(first) == DURABLE
        first.rollback()
        with db.engine.connect() as second:
            assert second.connection.dbapi_connection is not first.connection.dbapi_connection
            assert pragmas(second) == DURABLE

    def inside(tx: Transaction) -> dict[str, Any]:
        return pragmas(tx.session.connection())

    assert db.transact_sync(inside) == DURABLE


async def test_transactions_run_with_the_same_pragmas(db: Database) -> None:
    seen = await db.transact(lambda tx: pragmas(tx.session.connection()))
    assert seen == DURABLE
    # The WAL mode is a property of the file: a plain sqlite3 connection sees it too.
    raw = sqlite3.connect(db.path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_foreign_keys_are_enforced(db: Database) -> None:
    now = datetime.now(UTC)

    def dangling(tx: Transaction) -> None:
        tx.session.add(
            Compartment(
                id="A01",
                bus="main",
                board=1,
                lock=1,
                size="S",
                zone="ambient",
                state="free",
                parcel_id="no-such-parcel",
                updated_at=now,
            )
        )

    with pytest.raises(IntegrityError, match="FOREIGN KEY"):
        db.transact_sync(dangling)


def test_models_and_migrations_agree(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []
    assert current_revision(db.engine) == head_revision()


def test_upgrade_is_idempotent(db: Database) -> None:
    upgrade_to_head(db.engine)
    upgrade_to_head(db.engine)
    assert current_revision(db.engine) == head_revision()


def _fill_a_0001_database(path: Path) -> None:
    engine = create_sqlite_engine(path)
    upgrade_to_head(engine, revision="0001")
    assert current_revision(engine) == "0001"
    assert "code_attempts" not in inspect(engine).get_table_names()
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO parcel (id, code, state, size, zone, compartment_id, "
                "pickup_code_hash, deposited_at, updated_at) VALUES ('p1', 'PKG-1', 'stored', "
                "'S', 'ambient', 'A01', 'hash-1', '2026-01-01 10:00:00', '2026-01-01 10:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO compartment (id, bus, board, lock, size, zone, enabled, state, "
                "parcel_id, updated_at) VALUES ('A01', 'main', 1, 1, 'S', 'ambient', 1, "
                "'occupied', 'p1', '2026-01-01 10:00:00')"
            )
        )
        for seq in (1, 2, 3):
            connection.execute(
                text(
                    "INSERT INTO outbox_event (seq, id, type, ts, data, delivered_at) "
                    "VALUES (:seq, :id, 'parcel.deposited', '2026-01-01T10:00:00.000Z', "
                    ":data, :delivered)"
                ),
                {
                    "seq": seq,
                    "id": f"00000000-0000-4000-8000-00000000000{seq}",
                    "data": '{"parcel_code": "PKG-1"}',
                    "delivered": "2026-01-01 10:00:01" if seq < 3 else None,
                },
            )
        connection.execute(text("UPDATE counter SET value = 3 WHERE name = 'outbox_seq'"))
    engine.dispose()


async def test_a_0001_database_upgrades_in_place_keeping_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _fill_a_0001_database(path)

    db = Database(path, SITE)
    try:
        upgrade_to_head(db.engine)
        assert current_revision(db.engine) == head_revision()
        assert "code_attempts" in inspect(db.engine).get_table_names()

        def read(session: Any) -> tuple[Any, ...]:
            compartment = session.get(Compartment, "A01")
            parcel = session.get(Parcel, "p1")
            events = session.exec(select(OutboxEvent).order_by(col(OutboxEvent.seq))).all()
            counter = session.get(Counter, "outbox_seq")
            return compartment, parcel, events, counter.value, outbox_position(session)

        compartment, parcel, events, counter, position = await db.read(read)
        assert (compartment.state, compartment.parcel_id) == ("occupied", "p1")
        assert (parcel.code, parcel.pickup_code_hash) == ("PKG-1", "hash-1")
        assert parcel.deposited_at == datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)
        assert [e.seq for e in events] == [1, 2, 3]
        assert events[0].data == {"parcel_code": "PKG-1"}
        # The per-event delivery flag became the cursor: events 1 and 2 were delivered.
        assert (position.acked, position.pending) == (2, 1)
        assert "command_receipt" in inspect(db.engine).get_table_names()
        assert counter == 3

        envelope = await db.transact(lambda tx: tx.emit("parcel.picked_up", {"parcel": "p1"}))
        assert envelope.seq == 4
        seqs = await db.read(lambda s: [e.seq for e in s.exec(select(OutboxEvent)).all()])
        assert sorted(seqs) == [1, 2, 3, 4]
    finally:
        db.close()


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(
        f"site: {{id: {SITE}}}\ncode_secret: k\ndata_dir: {tmp_path / 'data'}\n"
        "database: {path: site.db}\n",
        encoding="utf-8",
    )
    return path


def test_db_upgrade_command_creates_and_migrates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config_file(tmp_path)
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'data' / 'site.db'}: empty -> {head_revision()}" in out

    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert f"{head_revision()} -> {head_revision()}" in capsys.readouterr().out


def test_db_upgrade_command_upgrades_an_old_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config_file(tmp_path)
    database = tmp_path / "data" / "site.db"
    _fill_a_0001_database(database)
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert f"0001 -> {head_revision()}" in capsys.readouterr().out
    raw = sqlite3.connect(database)
    try:
        assert raw.execute("SELECT count(*) FROM outbox_event").fetchone()[0] == 3
        assert raw.execute("SELECT value FROM counter").fetchone()[0] == 3
    finally:
        raw.close()


def test_db_upgrade_command_with_a_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text("site: {id: s}\n", encoding="utf-8")
    assert main(["db", "upgrade", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "code_secret" in err and "Traceback" not in err
