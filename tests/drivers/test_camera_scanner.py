"""A camera as a code scanner: the MJPEG camera simulator shows QR codes and barcodes, the
scanner reports each code once while it stays in view, and again when it is shown again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
import zxingcpp

from drivers.camera import Camera, CameraScan, CameraScanner, CameraSettings, CodeReader
from drivers.camera.simulator import MjpegCameraSimulator
from tests.drivers.test_codes import barcode_label, camera_noise, qr_label, scene

FPS = 20.0
GONE_AFTER_S = 0.4


class Showing:
    """What is held in front of the camera, changed by the test while it streams."""

    def __init__(self) -> None:
        self.labels: list[np.ndarray] = []
        self._frames: dict[int, np.ndarray] = {}

    def __call__(self, index: int) -> np.ndarray:
        key = id(self.labels)
        if key not in self._frames:
            self._frames = {key: camera_noise(scene(self.labels, seed=5), seed=5)}
        return self._frames[key]


class Heard:
    def __init__(self) -> None:
        self.scans: list[CameraScan] = []
        self._changed = asyncio.Event()

    def __call__(self, scan: CameraScan) -> None:
        self.scans.append(scan)
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, count: int, timeout: float = 5.0) -> list[CameraScan]:
        async with asyncio.timeout(timeout):
            while len(self.scans) < count:
                await self._changed.wait()
        return self.scans


@pytest.fixture
async def rig() -> AsyncIterator[tuple[Showing, Camera, CameraScanner, Heard]]:
    showing = Showing()
    heard = Heard()
    async with MjpegCameraSimulator(showing, fps=FPS) as simulator:
        camera = Camera("kiosk-1/camera", CameraSettings(simulator.url, stall_timeout_s=2.0))
        await camera.start()
        scanner = CameraScanner(
            camera, CodeReader(), heard, max_rate_hz=FPS, gone_after_s=GONE_AFTER_S
        )
        scanner.start()
        yield showing, camera, scanner, heard
        await scanner.stop()
        await camera.stop()


async def frames_pass(camera: Camera, count: int) -> None:
    target = camera.metrics.frames + count
    await camera.wait_until(lambda c: c.metrics.frames >= target, timeout=5.0)


async def test_a_code_held_in_view_is_reported_once_and_again_when_shown_again(
    rig: tuple[Showing, Camera, CameraScanner, Heard],
) -> None:
    showing, camera, scanner, heard = rig
    showing.labels = [qr_label("member:m-7")]
    (first,) = await heard.until(1)
    assert (first.camera, first.symbology, first.text) == ("kiosk-1/camera", "qr", "member:m-7")

    read_before = scanner.frames_read
    await frames_pass(camera, int(FPS * GONE_AFTER_S * 3))  # well past gone_after_s, in view
    assert scanner.frames_read > read_before + 3  # it kept reading the code all along
    assert len(heard.scans) == 1

    showing.labels = []  # the phone is taken away…
    await frames_pass(camera, int(FPS * GONE_AFTER_S * 2))
    showing.labels = [qr_label("member:m-7")]  # …and shown again
    scans = await heard.until(2)
    assert [s.text for s in scans] == ["member:m-7", "member:m-7"]


async def test_two_codes_in_view_are_both_reported_and_a_new_one_next_to_them(
    rig: tuple[Showing, Camera, CameraScanner, Heard],
) -> None:
    showing, camera, _scanner, heard = rig
    label = barcode_label(zxingcpp.BarcodeFormat.Code128, "SF1234567890")
    showing.labels = [qr_label("member:m-8"), label]
    scans = await heard.until(2)
    assert {(s.symbology, s.text) for s in scans} == {
        ("qr", "member:m-8"),
        ("code128", "SF1234567890"),
    }
    showing.labels = [qr_label("member:m-8"), qr_label("member:m-9")]
    scans = await heard.until(3)
    assert (scans[2].symbology, scans[2].text) == ("qr", "member:m-9")  # m-8 stayed in view
    await frames_pass(camera, 10)
    assert len(heard.scans) == 3


async def test_a_failing_listener_does_not_stop_the_scanner() -> None:
    showing = Showing()
    heard = Heard()
    failed: list[str] = []

    def flaky(scan: CameraScan) -> None:
        if not failed:
            failed.append(scan.text)
            raise RuntimeError("listener bug")
        heard(scan)

    async with MjpegCameraSimulator(showing, fps=FPS) as simulator:
        camera = Camera("kiosk-1/camera", CameraSettings(simulator.url, stall_timeout_s=2.0))
        await camera.start()
        scanner = CameraScanner(camera, CodeReader(), flaky, max_rate_hz=FPS)
        scanner.start()
        try:
            showing.labels = [qr_label("member:m-1")]
            await camera.wait_until(lambda _c: bool(failed), timeout=5.0)
            showing.labels = [qr_label("member:m-2")]
            scans = await heard.until(1)
        finally:
            await scanner.stop()
            await camera.stop()
    assert failed == ["member:m-1"]
    assert scans[0].text == "member:m-2"


def test_rates_must_be_positive() -> None:
    camera = Camera("c", CameraSettings("/dev/null"))
    with pytest.raises(ValueError, match="positive"):
        CameraScanner(camera, CodeReader(), lambda _s: None, max_rate_hz=0)
