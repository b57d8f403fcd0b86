"""Locker flows: courier deposit, pickup by code, courier return, operator actions, expiry.

Each decision runs inside one database transaction together with the event that reports it.
A door is unlocked only after the transaction that records the command has committed, and a
pickup code is handed out only after the deposit that it belongs to has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from drivers.lockboard import LockBoardError
from edge.clock import Clock, rfc3339
from edge.config.models import EdgeConfig
from edge.db import Database, Transaction
from edge.db.tables import Compartment, Courier, DoorOperation, Parcel
from edge.hardware.locks import LockAddress, LockController
from edge.lockers import queries
from edge.lockers.attempts import AttemptVerdict, CodeAttemptLimiter
from edge.lockers.codes import PickupCodes, hash_credential, verify_credential
from edge.lockers.errors import (
    AlreadyDeposited,
    BoardUnreachable,
    CodeInputLocked,
    InvalidState,
    LockerError,
    NoFreeCompartment,
    NotAuthenticated,
    NotFound,
    OpenNotDetected,
    ParcelExpired,
    ShuttingDown,
    SizeRequired,
    UnknownSize,
    WrongCode,
)
from edge.lockers.states import (
    PARCEL_INSIDE,
    CompartmentState,
    OperationKind,
    OperationState,
    ParcelState,
)

log = logging.getLogger(__name__)

_OUT_OF_SERVICE = (CompartmentState.FAULTED, CompartmentState.DISABLED)

PICKUP_CODE_KEY = "pickup:{terminal}"
COURIER_LOGIN_KEY = "courier:{terminal}"


@dataclass(frozen=True)
class DoorCommand:
    """An unlock that has been committed to the database and is about to be sent."""

    operation_id: str
    compartment_id: str
    address: LockAddress
    kind: OperationKind
    parcel_id: str | None


@dataclass(frozen=True)
class OpenedDoor:
    operation_id: str
    compartment_id: str
    kind: str
    parcel_id: str | None


@dataclass(frozen=True)
class CourierSession:
    token: str
    courier_id: str
    courier_name: str
    terminal: str
    expires_at: float = field(compare=False)


@dataclass(frozen=True)
class OperationView:
    id: str
    kind: str
    state: str
    compartment_id: str
    parcel_id: str | None
    pickup_code: str | None = None
    """Only for a completed deposit, only while the kiosk may still show it."""


class LockerService:
    def __init__(
        self,
        config: EdgeConfig,
        db: Database,
        locks: LockController,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.rules = config.lockers
        self.db = db
        self.locks = locks
        self.clock = clock or db.clock
        self.codes = PickupCodes(
            config.code_secret.get_secret_value(), self.rules.pickup_code_digits
        )
        self.attempts = CodeAttemptLimiter(self.rules.code_attempts)
        self._size_rank = {size: rank for rank, size in enumerate(self.rules.sizes)}
        self._addresses = {
            c.id: LockAddress(c.bus, c.board, c.lock) for c in self.rules.compartments
        }
        self._by_address = {address: cid for cid, address in self._addresses.items()}
        self._sessions: dict[str, CourierSession] = {}
        self._open_waiters: dict[str, asyncio.Future[None]] = {}
        self._finished: dict[str, asyncio.Event] = {}
        self._fresh_codes: dict[str, tuple[str, float]] = {}
        # Door states as last seen; None = not yet read since start.
        self._doors: dict[str, bool | None] = {}
        self._door_events: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        self._checked_boards: set[tuple[str, int]] = set()
        self._ever_checked: set[tuple[str, int]] = set()
        self._checking: set[tuple[str, int]] = set()
        self._background: set[asyncio.Future[Any]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._opened_serial: dict[str, int] = {}
        self._stopping = False

    # ----------------------------------------------------------------- start-up

    def sync_from_config(self) -> None:
        """Bring compartments and couriers in the database in line with the configuration."""
        self.db.transact_sync(self._sync_from_config)

    def _sync_from_config(self, tx: Transaction) -> None:
        self._sync_compartments(tx.session, self.clock.now())
        self._sync_couriers(tx.session, self.clock.now())
        # The in-memory door view starts from what the database last saw.
        for comp in tx.session.exec(select(Compartment)).all():
            self._doors[comp.id] = comp.door_open

    def _sync_compartments(self, s: Session, now: datetime) -> None:
        configured = {c.id: c for c in self.rules.compartments}
        for row in s.exec(select(Compartment)).all():
            if row.id not in configured and row.enabled:
                row.enabled = False
                row.fault = "removed_from_config"
                if row.state == CompartmentState.FREE:
                    row.state = CompartmentState.DISABLED
                row.updated_at = now
                s.add(row)
        for comp in self.rules.compartments:
            existing = s.get(Compartment, comp.id)
            if existing is None:
                row = Compartment(
                    id=comp.id,
                    bus=comp.bus,
                    board=comp.board,
                    lock=comp.lock,
                    size=comp.size,
                    zone=comp.zone.value,
                    enabled=comp.enabled,
                    state=CompartmentState.FREE if comp.enabled else CompartmentState.DISABLED,
                    updated_at=now,
                )
            else:
                row = existing
                row.bus, row.board, row.lock = comp.bus, comp.board, comp.lock
                row.size, row.zone = comp.size, comp.zone.value
                if row.fault == "removed_from_config":
                    row.fault = None
                    row.enabled = comp.enabled
                    if row.state == CompartmentState.DISABLED and comp.enabled:
                        row.state = CompartmentState.FREE
                row.updated_at = now
            s.add(row)
        s.flush()

    def _sync_couriers(self, s: Session, now: datetime) -> None:
        couriers = {c.id: c for c in self.rules.couriers}
        for courier_row in s.exec(select(Courier).where(Courier.source == "config")).all():
            if courier_row.id not in couriers and courier_row.active:
                courier_row.active = False
                courier_row.updated_at = now
                s.add(courier_row)
        for courier in self.rules.couriers:
            credential = courier.credential.get_secret_value()
            found = s.get(Courier, courier.id)
            if found is None:
                courier_row = Courier(
                    id=courier.id, credential_hash=hash_credential(credential), updated_at=now
                )
            else:
                courier_row = found
                if not verify_credential(credential, courier_row.credential_hash):
                    courier_row.credential_hash = hash_credential(credential)
            courier_row.name, courier_row.active, courier_row.source, courier_row.updated_at = (
                courier.name,
                True,
                "config",
                now,
            )
            s.add(courier_row)

    async def recover_interrupted(self) -> int:
        """Flag every operation a previous run left open (power cut between unlock and close).

        Nothing is unlocked: the compartment is faulted for an operator to inspect, and the
        fault is reported upstream with what is known.
        """
        return await self.db.transact(self._recover_interrupted)

    def _recover_interrupted(self, tx: Transaction) -> int:
        s, now = tx.session, self.clock.now()
        operations = queries.interrupted_candidates(s)
        for op in operations:
            comp = s.get(Compartment, op.compartment_id)
            assert comp is not None
            op.state, op.closed_at = OperationState.INTERRUPTED, now
            s.add(op)
            if op.kind == OperationKind.DEPOSIT and op.parcel_id:
                parcel = s.get(Parcel, op.parcel_id)
                if parcel is not None and parcel.state == ParcelState.DEPOSITING:
                    parcel.state, parcel.updated_at = ParcelState.INTERRUPTED, now
                    s.add(parcel)
            reason = f"interrupted_{op.kind}"
            self._fault(
                tx, comp, reason, operation=op.id, parcel=op.parcel_id, door_open=comp.door_open
            )
        return len(operations)

    async def check_bus(self, bus: str, boards: list[int] | None = None) -> list[dict[str, Any]]:
        """Read every lock on a bus (or some boards) and compare with the database.

        Runs at boot, whenever a bus comes back, and when a board that could not be read
        answers again. It only reads, never unlocks; each difference is flagged and reported.
        """
        addresses = boards or [board.address for board in self.locks.configs[bus].boards]
        keys = {(bus, address) for address in addresses}
        # While a board is being checked its readings are the check's, not live door events.
        self._checked_boards -= keys
        self._checking |= keys
        observed: dict[str, bool] = {}
        unreachable: list[int] = []
        try:
            for address in addresses:
                try:
                    doors = await self.locks.read_board(bus, address)
                except LockBoardError as exc:
                    log.warning(
                        "board unreadable during check",
                        extra={"bus": bus, "board": address, "error": str(exc)},
                    )
                    unreachable.append(address)
                    continue
                for lock, is_open in doors.items():
                    cid = self._by_address.get(LockAddress(bus, address, lock))
                    if cid is not None:
                        observed[cid] = is_open
            read = keys - {(bus, address) for address in unreachable}
            first = not read <= self._ever_checked
            differences = await self.db.transact(
                lambda tx: self._compare_doors(tx, bus, observed, unreachable, first)
            )
            for cid, is_open in observed.items():
                self._doors[cid] = is_open
            self._checked_boards |= read
            self._ever_checked |= read
        finally:
            self._checking -= keys
        return differences

    def _compare_doors(
        self,
        tx: Transaction,
        bus: str,
        observed: dict[str, bool],
        unreachable: list[int],
        first: bool,
    ) -> list[dict[str, Any]]:
        s = tx.session
        differences: list[dict[str, Any]] = []
        for cid, is_open in sorted(observed.items()):
            comp = s.get(Compartment, cid)
            if comp is None:
                continue
            op = queries.active_operation(s, cid)
            already_flagged = comp.state == CompartmentState.FAULTED and comp.door_open
            if is_open and op is None and not already_flagged:
                reason = "door_open_at_boot" if first else "door_open_after_reconnect"
                differences.append({"compartment": cid, "reason": reason, "state": comp.state})
                self._fault(tx, comp, reason, door_open=True, parcel=comp.parcel_id)
            elif comp.door_open is not None and comp.door_open != is_open:
                differences.append(
                    {
                        "compartment": cid,
                        "reason": "door_state_changed",
                        "was_open": comp.door_open,
                        "now_open": is_open,
                    }
                )
            comp.door_open = is_open
            s.add(comp)
        tx.emit(
            "locker.boot_check" if first else "locker.bus_check",
            {
                "bus": bus,
                "checked": len(observed),
                "differences": differences,
                "unreachable_boards": unreachable,
            },
        )
        return differences

    # ----------------------------------------------------------------- couriers

    async def courier_login(
        self, terminal: str, courier_id: str, credential: str
    ) -> CourierSession:
        key = COURIER_LOGIN_KEY.format(terminal=terminal)

        def work(tx: Transaction) -> tuple[Courier | None, AttemptVerdict]:
            now = self.clock.now()
            verdict = self.attempts.check(tx.session, key, now)
            if verdict.locked_for_s > 0:
                return None, verdict
            courier = tx.session.get(Courier, courier_id)
            if (
                courier
                and courier.active
                and verify_credential(credential, courier.credential_hash)
            ):
                self.attempts.record_success(tx.session, key)
                return courier, verdict
            return None, self.attempts.record_failure(tx.session, key, now)

        courier, verdict = await self.db.transact(work)
        if courier is None:
            if verdict.locked_for_s > 0:
                raise CodeInputLocked(
                    "Too many wrong sign-ins; input is locked.",
                    retry_after_s=int(verdict.locked_for_s + 0.999),
                )
            raise NotAuthenticated(
                "Unknown courier or wrong credential.", attempts_left=verdict.attempts_left
            )
        return self._open_courier_session(courier, terminal, "credential")

    async def courier_login_signed(self, terminal: str, courier_id: str) -> CourierSession:
        """Sign in a courier whose identity upstream vouched for (a signed courier QR, already
        verified): the courier must still be known here and active."""
        courier = await self.db.read(lambda s: s.get(Courier, courier_id))
        if courier is None or not courier.active:
            raise NotAuthenticated("This courier is not allowed at this site.")
        return self._open_courier_session(courier, terminal, "signed_qr")

    def _open_courier_session(self, courier: Courier, terminal: str, via: str) -> CourierSession:
        session = CourierSession(
            token=secrets.token_urlsafe(24),
            courier_id=courier.id,
            courier_name=courier.name,
            terminal=terminal,
            expires_at=self.clock.monotonic() + self.rules.courier_session_s,
        )
        self._sessions[session.token] = session
        log.info(
            "courier signed in", extra={"courier": courier.id, "terminal": terminal, "via": via}
        )
        return session

    def courier_session(self, token: str) -> CourierSession:
        session = self._sessions.get(token)
        if session is None or session.expires_at < self.clock.monotonic():
            self._sessions.pop(token, None)
            raise NotAuthenticated("Courier session missing or expired; sign in again.")
        return session

    def courier_logout(self, token: str) -> None:
        self._sessions.pop(token, None)

    # ----------------------------------------------------------------- deposit

    async def start_deposit(
        self,
        courier_id: str,
        parcel_code: str,
        size: str | None = None,
        zone: str | None = None,
    ) -> OpenedDoor:
        """Unlock the smallest free compartment that fits, and wait until its door is open."""
        self._refuse_when_stopping()
        parcel_code = parcel_code.strip()
        if not parcel_code:
            raise InvalidState("Scan or type the parcel code first.")
        if size is not None and size not in self._size_rank:
            raise UnknownSize(f"Unknown size {size!r}.", sizes=self.rules.sizes)
        command = await self.db.transact(
            lambda tx: self._reserve_deposit(tx, courier_id, parcel_code, size, zone)
        )
        return await self._unlock_and_wait(command)

    def _reserve_deposit(
        self, tx: Transaction, courier_id: str, code: str, size: str | None, zone: str | None
    ) -> DoorCommand:
        s, now = tx.session, self.clock.now()
        # refuse_new at the cap: no new parcel comes in (before anything is reserved). Pickups
        # and returns still work: they empty compartments and the parcels are already inside.
        self.db.outbox.admit_new_work(s)
        courier = s.get(Courier, courier_id)
        if courier is None or not courier.active:
            raise NotAuthenticated("This courier may not deposit.")
        if queries.live_parcel_with_code(s, code) is not None:
            raise AlreadyDeposited(f"Parcel {code} is already in the locker.", parcel_code=code)
        parcel = queries.expected_parcel(s, code)
        if parcel is not None and parcel.expected_at is not None:
            # Announced upstream (``parcel.expect``): its size, if given, and zone are fixed.
            size = parcel.size or size
            zone = parcel.zone
        elif parcel is not None:
            # Handed back after a failed or cancelled deposit (it did not fit): the courier
            # may choose again; without a choice the last one stands.
            size, zone = size or parcel.size, zone or parcel.zone
        zone = zone or "ambient"
        if size is None:
            raise SizeRequired("Choose a compartment size for this parcel.", sizes=self.rules.sizes)
        comp = self._smallest_fit(s, size, zone)
        if comp is None:
            raise NoFreeCompartment(
                f"No free {size} compartment (or larger) in the {zone} zone.", size=size, zone=zone
            )
        if parcel is None:
            parcel = Parcel(
                id=str(uuid.uuid4()),
                code=code,
                state=ParcelState.DEPOSITING,
                size=size,
                zone=zone,
                updated_at=now,
            )
        parcel.state, parcel.courier_id, parcel.compartment_id = (
            ParcelState.DEPOSITING,
            courier_id,
            comp.id,
        )
        parcel.size = size if parcel.expected_at is None else parcel.size or size
        parcel.zone = zone
        parcel.updated_at = now
        s.add(parcel)
        s.flush()
        command = self._command(tx, comp, OperationKind.DEPOSIT, courier_id, parcel.id)
        comp.state, comp.parcel_id, comp.updated_at = CompartmentState.RESERVED, parcel.id, now
        s.add(comp)
        return command

    def _smallest_fit(self, s: Session, size: str, zone: str) -> Compartment | None:
        wanted = self._size_rank[size]
        candidates = [
            c
            for c in queries.free_compartments(s, zone)
            if self._size_rank.get(c.size, -1) >= wanted
            and (c.bus, c.board) in self._checked_boards
            and self.locks.board_available(c.bus, c.board)
        ]
        candidates.sort(key=lambda c: (self._size_rank[c.size], c.id))
        return candidates[0] if candidates else None

    async def cancel_deposit(self, operation_id: str, courier_id: str) -> None:
        """The parcel does not fit: the door closes on an empty compartment."""

        def work(tx: Transaction) -> None:
            op = tx.session.get(DoorOperation, operation_id)
            if op is None or op.kind != OperationKind.DEPOSIT or op.actor != courier_id:
                raise NotFound("No such deposit for this courier.")
            if op.state != OperationState.OPENED:
                raise InvalidState("Only an open deposit can be cancelled.", state=op.state)
            op.state = OperationState.CANCELLED
            tx.session.add(op)

        await self.db.transact(work)

    # ----------------------------------------------------------------- pickup

    async def start_pickup(self, terminal: str, code: str) -> OpenedDoor:
        self._refuse_when_stopping()
        key = PICKUP_CODE_KEY.format(terminal=terminal)
        code = code.strip()

        def work(tx: Transaction) -> DoorCommand | tuple[str, float, int]:
            s, now = tx.session, self.clock.now()
            verdict = self.attempts.check(s, key, now)
            if verdict.locked_for_s > 0:
                return ("locked", verdict.locked_for_s, 0)
            parcel = None
            if code.isdigit() and len(code) == self.codes.digits:
                parcel = s.exec(
                    select(Parcel).where(Parcel.pickup_code_hash == self.codes.hash(code))
                ).first()
            if parcel is None or parcel.state not in PARCEL_INSIDE:
                failed = self.attempts.record_failure(s, key, now)
                if failed.locked_for_s > 0:
                    return ("locked", failed.locked_for_s, 0)
                return ("wrong", 0.0, failed.attempts_left)
            self.attempts.record_success(s, key)
            return self._pickup_command(tx, parcel, terminal)

        return await self._finish_pickup(await self.db.transact(work))

    async def start_pickup_signed(self, terminal: str, parcel_id: str) -> OpenedDoor:
        """Hand out a parcel named by a pickup QR upstream signed (already verified): no code
        is typed, so no attempt counts; the parcel must still be inside."""
        self._refuse_when_stopping()

        def work(tx: Transaction) -> DoorCommand | tuple[str, float, int]:
            parcel = tx.session.get(Parcel, parcel_id)
            if parcel is None or parcel.state not in PARCEL_INSIDE:
                return ("gone", 0.0, 0)
            return self._pickup_command(tx, parcel, terminal)

        return await self._finish_pickup(await self.db.transact(work))

    def _pickup_command(
        self, tx: Transaction, parcel: Parcel, terminal: str
    ) -> DoorCommand | tuple[str, float, int]:
        s = tx.session
        if parcel.state == ParcelState.EXPIRED:
            return ("expired", 0.0, 0)
        comp = s.get(Compartment, parcel.compartment_id)
        assert comp is not None
        if queries.active_operation(s, comp.id) is not None:
            return ("busy", 0.0, 0)
        if not self.locks.board_available(comp.bus, comp.board):
            return ("offline", 0.0, 0)
        return self._command(tx, comp, OperationKind.PICKUP, f"terminal:{terminal}", parcel.id)

    async def _finish_pickup(self, outcome: DoorCommand | tuple[str, float, int]) -> OpenedDoor:
        if isinstance(outcome, DoorCommand):
            return await self._unlock_and_wait(outcome)
        verdict, locked_for, left = outcome
        if verdict == "locked":
            raise CodeInputLocked(
                "Too many wrong codes; input is locked for a while.",
                retry_after_s=int(locked_for + 0.999),
            )
        if verdict == "expired":
            raise ParcelExpired("This parcel has expired and waits for the courier to collect it.")
        if verdict == "offline":
            raise BoardUnreachable("This compartment cannot be opened right now; try again later.")
        if verdict == "busy":
            raise InvalidState("This compartment is already open.")
        if verdict == "gone":
            raise InvalidState("This parcel is no longer in the locker.")
        raise WrongCode("That code is not valid.", attempts_left=left)

    # ----------------------------------------------------------------- courier return

    async def expired_parcels(self) -> list[Parcel]:
        return list(
            await self.db.read(
                lambda s: s.exec(
                    select(Parcel)
                    .where(Parcel.state == ParcelState.EXPIRED)
                    .order_by(col(Parcel.expires_at))
                ).all()
            )
        )

    async def start_return(self, courier_id: str, parcel_id: str) -> OpenedDoor:
        self._refuse_when_stopping()

        def work(tx: Transaction) -> DoorCommand:
            s = tx.session
            courier = s.get(Courier, courier_id)
            if courier is None or not courier.active:
                raise NotAuthenticated("This courier may not collect returns.")
            parcel = s.get(Parcel, parcel_id)
            if parcel is None or parcel.state != ParcelState.EXPIRED:
                raise NotFound("No expired parcel with that id.")
            comp = s.get(Compartment, parcel.compartment_id)
            assert comp is not None
            if queries.active_operation(s, comp.id) is not None:
                raise InvalidState("This compartment is already open.")
            return self._command(tx, comp, OperationKind.RETURN, courier_id, parcel.id)

        return await self._unlock_and_wait(await self.db.transact(work))

    # ----------------------------------------------------------------- operator

    async def operator_open(self, compartment_id: str, reason: str, actor: str) -> OpenedDoor:
        self._refuse_when_stopping()
        if not reason.strip():
            raise InvalidState("Give a reason for opening the compartment.")

        def work(tx: Transaction) -> DoorCommand:
            comp = tx.session.get(Compartment, compartment_id)
            if comp is None:
                raise NotFound(f"No compartment {compartment_id}.")
            if queries.active_operation(tx.session, comp.id) is not None:
                raise InvalidState("This compartment is already open.")
            return self._command(
                tx, comp, OperationKind.OPERATOR_OPEN, actor, comp.parcel_id, reason=reason.strip()
            )

        return await self._unlock_and_wait(await self.db.transact(work))

    async def set_enabled(self, compartment_id: str, enabled: bool, actor: str) -> Compartment:
        """Disable takes a compartment out of service; enable returns it and clears its fault."""
        comp, _changed = await self.db.transact(
            lambda tx: self.change_enabled(tx, compartment_id, enabled, actor)
        )
        return comp

    def change_enabled(
        self,
        tx: Transaction,
        compartment_id: str,
        enabled: bool,
        actor: str,
        details: Mapping[str, object] | None = None,
    ) -> tuple[Compartment, bool]:
        """In the caller's transaction; a change that is no change emits nothing (so applying
        the same command twice is applying it once). ``details`` go into the event."""
        s = tx.session
        comp = s.get(Compartment, compartment_id)
        if comp is None or not any(c.id == comp.id for c in self.rules.compartments):
            raise NotFound(f"No compartment {compartment_id} is configured at this site.")
        before: tuple[bool, str, str | None] = (comp.enabled, comp.state, comp.fault)
        target: tuple[bool, str, str | None]
        if enabled and comp.enabled and comp.fault is None and comp.state not in _OUT_OF_SERVICE:
            target = before  # in service already (perhaps mid-pickup): nothing to do
        elif enabled:
            # Enabling also clears a fault.
            target = (
                True,
                CompartmentState.OCCUPIED if comp.parcel_id else CompartmentState.FREE,
                None,
            )
        else:
            # A parcel inside stays there (and can be picked up); an empty one is set aside.
            target = (
                False,
                comp.state if comp.parcel_id else CompartmentState.DISABLED,
                comp.fault,
            )
        changed = before != target
        if changed:
            if queries.active_operation(s, comp.id) is not None:
                raise InvalidState("Wait until the door is closed again.")
            comp.enabled, comp.state, comp.fault = target
            comp.updated_at = self.clock.now()
            s.add(comp)
            tx.emit(
                "compartment.enabled" if enabled else "compartment.disabled",
                {"compartment": comp.id, "actor": actor, "state": comp.state, **(details or {})},
            )
        return comp, changed

    async def expect_parcel(
        self, code: str, size: str | None, zone: str, recipient: str | None = None
    ) -> Parcel:
        """Upstream announces a parcel (``parcel.expect``): its size and zone are then fixed."""
        if size is not None and size not in self._size_rank:
            raise UnknownSize(f"Unknown size {size!r}.", sizes=self.rules.sizes)
        if zone not in {z.value for z in self.rules.zones}:
            raise InvalidState(f"Zone {zone!r} is not configured.")

        def work(tx: Transaction) -> Parcel:
            s, now = tx.session, self.clock.now()
            if queries.live_parcel_with_code(s, code) is not None:
                raise AlreadyDeposited(f"Parcel {code} is already in the locker.")
            parcel = queries.expected_parcel(s, code) or Parcel(
                id=str(uuid.uuid4()),
                code=code,
                state=ParcelState.EXPECTED,
                zone=zone,
                updated_at=now,
            )
            parcel.size, parcel.zone, parcel.recipient = size, zone, recipient
            parcel.expected_at = parcel.expected_at or now
            parcel.updated_at = now
            s.add(parcel)
            return parcel

        return await self.db.transact(work)

    # ----------------------------------------------------------------- expiry

    async def expire_due(self) -> int:
        def work(tx: Transaction) -> int:
            s, now = tx.session, self.clock.now()
            due = s.exec(
                select(Parcel).where(
                    Parcel.state == ParcelState.STORED,
                    col(Parcel.expires_at) <= now,
                )
            ).all()
            for parcel in due:
                parcel.state, parcel.updated_at = ParcelState.EXPIRED, now
                s.add(parcel)
                tx.emit(
                    "parcel.expired",
                    {
                        "parcel_id": parcel.id,
                        "parcel_code": parcel.code,
                        "compartment": parcel.compartment_id,
                        "zone": parcel.zone,
                        "expires_at": rfc3339(parcel.expires_at) if parcel.expires_at else None,
                    },
                )
            return len(due)

        return await self.db.transact(work)

    async def expire_forever(self) -> None:
        while True:
            expired = await self.expire_due()
            if expired:
                log.info("parcels expired", extra={"count": expired})
            await asyncio.sleep(self.rules.expiry_check_s)

    # ----------------------------------------------------------------- operations

    async def wait_operation(self, operation_id: str, wait_s: float = 0.0) -> OperationView:
        """The state of an operation; with ``wait_s``, wait that long for it to finish."""
        finished = self._finished.get(operation_id)
        if wait_s > 0 and finished is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), wait_s)
        op = await self.db.read(lambda s: s.get(DoorOperation, operation_id))
        if op is None:
            raise NotFound("No such operation.")
        code = None
        fresh = self._fresh_codes.get(operation_id)
        if fresh is not None:
            if fresh[1] >= self.clock.monotonic():
                code = fresh[0]
            else:
                del self._fresh_codes[operation_id]
        return OperationView(op.id, op.kind, op.state, op.compartment_id, op.parcel_id, code)

    def _command(
        self,
        tx: Transaction,
        comp: Compartment,
        kind: OperationKind,
        actor: str,
        parcel_id: str | None,
        reason: str | None = None,
    ) -> DoorCommand:
        """Record an unlock (and its event) in the caller's transaction."""
        now = self.clock.now()
        op = DoorOperation(
            id=str(uuid.uuid4()),
            compartment_id=comp.id,
            kind=kind,
            state=OperationState.COMMANDED,
            parcel_id=parcel_id,
            actor=actor,
            reason=reason,
            prior_state=comp.state,
            commanded_at=now,
        )
        tx.session.add(op)
        tx.emit(
            "door.commanded",
            {
                "compartment": comp.id,
                "operation": op.id,
                "kind": kind,
                "actor": actor,
                "parcel_id": parcel_id,
                "reason": reason,
            },
        )
        return DoorCommand(op.id, comp.id, self._addresses[comp.id], kind, parcel_id)

    async def _unlock_and_wait(self, command: DoorCommand) -> OpenedDoor:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        self._open_waiters[command.operation_id] = opened
        self._finished[command.operation_id] = asyncio.Event()
        opened_ok = False
        try:
            try:
                await self.locks.unlock(command.address)
            except LockBoardError as exc:
                # The board, not this door, is at fault: the compartment keeps its state and
                # stops being offered until its board answers again.
                given_up = await self.db.transact(
                    lambda tx: self._not_opened(tx, command, "board_unreachable", fault=False)
                )
                if given_up:
                    raise BoardUnreachable(
                        "The locker board did not answer; try another compartment.",
                        compartment=command.compartment_id,
                        error=str(exc),
                    ) from exc
                # Only the acknowledgement was lost: the door was seen open meanwhile.
            if not opened.done():
                poller = asyncio.create_task(self._watch_until_open(command.address, opened))
                try:
                    await asyncio.wait_for(asyncio.shield(opened), self.rules.door_open_timeout_s)
                except TimeoutError:
                    pass
                finally:
                    poller.cancel()
            if not opened.done():
                committed = await self.db.transact(
                    lambda tx: self._not_opened(tx, command, "open_not_detected")
                )
                if committed:
                    raise OpenNotDetected(
                        f"Compartment {command.compartment_id} did not open.",
                        compartment=command.compartment_id,
                    )
            opened_ok = True
        finally:
            self._open_waiters.pop(command.operation_id, None)
            if not opened_ok:
                # The door never opened, so nothing will close it: nobody waits for this one.
                self._finished.pop(command.operation_id, None)
        return OpenedDoor(
            command.operation_id, command.compartment_id, command.kind, command.parcel_id
        )

    async def _watch_until_open(self, address: LockAddress, opened: asyncio.Future[None]) -> None:
        """Poll the one lock while waiting: not every board reports on its own."""
        interval = min(0.25, self.locks.configs[address.bus].poll_interval_s)
        while not opened.done():
            await asyncio.sleep(interval)
            try:
                await self.locks.read_door(address)
            except LockBoardError:
                continue

    def _not_opened(
        self, tx: Transaction, command: DoorCommand, reason: str, fault: bool = True
    ) -> bool:
        """The door was never seen open. False when it opened in the meantime after all."""
        s, now = tx.session, self.clock.now()
        op = s.get(DoorOperation, command.operation_id)
        assert op is not None
        if op.state != OperationState.COMMANDED:
            return False
        op.state, op.closed_at = OperationState.NOT_OPENED, now
        s.add(op)
        comp = s.get(Compartment, command.compartment_id)
        assert comp is not None
        if command.kind == OperationKind.DEPOSIT:
            # The courier still holds the parcel: it goes back to waiting for a compartment.
            comp.parcel_id = None
            parcel = s.get(Parcel, command.parcel_id) if command.parcel_id else None
            if parcel is not None:
                parcel.state, parcel.compartment_id, parcel.updated_at = (
                    ParcelState.EXPECTED,
                    None,
                    now,
                )
                s.add(parcel)
        if fault:
            self._fault(
                tx, comp, reason, operation=op.id, kind=command.kind, parcel=command.parcel_id
            )
        else:
            comp.state, comp.updated_at = CompartmentState(op.prior_state), now
            s.add(comp)
            tx.emit(
                "door.unlock_failed",
                {
                    "compartment": comp.id,
                    "operation": op.id,
                    "kind": command.kind,
                    "reason": reason,
                },
            )
        log.warning(
            "door not opened", extra={"compartment": comp.id, "reason": reason, "operation": op.id}
        )
        return True

    def _fault(self, tx: Transaction, comp: Compartment, reason: str, **details: Any) -> None:
        comp.state, comp.fault, comp.updated_at = CompartmentState.FAULTED, reason, self.clock.now()
        tx.session.add(comp)
        tx.emit("compartment.fault", {"compartment": comp.id, "reason": reason, **details})

    # ----------------------------------------------------------------- doors

    def door_seen(self, address: LockAddress, is_open: bool) -> None:
        """Every door reading lands here; only changes go on to be recorded."""
        cid = self._by_address.get(address)
        if cid is None:
            return
        key = (address.bus, address.board)
        if key not in self._checked_boards:
            # Not yet compared with the database (or unreadable at the last check): a reading
            # means the board answers now, so check it; the check reports what it finds.
            if key not in self._checking and self._ever_checked:
                self._checking.add(key)
                task = asyncio.ensure_future(self.check_bus(address.bus, [address.board]))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            return
        if self._doors.get(cid) == is_open:
            return
        self._doors[cid] = is_open
        self._door_events.put_nowait((cid, is_open))

    async def process_door_events(self) -> None:
        while True:
            cid, is_open = await self._door_events.get()
            try:
                if is_open:
                    await self._door_opened(cid)
                else:
                    await self._door_closed(cid)
            except Exception:
                log.exception("door event failed", extra={"compartment": cid, "open": is_open})

    def _record_door(
        self, tx: Transaction, cid: str, *, is_open: bool, now: datetime
    ) -> tuple[Compartment, DoorOperation | None]:
        """Store a door change with its event; returns the compartment and its operation."""
        comp = tx.session.get(Compartment, cid)
        assert comp is not None
        comp.door_open, comp.updated_at = is_open, now
        tx.session.add(comp)
        op = queries.active_operation(tx.session, cid)
        tx.emit(
            "door.opened" if is_open else "door.closed",
            {"compartment": cid, "operation": op.id if op else None},
        )
        return comp, op

    async def _door_opened(self, cid: str) -> None:
        serial = self._opened_serial.get(cid, 0) + 1
        self._opened_serial[cid] = serial

        def work(tx: Transaction) -> str | None:
            s, now = tx.session, self.clock.now()
            comp, op = self._record_door(tx, cid, is_open=True, now=now)
            if op is None:
                late = self._recently_not_opened(s, cid, now)
                if late is not None:
                    log.warning(
                        "door opened after its unlock was given up",
                        extra={"compartment": cid, "operation": late},
                    )
                    return None
                tx.emit(
                    "door.forced",
                    {"compartment": cid, "parcel_id": comp.parcel_id, "state": comp.state},
                )
                self._fault(tx, comp, "door_forced", parcel=comp.parcel_id)
                return None
            if op.state == OperationState.COMMANDED:
                op.state, op.opened_at = OperationState.OPENED, now
                s.add(op)
                comp.state = (
                    CompartmentState.OPEN_FOR_DEPOSIT
                    if op.kind == OperationKind.DEPOSIT
                    else CompartmentState.OPEN_FOR_PICKUP
                    if op.kind in (OperationKind.PICKUP, OperationKind.RETURN)
                    else comp.state
                )
                s.add(comp)
            return op.id

        op_id = await self.db.transact(work)
        if op_id is not None:
            waiter = self._open_waiters.get(op_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self._spawn_later(self.rules.door_left_open_s, lambda: self._left_open(cid, serial))

    def _spawn_later(self, delay: float, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``work()`` after ``delay`` unless stopping; the task is kept until it ends."""

        def start() -> None:
            self._timers.discard(handle)
            if self._stopping:
                return
            task = asyncio.ensure_future(work())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        handle = asyncio.get_running_loop().call_later(delay, start)
        self._timers.add(handle)

    def _recently_not_opened(self, s: Session, cid: str, now: datetime) -> str | None:
        window = now - timedelta(seconds=self.rules.door_open_timeout_s * 6)
        op = s.exec(
            select(DoorOperation).where(
                DoorOperation.compartment_id == cid,
                DoorOperation.state == OperationState.NOT_OPENED,
                col(DoorOperation.commanded_at) >= window,
            )
        ).first()
        return op.id if op else None

    async def _left_open(self, cid: str, serial: int) -> None:
        if self._doors.get(cid) is not True or self._opened_serial.get(cid) != serial:
            return

        def work(tx: Transaction) -> None:
            op = queries.active_operation(tx.session, cid)
            tx.emit(
                "door.left_open",
                {
                    "compartment": cid,
                    "open_for_s": self.rules.door_left_open_s,
                    "operation": op.id if op else None,
                },
            )

        await self.db.transact(work)
        log.warning("door left open", extra={"compartment": cid})

    async def _door_closed(self, cid: str) -> None:
        def work(tx: Transaction) -> tuple[str | None, str | None]:
            s, now = tx.session, self.clock.now()
            comp, op = self._record_door(tx, cid, is_open=False, now=now)
            if op is None or op.state == OperationState.COMMANDED:
                return None, None
            op.closed_at = now
            code = self._complete(tx, op, comp, now)
            s.add(op)
            s.add(comp)
            return op.id, code

        op_id, code = await self.db.transact(work)
        if op_id is None:
            return
        if code is not None:
            now = self.clock.monotonic()
            # Codes nobody fetched in time are dropped, so memory does not grow with deposits.
            for stale in [k for k, (_, until) in self._fresh_codes.items() if until < now]:
                del self._fresh_codes[stale]
            self._fresh_codes[op_id] = (code, now + self.rules.pickup_code_display_s)
        finished = self._finished.pop(op_id, None)
        if finished is not None:
            finished.set()  # late waiters find no event and read the outcome from the database

    def _complete(
        self, tx: Transaction, op: DoorOperation, comp: Compartment, now: datetime
    ) -> str | None:
        """The door closed on an open operation: commit what it achieved. Returns a new code."""
        s = tx.session
        parcel = s.get(Parcel, op.parcel_id) if op.parcel_id else None
        empty = CompartmentState.FREE if comp.enabled else CompartmentState.DISABLED
        if op.state == OperationState.CANCELLED:
            comp.state, comp.parcel_id = empty, None
            if parcel is not None:
                parcel.state, parcel.compartment_id = ParcelState.EXPECTED, None
                parcel.updated_at = now
                s.add(parcel)
            tx.emit(
                "parcel.deposit_cancelled",
                {"compartment": comp.id, "operation": op.id, "parcel_id": op.parcel_id},
            )
            return None
        op.state = OperationState.COMPLETED
        if op.kind == OperationKind.DEPOSIT and parcel is not None:
            code = self._unique_code(s)
            expiry_hours = self.rules.zones[parcel.zone].expiry_hours  # type: ignore[index]
            parcel.state, parcel.deposited_at = ParcelState.STORED, now
            parcel.expires_at = now + timedelta(hours=expiry_hours)
            parcel.pickup_code_hash, parcel.updated_at = self.codes.hash(code), now
            s.add(parcel)
            comp.state, comp.parcel_id = CompartmentState.OCCUPIED, parcel.id
            tx.emit(
                "parcel.deposited",
                {
                    "parcel_id": parcel.id,
                    "parcel_code": parcel.code,
                    "compartment": comp.id,
                    "size": comp.size,
                    "zone": comp.zone,
                    "courier_id": op.actor,
                    "recipient": parcel.recipient,
                    "deposited_at": rfc3339(now),
                    "expires_at": rfc3339(parcel.expires_at),
                },
            )
            return code
        if op.kind in (OperationKind.PICKUP, OperationKind.RETURN) and parcel is not None:
            picked = op.kind == OperationKind.PICKUP
            parcel.state = ParcelState.PICKED_UP if picked else ParcelState.RETURNED
            if picked:
                parcel.picked_up_at = now
            else:
                parcel.returned_at = now
            parcel.pickup_code_hash, parcel.updated_at = None, now
            s.add(parcel)
            comp.state, comp.parcel_id = empty, None
            tx.emit(
                "parcel.picked_up" if picked else "parcel.returned",
                {
                    "parcel_id": parcel.id,
                    "parcel_code": parcel.code,
                    "compartment": comp.id,
                    "actor": op.actor,
                    "at": rfc3339(now),
                },
            )
            return None
        # An operator's open leaves the compartment as it was.
        comp.state = CompartmentState(op.prior_state)
        tx.emit(
            "compartment.operator_closed",
            {"compartment": comp.id, "operation": op.id, "actor": op.actor, "reason": op.reason},
        )
        return None

    def _unique_code(self, s: Session) -> str:
        while True:
            code = self.codes.new_code()
            taken = s.exec(
                select(Parcel.id).where(Parcel.pickup_code_hash == self.codes.hash(code))
            ).first()
            if taken is None:
                return code

    # ----------------------------------------------------------------- lifecycle

    def _refuse_when_stopping(self) -> None:
        if self._stopping:
            raise ShuttingDown("The controller is shutting down.")

    def stop_accepting(self) -> None:
        self._stopping = True
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    async def drain_in_flight(self, grace_s: float) -> None:
        """Wait (up to ``grace_s``) for unlocks already sent to be seen open or given up."""
        waiters = [w for w in self._open_waiters.values() if not w.done()]
        if waiters:
            await asyncio.wait(waiters, timeout=grace_s)

    async def close(self) -> None:
        """Cancel background checks and alarms still pending (after ``stop_accepting``)."""
        pending = list(self._background)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


__all__ = [
    "CourierSession",
    "LockerError",
    "LockerService",
    "OpenedDoor",
    "OperationView",
]
