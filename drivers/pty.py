"""Pseudo-terminals that stand in for serial ports in simulators, tests and the demo.

A driver opens the slave side by its path exactly like ``/dev/ttyUSB0``; the simulator serves the
master side. A stable symlink (``link``) plays the part of a udev name, so that ``unplug()`` and
``replug()`` behave like pulling and re-inserting a USB adapter: the old device vanishes, a new one
appears under the same name.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import termios
import tty
from collections.abc import Callable
from pathlib import Path

DataHandler = Callable[[bytes], None]


class PseudoSerialPort:
    """The device side of a pseudo-terminal, read and written from an asyncio loop."""

    def __init__(self, on_data: DataHandler, link: str | os.PathLike[str] | None = None) -> None:
        self._on_data = on_data
        self._link = Path(link) if link is not None else None
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_path = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = bytearray()

    @property
    def path(self) -> str:
        """What a driver opens: the stable link if one was asked for, else the pty's own path."""
        return str(self._link) if self._link is not None else self._slave_path

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def open(self) -> str:
        self._loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        # Raw mode: no echo, no CR/LF translation, bytes pass through untouched.
        tty.setraw(slave, termios.TCSANOW)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._slave_path = os.ttyname(slave)
        if self._link is not None:
            tmp = self._link.with_name(self._link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self._slave_path)
            tmp.replace(self._link)
        # Holding our own slave descriptor open keeps the master readable while the driver has
        # the port closed (between reconnects), instead of failing with EIO.
        self._loop.add_reader(master, self._readable)
        return self.path

    def write(self, data: bytes) -> None:
        """Send bytes to whoever has the port open; silently dropped while unplugged.

        What the tty cannot take now waits in order and goes out as the driver reads: never a
        blocking write, because the driver usually reads on this same event loop.
        """
        if self._master is None:
            return
        if self._pending:
            self._pending += data
            return
        written = self._write_some(data)
        if written < len(data):
            self._pending += data[written:]
            assert self._loop is not None
            self._loop.add_writer(self._master, self._drain)

    def _write_some(self, data: bytes | bytearray) -> int:
        assert self._master is not None
        try:
            return os.write(self._master, data)
        except BlockingIOError:
            return 0

    def _drain(self) -> None:
        if self._master is None:
            return
        written = self._write_some(self._pending)
        del self._pending[:written]
        if not self._pending:
            assert self._loop is not None
            self._loop.remove_writer(self._master)

    def unplug(self) -> None:
        """Make the device vanish: the driver's next read or write fails, the link dangles."""
        if self._master is None:
            return
        assert self._loop is not None
        self._loop.remove_reader(self._master)
        if self._pending:
            self._loop.remove_writer(self._master)
            self._pending.clear()  # what a pulled cable was still carrying is lost
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        if self._link is not None:
            with contextlib.suppress(FileNotFoundError):
                self._link.unlink()

    def replug(self) -> str:
        """A new device under the same link (a fresh pty behind it)."""
        self.unplug()
        return self.open()

    def close(self) -> None:
        self.unplug()

    def _readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:
                return
            raise
        if data:
            self._on_data(data)


class NullModem:
    """Two pseudo-terminals wired back to back, like a null-modem cable.

    For peers that open a serial *path* themselves (pymodbus's serial server): one side opens
    ``a.path``, the other ``b.path``, and every byte crosses over.
    """

    def __init__(
        self,
        link_a: str | os.PathLike[str] | None = None,
        link_b: str | os.PathLike[str] | None = None,
    ) -> None:
        self.a = PseudoSerialPort(lambda data: self.b.write(data), link_a)
        self.b = PseudoSerialPort(lambda data: self.a.write(data), link_b)

    def open(self) -> tuple[str, str]:
        return self.a.open(), self.b.open()

    def close(self) -> None:
        self.a.close()
        self.b.close()
