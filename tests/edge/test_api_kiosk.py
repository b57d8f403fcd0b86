"""The kiosk API over HTTP (in-process ASGI): auth, the full deposit and pickup, error shapes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from edge.api.app import create_api
from edge.app import EdgeApp
from edge.clock import ManualClock
from edge.demo.site import (
    COURIER_CREDENTIAL,
    COURIER_ID,
    KIOSK_TOKEN,
    OPERATOR_TOKEN,
    SimulatedSite,
)

KIOSK = {"X-Kiosk-Token": KIOSK_TOKEN}
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def client(app: EdgeApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_api(app)), base_url="http://edge", timeout=15
    )


@pytest.fixture
async def http(app: EdgeApp) -> AsyncIterator[httpx.AsyncClient]:
    async with client(app) as c:
        yield c


async def sign_in(http: httpx.AsyncClient, kiosk: dict[str, str] = KIOSK) -> dict[str, str]:
    r = await http.post(
        "/api/v1/kiosk/courier/sessions",
        headers=kiosk,
        json={"courier_id": COURIER_ID, "credential": COURIER_CREDENTIAL},
    )
    assert r.status_code == 201, r.text
    assert r.json()["courier_name"] == "Demo Courier"
    return {**kiosk, "X-Courier-Session": r.json()["token"]}


def error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


# ---------------------------------------------------------------- auth


async def test_kiosk_routes_need_a_kiosk_token(http: httpx.AsyncClient) -> None:
    calls = [
        ("POST", "/api/v1/kiosk/pickups", {"code": "12345678"}),
        ("POST", "/api/v1/kiosk/courier/sessions", {"courier_id": "x", "credential": "y"}),
        ("GET", "/api/v1/kiosk/sizes", None),
        ("GET", "/api/v1/kiosk/operations/anything", None),
    ]
    for method, path, body in calls:
        for headers in ({}, {"X-Kiosk-Token": "not-the-token"}, OPERATOR):
            r = await http.request(method, path, json=body, headers=headers)
            error(r, 401, "not_a_kiosk")


async def test_courier_routes_need_a_session_from_this_kiosk(
    start_app: Callable[..., Any], site: SimulatedSite
) -> None:
    kiosks = [{"id": "kiosk-1", "token": KIOSK_TOKEN}, {"id": "kiosk-2", "token": "second-token"}]
    app = await start_app(kiosks=kiosks)
    async with client(app) as http:
        deposit = {"parcel_code": "PKG-1", "size": "S"}
        r = await http.post("/api/v1/kiosk/deposits", headers=KIOSK, json=deposit)
        error(r, 401, "not_authenticated")
        r = await http.post(
            "/api/v1/kiosk/deposits",
            headers={**KIOSK, "X-Courier-Session": "made-up"},
            json=deposit,
        )
        error(r, 401, "not_authenticated")
        courier = await sign_in(http)
        elsewhere = {**courier, "X-Kiosk-Token": "second-token"}
        r = await http.post("/api/v1/kiosk/deposits", headers=elsewhere, json=deposit)
        error(r, 401, "not_authenticated")
        r = await http.get("/api/v1/kiosk/returns", headers=elsewhere)
        error(r, 401, "not_authenticated")

        r = await http.delete("/api/v1/kiosk/courier/sessions/current", headers=courier)
        assert r.status_code == 204
        r = await http.post("/api/v1/kiosk/deposits", headers=courier, json=deposit)
        error(r, 401, "not_authenticated")
    assert site.boards is not None and site.boards.unlock_log == []


async def test_courier_sign_in_errors(http: httpx.AsyncClient) -> None:
    async def sign_in_with(credential: str) -> httpx.Response:
        return await http.post(
            "/api/v1/kiosk/courier/sessions",
            headers=KIOSK,
            json={"courier_id": COURIER_ID, "credential": credential},
        )

    for left in (4, 3, 2, 1, 0):
        r = await sign_in_with("wrong")
        assert error(r, 401, "not_authenticated")["details"] == {"attempts_left": left}
    r = await sign_in_with("wrong")
    assert error(r, 429, "code_input_locked")["details"] == {"retry_after_s": 60}
    r = await sign_in_with(COURIER_CREDENTIAL)
    error(r, 429, "code_input_locked")


# ---------------------------------------------------------------- flows


async def test_full_deposit_and_pickup_over_http(
    app: EdgeApp, http: httpx.AsyncClient, site: SimulatedSite
) -> None:
    r = await http.post(
        "/api/v1/parcels/expected",
        headers=OPERATOR,
        json={"code": "FRESH-1", "size": "M", "zone": "chilled", "recipient": "Flat 4"},
    )
    assert r.status_code == 201, r.text
    assert (r.json()["state"], r.json()["zone"]) == ("expected", "chilled")

    r = await http.get("/api/v1/kiosk/sizes", headers=KIOSK)
    free = {(s["zone"], s["size"]): s["free"] for s in r.json()}
    assert free[("chilled", "M")] == 3 and free[("ambient", "S")] == 4

    # A size with nothing free is still listed, with 0: the kiosk shows it as full.
    for compartment in ("F01", "F02", "F03", "F04"):
        r = await http.post(f"/api/v1/compartments/{compartment}/disable", headers=OPERATOR)
        assert r.status_code == 200, r.text
    r = await http.get("/api/v1/kiosk/sizes", headers=KIOSK)
    assert {(s["zone"], s["size"]): s["free"] for s in r.json()}[("frozen", "M")] == 0

    courier = await sign_in(http)
    r = await http.post("/api/v1/kiosk/deposits", headers=courier, json={"parcel_code": "FRESH-1"})
    assert r.status_code == 201, r.text
    opened = r.json()
    assert opened == {
        "operation_id": opened["operation_id"],
        "compartment": "C04",
        "kind": "deposit",
        "state": "open",
    }
    operation = f"/api/v1/kiosk/operations/{opened['operation_id']}"
    r = await http.get(operation, headers=KIOSK)
    assert (r.json()["state"], r.json()["pickup_code"]) == ("opened", None)

    # The kiosk long-polls; the courier closes the door meanwhile.
    waiting = asyncio.create_task(http.get(operation, headers=KIOSK, params={"wait": 5}))
    await app.events.wait_for("door.opened")  # type: ignore[attr-defined]
    site.close_door("C04")
    r = await waiting
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["state"] == "completed" and done["compartment"] == "C04"
    code = done["pickup_code"]
    assert isinstance(code, str) and code.isdigit() and len(code) == 8

    r = await http.post("/api/v1/kiosk/pickups", headers=KIOSK, json={"code": code})
    assert r.status_code == 201, r.text
    pickup = r.json()
    assert (pickup["compartment"], pickup["kind"]) == ("C04", "pickup")
    site.close_door("C04")
    r = await http.get(
        f"/api/v1/kiosk/operations/{pickup['operation_id']}", headers=KIOSK, params={"wait": 5}
    )
    assert (r.json()["state"], r.json()["pickup_code"]) == ("completed", None)
    await app.events.wait_for("parcel.picked_up")  # type: ignore[attr-defined]

    r = await http.post("/api/v1/kiosk/pickups", headers=KIOSK, json={"code": code})
    error(r, 403, "wrong_code")
    assert site.boards is not None and site.boards.unlock_log == [(2, 4), (2, 4)]


async def test_wrong_codes_403_then_locked_429(
    http: httpx.AsyncClient, site: SimulatedSite
) -> None:
    for left in (4, 3, 2, 1, 0):
        r = await http.post("/api/v1/kiosk/pickups", headers=KIOSK, json={"code": "00000000"})
        assert error(r, 403, "wrong_code")["details"] == {"attempts_left": left}
    r = await http.post("/api/v1/kiosk/pickups", headers=KIOSK, json={"code": "00000000"})
    assert error(r, 429, "code_input_locked")["details"] == {"retry_after_s": 60}
    assert r.headers["Retry-After"] == "60"
    assert site.boards is not None and site.boards.unlock_log == []


async def test_courier_returns_expired_parcel_over_http(
    app: EdgeApp, http: httpx.AsyncClient, site: SimulatedSite, clock: ManualClock
) -> None:
    door = await app.lockers.start_deposit(COURIER_ID, "BOX-1", "S")
    site.close_door(door.compartment_id)
    await app.lockers.wait_operation(door.operation_id, wait_s=5)
    clock.advance(73 * 3600)
    await app.lockers.expire_due()
    courier = await sign_in(http)  # after the clock moved: a fresh session
    r = await http.get("/api/v1/kiosk/returns", headers=courier)
    assert [(p["code"], p["state"]) for p in r.json()] == [("BOX-1", "expired")]
    r = await http.post(
        "/api/v1/kiosk/returns", headers=courier, json={"parcel_id": r.json()[0]["id"]}
    )
    assert r.status_code == 201, r.text
    assert (r.json()["compartment"], r.json()["kind"]) == ("A01", "return")
    site.close_door("A01")
    await app.events.wait_for("parcel.returned")  # type: ignore[attr-defined]
    r = await http.post("/api/v1/kiosk/returns", headers=courier, json={"parcel_id": "nope"})
    error(r, 404, "not_found")


async def test_domain_errors_map_to_statuses(http: httpx.AsyncClient, site: SimulatedSite) -> None:
    courier = await sign_in(http)
    r = await http.post("/api/v1/kiosk/deposits", headers=courier, json={"parcel_code": "PKG-1"})
    assert error(r, 422, "size_required")["details"] == {"sizes": ["S", "M", "L"]}
    r = await http.post(
        "/api/v1/kiosk/deposits", headers=courier, json={"parcel_code": "PKG-1", "size": "XL"}
    )
    error(r, 422, "unknown_size")
    r = await http.post(
        "/api/v1/kiosk/deposits",
        headers=courier,
        json={"parcel_code": "PKG-1", "size": "L", "zone": "frozen"},
    )
    error(r, 409, "no_free_compartment")
    r = await http.get("/api/v1/kiosk/operations/nope", headers=KIOSK)
    error(r, 404, "not_found")
    r = await http.post("/api/v1/kiosk/deposits/nope/cancel", headers=courier)
    error(r, 404, "not_found")
    assert site.boards is not None and site.boards.unlock_log == []


async def test_validation_errors_have_the_error_shape(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/kiosk/pickups", headers=KIOSK, json={})
    body = error(r, 422, "invalid_request")
    assert body["details"]["problems"] == [{"path": "body.code", "message": "Field required"}]
    r = await http.post("/api/v1/kiosk/pickups", headers=KIOSK, json={"code": "1" * 100})
    assert error(r, 422, "invalid_request")["details"]["problems"][0]["path"] == "body.code"
    r = await http.post(
        "/api/v1/kiosk/pickups",
        headers={**KIOSK, "Content-Type": "application/json"},
        content=b"{not json",
    )
    error(r, 422, "invalid_request")
    r = await http.get("/api/v1/kiosk/operations/x", headers=KIOSK, params={"wait": 61})
    assert error(r, 422, "invalid_request")["details"]["problems"][0]["path"] == "query.wait"


async def test_door_that_does_not_open_is_504_and_retry_uses_another(
    start_app: Callable[..., Any],
    locker_rules: Callable[..., dict[str, Any]],
    site: SimulatedSite,
) -> None:
    app = await start_app(lockers=locker_rules(door_open_timeout_s=0.5))
    assert site.boards is not None
    site.boards.set_stuck(1, 1, True)
    async with client(app) as http:
        courier = await sign_in(http)
        body = {"parcel_code": "PKG-1", "size": "S"}
        r = await http.post("/api/v1/kiosk/deposits", headers=courier, json=body)
        assert error(r, 504, "open_not_detected")["details"] == {"compartment": "A01"}
        r = await http.post("/api/v1/kiosk/deposits", headers=courier, json=body)
        assert r.status_code == 201 and r.json()["compartment"] == "A02"
        app.lockers.stop_accepting()
        r = await http.post("/api/v1/kiosk/pickups", headers=KIOSK, json={"code": "12345678"})
        error(r, 503, "shutting_down")
    assert site.boards.unlock_log == [(1, 1), (1, 2)]
