"""The pseudo-terminal side that every reader simulator shares: plugging, the line, records."""

from __future__ import annotations

import abc

from drivers.pty import PseudoSerialPort


class SimulatedReaderPort(abc.ABC):
    """A simulated reader on a pty. Subclasses parse requests in ``_on_data`` and answer with
    ``_write``; ``_reset_line`` forgets half a request and stops anything still streaming."""

    def __init__(self, link: str | None) -> None:
        self.silent = False
        """Stop answering (requests are still recorded)."""
        self.received: list[bytes] = []
        """Every well-formed request frame, in order."""
        self.sent: list[bytes] = []
        """Every answer written, as the simulator meant it (not injected bytes)."""
        self._pty = PseudoSerialPort(self._on_data, link)

    @abc.abstractmethod
    def _on_data(self, data: bytes) -> None: ...

    @abc.abstractmethod
    def _reset_line(self) -> None: ...

    def open(self) -> str:
        return self._pty.open()

    @property
    def path(self) -> str:
        return self._pty.path

    def close(self) -> None:
        self._reset_line()
        self._pty.close()

    def unplug(self) -> None:
        self._reset_line()
        self._pty.unplug()

    def replug(self) -> str:
        """A re-plugged reader has forgotten everything under way, like a power cycle."""
        self.unplug()
        return self._pty.open()

    def inject(self, data: bytes) -> None:
        """Raw bytes onto the line now (line noise, a stray frame); not recorded in ``sent``."""
        self._pty.write(data)

    def _write(self, data: bytes) -> None:
        if self._pty.plugged:
            self.sent.append(data)
        self._pty.write(data)
