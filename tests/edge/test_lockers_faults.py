"""Line faults and lost boards during locker flows: retries, no stray unlocks, recovery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import select

from drivers.lockboard.simulator import LockBoardSimulator
from edge.app import EdgeApp
from edge.db.tables import Compartment, Parcel
from edge.demo.site import COURIER_ID, SimulatedSite
from edge.lockers.errors import BoardUnreachable, NoFreeCompartment
from edge.outbox.store import Envelope


async def compartment(app: EdgeApp, cid: str) -> Compartment:
    row = await app.db.read(lambda s: s.get(Compartment, cid))
    assert row is not None
    return row


async def parcel(app: EdgeApp, code: str) -> Parcel:
    row = await app.db.read(lambda s: s.exec(select(Parcel).where(Parcel.code == code)).one())
    return row


def on_unlock(sim: LockBoardSimulator, fault: Callable[[], None]) -> None:
    """Inject the fault into the reply to the next unlock (not into a poll's reply)."""
    armed = [True]

    def inject(_address: int, _lock: int) -> None:
        if armed[0]:
            armed[0] = False
            fault()

    sim.add_unlock_listener(inject)


async def back_online(app: EdgeApp, bus: str, offline: Envelope) -> Envelope:
    """Wait until the bus is reported online after ``offline`` and its doors were checked."""
    events = app.events  # type: ignore[attr-defined]
    online = await events.wait_for(
        "device.online", lambda e: e.data["device"] == bus and e.seq > offline.seq, timeout=5
    )
    check: Envelope = await events.wait_for(
        "locker.bus_check",
        lambda e: e.data["bus"] == bus and e.seq > online.seq and not e.data["unreachable_boards"],
        timeout=5,
    )
    await app.wait_checked()
    return check


async def complete_deposit(app: EdgeApp, site: SimulatedSite, code: str, size: str) -> str:
    door = await app.lockers.start_deposit(COURIER_ID, code, size)
    site.close_door(door.compartment_id)
    view = await app.lockers.wait_operation(door.operation_id, wait_s=5)
    assert view.state == "completed" and view.pickup_code is not None
    return door.compartment_id


@pytest.mark.parametrize("fault", ["corrupt_checksum", "garbage", "partial"])
async def test_bad_reply_to_unlock_is_retried(
    app: EdgeApp, site: SimulatedSite, fault: str
) -> None:
    sim = site.boards
    assert sim is not None
    on_unlock(sim, getattr(sim, f"fault_{fault}"))
    cid = await complete_deposit(app, site, "PKG-1", "S")
    assert cid == "A01"
    # Only the door that was asked for; a retried command repeats the same lock.
    assert set(sim.unlock_log) == {(1, 1)}
    assert len(sim.unlock_log) <= 1 + app.config.lockboards[0].retries
    assert len(app.events.of_type("door.commanded")) == 1  # type: ignore[attr-defined]
    assert len(app.events.of_type("door.opened")) == 1  # type: ignore[attr-defined]
    assert app.events.of_type("compartment.fault") == []  # type: ignore[attr-defined]
    # The controller keeps working normally afterwards.
    assert await complete_deposit(app, site, "PKG-2", "S") == "A02"
    assert set(sim.unlock_log) == {(1, 1), (1, 2)}


async def test_bad_reply_to_kerong_unlock_is_retried(app: EdgeApp, site: SimulatedSite) -> None:
    sim = site.frozen
    assert sim is not None
    on_unlock(sim, sim.fault_corrupt_checksum)
    door = await app.lockers.start_deposit(COURIER_ID, "ICE-1", "M", "frozen")
    assert door.compartment_id == "F01"
    site.close_door("F01")
    view = await app.lockers.wait_operation(door.operation_id, wait_s=5)
    assert view.state == "completed"
    assert set(sim.unlock_log) == {(0, 1)}


async def test_dead_board_mid_deposit_restores_compartment_then_recovers(
    app: EdgeApp, site: SimulatedSite
) -> None:
    """The board neither answers nor moves its latch: nothing opened, nothing faulted."""
    sim = site.boards
    assert sim is not None
    sim.fault_no_reply()
    sim.set_stuck(1, 1, True)
    with pytest.raises(BoardUnreachable) as refused:
        await app.lockers.start_deposit(COURIER_ID, "PKG-1", "S")
    assert refused.value.details["compartment"] == "A01"

    comp = await compartment(app, "A01")
    assert (comp.state, comp.fault, comp.parcel_id) == ("free", None, None)
    failed = await app.events.wait_for("door.unlock_failed")  # type: ignore[attr-defined]
    assert (failed.data["compartment"], failed.data["reason"]) == ("A01", "board_unreachable")
    assert app.events.of_type("compartment.fault") == []  # type: ignore[attr-defined]
    waiting = await parcel(app, "PKG-1")
    assert (waiting.state, waiting.compartment_id) == ("expected", None)
    offline = await app.events.wait_for(  # type: ignore[attr-defined]
        "device.offline", lambda e: e.data["device"] == "lockers"
    )
    # The silent board's compartments are not offered meanwhile.
    with pytest.raises(NoFreeCompartment):
        await app.lockers.start_deposit(COURIER_ID, "PKG-1", "S")

    sim.clear_faults()
    sim.set_stuck(1, 1, False)
    await back_online(app, "lockers", offline)
    assert await complete_deposit(app, site, "PKG-1", "S") == "A01"
    # Every unlock frame went to the one door the courier asked for.
    assert set(sim.unlock_log) == {(1, 1)}
    assert app.events.of_type("door.forced") == []  # type: ignore[attr-defined]


async def test_lost_unlock_reply_with_door_seen_open_goes_on(
    app: EdgeApp, site: SimulatedSite
) -> None:
    """The board moved the latch but its reply was lost: the door report says it is open."""
    sim = site.boards
    assert sim is not None
    sim.fault_no_reply()
    door = await app.lockers.start_deposit(COURIER_ID, "PKG-1", "S")
    assert door.compartment_id == "A01"
    assert (await compartment(app, "A01")).state == "open_for_deposit"
    sim.clear_faults()
    site.close_door("A01")
    view = await app.lockers.wait_operation(door.operation_id, wait_s=5)
    assert view.state == "completed" and view.pickup_code is not None
    assert (await parcel(app, "PKG-1")).state == "stored"
    assert set(sim.unlock_log) == {(1, 1)}
    assert app.events.of_type("compartment.fault") == []  # type: ignore[attr-defined]


async def test_silent_kerong_board_then_next_deposit_works(
    start_app: Callable[..., Any],
    locker_rules: Callable[..., dict[str, Any]],
    site: SimulatedSite,
) -> None:
    """No reports on this bus: the unlock went unseen; later the door is found open."""
    sim = site.frozen
    assert sim is not None
    app = await start_app(lockers=locker_rules(door_open_timeout_s=0.5))
    sim.fault_no_reply()
    with pytest.raises(BoardUnreachable):
        await app.lockers.start_deposit(COURIER_ID, "ICE-1", "M", "frozen")
    assert (await parcel(app, "ICE-1")).state == "expected"
    assert (await compartment(app, "F01")).fault is None
    offline = await app.events.wait_for(  # type: ignore[attr-defined]
        "device.offline", lambda e: e.data["device"] == "freezer"
    )
    sim.clear_faults()
    await back_online(app, "freezer", offline)
    door = await app.lockers.start_deposit(COURIER_ID, "ICE-1", "M", "frozen")
    assert door.compartment_id != "F01"  # its door stands open since the lost unlock
    site.close_door(door.compartment_id)
    view = await app.lockers.wait_operation(door.operation_id, wait_s=5)
    assert view.state == "completed"


async def test_unplugged_bus_goes_offline_and_is_checked_on_return(
    app: EdgeApp, site: SimulatedSite
) -> None:
    sim = site.boards
    assert sim is not None
    sim.unplug()
    offline = await app.events.wait_for(  # type: ignore[attr-defined]
        "device.offline", lambda e: e.data["device"] == "lockers", timeout=5
    )
    assert offline.data["kind"] == "lock_bus"
    with pytest.raises(NoFreeCompartment):
        await app.lockers.start_deposit(COURIER_ID, "PKG-1", "S")
    # The frozen bus is another port: still in service.
    door = await app.lockers.start_deposit(COURIER_ID, "ICE-1", "M", "frozen")
    site.close_door(door.compartment_id)
    await app.events.wait_for("parcel.deposited")  # type: ignore[attr-defined]

    sim.force_open(1, 7)  # opened while nobody could see it
    sim.replug()
    check = await back_online(app, "lockers", offline)
    assert check.data["differences"] == [
        {"compartment": "A07", "reason": "door_open_after_reconnect", "state": "free"}
    ]
    assert (await compartment(app, "A07")).fault == "door_open_after_reconnect"
    assert await complete_deposit(app, site, "PKG-1", "S") == "A01"
    assert sim.unlock_log == [(1, 1)]
    assert site.frozen is not None and site.frozen.unlock_log == [(0, 1)]


async def test_pickup_while_board_is_gone_is_refused_then_works(
    app: EdgeApp, site: SimulatedSite
) -> None:
    sim = site.boards
    assert sim is not None
    door = await app.lockers.start_deposit(COURIER_ID, "PKG-1", "S")
    site.close_door(door.compartment_id)
    view = await app.lockers.wait_operation(door.operation_id, wait_s=5)
    assert view.pickup_code is not None
    sim.unplug()
    offline = await app.events.wait_for(  # type: ignore[attr-defined]
        "device.offline", lambda e: e.data["device"] == "lockers", timeout=5
    )
    with pytest.raises(BoardUnreachable):
        await app.lockers.start_pickup("kiosk-1", view.pickup_code)
    assert app.events.of_type("door.commanded")[-1].data["kind"] == "deposit"  # type: ignore[attr-defined]
    sim.replug()
    await back_online(app, "lockers", offline)
    pickup = await app.lockers.start_pickup("kiosk-1", view.pickup_code)
    site.close_door(pickup.compartment_id)
    await app.events.wait_for("parcel.picked_up")  # type: ignore[attr-defined]
    assert sim.unlock_log == [(1, 1), (1, 1)]
