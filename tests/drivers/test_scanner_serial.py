"""The real SerialScanner against the serial scanner simulator over a pseudo-terminal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drivers.scanner import (
    AIM_SYMBOLOGIES,
    GS,
    Framing,
    FramingError,
    RejectedScan,
    RejectReason,
    ScannedCode,
    SerialScanner,
)
from drivers.scanner.serial import LineSplitter
from drivers.scanner.simulator import SerialScannerSimulator

WAIT = 3.0
GS1_LABEL = "0109501101530003" + "10LOT42A" + GS + "17261231" + "21X7Y"


class Rig:
    """A simulator and a scanner on it, with queues of what the scanner reports."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.sims: list[SerialScannerSimulator] = []
        self.scanners: list[SerialScanner] = []
        self.scans: asyncio.Queue[ScannedCode] = asyncio.Queue()
        self.rejected: asyncio.Queue[RejectedScan] = asyncio.Queue()
        self.availability: asyncio.Queue[tuple[bool, str | None]] = asyncio.Queue()

    def simulator(self, **options: Any) -> SerialScannerSimulator:
        sim = SerialScannerSimulator(self.tmp_path / f"ttySCAN{len(self.sims)}", **options)
        self.sims.append(sim)
        return sim

    def scanner(self, port: str, **options: Any) -> SerialScanner:
        settings: dict[str, Any] = {
            "on_scan": self.scans.put_nowait,
            "on_rejected": self.rejected.put_nowait,
            "on_availability": lambda up, why: self.availability.put_nowait((up, why)),
            "reconnect_initial": 0.02,
            "reconnect_max": 0.1,
        }
        settings.update(options)
        scanner = SerialScanner("counter-1", port, **settings)
        self.scanners.append(scanner)
        return scanner

    async def start(
        self, sim: dict[str, Any] | None = None, **scanner_options: Any
    ) -> tuple[SerialScannerSimulator, SerialScanner]:
        simulator = self.simulator(**(sim or {}))
        port = await simulator.start()
        scanner = self.scanner(port, **scanner_options)
        await scanner.start()
        assert await self.availability_change() == (True, None)
        return simulator, scanner

    async def scan(self) -> ScannedCode:
        return await asyncio.wait_for(self.scans.get(), WAIT)

    async def texts(self, count: int) -> list[str]:
        return [(await self.scan()).text for _ in range(count)]

    async def rejection(self) -> RejectedScan:
        return await asyncio.wait_for(self.rejected.get(), WAIT)

    async def availability_change(self) -> tuple[bool, str | None]:
        return await asyncio.wait_for(self.availability.get(), WAIT)

    async def aclose(self) -> None:
        for scanner in self.scanners:
            await scanner.close()
        for sim in self.sims:
            await sim.stop()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(tmp_path)
    yield r
    await r.aclose()


# -- line terminators ------------------------------------------------------------------------------


@pytest.mark.parametrize("terminator", ["cr", "lf", "crlf"])
async def test_each_terminator(rig: Rig, terminator: str) -> None:
    sim, scanner = await rig.start(sim={"terminator": terminator}, terminator=terminator)
    sim.scan("PICKUP-4711")
    sim.scan("https://shop.example/m/Ab9?x=1&y=2")
    # A scan split across reads, the terminator itself included.
    frame = sim.frame("SPLIT-CODE")
    sim.send_raw(frame[:3])
    sim.send_raw(frame[3:-1])
    sim.send_raw(frame[-1:])
    assert await rig.texts(3) == ["PICKUP-4711", "https://shop.example/m/Ab9?x=1&y=2", "SPLIT-CODE"]
    assert scanner.metrics.scans == 3
    assert rig.rejected.empty()


async def test_a_scan_keeps_its_device_and_raw_bytes(rig: Rig) -> None:
    sim, _ = await rig.start(sim={"terminator": "crlf"}, terminator="crlf")
    sim.scan("Ünïcödé €5")
    scan = await rig.scan()
    assert scan == ScannedCode("counter-1", "Ünïcödé €5", None, "Ünïcödé €5".encode(), None)


async def test_empty_lines_are_ignored(rig: Rig) -> None:
    sim, scanner = await rig.start()
    sim.send_raw(b"\r\r\r")
    sim.scan("AFTER")
    assert (await rig.scan()).text == "AFTER"
    assert scanner.metrics.empty == 3
    assert rig.rejected.empty()


async def test_a_terminator_other_than_configured_stays_in_the_text(rig: Rig) -> None:
    # A CRLF scanner read as "cr": the LF starts the next line. Strict on purpose: the
    # configurations disagree, and the codes show it rather than being silently "fixed".
    sim, _ = await rig.start(sim={"terminator": "crlf"}, terminator="cr")
    sim.scan("ONE")
    sim.scan("TWO")
    assert await rig.texts(2) == ["ONE", "\nTWO"]


# -- prefix, suffix, AIM identifiers ---------------------------------------------------------------


