"""Scans reach the flow the kiosk screen is at: a courier signs in with a signed QR and scans a
GS1 parcel label, a resident opens their compartment with a pickup QR, a shopper opens a
cabinet with a member QR. Forged, expired, wrong-flow and unexpected scans act on nothing.

Scans are published into the site's scan hub exactly as every scanner driver does; the
drivers themselves are tested against their simulators in tests/drivers/."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx

from edge.app import EdgeApp
from edge.clock import ManualClock
from edge.commands.keys import private_key_from_seed, public_key_b64
from edge.demo.site import COURIER_ID, SimulatedSite
from edge.scans.payloads import issue_payload
from tests.edge.test_cabinet_sessions import KIOSK, client, door_opened, stocked_app
from tests.edge.test_facepay_flow import site
from tests.edge.test_lockers_pickup import deposit

__all__ = ["site"]  # the simulated site with its cabinet

UPSTREAM = private_key_from_seed(b"scan-flow-tests-upstream-key-32b")
STRANGER = private_key_from_seed(b"scan-flow-tests-forger-key-32byt")
SSCC_LABEL = "]C1" + "00" + "106141411234567897"  # GS1 General Specifications' SSCC example


def trusted() -> dict[str, Any]:
    return {"trusted_keys": [{"id": "cloud", "public_key": public_key_b64(UPSTREAM)}]}


async def started(start_app: Callable[..., Any], site: SimulatedSite, clock: ManualClock) -> Any:
    return await stocked_app(start_app, site, clock, per_product=5, commands=trusted())


def signed(
    clock: ManualClock,
    typ: str,
    data: dict[str, str],
    *,
    key: Any = UPSTREAM,
    site: str = "demo-site",
    ttl_s: int = 120,
) -> str:
    return issue_payload(key, "cloud", typ, data, ttl_s, site, clock.now())


async def scan(app: EdgeApp, http: httpx.AsyncClient, text: str, symbology: str = "qr") -> Any:
    """Scan ``text`` at kiosk-1 and return the outcome its screen sees."""
    after = app.scans.last_seq
    app.scans.publish("kiosk-1", "kiosk-1/scanner", symbology, text)
    await app.wait_checked()  # routing runs right after the scan
    r = await http.get("/api/v1/kiosk/scans", headers=KIOSK, params={"after": after})
    (seen,) = r.json()["scans"]
    return seen["outcome"]


async def flow(http: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await http.put("/api/v1/kiosk/scan-flow", headers={**KIOSK, **headers}, json=body)


async def test_a_courier_signs_in_by_qr_and_scans_a_gs1_parcel_label(
    start_app: Callable[..., Any], site: SimulatedSite, clock: ManualClock
) -> None:
    app = await started(start_app, site, clock)
    async with client(app) as http:
        # Nothing waits for a scan: it is logged and ignored.
        ignored = await scan(app, http, signed(clock, "courier", {"courier_id": COURIER_ID}))
        assert (ignored["status"], ignored["code"]) == ("ignored", "no_flow")

        assert (await flow(http, {"flow": "courier_sign_in"})).status_code == 200
        forged = signed(clock, "courier", {"courier_id": COURIER_ID}, key=STRANGER)
        refused = await scan(app, http, forged)
        assert (refused["status"], refused["code"]) == ("refused", "bad_signature")
        signed_in = await scan(app, http, signed(clock, "courier", {"courier_id": COURIER_ID}))
        assert signed_in["status"] == "accepted", signed_in
        token = signed_in["result"]["token"]
        assert signed_in["result"]["courier_id"] == COURIER_ID

        # The step is used up: a second scan is ignored.
        again = await scan(app, http, signed(clock, "courier", {"courier_id": COURIER_ID}))
        assert again["status"] == "ignored"

        # The parcel code step belongs to a signed-in courier.
        r = await flow(http, {"flow": "parcel_code"})
        assert r.status_code == 401
        r = await flow(http, {"flow": "parcel_code"}, **{"X-Courier-Session": token})
        assert r.status_code == 200, r.text
        truncated = await scan(app, http, SSCC_LABEL[:-4], "gs1-128")
        assert (truncated["status"], truncated["code"]) == ("refused", "unreadable_label")
        r = await flow(http, {"flow": "parcel_code"}, **{"X-Courier-Session": token})
        label = await scan(app, http, SSCC_LABEL, "gs1-128")
        assert label["status"] == "accepted", label
        assert label["result"]["parcel_code"] == "106141411234567897"
        assert label["result"]["gs1"]["sscc"] == "106141411234567897"

        # The scanned code is the one the deposit uses.
        r = await http.post(
            "/api/v1/kiosk/deposits",
            headers={**KIOSK, "X-Courier-Session": token},
            json={"parcel_code": label["result"]["parcel_code"], "size": "S"},
        )
        assert r.status_code == 201, r.text


async def test_a_pickup_qr_opens_exactly_its_parcel_and_an_expired_one_nothing(
    start_app: Callable[..., Any], site: SimulatedSite, clock: ManualClock
) -> None:
    app = await started(start_app, site, clock)
    compartment, _code = await deposit(app, site, "PKG-9")
    deposited = await app.events.wait_for("parcel.deposited")  # type: ignore[attr-defined]
    parcel_id = deposited.data["parcel_id"]
    async with client(app) as http:
        expired = signed(clock, "pickup", {"parcel_id": parcel_id}, ttl_s=60)
        clock.advance(61 + 300)  # past its expiry and the allowed clock skew
        await flow(http, {"flow": "pickup"})
        refused = await scan(app, http, expired)
        assert (refused["status"], refused["code"]) == ("refused", "expired")
        other_site = signed(clock, "pickup", {"parcel_id": parcel_id}, site="another-site")
        refused = await scan(app, http, other_site)
        assert refused["code"] == "wrong_site"
        courier_qr = signed(clock, "courier", {"courier_id": COURIER_ID})
        assert (await scan(app, http, courier_qr))["code"] == "wrong_type"

        opened = await scan(app, http, signed(clock, "pickup", {"parcel_id": parcel_id}))
        assert opened["status"] == "accepted", opened
        assert opened["result"]["compartment"] == compartment
    assert app.events.of_type("door.commanded")[-1].data["compartment"] == compartment  # type: ignore[attr-defined]


async def test_a_member_qr_opens_the_cabinet_the_screen_is_at(
    start_app: Callable[..., Any], site: SimulatedSite, clock: ManualClock
) -> None:
    app = await started(start_app, site, clock)
    async with client(app) as http:
        r = await flow(http, {"flow": "cabinet_member", "cabinet": "K9"})
        assert r.status_code == 404
        await flow(http, {"flow": "cabinet_member", "cabinet": "K1"})
        plain = await scan(app, http, "member-7")  # anyone could print a member id
        assert (plain["status"], plain["code"]) == ("refused", "not_ours")
        opened = await scan(app, http, signed(clock, "member", {"member_id": "member-7"}, site="*"))
        assert opened["status"] == "accepted", opened
        await door_opened(app, opened["result"]["session_id"])
        started_event = app.events.of_type("cabinet.session_started")[-1]  # type: ignore[attr-defined]
        assert (started_event.data["member_id"], started_event.data["member_source"]) == (
            "member-7",
            "qr",
        )
        # The screen left the step: scans are ignored again.
        await flow(http, {"flow": "cabinet_member", "cabinet": "K1"})
        r = await http.delete("/api/v1/kiosk/scan-flow", headers=KIOSK)
        assert r.status_code == 204
        late = await scan(app, http, signed(clock, "member", {"member_id": "member-8"}, site="*"))
        assert late["status"] == "ignored"
        clock.advance(timedelta(seconds=1).total_seconds())
        metrics = (await http.get("/metrics")).text
    assert 'edge_scan_outcomes{flow="cabinet_member",status="accepted"} 1.0' in metrics


async def test_a_flood_of_scans_is_bounded_and_acts_on_nothing_unasked(
    start_app: Callable[..., Any], site: SimulatedSite, clock: ManualClock
) -> None:
    app = await started(start_app, site, clock)
    for i in range(500):  # a scanner stuck in continuous mode, or someone playing with it
        app.scans.publish("kiosk-1", "kiosk-1/scanner", "code128", f"JUNK{i:05d}")
    await app.wait_checked()
    async with client(app) as http:
        r = await http.get("/api/v1/kiosk/scans", headers=KIOSK)
    scans = r.json()["scans"]
    assert len(scans) == 20  # only the newest few are kept for the screen
    assert {s["outcome"]["status"] for s in scans} == {"ignored"}
    assert len(app.scans.outcomes) == 20
    assert app.scans.outcome_counts[("none", "ignored")] == 500
    assert not app.events.of_type("door.commanded")  # type: ignore[attr-defined]
