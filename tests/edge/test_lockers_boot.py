"""Boot: every door is read and compared with the database; nothing is unlocked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge.db.tables import Compartment, Parcel
from edge.demo.site import COURIER_ID, SimulatedSite


async def test_door_open_at_boot_is_flagged_and_nothing_unlocks(
    start_app: Callable[..., Any], site: SimulatedSite
) -> None:
    assert site.boards is not None and site.frozen is not None
    site.boards.force_open(1, 1)  # A01
    site.frozen.force_open(0, 3)  # F03
    app = await start_app()

    checks = {
        e.data["bus"]: e.data
        for e in app.events.of_type("locker.boot_check")  # type: ignore[attr-defined]
    }
    assert set(checks) == {"lockers", "freezer"}
    assert checks["lockers"]["checked"] == 18 and checks["freezer"]["checked"] == 4
    assert checks["lockers"]["differences"] == [
        {"compartment": "A01", "reason": "door_open_at_boot", "state": "free"}
    ]
    assert checks["freezer"]["differences"] == [
        {"compartment": "F03", "reason": "door_open_at_boot", "state": "free"}
    ]
    assert checks["lockers"]["unreachable_boards"] == []
    faults = {
        e.data["compartment"]: e.data["reason"]
        for e in app.events.of_type("compartment.fault")  # type: ignore[attr-defined]
    }
    assert faults == {"A01": "door_open_at_boot", "F03": "door_open_at_boot"}
    for cid in ("A01", "F03"):
        comp = await app.db.read(lambda s, cid=cid: s.get(Compartment, cid))
        assert comp is not None
        assert (comp.state, comp.fault, comp.door_open) == ("faulted", "door_open_at_boot", True)
    # What the boot check found is not reported a second time as a forced door.
    assert app.events.of_type("door.forced") == []  # type: ignore[attr-defined]
    assert site.boards.unlock_log == [] and site.frozen.unlock_log == []

    # The open compartment is skipped for deposits.
    door = await app.lockers.start_deposit(COURIER_ID, "PKG-1", "S")
    assert door.compartment_id == "A02"
    assert site.boards.unlock_log == [(1, 2)]


async def test_clean_boot_reports_no_differences(
    start_app: Callable[..., Any], site: SimulatedSite
) -> None:
    app = await start_app()
    checks = app.events.of_type("locker.boot_check")  # type: ignore[attr-defined]
    assert sorted(e.data["bus"] for e in checks) == ["freezer", "lockers"]
    assert all(e.data["differences"] == [] for e in checks)
    assert app.events.of_type("compartment.fault") == []  # type: ignore[attr-defined]
    assert site.boards is not None and site.boards.unlock_log == []


async def test_pickup_open_at_stop_is_flagged_at_next_boot(
    start_app: Callable[..., Any], site: SimulatedSite
) -> None:
    assert site.boards is not None
    first = await start_app(code_secret="boot-test-secret")
    door = await first.lockers.start_deposit(COURIER_ID, "PKG-1", "S")
    site.close_door(door.compartment_id)
    view = await first.lockers.wait_operation(door.operation_id, wait_s=5)
    assert view.pickup_code is not None
    pickup = await first.lockers.start_pickup("kiosk-1", view.pickup_code)
    await first.stop()  # the door is still open: the pickup never finished
    site.close_door(pickup.compartment_id)
    unlocks = list(site.boards.unlock_log)

    second = await start_app(code_secret="boot-test-secret")
    fault = await second.events.wait_for("compartment.fault")  # type: ignore[attr-defined]
    assert fault.data["compartment"] == "A01"
    assert (fault.data["reason"], fault.data["operation"]) == (
        "interrupted_pickup",
        pickup.operation_id,
    )
    comp = await second.db.read(lambda s: s.get(Compartment, "A01"))
    assert comp is not None and (comp.state, comp.fault) == ("faulted", "interrupted_pickup")
    assert comp.door_open is False
    parcel = await second.db.read(lambda s: s.get(Parcel, comp.parcel_id))
    assert parcel is not None and parcel.state == "stored"  # an operator decides
    op = await second.lockers.wait_operation(pickup.operation_id)
    assert op.state == "interrupted"
    assert second.events.of_type("parcel.picked_up") == []  # type: ignore[attr-defined]
    assert site.boards.unlock_log == unlocks
