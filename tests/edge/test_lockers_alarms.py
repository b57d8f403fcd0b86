"""Alarms: doors left open, doors forced, temperature excursions naming the parcels inside."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from edge.app import EdgeApp
from edge.db.tables import Compartment
from edge.demo.site import COURIER_ID, SimulatedSite


def zones(chilled_grace_s: float) -> dict[str, Any]:
    return {
        "ambient": {"expiry_hours": 72},
        "chilled": {"min_c": 0, "max_c": 4, "grace_s": chilled_grace_s, "expiry_hours": 24},
        "frozen": {"min_c": -25, "max_c": -15, "grace_s": 600, "expiry_hours": 48},
    }


def sensors(site: SimulatedSite, poll_interval_s: float) -> list[dict[str, Any]]:
    assert site.sensors is not None
    return [
        {
            "name": name,
            "port": site.sensors.port,
            "device_id": device,
            "zone": zone,
            "register": {"address": 0, "scale": 0.1},
            "poll_interval_s": poll_interval_s,
            "timeout_s": 0.3,
        }
        for name, device, zone in (("chiller", 1, "chilled"), ("freezer-probe", 2, "frozen"))
    ]


async def deposit(app: EdgeApp, site: SimulatedSite, code: str, size: str, zone: str) -> str:
    door = await app.lockers.start_deposit(COURIER_ID, code, size, zone)
    site.close_door(door.compartment_id)
    view = await app.lockers.wait_operation(door.operation_id, wait_s=5)
    assert view.state == "completed" and view.parcel_id is not None
    return view.parcel_id


# ---------------------------------------------------------------- doors


async def test_door_left_open_is_reported(
    start_app: Callable[..., Any],
    locker_rules: Callable[..., dict[str, Any]],
    site: SimulatedSite,
) -> None:
    app = await start_app(lockers=locker_rules(door_left_open_s=0.3))
    door = await app.lockers.start_deposit(COURIER_ID, "PKG-1", "S")
    left = await app.events.wait_for("door.left_open", timeout=3)  # type: ignore[attr-defined]
    assert left.data == {
        "compartment": door.compartment_id,
        "open_for_s": 0.3,
        "operation": door.operation_id,
    }
    # Reporting it changes nothing: closing still commits the deposit.
    site.close_door(door.compartment_id)
    await app.events.wait_for("parcel.deposited")  # type: ignore[attr-defined]


async def test_door_closed_in_time_is_not_reported(
    start_app: Callable[..., Any],
    locker_rules: Callable[..., dict[str, Any]],
    site: SimulatedSite,
) -> None:
    app = await start_app(lockers=locker_rules(door_left_open_s=0.3))
    door = await app.lockers.start_deposit(COURIER_ID, "PKG-1", "S")
    site.close_door(door.compartment_id)
    await app.events.wait_for("parcel.deposited")  # type: ignore[attr-defined]
    await asyncio.sleep(0.5)  # past door_left_open_s: nothing may be reported
    assert app.events.of_type("door.left_open") == []  # type: ignore[attr-defined]


async def test_forced_door_faults_the_compartment(app: EdgeApp, site: SimulatedSite) -> None:
    assert site.boards is not None and site.frozen is not None
    parcel_id = await deposit(app, site, "PKG-1", "S", "ambient")
    site.boards.force_open(1, 1)  # A01, with the parcel inside, and nobody asked
    forced = await app.events.wait_for("door.forced")  # type: ignore[attr-defined]
    assert forced.data["compartment"] == "A01" and forced.data["parcel_id"] == parcel_id
    fault = await app.events.wait_for(  # type: ignore[attr-defined]
        "compartment.fault", lambda e: e.data["compartment"] == "A01"
    )
    assert fault.data["reason"] == "door_forced"
    comp = await app.db.read(lambda s: s.get(Compartment, "A01"))
    assert comp is not None and (comp.state, comp.fault) == ("faulted", "door_forced")
    assert comp.parcel_id == parcel_id

    # A board without its own reports (Kerong) is caught by the poll.
    site.frozen.force_open(0, 2)
    forced = await app.events.wait_for(  # type: ignore[attr-defined]
        "door.forced", lambda e: e.data["compartment"] == "F02", timeout=5
    )
    comp = await app.db.read(lambda s: s.get(Compartment, "F02"))
    assert comp is not None and (comp.state, comp.fault) == ("faulted", "door_forced")

    # A faulted compartment is not offered to the next courier.
    door = await app.lockers.start_deposit(COURIER_ID, "ICE-1", "M", "frozen")
    assert door.compartment_id == "F01"
    assert site.boards.unlock_log == [(1, 1)]  # the deposit only
    assert site.frozen.unlock_log == [(0, 1)]


# ---------------------------------------------------------------- temperature


async def test_excursion_after_grace_names_chilled_parcels_then_recovers(
    start_app: Callable[..., Any],
    locker_rules: Callable[..., dict[str, Any]],
    site: SimulatedSite,
) -> None:
    # A long poll interval: the test feeds readings itself after the first one.
    app = await start_app(
        lockers=locker_rules(zones=zones(chilled_grace_s=10)),
        temperature_sensors=sensors(site, poll_interval_s=3600),
    )
    await app.events.wait_for(  # type: ignore[attr-defined]
        "device.online", lambda e: e.data["device"] == "chiller"
    )
    milk = await deposit(app, site, "MILK-1", "S", "chilled")
    cheese = await deposit(app, site, "CHEESE-1", "M", "chilled")
    await deposit(app, site, "BOX-1", "S", "ambient")
    chiller = next(s for s in app.config.temperature_sensors if s.name == "chiller")
    observe = app.temperature.observe

    await observe(chiller, 9.0, 100.0)
    await observe(chiller, 9.5, 109.9)
    assert app.events.of_type("temperature.excursion") == []  # type: ignore[attr-defined]
    await observe(chiller, 9.5, 110.0)
    excursion = await app.events.wait_for("temperature.excursion")  # type: ignore[attr-defined]
    assert excursion.data["sensor"] == "chiller" and excursion.data["zone"] == "chilled"
    assert excursion.data["celsius"] == 9.5
    assert (excursion.data["min_c"], excursion.data["max_c"]) == (0, 4)
    assert excursion.data["parcels"] == [
        {"parcel_id": milk, "parcel_code": "MILK-1", "compartment": "C01"},
        {"parcel_id": cheese, "parcel_code": "CHEESE-1", "compartment": "C04"},
    ]
    # Still outside: reported once, not at every reading.
    await observe(chiller, 10.0, 200.0)
    await observe(chiller, 3.0, 201.0)
    recovered = await app.events.wait_for("temperature.recovered")  # type: ignore[attr-defined]
    assert recovered.data["celsius"] == 3.0
    assert len(recovered.data["parcels"]) == 2
    assert len(app.events.of_type("temperature.excursion")) == 1  # type: ignore[attr-defined]
    assert len(app.events.of_type("temperature.recovered")) == 1  # type: ignore[attr-defined]


async def test_brief_excursions_within_grace_are_not_alarms(
    start_app: Callable[..., Any],
    locker_rules: Callable[..., dict[str, Any]],
    site: SimulatedSite,
) -> None:
    app = await start_app(
        lockers=locker_rules(zones=zones(chilled_grace_s=10)),
        temperature_sensors=sensors(site, poll_interval_s=3600),
    )
    await app.events.wait_for(  # type: ignore[attr-defined]
        "device.online", lambda e: e.data["device"] == "chiller"
    )
    chiller = next(s for s in app.config.temperature_sensors if s.name == "chiller")
    observe = app.temperature.observe
    # A door opened for a pickup warms the fridge for a moment, twice.
    await observe(chiller, 8.0, 0.0)
    await observe(chiller, 8.0, 9.0)
    await observe(chiller, 3.9, 9.5)
    await observe(chiller, -0.5, 10.0)  # below the band starts a new grace period
    await observe(chiller, 6.0, 19.0)
    await observe(chiller, 2.0, 19.9)
    await observe(chiller, 2.0, 100.0)
    assert app.events.of_type("temperature.excursion") == []  # type: ignore[attr-defined]
    assert app.events.of_type("temperature.recovered") == []  # type: ignore[attr-defined]


async def test_sensor_reading_drives_excursion_and_recovery(
    start_app: Callable[..., Any],
    locker_rules: Callable[..., dict[str, Any]],
    site: SimulatedSite,
) -> None:
    assert site.sensors is not None
    app = await start_app(
        lockers=locker_rules(zones=zones(chilled_grace_s=0.3)),
        temperature_sensors=sensors(site, poll_interval_s=0.1),
    )
    milk = await deposit(app, site, "MILK-1", "S", "chilled")
    site.sensors.set_temperature(1, 9.0)
    excursion = await app.events.wait_for(  # type: ignore[attr-defined]
        "temperature.excursion", timeout=5
    )
    assert excursion.data["celsius"] == 9.0
    assert [p["parcel_id"] for p in excursion.data["parcels"]] == [milk]
    site.sensors.set_temperature(1, 3.0)
    recovered = await app.events.wait_for(  # type: ignore[attr-defined]
        "temperature.recovered", timeout=5
    )
    assert recovered.data["celsius"] == 3.0
    # The freezer stayed in its band throughout.
    frozen = [e for e in app.events.events if e.data.get("zone") == "frozen"]  # type: ignore[attr-defined]
    assert frozen == []
