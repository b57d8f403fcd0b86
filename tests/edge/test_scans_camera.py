"""A member QR shown to the kiosk's face camera reaches that kiosk's screen, once, while fresh;
the screen opens the cabinet with it. The camera is the MJPEG simulator, the controller real."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drivers.camera.simulator import MjpegCameraSimulator
from edge.clock import ManualClock
from edge.demo.site import SimulatedSite
from edge.scans.hub import FRESH_FOR_S
from tests.drivers.test_codes import camera_noise, qr_label, scene
from tests.edge.test_cabinet_sessions import KIOSK, OPERATOR, client, door_opened
from tests.edge.test_facepay_flow import models_cache, site, started

__all__ = ["models_cache", "site"]  # fixtures


class Phone:
    """Nothing in front of the camera until a shopper holds up a phone with a QR code."""

    def __init__(self) -> None:
        self.code: str | None = None
        self._empty = camera_noise(scene([], seed=2), seed=2)
        self._shown: dict[str, np.ndarray] = {}

    def __call__(self, _index: int) -> np.ndarray:
        if self.code is None:
            return self._empty
        if self.code not in self._shown:
            self._shown[self.code] = camera_noise(scene([qr_label(self.code)], seed=2), seed=2)
        return self._shown[self.code]


@pytest.fixture
async def phone_camera() -> AsyncIterator[tuple[MjpegCameraSimulator, Phone]]:
    phone = Phone()
    async with MjpegCameraSimulator(phone, fps=15) as simulator:
        yield simulator, phone


async def started_reading(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
    uri: str,
) -> Any:
    camera = {"uri": uri, "stall_timeout_s": 2}
    terminals = [{"id": "kiosk-1", "camera": camera, "codes": ["qr"]}]
    return await started(start_app, site, clock, tmp_path, models_cache, uri, terminals=terminals)


async def test_a_member_qr_shown_to_the_camera_opens_the_cabinet_for_that_member(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
    phone_camera: tuple[MjpegCameraSimulator, Phone],
) -> None:
    simulator, phone = phone_camera
    app = await started_reading(start_app, site, clock, tmp_path, models_cache, simulator.url)
    terminal = app.config.facepay.terminals[0] if app.config.facepay else None
    assert terminal is not None and terminal.codes == ["qr"]
    async with client(app) as http:
        r = await http.get("/api/v1/kiosk/scans", headers=KIOSK)
        assert r.json() == {"scans": [], "last_seq": 0}

        phone.code = "m-42"
        r = await http.get("/api/v1/kiosk/scans", headers=KIOSK, params={"wait": 10})
        body = r.json()
        (scan,) = body["scans"]
        assert (scan["device"], scan["symbology"], scan["text"]) == ("kiosk-1/camera", "qr", "m-42")
        assert body["last_seq"] == scan["seq"]

        r = await http.post(
            "/api/v1/kiosk/cabinets/K1/sessions",
            headers=KIOSK,
            json={"member_source": "qr", "member_id": scan["text"]},
        )
        assert r.status_code == 201, r.text
        await door_opened(app, r.json()["id"])

        # Held in view, the code is not scanned again; asked again, nothing new comes.
        after = body["last_seq"]
        r = await http.get("/api/v1/kiosk/scans", headers=KIOSK, params={"after": after, "wait": 1})
        assert r.json()["scans"] == []

        # Kiosk tokens see only their own kiosk's scans; operators are not kiosks.
        r = await http.get("/api/v1/kiosk/scans", headers=OPERATOR)
        assert r.status_code == 401

        metrics = (await http.get("/metrics")).text
        assert 'edge_scans{device="kiosk-1/camera",symbology="qr"} 1.0' in metrics


async def test_a_code_shown_to_a_screen_that_was_not_listening_is_never_acted_on_later(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
    phone_camera: tuple[MjpegCameraSimulator, Phone],
) -> None:
    simulator, phone = phone_camera
    app = await started_reading(start_app, site, clock, tmp_path, models_cache, simulator.url)
    async with client(app) as http:
        phone.code = "m-7"
        r = await http.get("/api/v1/kiosk/scans", headers=KIOSK, params={"wait": 10})
        assert [s["text"] for s in r.json()["scans"]] == ["m-7"]

        clock.advance(FRESH_FOR_S + 1)  # the shopper walked away; a new screen asks
        r = await http.get("/api/v1/kiosk/scans", headers=KIOSK)
        assert r.json()["scans"] == []


async def test_a_camera_without_codes_configured_reads_none(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
    phone_camera: tuple[MjpegCameraSimulator, Phone],
) -> None:
    simulator, phone = phone_camera
    phone.code = "m-9"
    app = await started(start_app, site, clock, tmp_path, models_cache, simulator.url)
    assert app.site_scanners.readers == []
    async with client(app) as http:
        r = await http.get("/api/v1/kiosk/scans", headers=KIOSK, params={"wait": 1})
        assert r.json() == {"scans": [], "last_seq": 0}


async def test_a_dedicated_code_camera_feeds_its_kiosk_and_reports_its_health(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    phone_camera: tuple[MjpegCameraSimulator, Phone],
) -> None:
    simulator, phone = phone_camera
    camera = {"uri": simulator.url, "stall_timeout_s": 2}
    scanner = {"name": "cabinet-cam", "kind": "camera", "kiosk": "kiosk-1", "camera": camera}
    app = await start_app(scanners=[scanner])
    await app.events.wait_for(  # type: ignore[attr-defined]
        "device.online", lambda e: e.data["device"] == "cabinet-cam", 10
    )
    phone.code = "SF1234567890"
    async with client(app) as http:
        r = await http.get("/api/v1/kiosk/scans", headers=KIOSK, params={"wait": 10})
    (scan,) = r.json()["scans"]
    assert (scan["device"], scan["symbology"], scan["text"]) == ("cabinet-cam", "qr", phone.code)
