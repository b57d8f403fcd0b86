"""Expiry per zone, and the courier collecting expired parcels."""

from __future__ import annotations

import pytest

from edge.app import EdgeApp
from edge.clock import ManualClock
from edge.db.tables import Compartment, Parcel
from edge.demo.site import COURIER_ID, SimulatedSite
from edge.lockers.errors import InvalidState, NotAuthenticated, NotFound, ParcelExpired, WrongCode

HOUR = 3600.0


async def deposit(
    app: EdgeApp, site: SimulatedSite, code: str, size: str, zone: str
) -> tuple[str, str, str]:
    """A committed deposit; returns (compartment, parcel id, pickup code)."""
    door = await app.lockers.start_deposit(COURIER_ID, code, size, zone)
    site.close_door(door.compartment_id)
    view = await app.lockers.wait_operation(door.operation_id, wait_s=5)
    assert view.pickup_code is not None and view.parcel_id is not None
    return door.compartment_id, view.parcel_id, view.pickup_code


async def test_fresh_food_expires_before_ambient(
    app: EdgeApp, site: SimulatedSite, clock: ManualClock
) -> None:
    zones = app.config.lockers.zones
    chilled_h = zones["chilled"].expiry_hours  # type: ignore[index]
    ambient_h = zones["ambient"].expiry_hours  # type: ignore[index]
    assert chilled_h < ambient_h
    _, box_id, box_code = await deposit(app, site, "BOX-1", "S", "ambient")
    fridge, milk_id, milk_code = await deposit(app, site, "MILK-1", "S", "chilled")
    milk = await app.db.read(lambda s: s.get(Parcel, milk_id))
    assert milk is not None and milk.deposited_at is not None and milk.expires_at is not None
    assert (milk.expires_at - milk.deposited_at).total_seconds() == chilled_h * HOUR

    clock.advance(chilled_h * HOUR - 60)
    assert await app.lockers.expire_due() == 0
    clock.advance(61)
    assert await app.lockers.expire_due() == 1
    expired = await app.events.wait_for("parcel.expired")  # type: ignore[attr-defined]
    assert expired.data["parcel_id"] == milk_id
    assert (expired.data["compartment"], expired.data["zone"]) == (fridge, "chilled")
    # Expiring twice does not report twice.
    assert await app.lockers.expire_due() == 0

    with pytest.raises(ParcelExpired):
        await app.lockers.start_pickup("kiosk-1", milk_code)
    # The ambient parcel can still be picked up meanwhile.
    door = await app.lockers.start_pickup("kiosk-1", box_code)
    site.close_door(door.compartment_id)
    await app.events.wait_for("parcel.picked_up")  # type: ignore[attr-defined]
    assert box_id != milk_id

    assert [p.id for p in await app.lockers.expired_parcels()] == [milk_id]
    assert len(app.events.of_type("parcel.expired")) == 1  # type: ignore[attr-defined]


async def test_courier_returns_expired_parcel(
    app: EdgeApp, site: SimulatedSite, clock: ManualClock
) -> None:
    cid, parcel_id, code = await deposit(app, site, "BOX-1", "M", "ambient")
    with pytest.raises(NotFound):  # not expired yet: not the courier's to take
        await app.lockers.start_return(COURIER_ID, parcel_id)
    clock.advance(73 * HOUR)
    assert await app.lockers.expire_due() == 1
    with pytest.raises(NotAuthenticated):
        await app.lockers.start_return("nobody", parcel_id)
    with pytest.raises(ParcelExpired):
        await app.lockers.start_pickup("kiosk-1", code)

    door = await app.lockers.start_return(COURIER_ID, parcel_id)
    assert door.compartment_id == cid and door.kind == "return"
    with pytest.raises(InvalidState):
        await app.lockers.start_return(COURIER_ID, parcel_id)
    site.close_door(cid)
    returned = await app.events.wait_for("parcel.returned")  # type: ignore[attr-defined]
    assert (returned.data["parcel_id"], returned.data["actor"]) == (parcel_id, COURIER_ID)
    view = await app.lockers.wait_operation(door.operation_id, wait_s=5)
    assert view.state == "completed"

    parcel = await app.db.read(lambda s: s.get(Parcel, parcel_id))
    assert parcel is not None and parcel.state == "returned" and parcel.returned_at is not None
    comp = await app.db.read(lambda s: s.get(Compartment, cid))
    assert comp is not None and (comp.state, comp.parcel_id) == ("free", None)
    assert await app.lockers.expired_parcels() == []
    # The old pickup code is gone with the parcel.
    with pytest.raises(WrongCode):
        await app.lockers.start_pickup("kiosk-1", code)
    assert site.boards is not None
    assert site.boards.unlock_log == [(1, 5), (1, 5)]
