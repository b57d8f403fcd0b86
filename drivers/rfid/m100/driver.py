"""MagicRF M100 / JRD-100 / YRM100 module driver on a serial port.

One inventory round on one antenna is one single poll (0x22). The module answers with one
notification per tag and no end-of-round marker; when no tag answers it sends the "no tag" error
(0x15) instead. So a round ends at that error, or when the line has been quiet for ``quiet_gap``
seconds after the last notification. The modules have one antenna port: other antenna numbers
are logical only (reads are attributed to the antenna being inventoried).
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

INVENTORY_ATTEMPTS = 2
"""A poll answered with an error other than "no tag" is tried once more before the pass is
given up."""


@dataclass
class _Round:
    """The poll in progress: where its reads go and until when the line may stay quiet."""

    antenna: int
    timer: asyncio.Timeout
    cap: float
    """round_timeout after the poll was sent: a flood of notifications ends the round here."""
    reads: int = 0
    active: bool = False
    """The module answered (a tag, a frame lost to noise, part of a frame): quiet now means the
    round is over."""


def _answers(cmd: int) -> Callable[[object], bool]:
    def accept(frame: object) -> bool:
        return (
            isinstance(frame, p.Frame)
            and frame.frame_type == p.TYPE_RESPONSE
            and frame.cmd in (cmd, p.CMD_ERROR)
        )

    return accept


def _is_error(frame: object) -> bool:
    return isinstance(frame, p.Frame) and frame.is_error


class M100Reader(SerialReader):
    """An M100-based module (JRD-100, YRM100, M5Stack UHF unit) on a serial port."""

    def __init__(
        self,
        name: str,
        port: str,
        *,
        antennas: Sequence[int] = (1,),
        baudrate: int | None = None,
        address: int = 0,
        command_timeout: float = 1.0,
        round_timeout: float = 5.0,
        reconnect_initial: float = 0.2,
        reconnect_max: float = 10.0,
        quiet_gap: float = 0.05,
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
        if quiet_gap <= 0:
            raise ValueError("quiet_gap must be > 0")
        # The protocol has no address field; the argument exists for the common constructor.
        self.address = address
        self.quiet_gap = quiet_gap
        self.info: str | None = None
        """Hardware version string from the last connect."""
        self._parser = p.M100Parser(on_corrupt=self._on_corrupt, on_garbage=self._garbage)
        self._round: _Round | None = None
        self._last_antenna = self.antennas[0]

    # -- parser --------------------------------------------------------------------------------

    def _reset_parser(self) -> None:
        self._parser.clear()

    def _feed(self, data: bytes) -> None:
        for frame in self._parser.feed(data):
            if frame.is_tag:
                self._tag_frame(frame)
            else:
                self._frame_received(frame)
        if self._round is not None and self._parser.pending:
            self._quiet_from_now(self._round)  # a frame is arriving (or stuck half way)

    def _tag_frame(self, frame: p.Frame) -> None:
        try:
            tag = p.decode_tag(frame.params)
        except ValueError as exc:
            # The frame checksum held but the tag's own CRC did not: noise all the same.
            self._on_corrupt(frame.raw)
            log.debug("%s: %s", self.name, exc)
            return
        self.metrics.frames += 1
        round_ = self._round
        antenna = round_.antenna if round_ is not None else self._last_antenna
        self._emit_tag(TagRead(epc=tag.epc.hex(), antenna=antenna, rssi=tag.rssi, pc=tag.pc))
        if round_ is not None:
            round_.reads += 1
            self._quiet_from_now(round_)

    def _on_corrupt(self, raw: bytes) -> None:
        self._frame_corrupt(raw)
        round_ = self._round
        if round_ is not None:
            self._quiet_from_now(round_)

    def _quiet_from_now(self, round_: _Round) -> None:
        round_.active = True
        when = min(round_.cap, asyncio.get_running_loop().time() + self.quiet_gap)
        if not round_.timer.expired():
            with contextlib.suppress(RuntimeError):  # already expiring: too late to move
                round_.timer.reschedule(when)

    # -- hooks -----------------------------------------------------------------------------------

    async def _identify(self) -> None:
        reply: p.Frame = await self._request(p.encode_info(p.INFO_HARDWARE), _answers(p.CMD_INFO))
        self._check(reply, "info")
        # Params: the info type byte, then ASCII text.
        self.info = reply.params[1:].decode("ascii", errors="replace")

    async def _inventory_antenna(self, antenna: int) -> int:
        self._last_antenna = antenna
        reads = 0
        code = 0
        for attempt in range(1, INVENTORY_ATTEMPTS + 1):
            error, got = await self._poll(antenna)
            reads += got
            if error is None or error.error_code == p.ERROR_NO_TAG:
                return reads
            code = error.error_code or 0
            self.metrics.error_replies += 1
            self.metrics.last_error = f"poll error 0x{code:02x}"
            log.warning(
                "%s: poll on antenna %d answered with error 0x%02x (attempt %d)",
                self.name,
                antenna,
                code,
                attempt,
                extra={"reader": self.name, "frame": error.raw.hex()},
            )
        raise ReaderRejected(f"{self.name}: poll refused with error 0x{code:02x}")

    async def _poll(self, antenna: int) -> tuple[p.Frame | None, int]:
        """One single poll: the error reply that ended it (None when it ended quiet after
        tags) and the tags read."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            round_: _Round | None = None
            try:
                # Until the first frame the module gets command_timeout to answer; after each
                # notification, quiet_gap (see _quiet_from_now).
                async with asyncio.timeout(self.command_timeout) as timer:
                    round_ = _Round(antenna, timer, loop.time() + self.round_timeout)
                    self._round = round_
                    error: p.Frame = await self._send_and_wait(
                        p.encode_single_poll(), _is_error, self.command_timeout + self.round_timeout
                    )
            except TimeoutError:
                if round_ is not None and round_.active:
                    return None, round_.reads
                self.metrics.timeouts += 1
                raise ReaderTimeout(
                    f"{self.name}: no answer to a poll within {self.command_timeout}s"
                ) from None
            finally:
                self._round = None
            assert round_ is not None
            return error, round_.reads

    async def _apply_power(self, dbm: float) -> None:
        reply: p.Frame = await self._request(p.encode_set_power(dbm), _answers(p.CMD_SET_POWER))
        self._check(reply, "set power")

    async def set_region(self, region: int) -> None:
        """Working region (0x07): 1 China 900 MHz, 2 US, 3 Europe, 4 China 800 MHz, 6 Korea."""
        reply: p.Frame = await self._request(p.encode_set_region(region), _answers(p.CMD_REGION))
        self._check(reply, "set region")

    def _check(self, reply: p.Frame, what: str) -> None:
        # Set commands answer with one status parameter, 0x00 = success.
        failed = reply.is_error or (
            reply.cmd != p.CMD_INFO and reply.params[:1] not in (b"", b"\0")
        )
        if failed:
            self.metrics.error_replies += 1
            raise ReaderRejected(f"{self.name}: {what} refused ({reply.raw.hex(' ')})")
