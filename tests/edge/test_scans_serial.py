"""A serial barcode scanner configured at a kiosk, through its simulator on a pseudo-terminal:
its codes reach the kiosk's flow, a code cut off by an unplugged cable is shown as unreadable
and acted on by nothing, and the scanner comes back by itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from drivers.scanner.simulator import SerialScannerSimulator
from edge.clock import ManualClock
from edge.demo.site import COURIER_ID, SimulatedSite
from tests.edge.test_cabinet_sessions import KIOSK, client
from tests.edge.test_scans_flows import signed, trusted


@pytest.fixture
async def scanner() -> AsyncIterator[SerialScannerSimulator]:
    async with SerialScannerSimulator(terminator="crlf", aim_ids=True) as simulator:
        yield simulator


async def test_a_serial_scanner_feeds_its_kiosk_and_survives_being_unplugged(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    scanner: SerialScannerSimulator,
) -> None:
    config = {
        "name": "locker-scanner",
        "kind": "serial",
        "kiosk": "kiosk-1",
        "port": scanner.port,
        "terminator": "crlf",
        "aim_ids": True,
    }
    app = await start_app(scanners=[config], commands=trusted())
    events = app.events  # the committed events, as the fixture attached them
    await events.wait_for("device.online", lambda e: e.data["device"] == "locker-scanner", 10)
    async with client(app) as http:
        await http.put("/api/v1/kiosk/scan-flow", headers=KIOSK, json={"flow": "courier_sign_in"})
        scanner.scan(signed(clock, "courier", {"courier_id": COURIER_ID}), "qr")
        await http.get("/api/v1/kiosk/scans", headers=KIOSK, params={"wait": 5})
        await app.wait_checked()  # the flow has taken it
        r = await http.get("/api/v1/kiosk/scans", headers=KIOSK)
        (scan,) = r.json()["scans"]
        assert (scan["device"], scan["symbology"]) == ("locker-scanner", "qr")
        assert scan["outcome"]["status"] == "accepted", scan
        last = r.json()["last_seq"]

        # The cable is pulled in the middle of a code: nothing of it is acted on.
        scanner.scan_cut("00106141411234567897", "gs1-128", keep=8)
        await scanner.drained()
        scanner.unplug()
        offline = await events.wait_for(
            "device.offline", lambda e: e.data["device"] == "locker-scanner", 10
        )
        scanner.replug()
        await events.wait_for(
            "device.online",
            lambda e: e.data["device"] == "locker-scanner" and e.seq > offline.seq,
            10,
        )
        r = await http.get("/api/v1/kiosk/scans", headers=KIOSK, params={"after": last})
        cut = r.json()["scans"]
        assert [s["outcome"]["status"] for s in cut] == ["refused"]
        assert cut[0]["outcome"]["code"] == "cut_off" and cut[0]["text"] == ""
        devices = await http.get("/api/v1/devices", headers={"Authorization": "Bearer op"})
    assert devices.status_code in (200, 401)
