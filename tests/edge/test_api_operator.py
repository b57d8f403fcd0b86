"""Operator routes, health, metrics and the OpenAPI document over HTTP (in-process ASGI)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from edge.api.app import create_api
from edge.app import EdgeApp
from edge.demo.site import COURIER_ID, KIOSK_TOKEN, OPERATOR_TOKEN, SimulatedSite

KIOSK = {"X-Kiosk-Token": KIOSK_TOKEN}
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}

OPERATOR_CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/compartments", None),
    ("POST", "/api/v1/compartments/A01/open", {"reason": "cleaning"}),
    ("POST", "/api/v1/compartments/A01/disable", None),
    ("POST", "/api/v1/compartments/A01/enable", None),
    ("GET", "/api/v1/parcels", None),
    ("POST", "/api/v1/parcels/expected", {"code": "PKG-1", "size": "S"}),
    ("GET", "/api/v1/events", None),
    ("GET", "/api/v1/devices", None),
]


def client(app: EdgeApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_api(app)), base_url="http://edge", timeout=15
    )


@pytest.fixture
async def http(app: EdgeApp) -> AsyncIterator[httpx.AsyncClient]:
    async with client(app) as c:
        yield c


def error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    return body["error"]


async def test_operator_routes_need_the_operator_token(
    http: httpx.AsyncClient, site: SimulatedSite
) -> None:
    refused = (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": OPERATOR_TOKEN},  # no scheme
        {"Authorization": f"Basic {OPERATOR_TOKEN}"},
        KIOSK,  # a kiosk cannot act as operator
        {"Authorization": f"Bearer {KIOSK_TOKEN}"},
    )
    for method, path, body in OPERATOR_CALLS:
        for headers in refused:
            r = await http.request(method, path, json=body, headers=headers)
            error(r, 401, "not_authenticated")
            assert r.headers["www-authenticate"] == "Bearer"
    assert site.boards is not None and site.boards.unlock_log == []


async def test_operator_routes_are_off_without_an_operator_token(
    start_app: Callable[..., Any],
) -> None:
    app = await start_app(http={"host": "127.0.0.1", "port": 0})
    async with client(app) as http:
        for method, path, body in OPERATOR_CALLS:
            r = await http.request(method, path, json=body, headers=OPERATOR)
            error(r, 503, "operator_api_disabled")
        # The kiosk side still works.
        assert (await http.get("/api/v1/kiosk/sizes", headers=KIOSK)).status_code == 200


async def test_operator_open_disable_enable(
    app: EdgeApp, http: httpx.AsyncClient, site: SimulatedSite
) -> None:
    assert site.boards is not None
    r = await http.post("/api/v1/compartments/A01/open", headers=OPERATOR, json={"reason": " "})
    error(r, 409, "invalid_state")
    r = await http.post("/api/v1/compartments/Z99/open", headers=OPERATOR, json={"reason": "x"})
    error(r, 404, "not_found")
    r = await http.post(
        "/api/v1/compartments/A01/open", headers=OPERATOR, json={"reason": "cleaning"}
    )
    assert r.status_code == 201, r.text
    assert (r.json()["compartment"], r.json()["kind"]) == ("A01", "operator_open")
    r = await http.post("/api/v1/compartments/A01/disable", headers=OPERATOR)
    error(r, 409, "invalid_state")  # not while its door is open
    site.close_door("A01")
    closed = await app.events.wait_for("compartment.operator_closed")  # type: ignore[attr-defined]
    assert (closed.data["compartment"], closed.data["reason"]) == ("A01", "cleaning")

    r = await http.post("/api/v1/compartments/A01/disable", headers=OPERATOR)
    assert (r.json()["state"], r.json()["enabled"]) == ("disabled", False)
    door = await app.lockers.start_deposit(COURIER_ID, "PKG-1", "S")
    assert door.compartment_id == "A02"
    r = await http.post("/api/v1/compartments/A01/enable", headers=OPERATOR)
    assert (r.json()["state"], r.json()["enabled"], r.json()["fault"]) == ("free", True, None)

    r = await http.get("/api/v1/compartments", headers=OPERATOR)
    by_id = {c["id"]: c for c in r.json()}
    assert len(by_id) == 22
    assert by_id["A02"]["state"] == "open_for_deposit" and by_id["A02"]["door_open"] is True
    r = await http.get("/api/v1/parcels", headers=OPERATOR, params={"state": "depositing"})
    assert [(p["code"], p["compartment_id"]) for p in r.json()] == [("PKG-1", "A02")]
    assert site.boards.unlock_log == [(1, 1), (1, 2)]


async def test_enable_clears_a_fault(
    app: EdgeApp, http: httpx.AsyncClient, site: SimulatedSite
) -> None:
    assert site.boards is not None
    site.boards.force_open(1, 3)
    await app.events.wait_for("door.forced")  # type: ignore[attr-defined]
    site.boards.close_door(1, 3)
    await app.events.wait_for("door.closed")  # type: ignore[attr-defined]
    r = await http.get("/api/v1/compartments", headers=OPERATOR)
    a03 = next(c for c in r.json() if c["id"] == "A03")
    assert (a03["state"], a03["fault"]) == ("faulted", "door_forced")
    r = await http.post("/api/v1/compartments/A03/enable", headers=OPERATOR)
    assert (r.json()["state"], r.json()["fault"]) == ("free", None)


async def test_events_are_listed_in_seq_order(app: EdgeApp, http: httpx.AsyncClient) -> None:
    r = await http.get("/api/v1/events", headers=OPERATOR, params={"limit": 1000})
    listed = r.json()
    assert [e["seq"] for e in listed] == list(range(1, len(listed) + 1))
    assert {e["site"] for e in listed} == {"demo-site"}
    assert not any(e["delivered"] for e in listed)
    assert "locker.boot_check" in {e["type"] for e in listed}
    r = await http.get("/api/v1/events", headers=OPERATOR, params={"after_seq": 2, "limit": 1})
    assert [e["seq"] for e in r.json()] == [3]
    r = await http.get("/api/v1/events", headers=OPERATOR, params={"limit": 0})
    error(r, 422, "invalid_request")


async def test_devices_health_and_metrics(app: EdgeApp, http: httpx.AsyncClient) -> None:
    r = await http.get("/api/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "site": "demo-site", "version": app.version}

    await app.events.wait_for(  # type: ignore[attr-defined]
        "device.online", lambda e: e.data["device"] == "chiller"
    )
    r = await http.get("/api/v1/devices", headers=OPERATOR)
    devices = {d["name"]: d for d in r.json()}
    assert devices["lockers"]["kind"] == "lock_bus" and devices["lockers"]["available"] is True
    assert devices["chiller"]["kind"] == "temperature_sensor"

    r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    lines = r.text.splitlines()
    assert 'edge_compartments{state="free"} 22.0' in lines
    assert 'edge_device_up{device="lockers",kind="lock_bus"} 1.0' in lines
    assert 'edge_device_up{device="chiller",kind="temperature_sensor"} 1.0' in lines
    assert any(line.startswith('edge_events_total{type="locker.boot_check"}') for line in lines)
    assert any(line.startswith("edge_outbox_pending ") for line in lines)


async def test_openapi_lists_the_api(http: httpx.AsyncClient) -> None:
    r = await http.get("/openapi.json")
    assert r.status_code == 200
    paths = set(r.json()["paths"])
    assert {
        "/api/v1/health",
        "/api/v1/kiosk/courier/sessions",
        "/api/v1/kiosk/deposits",
        "/api/v1/kiosk/deposits/{operation_id}/cancel",
        "/api/v1/kiosk/operations/{operation_id}",
        "/api/v1/kiosk/pickups",
        "/api/v1/kiosk/returns",
        "/api/v1/kiosk/sizes",
        "/api/v1/compartments",
        "/api/v1/compartments/{compartment_id}/open",
        "/api/v1/parcels",
        "/api/v1/parcels/expected",
        "/api/v1/events",
        "/api/v1/devices",
    } <= paths
    assert all(p.startswith("/api/v1/") for p in paths - {"/metrics"})


async def test_health_says_starting_until_the_doors_were_checked(
    make_app: Callable[..., EdgeApp],
) -> None:
    controller = make_app()
    transport = httpx.ASGITransport(app=create_api(controller))
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        r = await client.get("/api/v1/health")
        assert (r.status_code, r.json()["status"]) == (503, "starting")
        await controller.start(serve_http=False)
        try:
            r = await client.get("/api/v1/health")
            assert (r.status_code, r.json()["status"]) == (200, "ok")
        finally:
            await controller.stop()
