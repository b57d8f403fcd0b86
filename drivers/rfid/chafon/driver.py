"""Chafon / UHFReader18 reader driver on a serial port.

One inventory round on one antenna is one 0x01 command: the reader answers with frames of
status 0x03 ("more frames follow") and ends the round with a frame of any other inventory
status (0x01 finished, 0x02 time overflow, 0x04 buffer full); an empty field is status 0x01 with
Num 0. These readers report neither RSSI nor antenna: a read is attributed to the antenna being
inventoried (antennas other than the reader's own are logical only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..reader import ReaderRejected, ReaderTimeout, TagRead
from ..serial_reader import SerialReader
from . import protocol as p

log = logging.getLogger(__name__)

ROUND_ENDS = frozenset(
    {p.STATUS_FINISHED, p.STATUS_TIME_OVERFLOW, p.STATUS_BUFFER_FULL, p.STATUS_NO_TAG}
)
INVENTORY_ATTEMPTS = 2
"""An inventory answered with an error is tried once more before the pass is given up."""


@dataclass
class _Round:
    """The inventory exchange in progress: where its reads go and when it times out."""

    antenna: int
    timer: asyncio.Timeout
    deadline: float
    reads: int = 0
    unsettled: bool = False
    """A frame was lost to noise or is half received: if the line now goes quiet, the lost
    frame may have been the last of the round."""


def _answers(cmd: int) -> Callable[[object], bool]:
    def accept(frame: object) -> bool:
        return isinstance(frame, p.Frame) and frame.cmd in (cmd, p.CMD_ERROR)

    return accept


def _ends_inventory(frame: object) -> bool:
    return (
        isinstance(frame, p.Frame)
        and frame.cmd in (p.CMD_INVENTORY, p.CMD_ERROR)
        and frame.status != p.STATUS_MORE_FRAMES
    )


class ChafonReader(SerialReader):
    """A UHFReader18-family reader (CF-RU5102 and kin) at ``address`` on a serial port."""

    def __init__(
        self,
        name: str,
        port: str,
        *,
        antennas: Sequence[int] = (1,),
        baudrate: int | None = None,
        address: int = p.DEFAULT_ADDRESS,
        command_timeout: float = 1.0,
        round_timeout: float = 5.0,
        reconnect_initial: float = 0.2,
        reconnect_max: float = 10.0,
    ) -> None:
        super().__init__(
            name,
            port,
            baudrate or p.DEFAULT_BAUDRATE,
            antennas,
            command_timeout=command_timeout,
            round_timeout=round_timeout,
            reconnect_initial=reconnect_initial,
            reconnect_max=reconnect_max,
        )
        if not 0 <= address <= 0xFF:
            raise ValueError(f"reader address must be 0..255, got {address}")
        self.address = address
        self.info: p.ReaderInfo | None = None
        """What the reader said about itself at the last connect."""
        self._parser = p.ChafonParser(
            min_length=p.REPLY_MIN_LEN,
            # Replies carry the reader's own address, whatever address the command used.
            address=None if address == p.BROADCAST else address,
            on_corrupt=self._on_corrupt,
            on_garbage=self._garbage,
        )
        self._round: _Round | None = None
        self._last_antenna = self.antennas[0]

    # -- parser --------------------------------------------------------------------------------

    def _reset_parser(self) -> None:
        self._parser.clear()

    def _feed(self, data: bytes) -> None:
        for frame in self._parser.feed(data):
            if frame.cmd == p.CMD_INVENTORY and frame.status in p.INVENTORY_STATUSES:
                self._inventory_frame(frame)
            else:
                self._frame_received(frame)
        if self._round is not None and self._parser.pending:
            self._unsettled(self._round)

    def _inventory_frame(self, frame: p.Frame) -> None:
        round_ = self._round
        try:
            epcs = p.decode_inventory_data(frame.data)
        except ValueError as exc:
            # The CRC held, so the reader sent this: count it, keep the round going.
            self.metrics.unknown_frames += 1
            log.warning("%s: malformed inventory reply %s: %s", self.name, frame.raw.hex(" "), exc)
            epcs = []
        antenna = round_.antenna if round_ is not None else self._last_antenna
        for epc in epcs:
            self._emit_tag(TagRead(epc=epc.hex(), antenna=antenna))
        if round_ is not None:
            round_.reads += len(epcs)
        if frame.status != p.STATUS_MORE_FRAMES or round_ is None:
            self._frame_received(frame)  # the end of the round, or a stray
            return
        self.metrics.frames += 1
        # More frames follow, so the line is alive: back to the round's own deadline.
        self._reschedule(round_, round_.deadline)

    def _on_corrupt(self, raw: bytes) -> None:
        self._frame_corrupt(raw)
        if self._round is not None:
            self._unsettled(self._round)

    def _unsettled(self, round_: _Round) -> None:
        # The frame lost (or stuck half way) may have been the last of the round: wait one
        # command timeout for more, not the whole round timeout.
        round_.unsettled = True
        now = asyncio.get_running_loop().time()
        self._reschedule(round_, min(round_.deadline, now + self.command_timeout))

    @staticmethod
    def _reschedule(round_: _Round, when: float) -> None:
        if not round_.timer.expired():
            with contextlib.suppress(RuntimeError):  # already expiring: too late to move
                round_.timer.reschedule(when)

    # -- hooks -----------------------------------------------------------------------------------

    async def _identify(self) -> None:
        reply: p.Frame = await self._request(
            p.encode_reader_info(self.address), _answers(p.CMD_READER_INFO)
        )
        self._check_status(reply, "reader info")
        try:
            self.info = p.ReaderInfo.decode(reply.data)
        except ValueError as exc:
            # Some answer came from a Chafon-style reader; do not refuse it for a short info.
            log.warning("%s: unexpected reader info %s: %s", self.name, reply.raw.hex(" "), exc)
            self.info = None

    async def _inventory_antenna(self, antenna: int) -> int:
        self._last_antenna = antenna
        reads = 0
        status = p.STATUS_OK
        for attempt in range(1, INVENTORY_ATTEMPTS + 1):
            final, got = await self._inventory_once(antenna)
            reads += got
            if final is None or final.status in ROUND_ENDS:
                return reads
            status = final.status
            self.metrics.error_replies += 1
            self.metrics.last_error = f"inventory status 0x{status:02x}"
            log.warning(
                "%s: inventory on antenna %d answered with status 0x%02x (attempt %d)",
                self.name,
                antenna,
                status,
                attempt,
                extra={"reader": self.name, "frame": final.raw.hex()},
            )
        raise ReaderRejected(f"{self.name}: inventory refused with status 0x{status:02x}")

    async def _inventory_once(self, antenna: int) -> tuple[p.Frame | None, int]:
        """One 0x01 exchange: the frame that ended it (None when the line went quiet after a
        damaged frame, which may have been the last) and the tags read."""
        async with self._lock:
            round_: _Round | None = None
            try:
                async with asyncio.timeout(self.round_timeout) as timer:
                    round_ = _Round(antenna, timer, timer.when() or 0.0)
                    self._round = round_
                    # The inner timeout never fires first: the round's timer decides.
                    final: p.Frame = await self._send_and_wait(
                        p.encode_inventory(self.address), _ends_inventory, self.round_timeout * 2
                    )
            except TimeoutError:
                if round_ is not None and round_.unsettled:
                    log.info("%s: round ended on a damaged frame", self.name)
                    return None, round_.reads
                self.metrics.timeouts += 1
                raise ReaderTimeout(
                    f"{self.name}: inventory not finished within {self.round_timeout}s"
                ) from None
            finally:
                self._round = None
            assert round_ is not None
            return final, round_.reads

    async def _apply_power(self, dbm: float) -> None:
        reply: p.Frame = await self._request(
            p.encode_set_power(self.address, round(dbm)), _answers(p.CMD_SET_POWER)
        )
        self._check_status(reply, "set power")

    def _check_status(self, reply: p.Frame, what: str) -> None:
        if reply.cmd == p.CMD_ERROR or reply.status != p.STATUS_OK:
            self.metrics.error_replies += 1
            raise ReaderRejected(
                f"{self.name}: {what} refused with status 0x{reply.status:02x} "
                f"({reply.raw.hex(' ')})"
            )
