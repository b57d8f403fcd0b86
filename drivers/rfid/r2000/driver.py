"""R2000 reader driver: continuous real-time inventory (0x89) over the configured antennas.

Per antenna and pass: 0x74 selects the work antenna (0-based id on the wire), then 0x89 with
repeat 1 runs one round; tags stream in as they are singulated and an end-of-round frame (7-byte,
or the 5-byte IND903 form) closes the round. An error code in answer to 0x74 or 0x89 (other than
"no tag") makes the pass incomplete: it is not reported as a round.

Requests go to ``address`` (0xFF, broadcast, by default); replies are accepted from any address,
because a reader answers with its own address, which the host may not know.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from drivers.rfid.reader import ReaderRejected, RoundIncomplete, TagRead
from drivers.rfid.serial_reader import SerialReader

from . import protocol as p
from .protocol import R2000Frame, R2000Parser

log = logging.getLogger(__name__)

DEFAULT_BAUDRATE = 115200

# A reader sends a frame in one go; bytes of a started frame that stop arriving for this long
# will not be completed (a corrupted Len byte claimed more than was sent). 0.1 s is far beyond
# USB-serial latency timers (16 ms) yet short against a round timeout.
STALL_TIMEOUT = 0.1


class R2000Reader(SerialReader):
    """An R2000/IND903-based reader on a serial port."""

    def __init__(
        self,
        name: str,
        port: str,
        *,
        antennas: Sequence[int] = (1,),
        baudrate: int | None = None,
        address: int = p.BROADCAST,
        command_timeout: float = 1.0,
        round_timeout: float = 5.0,
        reconnect_initial: float = 0.2,
        reconnect_max: float = 10.0,
    ) -> None:
        for antenna in antennas:
            p.check_antenna(antenna)
        if not 0 <= address <= p.BROADCAST:
            raise ValueError(f"R2000 address is 0..255, got {address}")
        super().__init__(
            name,
            port,
            DEFAULT_BAUDRATE if baudrate is None else baudrate,
            antennas,
            command_timeout=command_timeout,
            round_timeout=round_timeout,
            reconnect_initial=reconnect_initial,
            reconnect_max=reconnect_max,
        )
        self.address = address
        self.firmware: tuple[int, int] | None = None
        """(major, minor) from 0x72, once identified."""
        self._parser = R2000Parser(
            self._on_tag, self._frame_received, self._frame_corrupt, self._garbage
        )
        self._round_reads = 0
        self._stall_timer: asyncio.TimerHandle | None = None
        self._last_data = 0.0

    # -- receiving ---------------------------------------------------------------------------

    def _on_tag(self, read: TagRead) -> None:
        self.metrics.frames += 1
        self._round_reads += 1
        self._emit_tag(read)

    def _feed(self, data: bytes) -> None:
        parser = self._parser
        parser.feed(data)
        if parser.pending:
            loop = asyncio.get_running_loop()
            self._last_data = loop.time()
            if self._stall_timer is None:
                self._stall_timer = loop.call_later(STALL_TIMEOUT, self._check_stall)

    def _check_stall(self) -> None:
        # One timer per stall rather than one per chunk: re-armed for the remainder while bytes
        # keep arriving.
        self._stall_timer = None
        if not self._parser.pending:
            return
        loop = asyncio.get_running_loop()
        quiet = loop.time() - self._last_data
        if quiet < STALL_TIMEOUT:
            self._stall_timer = loop.call_later(STALL_TIMEOUT - quiet, self._check_stall)
            return
        self._parser.flush()

    async def close(self) -> None:
        await super().close()
        self._reset_parser()

    def _reset_parser(self) -> None:
        self._parser.reset()
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    # -- exchanges ---------------------------------------------------------------------------

    async def _identify(self) -> None:
        """0x72 firmware version: any answer proves an R2000-family reader is on the port."""
        reply: R2000Frame = await self._request(
            p.encode(self.address, p.CMD_GET_FIRMWARE), _reply_to(p.CMD_GET_FIRMWARE)
        )
        if len(reply.data) == 2:
            self.firmware = (reply.data[0], reply.data[1])
        else:
            log.warning(
                "%s: odd firmware reply %s",
                self.name,
                reply.raw.hex(" "),
                extra={"reader": self.name},
            )

    async def _inventory_antenna(self, antenna: int) -> int:
        reply: R2000Frame = await self._request(
            p.encode_set_work_antenna(self.address, antenna), _reply_to(p.CMD_SET_WORK_ANTENNA)
        )
        if reply.is_error:
            self.metrics.error_replies += 1
            raise RoundIncomplete(f"antenna {antenna} not selected: {_status(reply)}")
        self._round_reads = 0
        end: R2000Frame = await self._request(
            p.encode_realtime_inventory(self.address, 1), p.is_inventory_end, self.round_timeout
        )
        if len(end.data) == p.ERROR_DATA_LEN and end.data[0] != p.NO_TAG:
            # "No tag" is an empty round; anything else (antenna missing...) is no round.
            self.metrics.error_replies += 1
            raise RoundIncomplete(f"antenna {antenna} not inventoried: {_status(end)}")
        return self._round_reads

    async def _apply_power(self, dbm: float) -> None:
        frame = p.encode_set_output_power(self.address, round(dbm))
        reply: R2000Frame = await self._request(frame, _reply_to(p.CMD_SET_OUTPUT_POWER))
        if reply.is_error or len(reply.data) != 1:
            self._error_reply(reply, f"set power {dbm} dBm")
            raise ReaderRejected(f"{self.name}: set power refused: {_status(reply)}")

    def _error_reply(self, reply: R2000Frame, what: str) -> None:
        self.metrics.error_replies += 1
        log.warning(
            "%s: %s: reader answered %s",
            self.name,
            what,
            _status(reply),
            extra={"reader": self.name, "frame": reply.raw.hex()},
        )


def _reply_to(cmd: int) -> Callable[[R2000Frame], bool]:
    def accept(frame: R2000Frame) -> bool:
        return frame.cmd == cmd

    return accept


def _status(reply: R2000Frame) -> str:
    if len(reply.data) == 1:
        return p.error_name(reply.data[0])
    return reply.raw.hex(" ")
