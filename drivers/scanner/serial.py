"""Serial scanners: USB-CDC (``/dev/ttyACM*``) or RS-232 behind an adapter (``/dev/ttyUSB*``).

The scanner sends one line per code: [prefix][AIM id]data[suffix] and a terminator, CR, LF or
CRLF as configured in it (and here: they must agree; a CRLF scanner read as "cr" leaves an LF at
the start of every code, which then fails the framing or the consumer's parsing). Lines are split
strictly on the configured terminator.

A line longer than ``max_length`` bytes is rejected (TOO_LONG) and skipped up to its terminator,
so a scanner streaming garbage cannot grow memory; a line that does not decode in ``encoding``
is rejected (INVALID_TEXT); a line cut by the port going away is rejected (CUT_OFF).
"""

from __future__ import annotations

import codecs
import contextlib
import logging
from dataclasses import dataclass
from typing import Literal

import serial_asyncio_fast

from .base import ScannerDriver
from .events import AvailabilityListener, RejectListener, RejectReason, ScanListener
from .framing import Framing

log = logging.getLogger(__name__)

LineTerminator = Literal["cr", "lf", "crlf"]
LINE_TERMINATORS: dict[str, bytes] = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n"}


@dataclass(frozen=True, slots=True)
class _TooLong:
    head: bytes  # the first max_length bytes


class LineSplitter:
    """Bytes in, complete lines out; over-long lines reported once and skipped."""

    def __init__(self, terminator: bytes, max_length: int) -> None:
        if not terminator:
            raise ValueError("terminator must not be empty")
        self._terminator = terminator
        self._max_length = max_length
        self._buf = bytearray()
        self._skipping = False  # inside an over-long line, already reported

    @property
    def partial(self) -> bytes:
        """An incomplete line waiting for its terminator (empty while skipping one)."""
        return b"" if self._skipping else bytes(self._buf)

    def clear(self) -> None:
        self._buf.clear()
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes | _TooLong]:
        self._buf += data
        out: list[bytes | _TooLong] = []
        term = self._terminator
        while (end := self._buf.find(term)) >= 0:
            line = bytes(self._buf[:end])
            del self._buf[: end + len(term)]
            if self._skipping:
                self._skipping = False  # the end of a line already reported
            elif len(line) > self._max_length:
                out.append(_TooLong(line[: self._max_length]))
            else:
                out.append(line)
        if len(self._buf) > self._max_length:
            if not self._skipping:
                out.append(_TooLong(bytes(self._buf[: self._max_length])))
                self._skipping = True
            # Keep only what could be the start of a terminator split across reads.
            del self._buf[: len(self._buf) - (len(term) - 1)]
        return out


class SerialScanner(ScannerDriver):
    """A line-mode scanner on one serial port: reports each code to ``on_scan``."""

    def __init__(
        self,
        name: str,
        port: str,
        *,
        baudrate: int = 9600,
        terminator: LineTerminator = "cr",
        prefix: str = "",
        suffix: str = "",
        aim_ids: bool = False,
        fnc1_as: str | None = None,
        encoding: str = "utf-8",
        max_length: int = 4096,
        on_scan: ScanListener,
        on_availability: AvailabilityListener | None = None,
        on_rejected: RejectListener | None = None,
        reconnect_initial: float = 0.2,
        reconnect_max: float = 5.0,
    ) -> None:
        if terminator not in LINE_TERMINATORS:
            raise ValueError(
                f"unknown terminator {terminator!r}: use one of {', '.join(LINE_TERMINATORS)}"
            )
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, not {max_length}")
        if baudrate <= 0:
            raise ValueError(f"baudrate must be positive, not {baudrate}")
        codecs.lookup(encoding)  # LookupError now for an unknown encoding, not at the first scan
        super().__init__(
            name,
            port,
            on_scan=on_scan,
            on_availability=on_availability,
            on_rejected=on_rejected,
            framing=Framing(prefix, suffix, aim_ids, fnc1_as),
            reconnect_initial=reconnect_initial,
            reconnect_max=reconnect_max,
        )
        self.port = port
        self.baudrate = baudrate
        self.terminator = terminator
        self.encoding = encoding
        self._lines = LineSplitter(LINE_TERMINATORS[terminator], max_length)
        self._max_length = max_length

    def __repr__(self) -> str:
        return f"<SerialScanner {self.name} {self.port} {self.baudrate} baud {self.terminator}>"

    async def _session(self) -> str:
        self._lines.clear()
        reader, writer = await serial_asyncio_fast.open_serial_connection(
            url=self.port, baudrate=self.baudrate, bytesize=8, parity="N", stopbits=1
        )
        try:
            self._opened(f"{self.port} at {self.baudrate} baud, lines end in {self.terminator}")
            while True:
                data = await reader.read(4096)
                if not data:
                    return f"{self.port}: end of file"
                self._on_bytes(data)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _on_bytes(self, data: bytes) -> None:
        for line in self._lines.feed(data):
            if isinstance(line, _TooLong):
                self._reject(
                    RejectReason.TOO_LONG,
                    f"line longer than {self._max_length} bytes: skipped up to its terminator",
                    line.head,
                )
            elif not line:
                self.metrics.empty += 1
            else:
                self._line(line)

    def _line(self, line: bytes) -> None:
        try:
            text = line.decode(self.encoding)
        except UnicodeDecodeError as exc:
            self._reject(
                RejectReason.INVALID_TEXT,
                f"not valid {self.encoding} at byte {exc.start} of {len(line)}",
                line,
            )
            return
        self._deliver(text, line)

    def _cut_off(self, detail: str) -> None:
        partial = self._lines.partial
        self._lines.clear()
        if partial:
            self._reject(
                RejectReason.CUT_OFF,
                f"port lost in the middle of a line ({len(partial)} bytes): {detail}",
                partial,
            )

    def _drop_partial(self) -> None:
        self._lines.clear()
