"""The first complete locker cycle, end to end through the real drivers."""

from edge.app import EdgeApp
from edge.demo.site import COURIER_ID, SimulatedSite


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
