"""The operator console's data: the site overview with its alarms, and the temperature history."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from edge.api.app import create_api
from edge.app import EdgeApp
from edge.clock import ManualClock
from edge.db import Database
from edge.db.migrate import upgrade_to_head
from edge.demo.site import COURIER_ID, OPERATOR_TOKEN, SimulatedSite
from edge.lockers.temperature_history import TemperatureHistory

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.fixture
async def http(app: EdgeApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_api(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://edge", timeout=15) as c:
        yield c


async def test_the_overview_shows_every_part_of_the_site(
    http: httpx.AsyncClient, app: EdgeApp, site: SimulatedSite
) -> None:
    door = await app.lockers.start_deposit(COURIER_ID, "PKG-1", "S")
    site.close_door(door.compartment_id)
    await app.lockers.wait_operation(door.operation_id, wait_s=5)

    r = await http.get("/api/v1/overview", headers=OPERATOR)
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["ready"] is True and view["alarms"] == []
    states = {c["id"]: c["state"] for c in view["compartments"]}
    assert states[door.compartment_id] == "occupied"
    assert len(states) == len(site.compartments)
    assert {d["name"] for d in view["devices"]} >= {"lockers", "freezer", "chiller"}
    assert view["sync"]["configured"] is False and view["sync"]["pending_events"] > 0
    assert view["recent_events"][0]["seq"] == view["sync"]["last_seq"]
    assert any(e["type"] == "parcel.deposited" for e in view["recent_events"])


async def test_the_overview_needs_the_operator_token(http: httpx.AsyncClient) -> None:
    for path in ("/api/v1/overview", "/api/v1/temperatures", "/api/v1/cabinet-sessions"):
        r = await http.get(path)
        assert r.status_code == 401, path


async def test_faults_and_silent_devices_are_alarms(
    http: httpx.AsyncClient, app: EdgeApp, site: SimulatedSite
) -> None:
    assert site.boards is not None
    site.boards.force_open(1, 1)  # A01 opened by force: the compartment is faulted
    await app.events.wait_for(  # type: ignore[attr-defined]
        "compartment.fault", lambda e: e.data["compartment"] == "A01"
    )
    app.health.set("chiller", False, "no reply from the sensor")

    alarms = (await http.get("/api/v1/overview", headers=OPERATOR)).json()["alarms"]
    kinds = {(a["kind"], a["target"]) for a in alarms}
    assert ("compartment_fault", "A01") in kinds and ("device_offline", "chiller") in kinds
    assert next(a for a in alarms if a["target"] == "A01")["severity"] == "critical"
    chiller = next(a for a in alarms if a["target"] == "chiller")
    assert chiller["severity"] == "warning" and chiller["message"] == "no reply from the sensor"


async def test_a_temperature_excursion_is_a_critical_alarm(
    http: httpx.AsyncClient, app: EdgeApp
) -> None:
    sensor = next(s for s in app.config.temperature_sensors if s.zone.value == "chilled")
    rule = app.config.lockers.zones[sensor.zone]
    assert rule.max_c is not None
    await app.temperature.observe(sensor, rule.max_c + 6, now=0.0)
    await app.temperature.observe(sensor, rule.max_c + 6, now=rule.grace_s + 1)

    alarms = (await http.get("/api/v1/overview", headers=OPERATOR)).json()["alarms"]
    excursion = next(a for a in alarms if a["kind"] == "temperature_excursion")
    assert excursion["severity"] == "critical" and excursion["target"] == sensor.name
    assert alarms[0] == excursion  # the worst comes first


@pytest.fixture
def history_db(tmp_path: Path) -> Database:
    db = Database(tmp_path / "edge.db", "site-1", ManualClock())
    upgrade_to_head(db.engine)
    return db


async def test_readings_fold_into_one_row_per_minute(history_db: Database) -> None:
    clock = history_db.clock
    assert isinstance(clock, ManualClock)
    history = TemperatureHistory(history_db, clock)
    for celsius in (3.0, 5.0, 4.0):  # three readings within the first minute
        await history.record("chiller", "chilled", celsius)
        clock.advance(10)
    clock.advance(60)
    await history.record("chiller", "chilled", 6.0)  # a later minute: the first is written

    series = (await history.since(hours=1))["chiller"]
    assert len(series) == 2
    first, last = series
    assert (first["min_c"], first["max_c"], first["mean_c"]) == (3.0, 5.0, 4.0)
    assert last["mean_c"] == 6.0  # the open minute is shown too

    # A stop writes the open minute: a new process reads it from the database.
    await history.flush()
    again = await TemperatureHistory(history_db, clock).since(hours=1)
    assert again["chiller"][-1]["mean_c"] == 6.0 and len(again["chiller"]) == 2


async def test_history_older_than_a_week_is_pruned(history_db: Database) -> None:
    clock = history_db.clock
    assert isinstance(clock, ManualClock)
    history = TemperatureHistory(history_db, clock)
    await history.record("freezer-probe", "frozen", -18.0)
    await history.flush()
    clock.advance(8 * 24 * 3600)
    assert await history.since(hours=168) == {}  # out of the window already
    await history.record("freezer-probe", "frozen", -19.0)
    clock.advance(60)
    await history.record("freezer-probe", "frozen", -19.0)

    def rows(s: object) -> int:
        from sqlmodel import Session, func, select

        from edge.db.tables import TemperatureMinute

        assert isinstance(s, Session)
        return int(s.exec(select(func.count()).select_from(TemperatureMinute)).one())

    assert await history_db.read(rows) == 1  # the week-old minute is gone


async def test_the_temperature_endpoint_names_each_sensor_with_its_limits(
    http: httpx.AsyncClient, app: EdgeApp
) -> None:
    sensor = app.config.temperature_sensors[0]
    await app.temperature.history.record(sensor.name, sensor.zone.value, 4.5)
    r = await http.get("/api/v1/temperatures", headers=OPERATOR, params={"hours": 24})
    assert r.status_code == 200, r.text
    series = {s["sensor"]: s for s in r.json()}
    assert set(series) == {s.name for s in app.config.temperature_sensors}
    rule = app.config.lockers.zones[sensor.zone]
    assert series[sensor.name]["max_c"] == rule.max_c
    # The sensor's own readings share the open minute: 4.5 is within its range.
    newest = series[sensor.name]["points"][-1]
    assert newest["min_c"] <= 4.5 <= newest["max_c"]
    r = await http.get("/api/v1/temperatures", headers=OPERATOR, params={"hours": 1000})
    assert r.status_code == 422


def samples(text: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        f"{s.name}{sorted(s.labels.items()) if s.labels else ''}": s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_carry_what_an_operator_alerts_on(
    http: httpx.AsyncClient, app: EdgeApp, clock: ManualClock
) -> None:
    assert (await http.post("/api/v1/compartments/A02/disable", headers=OPERATOR)).is_success
    clock.advance(120)  # nothing delivered upstream (no broker) for two minutes
    sensor = next(s for s in app.config.temperature_sensors if s.zone.value == "frozen")
    rule = app.config.lockers.zones[sensor.zone]
    assert rule.max_c is not None
    await app.temperature.observe(sensor, rule.max_c + 10, now=0.0)
    await app.temperature.observe(sensor, rule.max_c + 10, now=rule.grace_s + 1)
    await http.get("/api/v1/kiosk/operations/no-such-operation")  # refused: no kiosk token
    await http.get("/api/v1/no/such/path/7f3a")

    values = samples((await http.get("/metrics")).text)
    assert values["edge_ready"] == 1
    assert values[f"edge_build_info[('site', 'demo-site'), ('version', '{app.version}')]"] == 1
    assert values["edge_outbox_oldest_pending_age_seconds"] >= 120
    assert values["edge_compartments_disabled"] == 1
    assert values[f"edge_temperature_alarm[('sensor', '{sensor.name}'), ('zone', 'frozen')]"] == 1
    assert values["edge_cabinet_sessions_held"] == 0
    # Routes are counted by their template: ids never become label values.
    refused = "[('method', 'GET'), ('route', '/api/v1/kiosk/operations/{operation_id}'), " + (
        "('status', '401')]"
    )
    assert values["edge_http_requests_total" + refused] == 1
    unmatched = "[('method', 'GET'), ('route', 'unmatched'), ('status', '404')]"
    assert values["edge_http_requests_total" + unmatched] == 1
    assert not any("7f3a" in key or "no-such-operation" in key for key in values)
