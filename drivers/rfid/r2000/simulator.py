"""An R2000 reader on a pseudo-terminal: the device side of the 0xA0 protocol, with faults.

The driver opens ``open()``'s path like a real ``/dev/ttyUSB0``. The simulator parses requests
with the same codec, answers 0x72, 0x74/0x75, 0x76/0x77, 0x89 and 0x70, and takes its tags from
a :class:`~drivers.rfid.field.TagField`. A test controls silence (``silent``), error replies
(``fail_next``), line noise (``noise`` and ``inject``), the IND903 end-of-round form
(``legacy_round_end``), misreads (the field's ``misread_rate``) and unplug/replug.

Run ``python -m drivers.rfid.r2000.simulator --tags 50 --antennas 2 --link /tmp/ttyR2000`` to
serve a reader until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random

from drivers.rfid.field import SimTag, TagField
from drivers.rfid.reader import TagRead
from drivers.rfid.simulated import SimulatedReaderPort

from . import protocol as p
from .protocol import R2000Frame, R2000Parser

log = logging.getLogger(__name__)

# Frames written per burst during a round: the reader streams tags as it singulates them, and
# yielding between bursts lets the host read while the round goes on.
BURST = 32
FREQ_CHANNELS = 50


def rssi_byte(dbm: int) -> int:
    """The reader's RSSI byte for a level in dBm (the V2.38 table runs 0x1F = -98 dBm up to
    0x6E = -19 dBm, i.e. dBm + 129)."""
    return max(0, min(0x7F, dbm + 129))


class R2000Simulator(SimulatedReaderPort):
    def __init__(
        self,
        field: TagField,
        *,
        link: str | None = None,
        address: int = 0x01,
        firmware: tuple[int, int] = (8, 1),
        antenna_count: int = 4,
        legacy_round_end: bool = False,
        noise: int = 0,
        read_rate: int = 150,
        seed: int | None = 0,
    ) -> None:
        self.field = field
        self.address = address
        self.firmware = firmware
        self.antenna_count = antenna_count
        self.legacy_round_end = legacy_round_end
        self.noise = noise
        """Bytes of line noise (never 0xA0) written after every tag frame of a round."""
        self.read_rate = read_rate
        """Reported in the 7-byte end-of-round frame."""
        self.work_antenna = 1
        self.power_dbm = 30
        self.resets = 0
        self.tag_frames = 0
        self.corrupted_frames = 0
        self._fail_next: tuple[int, int | None] | None = None
        self._rng = random.Random(seed)  # noqa: S311 - line noise, not security
        self._hop = 0
        self._rounds: set[asyncio.Task[None]] = set()
        self._parser = R2000Parser(self._tag_shaped_request, self._on_request, self._bad_request)
        super().__init__(link)

    # -- lifecycle -----------------------------------------------------------------------------

    def _reset_line(self) -> None:
        self._stop_rounds()
        self._parser.reset()

    # -- faults ------------------------------------------------------------------------------

    def fail_next(self, code: int = p.FAIL, cmd: int | None = None) -> None:
        """Answer the next command (the next ``cmd`` if given) with this status code instead."""
        self._fail_next = (code, cmd)

    # -- requests ----------------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        try:
            self._parser.feed(data)
        except Exception:
            log.exception("r2000 simulator failed on %s", data.hex(" "))
            self._parser.reset()

    def _bad_request(self, raw: bytes) -> None:
        log.warning("r2000 simulator: bad request %s", raw.hex(" "))

    def _tag_shaped_request(self, read: TagRead) -> None:
        log.warning("r2000 simulator: 0x89 request with tag-shaped data ignored: %s", read)

    def _on_request(self, frame: R2000Frame) -> None:
        self.received.append(frame.raw)
        if frame.address not in (self.address, p.BROADCAST) or self.silent:
            return
        cmd, data = frame.cmd, frame.data
        if cmd == p.CMD_RESET:
            # The reader restarts and sends nothing back.
            self.resets += 1
            self._stop_rounds()
            self.work_antenna = 1
            self._fail_next = None
            return
        if self._fail_next is not None and self._fail_next[1] in (None, cmd):
            code = self._fail_next[0]
            self._fail_next = None
            self._reply(cmd, bytes((code,)))
            return
        if cmd == p.CMD_GET_FIRMWARE:
            self._reply(cmd, bytes(self.firmware))
        elif cmd == p.CMD_SET_WORK_ANTENNA:
            if len(data) == 1 and data[0] < self.antenna_count:
                self.work_antenna = data[0] + 1
                self._reply(cmd, bytes((p.SUCCESS,)))
            else:
                self._reply(cmd, bytes((p.ANTENNA_ID_OUT_OF_RANGE,)))
        elif cmd == p.CMD_GET_WORK_ANTENNA:
            self._reply(cmd, bytes((self.work_antenna - 1,)))
        elif cmd == p.CMD_SET_OUTPUT_POWER:
            # One byte for every antenna, or one per antenna (4); this model keeps the first.
            if len(data) in (1, 4) and all(b <= p.MAX_POWER_DBM for b in data):
                self.power_dbm = data[0]
                self._reply(cmd, bytes((p.SUCCESS,)))
            else:
                self._reply(cmd, bytes((p.OUTPUT_POWER_OUT_OF_RANGE,)))
        elif cmd == p.CMD_GET_OUTPUT_POWER:
            self._reply(cmd, bytes((self.power_dbm,)))
        elif cmd == p.CMD_REALTIME_INVENTORY and len(data) == 1:
            task = asyncio.get_running_loop().create_task(self._round(max(1, data[0])))
            self._rounds.add(task)
            task.add_done_callback(self._rounds.discard)
        else:
            self._reply(cmd, bytes((p.FAIL,)))

    # -- replies -----------------------------------------------------------------------------

    def _reply(self, cmd: int, data: bytes) -> None:
        frame = p.encode(self.address, cmd, data)
        self.sent.append(frame)
        self._pty.write(frame)

    async def _round(self, repeat: int) -> None:
        """``repeat`` inventory rounds on the work antenna, tags streamed, then one end frame."""
        antenna = self.work_antenna
        total = 0
        burst: list[bytes] = []
        for _ in range(repeat):
            for tag in self.field.answering(antenna):
                burst.append(self._tag_frame(tag, antenna))
                total += 1
                if len(burst) >= BURST:
                    self._pty.write(b"".join(burst))
                    burst.clear()
                    await asyncio.sleep(0)
                    if self.silent:
                        return
        if self.silent:
            return
        if self.legacy_round_end:
            end = p.encode_legacy_round_end(self.address, antenna, total)
        else:
            end = p.encode_round_end(self.address, antenna, self.read_rate, total)
        self.sent.append(end)
        burst.append(end)
        self._pty.write(b"".join(burst))

    def _tag_frame(self, tag: SimTag, antenna: int) -> bytes:
        self._hop = (self._hop + 1) % FREQ_CHANNELS
        frame = p.encode_tag(self.address, antenna, tag.epc, rssi_byte(tag.rssi), self._hop)
        self.sent.append(frame)
        self.tag_frames += 1
        wire = self.field.maybe_corrupt(frame)
        if wire != frame:
            self.corrupted_frames += 1
        if self.noise:
            wire += bytes(self._rng.choice(_NOISE) for _ in range(self.noise))
        return wire

    def _stop_rounds(self) -> None:
        for task in self._rounds:
            task.cancel()
        self._rounds.clear()


_NOISE = bytes(b for b in range(256) if b != p.HEAD)


async def _serve(args: argparse.Namespace) -> None:
    field = TagField(read_probability=args.read_probability, seed=None)
    for n in range(args.tags):
        field.place(os.urandom(12), antenna=n % args.antennas + 1)
    sim = R2000Simulator(field, link=args.link)
    path = sim.open()
    print(f"R2000 reader with {args.tags} tags on {path}")
    try:
        await asyncio.Event().wait()
    finally:
        sim.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tags", type=int, default=20)
    parser.add_argument("--antennas", type=int, default=1)
    parser.add_argument("--read-probability", type=float, default=0.95)
    parser.add_argument("--link", default=None, help="stable symlink to the pty, like udev")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
