"""An M100 / JRD-100 module on a pseudo-terminal, answering with the real protocol bytes.

A single poll (0x22) is answered with one notification per answering tag, or the "no tag" error
when none answers; a multi-poll (0x27) repeats that CNT times, one cycle per ``poll_interval``,
until a stop (0x28). The tags come from a ``TagField``; the test controls line faults: silence,
garbage, an error for the next command, unplug/replug.
"""

from __future__ import annotations

import asyncio
import logging

from ..field import SimTag, TagField
from ..simulated import SimulatedReaderPort
from . import protocol as p

log = logging.getLogger(__name__)

DEFAULT_INFO = {
    p.INFO_HARDWARE: "M100 26dBm V1.0",
    p.INFO_SOFTWARE: "V2.3.5",
    p.INFO_MANUFACTURER: "MagicRF",
}


class M100Simulator(SimulatedReaderPort):
    def __init__(
        self,
        field: TagField,
        *,
        link: str | None = None,
        antenna: int = 1,
        info: dict[int, str] | None = None,
        poll_interval: float = 0.002,
    ) -> None:
        self.field = field
        self.antenna = antenna
        """The field antenna whose tags answer (the module has a single port)."""
        self.info = dict(DEFAULT_INFO if info is None else info)
        self.power = 2600
        """dBm * 100, as on the wire."""
        self.region = p.REGION_EU
        self.poll_interval = poll_interval
        self.corrupted = 0
        """Notifications that crossed the line with a flipped bit (``TagField.misread_rate``)."""
        self.polls = 0
        self._fail: list[int] = []
        self._multi: asyncio.TimerHandle | None = None
        self._multi_left = 0
        self._parser = p.M100Parser()
        super().__init__(link)

    # -- lifecycle -------------------------------------------------------------------------------

    def _reset_line(self) -> None:
        self._stop_multi()
        self._parser.clear()

    @property
    def multi_polling(self) -> bool:
        return self._multi is not None

    # -- faults ----------------------------------------------------------------------------------

    def fail_next(self, code: int = p.ERROR_COMMAND) -> None:
        """Answer the next command with ``BB 01 FF 00 01 code CS 7E``."""
        self._fail.append(code)

    # -- device side -----------------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        for frame in self._parser.feed(data):
            self.received.append(frame.raw)
            if self.silent or frame.frame_type != p.TYPE_COMMAND:
                continue
            try:
                self._handle(frame)
            except Exception:
                log.exception("simulator failed on %s", frame.raw.hex(" "))

    def _handle(self, frame: p.Frame) -> None:
        cmd, params = frame.cmd, frame.params
        if self._fail:
            self._write(p.encode_error(self._fail.pop(0)))
            return
        if cmd == p.CMD_SINGLE_POLL:
            self._poll(error_if_empty=True)
        elif cmd == p.CMD_MULTI_POLL and len(params) == 3:
            self._stop_multi()
            self._multi_left = (params[1] << 8) | params[2]
            self._schedule_multi()
        elif cmd == p.CMD_STOP:
            self._stop_multi()
            self._write(p.encode_response(cmd, b"\0"))
        elif cmd == p.CMD_INFO and len(params) == 1 and params[0] in self.info:
            text = self.info[params[0]].encode("ascii")
            self._write(p.encode_response(cmd, params + text))
        elif cmd == p.CMD_SET_POWER and len(params) == 2:
            self.power = (params[0] << 8) | params[1]
            self._write(p.encode_response(cmd, b"\0"))
        elif cmd == p.CMD_GET_POWER:
            self._write(p.encode_response(cmd, self.power.to_bytes(2, "big")))
        elif cmd == p.CMD_REGION and len(params) == 1:
            self.region = params[0]
            self._write(p.encode_response(cmd, b"\0"))
        else:
            self._write(p.encode_error(p.ERROR_COMMAND))

    def _poll(self, *, error_if_empty: bool) -> None:
        self.polls += 1
        tags = self.field.answering(self.antenna)
        if not tags:
            if error_if_empty:
                self._write(p.encode_error(p.ERROR_NO_TAG))
            return
        self._write(b"".join(self._notification(tag) for tag in tags))

    def _notification(self, tag: SimTag) -> bytes:
        frame = p.encode_tag_notification(tag.epc, max(-128, min(127, tag.rssi)))
        crossed = self.field.maybe_corrupt(frame)
        if crossed != frame:
            self.corrupted += 1
        return crossed

    def _schedule_multi(self) -> None:
        if self._multi_left <= 0:
            self._multi = None
            return
        loop = asyncio.get_running_loop()
        self._multi = loop.call_later(self.poll_interval, self._multi_cycle)

    def _multi_cycle(self) -> None:
        self._multi_left -= 1
        if not self.silent:
            # Empty cycles of a multi-poll stay quiet; the no-tag error belongs to 0x22.
            self._poll(error_if_empty=False)
        self._schedule_multi()

    def _stop_multi(self) -> None:
        if self._multi is not None:
            self._multi.cancel()
            self._multi = None
        self._multi_left = 0
