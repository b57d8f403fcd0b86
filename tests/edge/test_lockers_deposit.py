"""Courier deposits: choosing the compartment, refusals, a door that does not open, cancel."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import select

from edge.app import EdgeApp
from edge.db.tables import Compartment, Courier, DoorOperation, OutboxEvent, Parcel
from edge.demo.site import COURIER_CREDENTIAL, COURIER_ID, SimulatedSite
from edge.lockers.errors import (
    AlreadyDeposited,
    CodeInputLocked,
    InvalidState,
    NoFreeCompartment,
    NotAuthenticated,
    NotFound,
    OpenNotDetected,
    ShuttingDown,
    SizeRequired,
)
from edge.outbox.store import Envelope

SECRET = "deposit-test-secret"


async def compartment(app: EdgeApp, cid: str) -> Compartment:
    row = await app.db.read(lambda s: s.get(Compartment, cid))
    assert row is not None
    return row


async def parcel(app: EdgeApp, code: str) -> Parcel:
    rows = await app.db.read(lambda s: s.exec(select(Parcel).where(Parcel.code == code)).all())
    assert len(rows) == 1, rows
    return rows[0]


def unlocks(site: SimulatedSite) -> list[tuple[int, int]]:
    assert site.boards is not None
    return list(site.boards.unlock_log)


def assert_gap_free(app: EdgeApp) -> list[Envelope]:
    events: list[Envelope] = app.events.events  # type: ignore[attr-defined]
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    return events


# ---------------------------------------------------------------- choosing a compartment


async def test_expected_parcel_fixes_size_and_zone(app: EdgeApp, site: SimulatedSite) -> None:
    await app.lockers.expect_parcel("FRESH-1", "M", "chilled")
    # What the courier picks does not matter: upstream said M, chilled.
    door = await app.lockers.start_deposit(COURIER_ID, "FRESH-1", "L", "ambient")
    assert door.compartment_id == "C04"
    assert unlocks(site) == [(2, 4)]
    stored = await parcel(app, "FRESH-1")
    assert (stored.state, stored.size, stored.zone) == ("depositing", "M", "chilled")
    assert stored.compartment_id == "C04"


async def test_expected_parcel_without_size_takes_the_couriers_choice(
    app: EdgeApp, site: SimulatedSite
) -> None:
    await app.lockers.expect_parcel("FRESH-2", None, "chilled")
    with pytest.raises(SizeRequired):
        await app.lockers.start_deposit(COURIER_ID, "FRESH-2")
    door = await app.lockers.start_deposit(COURIER_ID, "FRESH-2", "S")
    assert door.compartment_id == "C01"


async def test_courier_picks_size_and_gets_smallest_free_fit(
    app: EdgeApp, site: SimulatedSite
) -> None:
    opened = [
        (await app.lockers.start_deposit(COURIER_ID, f"PKG-S{i}", "S")).compartment_id
        for i in range(4)
    ]
    assert opened == ["A01", "A02", "A03", "A04"]
    # Every S is taken: an S parcel goes into the smallest larger one.
    spill = await app.lockers.start_deposit(COURIER_ID, "PKG-S5", "S")
    assert spill.compartment_id == "A05"
    large = await app.lockers.start_deposit(COURIER_ID, "PKG-L", "L")
    assert large.compartment_id == "A09"
    assert unlocks(site) == [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (1, 9)]


async def test_no_free_compartment(app: EdgeApp, site: SimulatedSite) -> None:
    with pytest.raises(NoFreeCompartment) as refused:
        await app.lockers.start_deposit(COURIER_ID, "PKG-BIG", "L", "chilled")
    assert refused.value.details == {"size": "L", "zone": "chilled"}
    for i in range(4):
        await app.lockers.start_deposit(COURIER_ID, f"ICE-{i}", "M", "frozen")
    with pytest.raises(NoFreeCompartment):
        await app.lockers.start_deposit(COURIER_ID, "ICE-4", "S", "frozen")
    assert site.frozen is not None
    assert site.frozen.unlock_log == [(0, 1), (0, 2), (0, 3), (0, 4)]
    assert unlocks(site) == []
    # A refused deposit leaves nothing behind.
    assert (
        await app.db.read(lambda s: s.exec(select(Parcel).where(Parcel.code == "ICE-4")).all())
        == []
    )
    assert len(app.events.of_type("door.commanded")) == 4  # type: ignore[attr-defined]
    assert_gap_free(app)


async def test_size_required_without_announcement(app: EdgeApp, site: SimulatedSite) -> None:
    with pytest.raises(SizeRequired) as refused:
        await app.lockers.start_deposit(COURIER_ID, "PKG-1")
    assert refused.value.details["sizes"] == ["S", "M", "L"]
    assert unlocks(site) == []


async def test_duplicate_parcel_code_is_refused(app: EdgeApp, site: SimulatedSite) -> None:
    door = await app.lockers.start_deposit(COURIER_ID, "PKG-1", "S")
    with pytest.raises(AlreadyDeposited):  # while its door is still open
        await app.lockers.start_deposit(COURIER_ID, "PKG-1", "S")
    site.close_door(door.compartment_id)
    await app.events.wait_for("parcel.deposited")  # type: ignore[attr-defined]
    with pytest.raises(AlreadyDeposited):
        await app.lockers.start_deposit(COURIER_ID, " PKG-1 ", "M")
    with pytest.raises(AlreadyDeposited):
        await app.lockers.expect_parcel("PKG-1", "S", "ambient")
    assert unlocks(site) == [(1, 1)]


async def test_unknown_and_inactive_couriers_cannot_deposit(
    app: EdgeApp, site: SimulatedSite
) -> None:
    with pytest.raises(NotAuthenticated):
        await app.lockers.start_deposit("nobody", "PKG-1", "S")

    def deactivate(tx: Any) -> None:
        courier = tx.session.get(Courier, COURIER_ID)
        courier.active = False
        tx.session.add(courier)

    await app.db.transact(deactivate)
    with pytest.raises(NotAuthenticated):
        await app.lockers.start_deposit(COURIER_ID, "PKG-1", "S")
    with pytest.raises(NotAuthenticated):
        await app.lockers.courier_login("kiosk-1", COURIER_ID, COURIER_CREDENTIAL)
    assert unlocks(site) == []
    assert await app.db.read(lambda s: s.exec(select(Parcel)).all()) == []


async def test_courier_removed_from_config_is_deactivated(
    start_app: Callable[..., Any], locker_rules: Callable[..., dict[str, Any]]
) -> None:
    two = locker_rules(
        couriers=[
            {"id": "courier-1", "credential": "2468"},
            {"id": "courier-2", "credential": "1357"},
        ]
    )
    first = await start_app(lockers=two)
    session = await first.lockers.courier_login("kiosk-1", "courier-2", "1357")
    assert session.courier_id == "courier-2"
    await first.stop()
    second = await start_app(lockers=locker_rules())
    with pytest.raises(NotAuthenticated):
        await second.lockers.courier_login("kiosk-1", "courier-2", "1357")
    with pytest.raises(NotAuthenticated):
        await second.lockers.start_deposit("courier-2", "PKG-1", "S")


async def test_courier_login_wrong_credential_then_lockout(app: EdgeApp) -> None:
    lockers = app.lockers
    session = await lockers.courier_login("kiosk-1", COURIER_ID, COURIER_CREDENTIAL)
    assert lockers.courier_session(session.token).courier_id == COURIER_ID
    left = []
    for _ in range(5):
        with pytest.raises(NotAuthenticated) as wrong:
            await lockers.courier_login("kiosk-1", COURIER_ID, "0000")
        left.append(wrong.value.details["attempts_left"])
    assert left == [4, 3, 2, 1, 0]
    with pytest.raises(CodeInputLocked) as locked:
        await lockers.courier_login("kiosk-1", COURIER_ID, "0000")
    assert locked.value.details["retry_after_s"] == 60
    # Locked means locked: the right credential is refused too, at this kiosk only.
    with pytest.raises(CodeInputLocked):
        await lockers.courier_login("kiosk-1", COURIER_ID, COURIER_CREDENTIAL)
    other = await lockers.courier_login("kiosk-2", COURIER_ID, COURIER_CREDENTIAL)
    assert other.terminal == "kiosk-2"
    # An unknown courier counts as a wrong sign-in as well.
    with pytest.raises(NotAuthenticated) as unknown:
        await lockers.courier_login("kiosk-2", "nobody", COURIER_CREDENTIAL)
    assert unknown.value.details["attempts_left"] == 4


async def test_courier_session_expires(app: EdgeApp, clock: Any) -> None:
    session = await app.lockers.courier_login("kiosk-1", COURIER_ID, COURIER_CREDENTIAL)
    clock.advance(app.config.lockers.courier_session_s + 1)
    with pytest.raises(NotAuthenticated):
        app.lockers.courier_session(session.token)


# ---------------------------------------------------------------- the door must open


async def test_stuck_door_faults_the_compartment_and_retry_uses_another(
    start_app: Callable[..., Any],
    locker_rules: Callable[..., dict[str, Any]],
    site: SimulatedSite,
) -> None:
    app = await start_app(lockers=locker_rules(door_open_timeout_s=0.5), code_secret=SECRET)
    assert site.boards is not None
    site.boards.set_stuck(1, 1, True)
    with pytest.raises(OpenNotDetected) as failed:
        await app.lockers.start_deposit(COURIER_ID, "PKG-1", "S")
    assert failed.value.details["compartment"] == "A01"
    stuck = await compartment(app, "A01")
    assert (stuck.state, stuck.fault, stuck.parcel_id) == ("faulted", "open_not_detected", None)
    fault = await app.events.wait_for("compartment.fault")  # type: ignore[attr-defined]
    assert fault.data["compartment"] == "A01"
    assert fault.data["reason"] == "open_not_detected"
    waiting = await parcel(app, "PKG-1")
    assert (waiting.state, waiting.compartment_id) == ("expected", None)

    # The courier tries again with the same parcel: another compartment opens.
    door = await app.lockers.start_deposit(COURIER_ID, "PKG-1")
    assert door.compartment_id == "A02"
    assert unlocks(site) == [(1, 1), (1, 2)]

    batches: list[list[str]] = []
    database_at_commit: list[tuple[str, str]] = []

    def on_commit(envelopes: list[Envelope]) -> None:
        batches.append([e.type for e in envelopes])
        if any(e.type == "parcel.deposited" for e in envelopes):
            # Read with a separate connection: what is durable when the event is announced.
            with sqlite3.connect(app.db.path) as raw:
                database_at_commit.append(
                    raw.execute(
                        "SELECT p.state, c.state FROM parcel p JOIN compartment c "
                        "ON c.parcel_id = p.id WHERE p.code = 'PKG-1'"
                    ).fetchone()
                )

    app.db.add_event_listener(on_commit)
    site.close_door("A02")
    view = await app.lockers.wait_operation(door.operation_id, wait_s=5)
    assert view.state == "completed"
    code = view.pickup_code
    assert code is not None and code.isdigit() and len(code) == 8

    assert ["door.closed", "parcel.deposited"] in batches
    assert database_at_commit == [("stored", "occupied")]
    deposited = await app.events.wait_for("parcel.deposited")  # type: ignore[attr-defined]
    assert deposited.data["compartment"] == "A02"
    assert code not in str(deposited.data)
    events = assert_gap_free(app)
    outbox = await app.db.read(lambda s: s.exec(select(OutboxEvent.seq)).all())
    assert sorted(outbox) == [e.seq for e in events]

    # The code is kept only as an HMAC under the site secret, never in the clear.
    stored = await parcel(app, "PKG-1")
    expected_hash = hmac.new(SECRET.encode(), code.encode(), hashlib.sha256).hexdigest()
    assert stored.pickup_code_hash == expected_hash
    assert stored.pickup_code_hash != hashlib.sha256(code.encode()).hexdigest()
    files = [app.db.path, *app.db.path.parent.glob(app.db.path.name + "-*")]
    raw = b"".join(f.read_bytes() for f in files)
    assert code.encode() not in raw
    assert expected_hash.encode() in raw
    with sqlite3.connect(app.db.path) as db:
        dump = "\n".join(db.iterdump())
    assert code not in dump and expected_hash in dump


async def test_pickup_code_digits_follow_config(
    start_app: Callable[..., Any],
    locker_rules: Callable[..., dict[str, Any]],
    site: SimulatedSite,
) -> None:
    app = await start_app(lockers=locker_rules(pickup_code_digits=6))
    door = await app.lockers.start_deposit(COURIER_ID, "PKG-1", "S")
    site.close_door(door.compartment_id)
    view = await app.lockers.wait_operation(door.operation_id, wait_s=5)
    assert view.pickup_code is not None and len(view.pickup_code) == 6


# ---------------------------------------------------------------- cancel


async def test_cancelled_deposit_frees_compartment_on_close(
    app: EdgeApp, site: SimulatedSite
) -> None:
    door = await app.lockers.start_deposit(COURIER_ID, "PKG-BIG", "S")
    with pytest.raises(NotFound):
        await app.lockers.cancel_deposit(door.operation_id, "courier-2")
    await app.lockers.cancel_deposit(door.operation_id, COURIER_ID)
    with pytest.raises(InvalidState):
        await app.lockers.cancel_deposit(door.operation_id, COURIER_ID)
    # Until the door closes the compartment is not offered again.
    assert (await compartment(app, "A01")).state == "open_for_deposit"
    site.close_door(door.compartment_id)
    cancelled = await app.events.wait_for("parcel.deposit_cancelled")  # type: ignore[attr-defined]
    assert cancelled.data["compartment"] == "A01"
    view = await app.lockers.wait_operation(door.operation_id, wait_s=5)
    assert (view.state, view.pickup_code) == ("cancelled", None)
    freed = await compartment(app, "A01")
    assert (freed.state, freed.parcel_id, freed.fault) == ("free", None, None)
    back = await parcel(app, "PKG-BIG")
    assert (back.state, back.compartment_id) == ("expected", None)
    assert app.events.of_type("parcel.deposited") == []  # type: ignore[attr-defined]
    # The courier tries a larger compartment with the same parcel.
    again = await app.lockers.start_deposit(COURIER_ID, "PKG-BIG", "M")
    assert again.compartment_id == "A05"
    operations = await app.db.read(lambda s: s.exec(select(DoorOperation)).all())
    assert sorted(op.state for op in operations) == ["cancelled", "opened"]


async def test_announced_parcel_keeps_size_and_zone_after_a_stuck_door(
    start_app: Callable[..., Any],
    locker_rules: Callable[..., dict[str, Any]],
    site: SimulatedSite,
) -> None:
    app = await start_app(lockers=locker_rules(door_open_timeout_s=0.5))
    assert site.boards is not None
    await app.lockers.expect_parcel("FRESH-1", "M", "chilled")
    site.boards.set_stuck(2, 4, True)
    with pytest.raises(OpenNotDetected):
        await app.lockers.start_deposit(COURIER_ID, "FRESH-1")
    waiting = await parcel(app, "FRESH-1")
    assert (waiting.state, waiting.size, waiting.zone) == ("expected", "M", "chilled")
    door = await app.lockers.start_deposit(COURIER_ID, "FRESH-1", "S", "ambient")
    assert door.compartment_id == "C05"
    assert unlocks(site) == [(2, 4), (2, 5)]


async def test_concurrent_deposits_get_different_compartments(
    app: EdgeApp, site: SimulatedSite
) -> None:
    doors = await asyncio.gather(
        *(app.lockers.start_deposit(COURIER_ID, f"PKG-{i}", "S") for i in range(5))
    )
    assert sorted(d.compartment_id for d in doors) == ["A01", "A02", "A03", "A04", "A05"]
    assert sorted(unlocks(site)) == [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5)]


async def test_pickup_code_is_shown_only_for_a_while(
    app: EdgeApp, site: SimulatedSite, clock: Any
) -> None:
    door = await app.lockers.start_deposit(COURIER_ID, "PKG-1", "S")
    site.close_door(door.compartment_id)
    view = await app.lockers.wait_operation(door.operation_id, wait_s=5)
    assert view.pickup_code is not None
    assert (await app.lockers.wait_operation(door.operation_id)).pickup_code == view.pickup_code
    clock.advance(app.config.lockers.pickup_code_display_s + 1)
    later = await app.lockers.wait_operation(door.operation_id)
    assert (later.state, later.pickup_code) == ("completed", None)


async def test_no_new_unlocks_while_shutting_down(app: EdgeApp, site: SimulatedSite) -> None:
    app.lockers.stop_accepting()
    with pytest.raises(ShuttingDown):
        await app.lockers.start_deposit(COURIER_ID, "PKG-1", "S")
    with pytest.raises(ShuttingDown):
        await app.lockers.start_pickup("kiosk-1", "12345678")
    with pytest.raises(ShuttingDown):
        await app.lockers.operator_open("A01", "cleaning", "operator")
    assert unlocks(site) == []
