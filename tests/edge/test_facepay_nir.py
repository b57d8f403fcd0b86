"""Face payment at a terminal with a near-infrared camera beside the colour one, end to end.

Two MJPEG camera simulators: the colour one shows the live shopper (a real photo that turns and
blinks when prompted); the NIR one shows what a NIR sensor would. Skin reflects the terminal's
NIR light, so a live face appears there too, in grey; a phone or tablet screen replaying a face
emits no NIR light, so the NIR frame stays dark while the colour frame shows the face. A NIR
camera that does not answer is no evidence either way: the check refuses (``nir_required``).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from drivers.camera.simulator import MjpegCameraSimulator
from edge.clock import ManualClock
from edge.demo.shopper import ShopperPhoto, SimulatedShopper
from edge.demo.site import SimulatedSite
from tests.edge import test_facepay_flow as flow
from tests.edge.test_cabinet_sessions import KIOSK, OPERATOR, client, events
from tests.edge.test_facepay_flow import (
    buy_two_items,
    enroll,
    face_check,
    open_by_face,
    payment,
    started,
    template_of,
)

# The face payment flow tests' fixtures: prepared models, the shopper's photo, a cabinet site.
models_cache = flow.models_cache
face_models = flow.face_models
grace = flow.grace
site = flow.site

FrameSource = Callable[[int], np.ndarray]


def seen_in_nir(shopper: SimulatedShopper) -> FrameSource:
    """The live shopper as a NIR sensor sees them: the same pose, grey, its own sensor noise."""

    def frame(index: int) -> np.ndarray:
        grey: np.ndarray = cv2.cvtColor(shopper(index), cv2.COLOR_BGR2GRAY)
        return grey

    return frame


def screen_in_nir(shape: tuple[int, ...], seed: int = 11) -> FrameSource:
    """A screen held up to the terminal: nothing lit in NIR, only a dark frame and noise."""
    rng = np.random.default_rng(seed)

    def frame(_index: int) -> np.ndarray:
        dark = rng.normal(6.0, 2.0, shape[:2])
        return np.clip(dark, 0, 255).astype(np.uint8)

    return frame


@contextlib.asynccontextmanager
async def cameras(
    shopper: SimulatedShopper, nir_frames: FrameSource
) -> AsyncIterator[tuple[MjpegCameraSimulator, MjpegCameraSimulator]]:
    async with (
        MjpegCameraSimulator(shopper, fps=15) as colour,
        MjpegCameraSimulator(nir_frames, fps=15) as nir,
    ):
        yield colour, nir


def nir_terminal(colour_uri: str, nir_uri: str) -> list[dict[str, Any]]:
    """One kiosk terminal with both cameras; the identity calibration suits two simulators
    serving frames of the same size with the face at the same place."""
    return [
        {
            "id": "kiosk-1",
            "camera": {"uri": colour_uri, "stall_timeout_s": 2},
            "nir_camera": {"uri": nir_uri, "stall_timeout_s": 2},
        }
    ]


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_a_live_face_seen_in_nir_verifies_and_the_payment_carries_the_nir_evidence(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
    face_models: Any,
    grace: ShopperPhoto,
) -> None:
    shopper = SimulatedShopper(grace, seed=5)
    async with cameras(shopper, seen_in_nir(shopper)) as (colour, nir):
        app = await started(
            start_app,
            site,
            clock,
            tmp_path,
            models_cache,
            colour.url,
            terminals=nir_terminal(colour.url, nir.url),
        )
        await enroll(app, clock, "grace", template_of(face_models, grace.photo))
        async with client(app) as http:
            check = await face_check(http, shopper)
            assert check["state"] == "verified", (check["reason"], check["hint"])
            assert check["member_id"] == "grace"
            session = await buy_two_items(app, site, http, check["id"])
            paid = await payment(app, session, "authorized")
            status = (await http.get("/api/v1/facepay", headers=OPERATOR)).json()
        await app.stop()  # before its cameras go
    assert status["terminals"]["kiosk-1"] == {"camera": True, "nir": True}
    assert paid.data["member_id"] == "grace"
    nir_evidence = paid.data["verification"]["liveness"]["nir"]
    # Two NIR frames confirmed the face (then the check stops looking); none was skipped.
    assert nir_evidence["seen"] == 2 and nir_evidence["checked"] >= 2, nir_evidence
    assert "skipped" not in nir_evidence


async def test_a_face_on_a_screen_shows_nothing_in_nir_and_opens_nothing(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
    face_models: Any,
    grace: ShopperPhoto,
) -> None:
    """The colour camera sees a face that does everything asked (a live video call, say), but
    the NIR camera sees a dark screen: the check fails however well the challenge went."""
    shopper = SimulatedShopper(grace, seed=6)
    async with cameras(shopper, screen_in_nir(grace.photo.shape)) as (colour, nir):
        app = await started(
            start_app,
            site,
            clock,
            tmp_path,
            models_cache,
            colour.url,
            terminals=nir_terminal(colour.url, nir.url),
        )
        await enroll(app, clock, "grace", template_of(face_models, grace.photo))
        async with client(app) as http:
            check = await face_check(http, shopper)
            assert check["state"] == "failed", check
            assert check["reason"] == "nir_no_face"
            assert check["member_id"] is None  # a failed check names nobody
            r = await open_by_face(http, check["id"])
            assert r.status_code == 409, r.text
            assert r.json()["error"]["code"] == "not_verified"
            metrics = (await http.get("/metrics")).text
        await app.stop()  # before its cameras go
    assert 'edge_facepay_checks{outcome="nir_no_face"} 1.0' in metrics
    assert 'edge_facepay_checks{outcome="verified"}' not in metrics
    assert not events(app).of_type("door.opened")
    assert not events(app).of_type("cabinet.session_opened")


@pytest.mark.parametrize("nir_required", [True, False], ids=["nir-required", "nir-optional"])
async def test_a_nir_camera_that_does_not_answer(
    nir_required: bool,
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
    face_models: Any,
    grace: ShopperPhoto,
) -> None:
    """Required (the default): no NIR frame is no proof of a live face, so no check starts
    (the shopper is sent to the QR code at once). Optional: the check goes on without it and
    its evidence says so."""
    shopper = SimulatedShopper(grace, seed=7)
    unreachable = f"http://127.0.0.1:{unused_port()}/video.mjpg"
    async with MjpegCameraSimulator(shopper, fps=15) as colour:
        app = await started(
            start_app,
            site,
            clock,
            tmp_path,
            models_cache,
            colour.url,
            terminals=nir_terminal(colour.url, unreachable),
            liveness={"steps": 2, "nir_required": nir_required},
        )
        await enroll(app, clock, "grace", template_of(face_models, grace.photo))
        async with client(app) as http:
            if nir_required:  # refused up front, before the shopper does the challenge
                r = await http.post("/api/v1/kiosk/face/checks", headers=KIOSK)
                assert r.status_code == 503, r.text
                assert r.json()["error"]["code"] == "camera_unavailable"
                assert "infrared" in r.json()["error"]["message"]
            else:
                check = await face_check(http, shopper)
            devices = (await http.get("/api/v1/devices", headers=OPERATOR)).json()
            status = (await http.get("/api/v1/facepay", headers=OPERATOR)).json()
            if not nir_required:
                assert check["state"] == "verified", (check["reason"], check["hint"])
                assert app.facepay is not None
                verified, _evidence = app.facepay.verified(check["id"], "kiosk-1")
                assert verified.liveness["nir"] == {"checked": 0, "seen": 0, "skipped": True}
        await app.stop()  # before its camera goes
    nir = next(d for d in devices if d["name"] == "kiosk-1/nir")
    assert nir["available"] is False and nir["reason"], nir
    assert status["terminals"]["kiosk-1"] == {"camera": True, "nir": False}
