"""A Chafon / UHFReader18 reader on a pseudo-terminal, answering with the real protocol bytes.

The driver opens ``sim.open()``'s path like ``/dev/ttyUSB0``. The tags that answer come from a
``TagField`` (population, read probability, misreads); the test controls line faults: silence,
garbage, an error status for the next command, unplug/replug.
"""

from __future__ import annotations

import dataclasses
import logging

from ..field import TagField
from ..simulated import SimulatedReaderPort
from . import protocol as p

log = logging.getLogger(__name__)

DEFAULT_INFO = p.ReaderInfo(
    version=(3, 0x4E),
    reader_type=0x09,  # UHFReader18
    protocols=0x02,  # ISO 18000-6C
    max_frequency=0x4E,  # band 0b0100 (EU) in the top bits; channels 0..14
    min_frequency=0x00,
    power=30,
    scan_time=10,
)


class ChafonSimulator(SimulatedReaderPort):
    """One UHFReader18 at ``address``; answers commands addressed to it or to 0xFF."""

    def __init__(
        self,
        field: TagField,
        *,
        link: str | None = None,
        address: int = p.DEFAULT_ADDRESS,
        antenna: int = 1,
        info: p.ReaderInfo = DEFAULT_INFO,
        max_frame: int = 255,
        final_status: int = p.STATUS_FINISHED,
    ) -> None:
        self.field = field
        self.address = address
        self.antenna = antenna
        """The field antenna whose tags answer (the protocol has no antenna of its own)."""
        self.info = info
        self.power = info.power
        self.max_frame = max_frame
        """Longest frame sent, in bytes; larger populations are split over 0x03 frames."""
        self.final_status = final_status
        """Status of the frame that ends an inventory: 0x01, 0x02 or 0x04."""
        self.corrupted = 0
        """Inventory frames that crossed the line with a flipped bit (``TagField.misread_rate``)."""
        self.inventories = 0
        self._fail: list[int] = []
        self._parser = p.ChafonParser(min_length=p.REQUEST_MIN_LEN, address=address)
        super().__init__(link)

    # -- lifecycle -------------------------------------------------------------------------------

    def _reset_line(self) -> None:
        self._parser.clear()

    # -- faults ----------------------------------------------------------------------------------

    def fail_next(self, code: int = p.STATUS_ANTENNA_ERROR) -> None:
        """Answer the next command with this status and no data."""
        self._fail.append(code)

    # -- device side -----------------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        for frame in self._parser.feed(data):
            self.received.append(frame.raw)
            if self.silent or frame.address not in (self.address, p.BROADCAST):
                continue
            try:
                self._handle(frame)
            except Exception:
                log.exception("simulator failed on %s", frame.raw.hex(" "))

    def _handle(self, frame: p.Frame) -> None:
        if self._fail:
            self._write(p.encode_reply(self.address, frame.cmd, self._fail.pop(0)))
            return
        if frame.cmd == p.CMD_INVENTORY:
            self._inventory()
        elif frame.cmd == p.CMD_READER_INFO:
            info = dataclasses.replace(self.info, power=self.power)
            self._reply(frame.cmd, p.STATUS_OK, info.encode())
        elif frame.cmd == p.CMD_SET_POWER:
            if len(frame.body) == 1 and frame.body[0] <= p.MAX_POWER_DBM:
                self.power = frame.body[0]
                self._reply(frame.cmd, p.STATUS_OK)
            else:
                self._reply(frame.cmd, p.STATUS_PARAMETER_ERROR)
        else:
            self._reply(frame.cmd, p.STATUS_ILLEGAL_COMMAND)

    def _inventory(self) -> None:
        self.inventories += 1
        tags = self.field.answering(self.antenna)
        frames = p.encode_inventory_replies(
            self.address,
            [tag.epc for tag in tags],
            final_status=self.final_status,
            max_frame=self.max_frame,
        )
        out = bytearray()
        for frame in frames:
            crossed = self.field.maybe_corrupt(frame)
            if crossed != frame:
                self.corrupted += 1
            out += crossed
        self._write(bytes(out))

    def _reply(self, cmd: int, status: int, data: bytes = b"") -> None:
        self._write(p.encode_reply(self.address, cmd, status, data))