async def test_prefix_and_suffix_are_stripped(rig: Rig) -> None:
    framing = {"prefix": "\x02", "suffix": "\x03"}
    sim, scanner = await rig.start(sim=framing, **framing)
    sim.scan("LOCKER-7")
    assert sim.sent == b"\x02LOCKER-7\x03\r"
    assert (await rig.scan()).text == "LOCKER-7"
    sim.send_raw(b"LOCKER-8\x03\r")  # prefix missing: not what this scanner sends
    rejected = await rig.rejection()
    assert (rejected.reason, rejected.raw) == (RejectReason.BAD_FRAMING, b"LOCKER-8\x03")
    assert "prefix" in rejected.detail
    sim.send_raw(b"\x02LOCKER-9\r")
    assert "suffix" in (await rig.rejection()).detail
    sim.send_raw(b"\x02\x03\r")
    assert "no data" in (await rig.rejection()).detail
    assert scanner.metrics.rejected == {"bad_framing": 3}
    assert rig.scans.empty()


@pytest.mark.parametrize(
    ("raw", "symbology", "text"),
    [
        (b"]C1" + GS1_LABEL.encode(), "gs1-128", GS1_LABEL),
        (b"]C0ABC-123", "code128", "ABC-123"),
        (b"]Q1hello World", "qr", "hello World"),
        (b"]Q3" + GS1_LABEL.encode(), "gs1-qr", GS1_LABEL),
        (b"]d1SERIAL", "datamatrix", "SERIAL"),
        (b"]d2" + GS1_LABEL.encode(), "gs1-datamatrix", GS1_LABEL),
        (b"]E04006381333931", "ean13", "4006381333931"),
        (b"]E496385074", "ean8", "96385074"),
        (b"]A0CODE39", "code39", "CODE39"),
        (b"]e00109501101530003", "gs1-databar", "0109501101530003"),
        (b"]X0private", None, "private"),  # a well-formed identifier we have no name for
    ],
)
async def test_aim_identifiers_name_the_symbology(
    rig: Rig, raw: bytes, symbology: str | None, text: str
) -> None:
    sim, _ = await rig.start(aim_ids=True)
    sim.send_raw(raw + b"\r")
    scan = await rig.scan()
    assert (scan.symbology, scan.text, scan.aim_id) == (symbology, text, raw[:3].decode())


async def test_aim_identifier_missing_is_rejected(rig: Rig) -> None:
    sim, _ = await rig.start(aim_ids=True)
    sim.send_raw(b"4006381333931\r")
    assert (await rig.rejection()).reason is RejectReason.BAD_FRAMING
    sim.send_raw(b"]Q\r")
    assert (await rig.rejection()).reason is RejectReason.BAD_FRAMING


async def test_prefix_aim_identifier_and_suffix_together(rig: Rig) -> None:
    framing = {"prefix": "SCN:", "suffix": "#", "aim_ids": True}
    sim, _ = await rig.start(sim={**framing, "terminator": "lf"}, terminator="lf", **framing)
    sim.scan(GS1_LABEL, "gs1-datamatrix")
    assert sim.sent == b"SCN:]d2" + GS1_LABEL.encode() + b"#\n"
    scan = await rig.scan()
    assert (scan.text, scan.symbology, scan.aim_id) == (GS1_LABEL, "gs1-datamatrix", "]d2")


def test_framing_round_trips_and_checks_itself() -> None:
    framing = Framing(prefix="<", suffix=">", aim_ids=True, fnc1_as="~")
    wrapped = framing.wrap(GS1_LABEL, "gs1-128")
    assert wrapped == "<]C1" + GS1_LABEL.replace(GS, "~") + ">"
    unwrapped = framing.unwrap(wrapped)
    assert (unwrapped.text, unwrapped.symbology, unwrapped.aim_id) == (GS1_LABEL, "gs1-128", "]C1")
    with pytest.raises(FramingError):
        framing.unwrap("]C1abc>")
    with pytest.raises(ValueError, match="AIM identifier"):
        framing.wrap("x", None)
    with pytest.raises(ValueError, match="fnc1_as"):
        Framing(fnc1_as="")
    assert {AIM_SYMBOLOGIES[k] for k in ("]C1", "]Q3", "]d2")} == {
        "gs1-128",
        "gs1-qr",
        "gs1-datamatrix",
    }


# -- bad input -------------------------------------------------------------------------------------


async def test_a_line_too_long_is_rejected_once_and_skipped(rig: Rig) -> None:
    sim, scanner = await rig.start(max_length=64)
    sim.send_raw(b"A" * 100 + b"\r")  # one read
    rejected = await rig.rejection()
    assert (rejected.reason, rejected.raw) == (RejectReason.TOO_LONG, b"A" * 64)
    # A stream with no terminator for a long while, in many writes: one rejection, bounded.
    for _ in range(50):
        sim.send_raw(b"B" * 40)
    sim.send_raw(b"\r")
    sim.scan("SHORT")
    assert (await rig.scan()).text == "SHORT"
    assert (await rig.rejection()).raw == b"B" * 64
    assert rig.rejected.empty()
    assert scanner.metrics.rejected == {"too_long": 2}


