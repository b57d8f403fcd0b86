"""The SQLite database: durable settings, one writer thread, transactions that carry events.

SQLite allows one writer at a time; the controller funnels every transaction through a single
worker thread, so the event loop never blocks on ``fsync`` and transactions never contend.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlmodel import Session

from edge.clock import Clock
from edge.outbox.store import Envelope, OutboxWriter

log = logging.getLogger(__name__)
T = TypeVar("T")
EventListener = Callable[[list[Envelope]], None]


def create_sqlite_engine(path: Path) -> Engine:
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"check_same_thread": False, "timeout": 30},
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # FULL: a committed transaction survives a power cut, not only a process crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Deleted rows are overwritten, not left in free pages: an erased face template is gone
        # from the file once the WAL is checkpointed (``Database.checkpoint``).
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: no deadlock when a reader later writes.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Transaction:
    """What a unit of work sees: the session, and ``emit`` for the events it commits with."""

    def __init__(self, session: Session, outbox: OutboxWriter) -> None:
        self.session = session
        self._outbox = outbox
        self.events: list[Envelope] = []

    def emit(self, type_: str, data: dict[str, Any]) -> Envelope:
        envelope = self._outbox.append(self.session, type_, data)
        self.events.append(envelope)
        return envelope


class Database:
    def __init__(self, path: Path, site: str, clock: Clock | None = None) -> None:
        self.path = path
        self.engine = create_sqlite_engine(path)
        self.clock = clock or Clock()
        self.outbox = OutboxWriter(site, self.clock)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db")
        self._listeners: list[EventListener] = []
        self.commits = 0

    def add_event_listener(self, listener: EventListener) -> None:
        """Called on the event loop with the envelopes of each committed transaction."""
        self._listeners.append(listener)

    async def transact(self, work: Callable[[Transaction], T]) -> T:
        """Run ``work`` in one transaction; commit, then tell listeners what was emitted.

        Listeners hear of every commit, also when the caller was cancelled while ``work`` ran
        (the commit happened all the same); they are called before ``transact`` returns.
        """
        loop = asyncio.get_running_loop()
        future = self._executor.submit(self._run, work)

        def committed(done: Future[tuple[T, list[Envelope]]]) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(self._committed, done)

        # Added before wrap_future's own callback, so listeners run before the caller resumes.
        future.add_done_callback(committed)
        result, _events = await asyncio.wrap_future(future)
        return result

    def _committed(self, future: Future[tuple[Any, list[Envelope]]]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        _result, events = future.result()
        if not events:
            return
        for listener in self._listeners:
            try:
                listener(events)
            except Exception:
                log.exception("event listener failed")

    async def read(self, work: Callable[[Session], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._read, work)

    def transact_sync(self, work: Callable[[Transaction], T]) -> T:
        """For start-up and CLI code that runs before (or outside) the event loop."""
        result, _events = self._run(work)
        return result

    def _run(self, work: Callable[[Transaction], T]) -> tuple[T, list[Envelope]]:
        with Session(self.engine, expire_on_commit=False) as session:
            tx = Transaction(session, self.outbox)
            result = work(tx)
            self.outbox.flush(session)
            session.commit()
        self.commits += 1
        return result, tx.events

    def _read(self, work: Callable[[Session], T]) -> T:
        with Session(self.engine, expire_on_commit=False) as session:
            return work(session)

    async def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it, so that what was deleted (and
        overwritten, with ``secure_delete``) no longer exists in either file."""

        def run() -> tuple[int, int, int]:
            # Outside any transaction (a checkpoint cannot run inside one): the raw connection.
            with self.engine.connect() as connection:
                raw = connection.connection.driver_connection
                assert raw is not None
                row = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return int(row[0]), int(row[1]), int(row[2])

        loop = asyncio.get_running_loop()
        busy, frames, done = await loop.run_in_executor(self._executor, run)
        if busy:
            log.warning(
                "WAL checkpoint incomplete: a reader held the log", extra={"frames": frames}
            )
        else:
            log.info("WAL checkpointed and truncated", extra={"frames": done})

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()
