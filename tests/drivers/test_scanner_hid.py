"""HidScanner: reading, reconnecting and reporting, on a scripted device and (where the machine
allows) on a real virtual keyboard made with uinput."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.scanner import HidScanner, RejectedScan, RejectReason, ScannedCode, evdev_source
from drivers.scanner.keymap import CODES_BY_NAME, key_events
from drivers.scanner.replay import ReplayDevice

WAIT = 3.0


class Rig:
    def __init__(self) -> None:
        self.device = ReplayDevice()
        self.scans: asyncio.Queue[ScannedCode] = asyncio.Queue()
        self.rejected: asyncio.Queue[RejectedScan] = asyncio.Queue()
        self.availability: asyncio.Queue[tuple[bool, str | None]] = asyncio.Queue()
        self.scanners: list[HidScanner] = []

    async def start(self, **options: Any) -> HidScanner:
        settings: dict[str, Any] = {
            "on_scan": self.scans.put_nowait,
            "on_rejected": self.rejected.put_nowait,
            "on_availability": lambda up, why: self.availability.put_nowait((up, why)),
            "source": self.device.source,
            "reconnect_initial": 0.01,
            "reconnect_max": 0.05,
        }
        settings.update(options)
        scanner = HidScanner("wedge-1", self.device.path, **settings)
        self.scanners.append(scanner)
        await scanner.start()
        return scanner

    async def scan(self) -> ScannedCode:
        return await asyncio.wait_for(self.scans.get(), WAIT)

    async def rejection(self) -> RejectedScan:
        return await asyncio.wait_for(self.rejected.get(), WAIT)

    async def availability_change(self) -> tuple[bool, str | None]:
        return await asyncio.wait_for(self.availability.get(), WAIT)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = Rig()
    yield r
    for scanner in r.scanners:
        await scanner.close()


async def test_scans_go_to_on_scan_with_device_and_framing_removed(rig: Rig) -> None:
    await rig.start(prefix="#", suffix="!", aim_ids=True)
    assert await rig.availability_change() == (True, None)
    rig.device.type("#]Q1Hello World!")
    scan = await rig.scan()
    assert scan == ScannedCode("wedge-1", "Hello World", "qr", "#]Q1Hello World!", "]Q1")
    rig.device.type("no framing")
    rejected = await rig.rejection()
    assert rejected.reason is RejectReason.BAD_FRAMING
    assert rejected.raw == "no framing"


async def test_fnc1_substitute_becomes_gs(rig: Rig) -> None:
    await rig.start(layout="de", fnc1_as="~")
    rig.device.type("0104012345678901~10ABC~21X", "de")
    assert (await rig.scan()).text == "0104012345678901\x1d10ABC\x1d21X"


async def test_unplugged_mid_scan_rejects_the_partial_code_and_reconnects(rig: Rig) -> None:
    scanner = await rig.start()
    assert await rig.availability_change() == (True, None)
    rig.device.send(key_events("COURIER-123")[:20])
    rig.device.unplug()
    rejected = await rig.rejection()
    assert rejected.reason is RejectReason.CUT_OFF
    assert rejected.raw == "COU"  # what had been typed; never delivered as a scan
    up, why = await rig.availability_change()
    assert up is False and why is not None and "No such device" in why
    assert scanner.metrics.last_error == why
    rig.device.replug()
    assert await rig.availability_change() == (True, None)
    rig.device.type("COURIER-123")
    assert (await rig.scan()).text == "COURIER-123"
    assert rig.scans.empty()
    assert scanner.metrics.reconnects == 1


async def test_a_device_absent_at_start_is_opened_when_it_appears(rig: Rig) -> None:
    rig.device.plugged = False
    scanner = await rig.start()
    assert not await scanner.wait_available(0.1)
    assert rig.device.open_failures >= 1
    rig.device.replug()
    assert await scanner.wait_available(WAIT)
    rig.device.type("late")
    assert (await rig.scan()).text == "late"


async def test_a_code_that_never_ends_is_rejected_without_waiting_for_the_next(rig: Rig) -> None:
    await rig.start(max_gap_s=0.05)
    rig.device.send(key_events("PARTIAL")[:-4])  # no Enter: the scanner lost its suffix
    rejected = await rig.rejection()
    assert (rejected.reason, rejected.raw) == (RejectReason.STALE, "PARTIAL")
    rig.device.type("WHOLE")
    assert (await rig.scan()).text == "WHOLE"


async def test_a_failing_listener_does_not_stop_the_scanner(rig: Rig) -> None:
    seen: list[str] = []

    def flaky(scan: ScannedCode) -> None:
        seen.append(scan.text)
        if len(seen) == 1:
            raise RuntimeError("listener bug")
        rig.scans.put_nowait(scan)

    await rig.start(on_scan=flaky)
    rig.device.type("one")
    rig.device.type("two")
    assert (await rig.scan()).text == "two"
    assert seen == ["one", "two"]


async def test_close_stops_reading_and_reports_unavailable(rig: Rig) -> None:
    scanner = await rig.start()
    assert await rig.availability_change() == (True, None)
    await scanner.close()
    assert await rig.availability_change() == (False, "closed")
    assert not rig.device.is_open


async def test_bad_configuration_is_refused(rig: Rig) -> None:
    with pytest.raises(ValueError, match="unknown keyboard layout"):
        HidScanner("x", "/dev/null", layout="dvorak", on_scan=print)
    with pytest.raises(ValueError, match="fnc1_as"):
        HidScanner("x", "/dev/null", fnc1_as="", on_scan=print)


# -- the evdev source -------------------------------------------------------------------------


async def test_evdev_source_fails_to_open_a_missing_device(tmp_path: Path) -> None:
    pytest.importorskip("evdev")
    with pytest.raises(FileNotFoundError):
        async with evdev_source(str(tmp_path / "event99"))():
            pass


async def test_evdev_source_refuses_what_is_not_an_input_device(tmp_path: Path) -> None:
    pytest.importorskip("evdev")
    not_input = tmp_path / "event0"
    not_input.write_bytes(b"")
    with pytest.raises(OSError) as caught:
        async with evdev_source(str(not_input))():
            pass
    assert caught.value.errno == errno.ENOTTY


async def test_hid_scanner_on_a_missing_device_keeps_retrying(tmp_path: Path) -> None:
    pytest.importorskip("evdev")
    scanner = HidScanner(
        "wedge-x", str(tmp_path / "by-id" / "usb-scanner-event-kbd"), on_scan=print,
        reconnect_initial=0.01, reconnect_max=0.02,
    )  # fmt: skip
    await scanner.start()
    try:
        assert not await scanner.wait_available(0.2)
        assert scanner.metrics.last_error is not None
        assert "No such file" in scanner.metrics.last_error
    finally:
        await scanner.close()


# -- a real virtual keyboard ----------------------------------------------------------------------

UINPUT = Path("/dev/uinput")
needs_uinput = pytest.mark.skipif(
    not (UINPUT.exists() and os.access(UINPUT, os.W_OK)),
    reason="/dev/uinput does not exist or is not writable on this machine (no uinput kernel "
    "module, or not passed into the container): no virtual keyboard can be created, so the "
    "evdev path is covered by the replayed recordings only",
)


@contextlib.contextmanager
def virtual_keyboard() -> Iterator[Any]:
    evdev = pytest.importorskip("evdev")
    keys = sorted({code for name, code in CODES_BY_NAME.items() if name.startswith("KEY_")})
    keyboard = evdev.UInput({evdev.ecodes.EV_KEY: keys}, name="test barcode scanner")
    try:
        yield keyboard
    finally:
        keyboard.close()


@needs_uinput
async def test_a_real_input_device_is_grabbed_read_and_lost() -> None:
    evdev = pytest.importorskip("evdev")
    scans: asyncio.Queue[ScannedCode] = asyncio.Queue()
    rejected: asyncio.Queue[RejectedScan] = asyncio.Queue()
    availability: asyncio.Queue[bool] = asyncio.Queue()
    with virtual_keyboard() as keyboard:
        path = keyboard.device.path
        scanner = HidScanner(
            "uinput",
            path,
            layout="de",
            on_scan=scans.put_nowait,
            on_rejected=rejected.put_nowait,
            on_availability=lambda up, _why: availability.put_nowait(up),
            reconnect_initial=0.05,
            reconnect_max=0.1,
        )
        await scanner.start()
        try:
            assert await asyncio.wait_for(availability.get(), WAIT) is True
            # Grabbed: no other reader can take the device, so no scan leaks to a terminal.
            other = evdev.InputDevice(path)
            try:
                with pytest.raises(OSError) as caught:
                    other.grab()
                assert caught.value.errno == errno.EBUSY
            finally:
                other.close()
            for event in key_events("Zürich-42@Tür", "de"):
                keyboard.write(event.type, event.code, event.value)
            scan = await asyncio.wait_for(scans.get(), WAIT)
            assert scan.text == "Zürich-42@Tür"
            # Cut a code short by removing the device.
            for event in key_events("HALF", "de")[:8]:
                keyboard.write(event.type, event.code, event.value)
            keyboard.syn()
            keyboard.close()
            assert await asyncio.wait_for(availability.get(), WAIT) is False
            cut = await asyncio.wait_for(rejected.get(), WAIT)
            assert cut.reason is RejectReason.CUT_OFF
            assert scans.empty()
        finally:
            await scanner.close()