def test_line_splitter_never_holds_more_than_the_limit() -> None:
    lines = LineSplitter(b"\r\n", max_length=16)
    out = []
    for _ in range(1000):
        out += lines.feed(b"x" * 100 + b"\r")  # a CR, but never a CRLF
        assert len(lines.partial) <= 16
    assert len(out) == 1  # reported once
    assert lines.feed(b"\nOK\r\n") == [b"OK"]


async def test_invalid_utf8_is_rejected_and_the_next_scan_works(rig: Rig) -> None:
    sim, scanner = await rig.start()
    sim.send_raw(b"caf\xe9 \xff\xfe\r")
    rejected = await rig.rejection()
    assert (rejected.reason, rejected.raw) == (RejectReason.INVALID_TEXT, b"caf\xe9 \xff\xfe")
    assert "byte 3" in rejected.detail
    sim.scan("café")
    assert (await rig.scan()).text == "café"
    assert scanner.metrics.rejected == {"invalid_text": 1}


async def test_a_configured_single_byte_encoding(rig: Rig) -> None:
    sim, _ = await rig.start(sim={"encoding": "latin-1"}, encoding="latin-1")
    sim.send_raw(b"caf\xe9\r")
    assert (await rig.scan()).text == "café"


# -- the port going away ---------------------------------------------------------------------------


async def test_unplug_mid_scan_rejects_the_partial_and_reconnects(rig: Rig) -> None:
    sim, scanner = await rig.start(sim={"terminator": "crlf"}, terminator="crlf")
    sim.scan("BEFORE")
    assert (await rig.scan()).text == "BEFORE"
    sim.scan_cut("COURIER:eyJhbGciOiJFZERTQSJ9", keep=12)
    assert await sim.drained()  # the first bytes reached the scanner: now pull the cable
    sim.unplug()
    up, why = await rig.availability_change()
    assert up is False and why is not None and sim.port in why
    rejected = await rig.rejection()
    assert (rejected.reason, rejected.raw) == (RejectReason.CUT_OFF, b"COURIER:eyJh")
    sim.replug()
    assert await rig.availability_change() == (True, None)
    sim.scan("AFTER")
    assert (await rig.scan()).text == "AFTER"
    assert rig.scans.empty()  # the cut code was never delivered
    assert scanner.metrics.reconnects == 1


async def test_unplugged_for_a_while_then_back(rig: Rig) -> None:
    sim, scanner = await rig.start()
    sim.unplug()
    assert (await rig.availability_change())[0] is False
    assert not await scanner.wait_available(0.3)  # several reopen attempts fail meanwhile
    assert scanner.metrics.last_error is not None
    assert "cannot open" in scanner.metrics.last_error
    sim.replug()
    assert await rig.availability_change() == (True, None)
    sim.scan("BACK")
    assert (await rig.scan()).text == "BACK"


async def test_a_port_absent_at_start_is_opened_when_it_appears(rig: Rig) -> None:
    sim = rig.simulator()
    scanner = rig.scanner(sim.port)
    await scanner.start()
    assert not await scanner.wait_available(0.1)
    await sim.start()
    assert await rig.availability_change() == (True, None)
    sim.scan("HELLO")
    assert (await rig.scan()).text == "HELLO"
    assert scanner.metrics.reconnects == 0  # the first open, not a reconnect


async def test_close_reports_unavailable(rig: Rig) -> None:
    _sim, scanner = await rig.start()
    await scanner.close()
    assert await rig.availability_change() == (False, "closed")
    assert not scanner.available


# -- a flood ---------------------------------------------------------------------------------------


async def test_a_flood_of_200_scans_is_delivered_whole_and_in_order(rig: Rig) -> None:
    sim, scanner = await rig.start(sim={"aim_ids": True, "terminator": "crlf"}, aim_ids=True,
                                   terminator="crlf")  # fmt: skip
    codes = [f"PARCEL-{i:04d}-{'x' * (i % 37)}" for i in range(200)]
    sent = sim.flood(codes, "code128")
    assert len(sent) > 4096  # more than one read's worth, and than the pty buffers at once
    assert await rig.texts(200) == codes
    assert scanner.metrics.scans == 200
    assert rig.rejected.empty()


async def test_a_failing_listener_does_not_stop_the_scanner(rig: Rig) -> None:
    seen: list[str] = []

    def flaky(scan: ScannedCode) -> None:
        seen.append(scan.text)
        if len(seen) == 1:
            raise RuntimeError("listener bug")
        rig.scans.put_nowait(scan)

    sim, _ = await rig.start(on_scan=flaky)
    sim.scan("ONE")
    sim.scan("TWO")
    assert (await rig.scan()).text == "TWO"
    assert seen == ["ONE", "TWO"]


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="terminator"):
        SerialScanner("x", "/dev/null", terminator="crcr", on_scan=print)  # type: ignore[arg-type]
    with pytest.raises(LookupError):
        SerialScanner("x", "/dev/null", encoding="no-such-codec", on_scan=print)
