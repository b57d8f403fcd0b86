"""A serial barcode scanner on a pseudo-terminal: it "scans" texts the way a real one sends them.

The driver opens ``sim.port`` like a real ``/dev/ttyACM0``. Each scan is written as the scanner
is configured: prefix, AIM symbology identifier, data, suffix, terminator (the same
:class:`Framing` the driver unwraps with). The port sits behind a stable link, so ``unplug()``
and ``replug()`` behave like pulling the USB cable and plugging it back in.

Run ``python -m drivers.scanner.simulator --link /tmp/ttySCAN0 --terminator crlf`` and type
codes, one per line, to scan them (Ctrl-D to stop).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import fcntl
import os
import shutil
import sys
import tempfile
import termios
from collections.abc import Iterable
from pathlib import Path

from drivers.pty import PseudoSerialPort

from .framing import Framing
from .serial import LINE_TERMINATORS, LineTerminator


class SerialScannerSimulator:
    """One simulated serial scanner (see the module docstring)."""

    def __init__(
        self,
        link: str | os.PathLike[str] | None = None,
        *,
        terminator: LineTerminator = "cr",
        prefix: str = "",
        suffix: str = "",
        aim_ids: bool = False,
        fnc1_as: str | None = None,
        encoding: str = "utf-8",
    ) -> None:
        if terminator not in LINE_TERMINATORS:
            raise ValueError(f"unknown terminator {terminator!r}")
        self.framing = Framing(prefix, suffix, aim_ids, fnc1_as)
        self.terminator = LINE_TERMINATORS[terminator]
        self.encoding = encoding
        self._tmpdir: str | None = None
        if link is None:
            # unplug/replug must keep the path, as udev's by-id names do: give it a link.
            self._tmpdir = tempfile.mkdtemp(prefix="scanner-sim-")
            link = Path(self._tmpdir) / "ttySCAN0"
        self._pty = PseudoSerialPort(self._from_host, link)
        #: Everything the host wrote to the scanner (real scanners accept configuration
        #: commands; this one only records them).
        self.received = bytearray()
        #: Every byte sent, in order.
        self.sent = bytearray()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> str:
        return self._pty.open()

    async def stop(self) -> None:
        self._pty.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    async def __aenter__(self) -> SerialScannerSimulator:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> str:
        """The path the driver opens."""
        return self._pty.path

    @property
    def plugged(self) -> bool:
        return self._pty.plugged

    def unplug(self) -> None:
        """The scanner vanishes: the driver's reads fail, the path dangles."""
        self._pty.unplug()

    def replug(self) -> str:
        """The scanner is back under the same path (a fresh pty behind it)."""
        return self._pty.replug()

    # -- scanning ---------------------------------------------------------------------------

    def frame(self, text: str, symbology: str | None = None) -> bytes:
        """The bytes one scan of ``text`` puts on the line, terminator included."""
        return self.framing.wrap(text, symbology).encode(self.encoding) + self.terminator

    def scan(self, text: str, symbology: str | None = None) -> bytes:
        """Scan one code; returns the bytes sent."""
        return self.send_raw(self.frame(text, symbology))

    def flood(self, texts: Iterable[str], symbology: str | None = None) -> bytes:
        """Many scans back to back in a single write, as fast as the line takes them."""
        return self.send_raw(b"".join(self.frame(text, symbology) for text in texts))

    def scan_cut(self, text: str, symbology: str | None = None, *, keep: int) -> bytes:
        """The first ``keep`` bytes of a scan, no terminator: unplug next to cut it off."""
        return self.send_raw(self.frame(text, symbology)[:keep])

    async def drained(self, timeout: float = 2.0) -> bool:  # noqa: ASYNC109
        """Wait until the host has read every byte sent so far; False after ``timeout``.

        Unplugging right after a write loses what the host had not read yet, as pulling a
        cable does; to cut a code *after* its first bytes arrived, wait for this first. A
        pseudo-terminal tells nobody when its other side reads, so this checks the count of
        unread bytes (FIONREAD) every millisecond.
        """
        fd = os.open(self.port, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            async with asyncio.timeout(timeout):
                while _unread(fd):  # noqa: ASYNC110 - no event exists to wait on (see above)
                    await asyncio.sleep(0.001)
            return True
        except TimeoutError:
            return False
        finally:
            os.close(fd)

    def send_raw(self, data: bytes) -> bytes:
        """Arbitrary bytes on the line (noise, bad encodings, a scanner misconfigured)."""
        self.sent += data
        self._pty.write(data)
        return data

    def _from_host(self, data: bytes) -> None:
        self.received += data


def _unread(fd: int) -> int:
    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return count[0]


async def _serve(args: argparse.Namespace) -> None:
    sim = SerialScannerSimulator(
        args.link,
        terminator=args.terminator,
        prefix=args.prefix,
        suffix=args.suffix,
        aim_ids=args.symbology is not None,
    )
    port = await sim.start()
    print(f"scanner on {port}: type a code per line, Ctrl-D to stop", file=sys.stderr)
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            text = line.rstrip("\n")
            if text:
                sim.scan(text, args.symbology)
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--link", required=True, help="stable path of the port to create")
    parser.add_argument("--terminator", choices=sorted(LINE_TERMINATORS), default="cr")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--suffix", default="")
    parser.add_argument(
        "--symbology", default=None, help="send this AIM identifier with each code (e.g. qr)"
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
