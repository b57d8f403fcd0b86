"""Pickup by code: the right code opens once; wrong codes are rate-limited per terminal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from edge.app import EdgeApp
from edge.clock import ManualClock
from edge.db.tables import Compartment, Parcel
from edge.demo.site import COURIER_ID, SimulatedSite
from edge.lockers.errors import CodeInputLocked, InvalidState, OpenNotDetected, WrongCode

SECRET = "pickup-test-secret"


async def deposit(app: EdgeApp, site: SimulatedSite, code: str, size: str = "S") -> tuple[str, str]:
    """A committed deposit; returns (compartment, pickup code)."""
    door = await app.lockers.start_deposit(COURIER_ID, code, size)
    site.close_door(door.compartment_id)
    view = await app.lockers.wait_operation(door.operation_id, wait_s=5)
    assert view.state == "completed" and view.pickup_code is not None
    return door.compartment_id, view.pickup_code


def wrong_code(right: str, n: int = 0) -> str:
    candidate = f"{(int(right) + 1 + n) % 10 ** len(right):0{len(right)}d}"
    assert candidate != right
    return candidate


def unlocks(site: SimulatedSite) -> list[tuple[int, int]]:
    assert site.boards is not None
    return list(site.boards.unlock_log)


async def test_right_code_opens_and_close_commits_pickup(app: EdgeApp, site: SimulatedSite) -> None:
    cid, code = await deposit(app, site, "PKG-1")
    door = await app.lockers.start_pickup("kiosk-1", code)
    assert door.compartment_id == cid
    # While the door is open, the same code does not open it again.
    with pytest.raises(InvalidState):
        await app.lockers.start_pickup("kiosk-1", code)
    site.close_door(cid)
    done = await app.lockers.wait_operation(door.operation_id, wait_s=5)
    assert done.state == "completed"
    picked = await app.events.wait_for("parcel.picked_up")  # type: ignore[attr-defined]
    assert (picked.data["parcel_code"], picked.data["compartment"]) == ("PKG-1", cid)
    assert picked.data["actor"] == "terminal:kiosk-1"

    comp = await app.db.read(lambda s: s.get(Compartment, cid))
    assert comp is not None and (comp.state, comp.parcel_id) == ("free", None)
    parcel = await app.db.read(lambda s: s.get(Parcel, picked.data["parcel_id"]))
    assert parcel is not None
    assert (parcel.state, parcel.pickup_code_hash) == ("picked_up", None)
    assert parcel.picked_up_at is not None

    # The code is spent.
    with pytest.raises(WrongCode):
        await app.lockers.start_pickup("kiosk-1", code)
    assert unlocks(site) == [(1, 1), (1, 1)]
    seqs = [e.seq for e in app.events.events]  # type: ignore[attr-defined]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_malformed_codes_count_as_wrong(app: EdgeApp, site: SimulatedSite) -> None:
    for code, left in (("12", 4), ("abcdefgh", 3), ("123456789", 2)):
        with pytest.raises(WrongCode) as refused:
            await app.lockers.start_pickup("kiosk-1", code)
        assert refused.value.details["attempts_left"] == left
    assert unlocks(site) == []


async def test_wrong_codes_lock_the_terminal_with_escalation(
    app: EdgeApp, site: SimulatedSite, clock: ManualClock
) -> None:
    cid, code = await deposit(app, site, "PKG-1")
    left = []
    for n in range(5):
        with pytest.raises(WrongCode) as refused:
            await app.lockers.start_pickup("kiosk-1", wrong_code(code, n))
        left.append(refused.value.details["attempts_left"])
    assert left == [4, 3, 2, 1, 0]

    with pytest.raises(CodeInputLocked) as locked:
        await app.lockers.start_pickup("kiosk-1", wrong_code(code, 5))
    assert locked.value.details["retry_after_s"] == 60
    # While locked even the right code is refused, and nothing is unlocked.
    with pytest.raises(CodeInputLocked) as still:
        await app.lockers.start_pickup("kiosk-1", code)
    assert 0 < still.value.details["retry_after_s"] <= 60
    assert unlocks(site) == [(1, 1)]  # only the deposit

    # Another terminal is not affected.
    with pytest.raises(WrongCode) as elsewhere:
        await app.lockers.start_pickup("kiosk-2", wrong_code(code))
    assert elsewhere.value.details["attempts_left"] == 4

    # The lock lifts after its time; the next lockout lasts twice as long.
    clock.advance(59)
    with pytest.raises(CodeInputLocked):
        await app.lockers.start_pickup("kiosk-1", code)
    clock.advance(2)
    for n in range(5):
        with pytest.raises(WrongCode):
            await app.lockers.start_pickup("kiosk-1", wrong_code(code, n))
    with pytest.raises(CodeInputLocked) as again:
        await app.lockers.start_pickup("kiosk-1", wrong_code(code, 5))
    assert again.value.details["retry_after_s"] == 120
    clock.advance(121)

    door = await app.lockers.start_pickup("kiosk-1", code)
    assert door.compartment_id == cid
    assert unlocks(site) == [(1, 1), (1, 1)]


async def test_wrong_codes_outside_the_window_do_not_add_up(
    app: EdgeApp, site: SimulatedSite, clock: ManualClock
) -> None:
    for _ in range(5):
        with pytest.raises(WrongCode):
            await app.lockers.start_pickup("kiosk-1", "00000000")
    clock.advance(app.config.lockers.code_attempts.window_s + 1)
    with pytest.raises(WrongCode) as refused:
        await app.lockers.start_pickup("kiosk-1", "00000000")
    assert refused.value.details["attempts_left"] == 4


async def test_lockout_survives_restart(
    start_app: Callable[..., Any],
    locker_rules: Callable[..., dict[str, Any]],
    site: SimulatedSite,
    clock: ManualClock,
) -> None:
    first = await start_app(code_secret=SECRET)
    cid, code = await deposit(first, site, "PKG-1")
    for n in range(5):
        with pytest.raises(WrongCode):
            await first.lockers.start_pickup("kiosk-1", wrong_code(code, n))
    with pytest.raises(CodeInputLocked):
        await first.lockers.start_pickup("kiosk-1", wrong_code(code, 5))
    await first.stop()

    second = await start_app(code_secret=SECRET)
    with pytest.raises(CodeInputLocked) as locked:
        await second.lockers.start_pickup("kiosk-1", code)
    assert 0 < locked.value.details["retry_after_s"] <= 60
    assert unlocks(site) == [(1, 1)]
    clock.advance(61)
    door = await second.lockers.start_pickup("kiosk-1", code)
    assert door.compartment_id == cid
    site.close_door(cid)
    await second.events.wait_for("parcel.picked_up")  # type: ignore[attr-defined]


async def test_pickup_door_that_does_not_open_faults_and_keeps_the_parcel(
    start_app: Callable[..., Any],
    locker_rules: Callable[..., dict[str, Any]],
    site: SimulatedSite,
) -> None:
    app = await start_app(lockers=locker_rules(door_open_timeout_s=0.5))
    cid, code = await deposit(app, site, "PKG-1")
    assert site.boards is not None
    site.boards.set_stuck(1, 1, True)
    with pytest.raises(OpenNotDetected):
        await app.lockers.start_pickup("kiosk-1", code)
    comp = await app.db.read(lambda s: s.get(Compartment, cid))
    assert comp is not None and (comp.state, comp.fault) == ("faulted", "open_not_detected")
    assert comp.parcel_id is not None
    parcel = await app.db.read(lambda s: s.get(Parcel, comp.parcel_id))
    assert parcel is not None and parcel.state == "stored"
    fault = await app.events.wait_for("compartment.fault")  # type: ignore[attr-defined]
    assert (fault.data["kind"], fault.data["parcel"]) == ("pickup", parcel.id)
    assert app.events.of_type("parcel.picked_up") == []  # type: ignore[attr-defined]
