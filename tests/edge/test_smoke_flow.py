"""The first complete locker cycle, end to end through the real drivers."""

import pytest

from edge.app import EdgeApp
from edge.clock import ManualClock
from edge.demo.site import COURIER_ID, SimulatedSite
from edge.lockers.errors import BoardUnreachable


async def test_deposit_then_pickup_commits_both_events(app: EdgeApp, site: SimulatedSite) -> None:
    door = await app.lockers.start_deposit(COURIER_ID, "PKG-1", "S")
    site.close_door(door.compartment_id)
    deposit = await app.lockers.wait_operation(door.operation_id, wait_s=5)
    assert deposit.state == "completed" and deposit.pickup_code is not None

    pickup = await app.lockers.start_pickup("kiosk-1", deposit.pickup_code)
    assert pickup.compartment_id == door.compartment_id
    site.close_door(pickup.compartment_id)
    done = await app.lockers.wait_operation(pickup.operation_id, wait_s=5)
    assert done.state == "completed"

    events = app.events  # type: ignore[attr-defined]
    picked = await events.wait_for("parcel.picked_up")
    assert picked.data["parcel_code"] == "PKG-1"
    seqs = [e.seq for e in events.events]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_finished_operations_leave_no_state_behind(
    app: EdgeApp, site: SimulatedSite, clock: ManualClock
) -> None:
    """A site runs for months: per-operation bookkeeping must not grow with every cycle."""
    for n in range(3):
        door = await app.lockers.start_deposit(COURIER_ID, f"PKG-{n}", "S")
        site.close_door(door.compartment_id)
        deposit = await app.lockers.wait_operation(door.operation_id, wait_s=5)
        assert deposit.pickup_code is not None
        pickup = await app.lockers.start_pickup("kiosk-1", deposit.pickup_code)
        site.close_door(pickup.compartment_id)
        assert (await app.lockers.wait_operation(pickup.operation_id, wait_s=5)).state == (
            "completed"
        )
        # A late reader still learns the outcome from the database.
        assert (await app.lockers.wait_operation(door.operation_id, wait_s=1)).state == (
            "completed"
        )
    assert app.lockers._finished == {}
    assert len(app.lockers._fresh_codes) == 3  # still within their display window

    clock.advance(app.lockers.rules.pickup_code_display_s + 1)
    door = await app.lockers.start_deposit(COURIER_ID, "PKG-late", "S")
    site.close_door(door.compartment_id)
    assert (await app.lockers.wait_operation(door.operation_id, wait_s=5)).pickup_code
    assert list(app.lockers._fresh_codes) == [door.operation_id]

    # An unlock the board never answered leaves nothing to wait for either.
    assert site.boards is not None
    site.boards.fault_no_reply()
    for lock in range(1, 13):
        site.boards.set_stuck(1, lock, True)
    with pytest.raises(BoardUnreachable):
        await app.lockers.start_deposit(COURIER_ID, "PKG-dead-board", "S")
    site.boards.clear_faults()
    assert app.lockers._finished == {}


async def test_every_board_is_reported_up_once_it_answers(app: EdgeApp) -> None:
    for device in ("lockers/board1", "lockers/board2", "freezer/board0"):
        event = await app.events.wait_for(  # type: ignore[attr-defined]
            "device.online", lambda e, d=device: e.data["device"] == d
        )
        assert event.data["kind"] == "lock_board"
        assert app.health.devices[device].available is True
