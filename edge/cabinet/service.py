"""Cabinet sessions: authorise, unlock, door open, door close, settle into an order.

Every step that matters is one committed transaction with its event, before the next step
acts: the session row (with the inventory from before the door opened) is committed before the
door is unlocked, and the order, its lines, the payment request, the new stock and
``cabinet.session_closed`` are committed together. A session that a crash cut short is settled
at the next start from the door state and a fresh inventory; the order's unique ``session_id``
makes a second settlement impossible.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlmodel import col, delete, select

from drivers.lockboard import LockBoardError
from drivers.rfid.epc import decode_epc
from edge.cabinet.errors import (
    CabinetBusy,
    CabinetDisabled,
    DoorUnavailable,
    InventoryNotReady,
    NotHeld,
    ShuttingDown,
    UnknownCabinet,
    UnknownSession,
)
from edge.cabinet.inventory import CabinetInventory
from edge.cabinet.settlement import Line, Settlement, settle
from edge.catalog.prices import PriceBook
from edge.clock import Clock, as_utc, rfc3339
from edge.config.cabinets import CabinetConfig
from edge.db import Database, Transaction
from edge.db.tables import CabinetSession, CabinetStock, OrderLine, PaymentRequest, SalesOrder
from edge.hardware.locks import LockAddress, LockController
from edge.outbox.store import Envelope

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a restart keeps trying to read a cabinet's door before it holds the session.
RECOVERY_DOOR_TIMEOUT_S = 10.0


class SessionKind(StrEnum):
    PURCHASE = "purchase"
    RESTOCK = "restock"


class SessionState(StrEnum):
    UNLOCKING = "unlocking"
    OPEN = "open"
    SETTLING = "settling"
    CLOSED = "closed"
    HELD = "held"
    CANCELLED = "cancelled"


ACTIVE = (SessionState.UNLOCKING, SessionState.OPEN, SessionState.SETTLING)


@dataclass
class Live:
    """A session under way, as the runner needs it (the row has the same facts)."""

    id: str
    cabinet_id: str
    kind: SessionKind
    state: SessionState
    member_id: str | None
    member_source: str | None
    actor: str
    before: frozenset[str]
    created_at: datetime
    opened_at: datetime | None = None
    verification_id: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    """perf_counter() marks: ``closed`` (door seen shut), ``counted`` (the last settle round),
    ``committed`` (order committed). Door-close to order minus the rounds is what we control."""

    @property
    def price_at(self) -> datetime:
        """Prices in force when the door opened (authorisation, if it never did)."""
        return self.opened_at or self.created_at


@dataclass
class Cabinet:
    config: CabinetConfig
    address: LockAddress
    inventory: CabinetInventory
    stock: dict[str, str | None] = field(default_factory=dict)
    """The settled baseline: EPC -> GTIN (None when undecodable)."""
    stocked: bool = False
    """It ever had stock or a session; otherwise its first full inventory is adopted."""
    session_id: str | None = None
    held: bool = False
    door_open: bool | None = None
    door_changed: asyncio.Event = field(default_factory=asyncio.Event)
    reader_available: bool = False
    last_snapshot: float = 0.0
    alarm_pending: bool = False

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def open_for_shoppers(self) -> bool:
        """A session could start now (``start_session`` says why not, when not)."""
        return (
            self.config.enabled
            and self.session_id is None
            and self.reader_available
            and self.inventory.counted_within(self.config.settle.timeout_s)
            and not self.door_open
        )


@dataclass(frozen=True)
class SessionView:
    id: str
    cabinet_id: str
    kind: str
    state: str
    member_id: str | None
    hold_reason: str | None
    order_id: str | None
    total: int | None
    currency: str | None
    lines: list[dict[str, Any]]


class CabinetService:
    def __init__(
        self,
        cabinets: list[CabinetConfig],
        db: Database,
        locks: LockController,
        prices: PriceBook,
        clock: Clock | None = None,
    ) -> None:
        self.db = db
        self.locks = locks
        self.prices = prices
        self.clock = clock or db.clock
        self.cabinets: dict[str, Cabinet] = {}
        for config in cabinets:
            address = LockAddress(config.door.bus, config.door.board, config.door.lock)
            self.cabinets[config.id] = Cabinet(
                config, address, CabinetInventory(config.id, config.presence)
            )
        self._by_address = {cab.address: cab for cab in self.cabinets.values()}
        for cab in self.cabinets.values():
            cab.inventory.add_round_listener(self._round_ended)
        self._tasks: set[asyncio.Future[Any]] = set()
        self._signal: asyncio.Event | None = None
        self._on_commit: dict[str, Callable[[], None]] = {}
        db.add_event_listener(self._committed)
        self._stopping = False
        self.settle_times: deque[tuple[float, float]] = deque(maxlen=1000)
        """Per settled session: (seconds counting after the close, seconds of our own work)."""

    # ----------------------------------------------------------------- start-up

    def load(self) -> None:
        """Stock and unfinished sessions from the database (before the loop serves anyone)."""

        def work(tx: Transaction) -> list[CabinetSession]:
            s = tx.session
            for row in s.exec(select(CabinetStock)).all():
                cab = self.cabinets.get(row.cabinet_id)
                if cab is not None:
                    cab.stock[row.epc] = row.gtin
                    cab.stocked = True
            for cab_id in s.exec(select(CabinetSession.cabinet_id).distinct()).all():
                if cab_id in self.cabinets:
                    self.cabinets[cab_id].stocked = True
            states = [*ACTIVE, SessionState.HELD]
            return list(
                s.exec(select(CabinetSession).where(col(CabinetSession.state).in_(states))).all()
            )

        for row in self.db.transact_sync(work):
            cab = self.cabinets.get(row.cabinet_id)
            if cab is None:
                log.warning("session of a cabinet no longer configured", extra={"session": row.id})
                continue
            cab.session_id = row.id
            cab.held = row.state == SessionState.HELD

    async def recover(self) -> int:
        """Settle the sessions a crash or power cut interrupted; returns how many."""
        rows = await self.db.read(
            lambda s: list(
                s.exec(select(CabinetSession).where(col(CabinetSession.state).in_(ACTIVE))).all()
            )
        )
        for row in rows:
            cab = self.cabinets.get(row.cabinet_id)
            if cab is None:
                continue
            live = _live(row)
            log.warning(
                "settling a session interrupted by the last stop",
                extra={"session": live.id, "cabinet": cab.id, "state": live.state},
            )
            self._spawn(self._recover(cab, live))
        return len(rows)

    # ----------------------------------------------------------------- sessions

    async def start_session(
        self,
        cabinet_id: str,
        *,
        kind: SessionKind,
        actor: str,
        member_id: str | None = None,
        member_source: str | None = None,
        verification_id: str | None = None,
        evidence: Callable[[Transaction, str], None] | None = None,
    ) -> SessionView:
        """Commit the session, then unlock. ``evidence`` writes, in the session's transaction,
        what identified the shopper (a face verification claimed by this session's id)."""
        cab = self._cabinet(cabinet_id)
        if self._stopping:
            raise ShuttingDown("The controller is stopping.")
        if not cab.config.enabled:
            raise CabinetDisabled(f"Cabinet {cab.id} is out of service.")
        if cab.session_id is not None:
            raise CabinetBusy(
                f"Cabinet {cab.id} is "
                + ("waiting for an operator." if cab.held else "in use. Please wait."),
                session_id=cab.session_id,
            )
        if not cab.reader_available or not cab.inventory.counted_within(
            cab.config.settle.timeout_s
        ):
            raise InventoryNotReady(
                f"Cabinet {cab.id} cannot count its goods right now.",
                reader_available=cab.reader_available,
                rounds=cab.inventory.rounds,
            )
        if not self.locks.board_available(cab.address.bus, cab.address.board):
            raise DoorUnavailable(f"The door of cabinet {cab.id} does not answer.")
        if cab.door_open:
            raise CabinetBusy(f"The door of cabinet {cab.id} is open.")
        now = self.clock.now()
        live = Live(
            id=str(uuid.uuid4()),
            cabinet_id=cab.id,
            kind=kind,
            state=SessionState.UNLOCKING,
            member_id=member_id,
            member_source=member_source,
            actor=actor,
            before=cab.inventory.present,
            created_at=now,
            verification_id=verification_id,
        )
        cab.session_id = live.id  # taken before the first await: one session per cabinet

        def work(tx: Transaction) -> None:
            if kind is SessionKind.PURCHASE:
                # refuse_new at the outbox cap: no new sale starts (before the door moves).
                self.db.outbox.admit_new_work(tx.session)
            tx.session.add(
                CabinetSession(
                    id=live.id,
                    cabinet_id=cab.id,
                    kind=kind.value,
                    state=live.state.value,
                    member_id=member_id,
                    member_source=member_source,
                    actor=actor,
                    created_at=now,
                    before=sorted(live.before),
                    verification_id=verification_id,
                    updated_at=now,
                )
            )
            if evidence is not None:
                evidence(tx, live.id)
            tx.emit(
                "cabinet.session_started",
                {
                    "session_id": live.id,
                    "cabinet": cab.id,
                    "kind": kind.value,
                    "member_id": member_id,
                    "member_source": member_source,
                    "actor": actor,
                    "items_before": len(live.before),
                },
            )

        try:
            await self.db.transact(work)
        except BaseException:
            cab.session_id = None
            raise
        log.info(
            "cabinet session started",
            extra={"session": live.id, "cabinet": cab.id, "kind": kind.value, "member": member_id},
        )
        self._spawn(self._drive(cab, live))
        return _view_of_live(live)

    async def get_session(self, session_id: str) -> SessionView:
        def load(s: Any) -> SessionView | None:
            row = s.get(CabinetSession, session_id)
            if row is None:
                return None
            order = s.get(SalesOrder, row.order_id) if row.order_id else None
            lines = (
                s.exec(
                    select(OrderLine)
                    .where(OrderLine.order_id == order.id)
                    .order_by(col(OrderLine.line))
                ).all()
                if order is not None
                else []
            )
            return SessionView(
                id=row.id,
                cabinet_id=row.cabinet_id,
                kind=row.kind,
                state=row.state,
                member_id=row.member_id,
                hold_reason=row.hold_reason,
                order_id=row.order_id,
                total=order.total if order else None,
                currency=order.currency if order else None,
                lines=[_line_dict(line) for line in lines],
            )

        view = await self.db.read(load)
        if view is None:
            raise UnknownSession(f"No cabinet session {session_id}.")
        return view

    async def wait_finished(self, session_id: str, timeout: float) -> SessionView:  # noqa: ASYNC109
        """For tests and the demo: until the session is closed, held or cancelled."""
        async with asyncio.timeout(timeout):
            while True:
                view = await self.get_session(session_id)
                if view.state not in ACTIVE:
                    return view
                await self._settled_signal().wait()

    # ----------------------------------------------------------------- operator actions

    async def resettle(self, session_id: str, actor: str) -> SessionView:
        """Try a held session again with a fresh inventory (the reader is back, say)."""
        cab, live = await self._held(session_id)
        if cab.door_open:
            raise CabinetBusy(f"Close the door of cabinet {cab.id} first.")

        def work(tx: Transaction) -> None:
            row = tx.session.get(CabinetSession, session_id)
            assert row is not None
            row.state = SessionState.SETTLING.value
            row.hold_reason = None
            row.updated_at = self.clock.now()
            tx.session.add(row)
            tx.emit(
                "cabinet.session_released",
                {"session_id": session_id, "cabinet": cab.id, "actor": actor, "action": "settle"},
            )

        await self.db.transact(work)
        cab.held = False
        live.state = SessionState.SETTLING
        cab.inventory.restart()
        self._spawn(self._settle(cab, live))
        return _view_of_live(live)

    async def void(self, session_id: str, actor: str, reason: str) -> SessionView:
        """Close a held session without charging anyone; the live inventory becomes stock."""
        cab, _live_session = await self._held(session_id)
        after = cab.inventory.present if cab.inventory.ready else None

        def work(tx: Transaction) -> None:
            row = tx.session.get(CabinetSession, session_id)
            assert row is not None
            now = self.clock.now()
            row.state = SessionState.CLOSED.value
            row.settled_at = row.updated_at = now
            if after is not None:
                row.after = sorted(after)
                self._write_stock(tx, cab, after, now)
            tx.session.add(row)
            tx.emit(
                "cabinet.session_closed",
                {
                    "session_id": session_id,
                    "cabinet": cab.id,
                    "kind": row.kind,
                    "member_id": row.member_id,
                    "outcome": "voided",
                    "actor": actor,
                    "reason": reason,
                    "order_id": None,
                },
            )

        def voided() -> None:
            if after is not None:
                cab.stock = {epc: decode_epc(epc).gtin for epc in after}
            cab.held = False
            if cab.session_id == session_id:
                cab.session_id = None
            self._settled_signal().set()

        await self._transact_then(session_id, work, voided)
        return await self.get_session(session_id)

    async def _held(self, session_id: str) -> tuple[Cabinet, Live]:
        row = await self.db.read(lambda s: s.get(CabinetSession, session_id))
        if row is None:
            raise UnknownSession(f"No cabinet session {session_id}.")
        if row.state != SessionState.HELD:
            raise NotHeld(f"Session {session_id} is {row.state}, not held.")
        return self._cabinet(row.cabinet_id), _live(row)

    # ----------------------------------------------------------------- the session runner

    async def _drive(self, cab: Cabinet, live: Live) -> None:
        try:
            await self.locks.unlock(cab.address)
        except LockBoardError as exc:
            await self._cancel(cab, live, "unlock_failed", str(exc))
            return
        if await self._wait_door(cab, True, cab.config.door_open_timeout_s):
            await self._mark_open(cab, live)
        else:
            # The lock relocked with nobody pulling the door; the inventory decides (nothing
            # missing: no charge) in case the door sensor missed an opening.
            log.info("cabinet door not opened", extra={"session": live.id, "cabinet": cab.id})
        await self._close_and_settle(cab, live)

    async def _recover(self, cab: Cabinet, live: Live) -> None:
        door_open = await self._read_door(cab)
        if door_open is None:
            await self._hold(cab, live, "door_state_unknown", {})
            return
        if door_open and live.state is SessionState.UNLOCKING:
            await self._mark_open(cab, live)
        await self._close_and_settle(cab, live)

    async def _close_and_settle(self, cab: Cabinet, live: Live) -> None:
        if live.state is not SessionState.SETTLING:
            await self._wait_door(cab, False, None)
            live.timings["closed"] = time.perf_counter()
            await self._mark_settling(cab, live)
        await self._settle(cab, live)

    async def _settle(self, cab: Cabinet, live: Live) -> None:
        live.timings["settling"] = time.perf_counter()
        cab.inventory.restart()
        settle_cfg = cab.config.settle
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settle_cfg.timeout_s
        stable, last = 0, None
        while stable < settle_cfg.stable_rounds:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    await cab.inventory.next_round()
            except TimeoutError:
                break
            if cab.door_open:
                # Opened again before we finished counting: count again once it is shut.
                await self._wait_door(cab, False, None)
                cab.inventory.restart()
                deadline = loop.time() + settle_cfg.timeout_s
                stable, last = 0, None
                continue
            if not cab.inventory.ready:
                continue
            present = cab.inventory.present
            stable, last = (stable + 1, last) if present == last else (0, present)
        live.timings["counted"] = time.perf_counter()
        if not cab.inventory.ready:
            reason = "reader_unavailable" if not cab.reader_available else "inventory_incomplete"
            await self._hold(cab, live, reason, {"rounds": cab.inventory.rounds})
            return
        after = cab.inventory.present
        prices = await self.prices.current()
        result = settle(live.before, after, prices, live.price_at, cab.config.currency)
        unpriced = result.unpriced
        if live.kind is SessionKind.PURCHASE and unpriced:
            await self._hold(
                cab,
                live,
                "unpriced_items",
                {
                    "items": [
                        {"epc": u.epc, "gtin": u.gtin, "reason": u.reason} for u in result.unpriced
                    ]
                },
            )
            return
        await self._commit(cab, live, after, result, stable >= settle_cfg.stable_rounds)

    # ----------------------------------------------------------------- transactions

    async def _mark_open(self, cab: Cabinet, live: Live) -> None:
        now = self.clock.now()

        def work(tx: Transaction) -> None:
            row = self._row(tx, live)
            row.state = SessionState.OPEN.value
            row.door_opened_at = row.price_at = row.updated_at = now
            tx.session.add(row)
            tx.emit("door.opened", {"cabinet": cab.id, "session_id": live.id})

        await self.db.transact(work)
        live.state, live.opened_at = SessionState.OPEN, now

    async def _mark_settling(self, cab: Cabinet, live: Live) -> None:
        now = self.clock.now()
        was_open = live.state is SessionState.OPEN

        def work(tx: Transaction) -> None:
            row = self._row(tx, live)
            row.state = SessionState.SETTLING.value
            row.price_at = live.price_at
            row.updated_at = now
            if was_open:
                row.door_closed_at = now
                tx.emit("door.closed", {"cabinet": cab.id, "session_id": live.id})
            tx.session.add(row)

        await self.db.transact(work)
        live.state = SessionState.SETTLING

    async def _commit(
        self, cab: Cabinet, live: Live, after: frozenset[str], result: Settlement, stable: bool
    ) -> None:
        now = self.clock.now()
        charged = live.kind is SessionKind.PURCHASE and bool(result.lines)
        order_id = str(uuid.uuid4()) if charged else None

        def work(tx: Transaction) -> bool:
            s = tx.session
            row = self._row(tx, live)
            if row.state != SessionState.SETTLING:
                return False  # settled already (a second runner, an operator): never twice
            self._write_stock(tx, cab, after, now)
            data: dict[str, Any] = {
                "session_id": live.id,
                "cabinet": cab.id,
                "kind": live.kind.value,
                "member_id": live.member_id,
                "taken": len(result.taken),
                "added": len(result.added),
                "items_after": len(after),
                "stable": stable,
                "order_id": order_id,
            }
            if live.kind is SessionKind.RESTOCK:
                data["outcome"] = "restocked"
                tx.emit(
                    "inventory.restocked",
                    {
                        "cabinet": cab.id,
                        "session_id": live.id,
                        "actor": live.actor,
                        "added": list(result.added),
                        "removed": list(result.taken),
                        "items_after": len(after),
                    },
                )
            else:
                data["outcome"] = "charged" if charged else "nothing_taken"
                if charged:
                    assert order_id is not None
                    self._write_order(tx, cab, live, order_id, result, now)
                if result.added:
                    tx.emit(
                        "cabinet.foreign_tags",
                        {
                            "cabinet": cab.id,
                            "session_id": live.id,
                            "epcs": list(result.added),
                            "items": [_item(epc) for epc in result.added],
                        },
                    )
            if charged:
                data["total"] = result.total
                data["currency"] = result.currency
            row.state = SessionState.CLOSED.value
            row.after = sorted(after)
            row.order_id = order_id
            row.settled_at = row.updated_at = now
            s.add(row)
            tx.emit("cabinet.session_closed", data)
            return True

        def settled() -> None:
            cab.stock = {epc: decode_epc(epc).gtin for epc in after}
            cab.stocked = True
            self._finish(cab, live)

        if await self._transact_then(live.id, work, settled):
            self._record_timing(live)
            log.info(
                "cabinet session settled",
                extra={
                    "session": live.id,
                    "cabinet": cab.id,
                    "member": live.member_id,
                    "taken": len(result.taken),
                    "total": result.total,
                    "order": order_id,
                },
            )

    def _record_timing(self, live: Live) -> None:
        marks = live.timings
        if "counted" not in marks or "settling" not in marks:
            return
        committed = time.perf_counter()
        counting = marks["counted"] - marks["settling"]
        own = (committed - marks["counted"]) + (
            marks["settling"] - marks.get("closed", marks["settling"])
        )
        self.settle_times.append((counting, own))

    def _write_order(
        self,
        tx: Transaction,
        cab: Cabinet,
        live: Live,
        order_id: str,
        result: Settlement,
        now: datetime,
    ) -> None:
        s = tx.session
        s.add(
            SalesOrder(
                id=order_id,
                session_id=live.id,
                cabinet_id=cab.id,
                member_id=live.member_id,
                state="created",
                currency=result.currency,
                total=result.total,
                created_at=now,
            )
        )
        s.flush()  # the lines and the payment refer to it
        for number, line in enumerate(result.lines, start=1):
            s.add(
                OrderLine(
                    order_id=order_id,
                    line=number,
                    epc=line.epc,
                    gtin=line.gtin,
                    name=line.name,
                    price_version=line.price_version,
                    amount=line.amount,
                    regular_amount=line.regular_amount,
                    promotion_id=line.promotion_id,
                    promotion_version=line.promotion_version,
                    price_source=line.price_source,
                )
            )
        payment_id = str(uuid.uuid4())
        method = live.member_source or "account"
        s.add(
            PaymentRequest(
                id=payment_id,
                order_id=order_id,
                member_id=live.member_id,
                method=method,
                amount=result.total,
                currency=result.currency,
                state="pending",
                created_at=now,
                verification_id=live.verification_id,
            )
        )
        tx.emit(
            "order.created",
            {
                "order_id": order_id,
                "session_id": live.id,
                "cabinet": cab.id,
                "member_id": live.member_id,
                "currency": result.currency,
                "total": result.total,
                "price_at": rfc3339(live.price_at),
                "lines": [_line_dict(line) for line in result.lines],
                "payment": {
                    "id": payment_id,
                    "method": method,
                    "amount": result.total,
                    "state": "pending",
                },
            },
        )

    def _write_stock(
        self, tx: Transaction, cab: Cabinet, after: frozenset[str], now: datetime
    ) -> None:
        s = tx.session
        current = set(
            s.exec(select(CabinetStock.epc).where(CabinetStock.cabinet_id == cab.id)).all()
        )
        gone = current.difference(after)
        if gone:
            s.exec(
                delete(CabinetStock).where(
                    col(CabinetStock.cabinet_id) == cab.id, col(CabinetStock.epc).in_(gone)
                )
            )
        for epc in after.difference(current):
            s.add(CabinetStock(cabinet_id=cab.id, epc=epc, gtin=decode_epc(epc).gtin, since=now))

    async def _hold(self, cab: Cabinet, live: Live, reason: str, details: dict[str, Any]) -> None:
        now = self.clock.now()

        def work(tx: Transaction) -> None:
            row = self._row(tx, live)
            row.state = SessionState.HELD.value
            row.hold_reason = reason
            row.updated_at = now
            tx.session.add(row)
            tx.emit(
                "cabinet.session_held",
                {
                    "session_id": live.id,
                    "cabinet": cab.id,
                    "kind": live.kind.value,
                    "member_id": live.member_id,
                    "reason": reason,
                    **details,
                },
            )

        def held() -> None:
            live.state = SessionState.HELD
            cab.held = True  # the cabinet stays closed to new sessions until an operator decides
            self._settled_signal().set()

        await self._transact_then(live.id, work, held)
        log.warning(
            "cabinet session held for review",
            extra={"session": live.id, "cabinet": cab.id, "reason": reason},
        )

    async def _cancel(self, cab: Cabinet, live: Live, outcome: str, reason: str) -> None:
        now = self.clock.now()

        def work(tx: Transaction) -> None:
            row = self._row(tx, live)
            row.state = SessionState.CANCELLED.value
            row.updated_at = row.settled_at = now
            tx.session.add(row)
            tx.emit(
                "cabinet.session_closed",
                {
                    "session_id": live.id,
                    "cabinet": cab.id,
                    "kind": live.kind.value,
                    "member_id": live.member_id,
                    "outcome": outcome,
                    "reason": reason,
                    "order_id": None,
                },
            )

        await self._transact_then(live.id, work, lambda: self._finish(cab, live))
        log.warning(
            "cabinet session cancelled",
            extra={"session": live.id, "cabinet": cab.id, "outcome": outcome, "reason": reason},
        )

    async def _transact_then(
        self, session_id: str, work: Callable[[Transaction], T], apply: Callable[[], None]
    ) -> T:
        """Commit ``work``; ``apply`` its effect on the in-memory cabinet as the commit's events
        are announced (before anyone told of a closed session can act on a stale cabinet)."""
        self._on_commit[session_id] = apply
        try:
            result = await self.db.transact(work)
        except BaseException:
            self._on_commit.pop(session_id, None)
            raise
        pending = self._on_commit.pop(session_id, None)
        if pending is not None:  # the transaction emitted no session event (settled already)
            pending()
        return result

    def _committed(self, events: list[Envelope]) -> None:
        for event in events:
            if event.type in ("cabinet.session_closed", "cabinet.session_held"):
                apply = self._on_commit.pop(str(event.data.get("session_id")), None)
                if apply is not None:
                    apply()

    def _finish(self, cab: Cabinet, live: Live) -> None:
        if cab.session_id == live.id:
            cab.session_id = None
        self._settled_signal().set()

    def _row(self, tx: Transaction, live: Live) -> CabinetSession:
        row = tx.session.get(CabinetSession, live.id)
        if row is None:
            raise RuntimeError(f"cabinet session {live.id} vanished")
        return row

    # ----------------------------------------------------------------- doors

    def door_seen(self, address: LockAddress, is_open: bool) -> None:
        cab = self._by_address.get(address)
        if cab is None or cab.door_open is is_open:
            return
        was = cab.door_open
        cab.door_open = is_open
        cab.door_changed.set()
        if is_open and was is False and cab.session_id is None and not self._stopping:
            # Nobody was let in: the goods inside are at risk until the door shuts.
            self._spawn(self._alarm(cab, "door.forced", {"cabinet": cab.id}))

    async def _wait_door(self, cab: Cabinet, want_open: bool, within_s: float | None) -> bool:
        try:
            async with asyncio.timeout(within_s):
                while cab.door_open is not want_open:
                    cab.door_changed.clear()
                    await cab.door_changed.wait()
        except TimeoutError:
            return False
        return True

    async def _read_door(self, cab: Cabinet) -> bool | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECOVERY_DOOR_TIMEOUT_S
        while loop.time() < deadline:
            try:
                return await self.locks.read_door(cab.address)
            except LockBoardError:
                await asyncio.sleep(0.5)  # the bus may still be opening at boot
        return cab.door_open

    # ----------------------------------------------------------------- closed cabinets

    def reader_availability(self, reader: str, available: bool) -> None:
        for cab in self.cabinets.values():
            if cab.config.reader == reader:
                cab.reader_available = available

    def _round_ended(self, inventory: CabinetInventory) -> None:
        cab = self.cabinets[inventory.cabinet_id]
        if cab.session_id is not None or not inventory.ready or cab.alarm_pending:
            return
        if cab.door_open:
            return
        if not cab.stocked:
            cab.alarm_pending = True
            self._spawn(self._adopt(cab, inventory.present))
            return
        tracker = inventory.tracker
        missing = [epc for epc in cab.stock if not tracker.recently_seen(epc)]
        if missing:
            cab.alarm_pending = True
            self._spawn(self._tags_missing(cab, missing))

    async def _tags_missing(self, cab: Cabinet, missing: list[str]) -> None:
        """Tags not read for m rounds while nobody had the door: taken without a sale."""
        try:

            def work(tx: Transaction) -> None:
                tx.session.exec(
                    delete(CabinetStock).where(
                        col(CabinetStock.cabinet_id) == cab.id, col(CabinetStock.epc).in_(missing)
                    )
                )
                tx.emit(
                    "inventory.tag_missing",
                    {
                        "cabinet": cab.id,
                        "epcs": missing,
                        "items": [_item(epc) for epc in missing],
                        "door_open": cab.door_open,
                    },
                )

            # Out of the in-memory stock before the alarm is announced; back in if it is not.
            gtins = {epc: cab.stock.pop(epc, None) for epc in missing}
            try:
                await self.db.transact(work)
            except BaseException:
                cab.stock.update(gtins)
                raise
            log.warning(
                "tags left a closed cabinet",
                extra={"cabinet": cab.id, "count": len(missing), "epcs": missing[:20]},
            )
        finally:
            cab.alarm_pending = False

    async def _adopt(self, cab: Cabinet, present: frozenset[str]) -> None:
        """A cabinet never stocked through a session: its first full inventory is its stock."""
        try:
            now = self.clock.now()

            def work(tx: Transaction) -> None:
                self._write_stock(tx, cab, present, now)
                tx.emit("inventory.snapshot", self._snapshot_data(cab, present, "initial"))

            # The stock is in memory before the snapshot is announced; undone if not committed.
            cab.stock = {epc: decode_epc(epc).gtin for epc in present}
            cab.stocked = True
            try:
                await self.db.transact(work)
            except BaseException:
                cab.stock, cab.stocked = {}, False
                raise
            cab.last_snapshot = self.clock.monotonic()
        finally:
            cab.alarm_pending = False

    async def snapshot(self, cabinet_id: str, reason: str = "periodic") -> bool:
        """Report a closed cabinet's inventory upstream; False when it cannot be counted now."""
        cab = self._cabinet(cabinet_id)
        if cab.session_id is not None or not cab.inventory.ready or not cab.reader_available:
            return False
        present = cab.inventory.present
        await self.db.transact(
            lambda tx: tx.emit("inventory.snapshot", self._snapshot_data(cab, present, reason))
        )
        cab.last_snapshot = self.clock.monotonic()
        return True

    async def snapshot_forever(self) -> None:
        while True:
            now = self.clock.monotonic()
            for cab in self.cabinets.values():
                if now - cab.last_snapshot >= cab.config.snapshot_interval_s:
                    await self.snapshot(cab.id)
            intervals = [c.config.snapshot_interval_s for c in self.cabinets.values()]
            await asyncio.sleep(min([*intervals, 60.0]) / 4)

    def _snapshot_data(self, cab: Cabinet, present: frozenset[str], reason: str) -> dict[str, Any]:
        by_gtin: dict[str, int] = {}
        undecodable: list[str] = []
        for epc in present:
            gtin = decode_epc(epc).gtin
            if gtin is None:
                undecodable.append(epc)
            else:
                by_gtin[gtin] = by_gtin.get(gtin, 0) + 1
        return {
            "cabinet": cab.id,
            "reason": reason,
            "count": len(present),
            "items": [
                {"gtin": gtin, "name": self.prices.name(gtin), "count": count}
                for gtin, count in sorted(by_gtin.items())
            ],
            "undecodable": sorted(undecodable),
            "epcs": sorted(present),
        }

    def stock_report(self) -> dict[str, Any]:
        """Telemetry: what each cabinet holds now, by GTIN."""
        report: dict[str, Any] = {}
        for cab in self.cabinets.values():
            by_gtin: dict[str, int] = {}
            for gtin in cab.stock.values():
                key = gtin or "undecodable"
                by_gtin[key] = by_gtin.get(key, 0) + 1
            report[cab.id] = {
                "reader_available": cab.reader_available,
                "ready": cab.inventory.ready,
                "session": cab.session_id,
                "held": cab.held,
                "door_open": cab.door_open,
                "items": len(cab.stock),
                "live_items": len(cab.inventory.present) if cab.inventory.ready else None,
                "by_gtin": by_gtin,
            }
        return report

    # ----------------------------------------------------------------- plumbing

    def _cabinet(self, cabinet_id: str) -> Cabinet:
        cab = self.cabinets.get(cabinet_id)
        if cab is None:
            raise UnknownCabinet(f"No cabinet {cabinet_id}.")
        return cab

    async def _alarm(self, cab: Cabinet, type_: str, data: dict[str, Any]) -> None:
        await self.db.transact(lambda tx: tx.emit(type_, data))
        log.warning(type_, extra={"cabinet": cab.id})

    def _settled_signal(self) -> asyncio.Event:
        """Pulsed whenever a session ends (closed, held, cancelled); waiters re-check."""
        if self._signal is None or self._signal.is_set():
            self._signal = asyncio.Event()
        return self._signal

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("cabinet task failed")

    def stop_accepting(self) -> None:
        self._stopping = True

    async def close(self) -> None:
        """Stop the runners: an unfinished session is settled at the next start."""
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _live(row: CabinetSession) -> Live:
    return Live(
        id=row.id,
        cabinet_id=row.cabinet_id,
        kind=SessionKind(row.kind),
        state=SessionState(row.state),
        member_id=row.member_id,
        member_source=row.member_source,
        actor=row.actor,
        before=frozenset(row.before),
        created_at=as_utc(row.created_at),
        opened_at=as_utc(row.door_opened_at) if row.door_opened_at else None,
        verification_id=row.verification_id,
    )


def _item(epc: str) -> dict[str, Any]:
    decoded = decode_epc(epc)
    return {"epc": epc, "gtin": decoded.gtin, "serial": decoded.serial}


def _line_dict(line: OrderLine | Line) -> dict[str, Any]:
    described: dict[str, Any] = {
        "epc": line.epc,
        "gtin": line.gtin,
        "name": line.name,
        "price_version": line.price_version,
        "amount": line.amount,
    }
    # Only where the amount is not the price version's own: old events keep their shape.
    if line.regular_amount is not None:
        described["regular_amount"] = line.regular_amount
    if line.promotion_id is not None:
        described["promotion"] = {"id": line.promotion_id, "version": line.promotion_version}
    if line.price_source != "catalog":
        described["price_source"] = line.price_source
    return described


def _view_of_live(live: Live) -> SessionView:
    return SessionView(
        id=live.id,
        cabinet_id=live.cabinet_id,
        kind=live.kind.value,
        state=live.state.value,
        member_id=live.member_id,
        hold_reason=None,
        order_id=None,
        total=None,
        currency=None,
        lines=[],
    )
