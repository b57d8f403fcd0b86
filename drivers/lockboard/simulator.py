"""Lock boards on a pseudo-terminal: the device side of families 2a and 2b, with doors and faults.

The driver opens ``sim.port`` like a real ``/dev/ttyUSB0``. The simulator parses request bytes as
a board would, answers with the same codec, and models doors (open on unlock, close on
``close_door``), stuck latches, forced doors and line faults.

Run ``python -m drivers.lockboard.simulator --family 485-board --boards 1:24,2:24
--link /tmp/ttyLOCK0`` to serve boards until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass

from drivers.pty import PseudoSerialPort

from . import protocol_485 as p485
from . import protocol_kerong as pk
from .common import BoardFamily

logger = logging.getLogger(__name__)

UnlockListener = Callable[[int, int], None]
FrameListener = Callable[[bytes], None]

# Lengths of 2a requests by head; anything else on the line is skipped byte by byte.
_REQUEST_LEN_485 = {
    p485.HEAD_UNLOCK: 5,
    p485.HEAD_QUERY: 5,
    p485.HEAD_BATCH_OPEN: 6,
    p485.HEAD_POWER_ON: 5,
    p485.HEAD_POWER_OFF: 5,
}
# Kerong requests are 5 bytes, more for commands with data (0x37, 0x39): try each length.
_KERONG_LENGTHS = range(5, 10)


@dataclass
class _Fault:
    remaining: int | None  # None = until cleared

    def take(self) -> bool:
        if self.remaining is None:
            return True
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


class LockBoardSimulator:
    """One RS-485 bus of simulated lock boards of one family."""

    def __init__(
        self,
        family: BoardFamily,
        boards: dict[int, int],
        *,
        link: str | None = None,
        unsolicited_reports: bool = False,
        open_delay: float = 0.0,
        auto_close_after: float | None = None,
        query_all_closed_bit: int = 1,
    ) -> None:
        self.family = BoardFamily(family)
        max_locks = p485.MAX_LOCKS if self.family is BoardFamily.BOARD_485 else pk.MAX_LOCKS
        for address, count in boards.items():
            if self.family is BoardFamily.BOARD_485:
                p485.check_address(address)
            else:
                pk.check_address(address)
            if not 1 <= count <= max_locks:
                raise ValueError(f"board {address}: lock count must be 1..{max_locks}")
        self.boards = dict(boards)
        self.unsolicited_reports = unsolicited_reports
        self.open_delay = open_delay
        self.auto_close_after = auto_close_after
        self.query_all_closed_bit = query_all_closed_bit
        # Command byte of Kerong replies; sources disagree (0x30 or 0x35 for status).
        self.status_reply_cmd = pk.CMD_STATUS
        self.unlock_reply_cmd = pk.CMD_UNLOCK
        self.unlock_log: list[tuple[int, int]] = []
        self.frames_received: list[bytes] = []  # well-formed requests, in order
        self.frames_sent: list[bytes] = []  # every write to the line, as written
        self._open: set[tuple[int, int]] = set()
        self._stuck: set[tuple[int, int]] = set()
        self._items: set[tuple[int, int]] = set()
        self._unlock_listeners: list[UnlockListener] = []
        self._frame_listeners: list[FrameListener] = []
        self._buf = bytearray()
        self._timers: set[asyncio.TimerHandle] = set()
        self._held: list[bytes] = []  # late replies waiting for the next reply
        self._late_delay: float | None = None
        self._no_reply: _Fault | None = None
        self._corrupt: _Fault | None = None
        self._garbage: _Fault | None = None
        self._partial: _Fault | None = None
        self._late: _Fault | None = None
        self._rng = random.Random()  # noqa: S311 - line noise, not security
        self._pty = PseudoSerialPort(self._on_data, link)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> str:
        return self._pty.open()

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._pty.close()

    @property
    def port(self) -> str:
        return self._pty.path

    def unplug(self) -> None:
        self._buf.clear()
        self._pty.unplug()

    def replug(self) -> str:
        self._buf.clear()
        return self._pty.replug()

    # -- doors ------------------------------------------------------------------------------

    def is_open(self, address: int, lock: int) -> bool:
        return (address, lock) in self._open

    def close_door(self, address: int, lock: int) -> None:
        self._set_door(address, lock, is_open=False)

    def force_open(self, address: int, lock: int) -> None:
        """A door opened without an unlock command (forced, or a latch failure)."""
        self._set_door(address, lock, is_open=True)

    def set_stuck(self, address: int, lock: int, stuck: bool) -> None:
        """A stuck latch: unlock is acknowledged but the door stays closed."""
        self._check(address, lock)
        if stuck:
            self._stuck.add((address, lock))
        else:
            self._stuck.discard((address, lock))

    def set_item(self, address: int, lock: int, present: bool) -> None:
        """Kerong infrared sensor: something lies in the compartment."""
        self._check(address, lock)
        if present:
            self._items.add((address, lock))
        else:
            self._items.discard((address, lock))

    def add_unlock_listener(self, cb: UnlockListener) -> None:
        self._unlock_listeners.append(cb)

    def add_frame_listener(self, cb: FrameListener) -> None:
        """Every well-formed request frame, as received."""
        self._frame_listeners.append(cb)

    # -- faults (each applies to the next ``count`` replies) --------------------------------

    def fault_no_reply(self, count: int | None = None) -> None:
        """Swallow replies; None = until ``clear_faults``."""
        self._no_reply = _Fault(count)

    def fault_corrupt_checksum(self, count: int = 1) -> None:
        self._corrupt = _Fault(count)

    def fault_garbage(self, count: int = 1) -> None:
        """Line noise (bytes that cannot start a frame) before the reply."""
        self._garbage = _Fault(count)

    def fault_partial(self, count: int = 1) -> None:
        """Send only the first half of the reply."""
        self._partial = _Fault(count)

    def fault_late_reply(self, delay: float | None = None, count: int = 1) -> None:
        """Hold the reply back: sent after ``delay`` seconds, or with None just before the next
        reply (so it reaches the driver while the next request is waiting)."""
        self._late = _Fault(count)
        self._late_delay = delay

    def clear_faults(self) -> None:
        self._no_reply = self._corrupt = self._garbage = self._partial = self._late = None

    # -- internals --------------------------------------------------------------------------

    def _check(self, address: int, lock: int) -> None:
        count = self.boards.get(address)
        if count is None:
            raise ValueError(f"no simulated board at address {address}")
        if not 1 <= lock <= count:
            raise ValueError(f"board {address} has locks 1..{count}, not {lock}")

    def _set_door(self, address: int, lock: int, *, is_open: bool) -> None:
        self._check(address, lock)
        key = (address, lock)
        if (key in self._open) == is_open:
            return
        if is_open:
            self._open.add(key)
            if self.auto_close_after is not None:
                self._later(self.auto_close_after, lambda: self.close_door(address, lock))
        else:
            self._open.discard(key)
        if self.unsolicited_reports and self.family is BoardFamily.BOARD_485:
            self._send(
                p485.encode_status_frame(p485.HEAD_REPORT, address, lock, locked=not is_open),
                reply=False,
            )

    def _later(self, delay: float, action: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            action()

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def _unlock(self, address: int, lock: int) -> None:
        self.unlock_log.append((address, lock))
        for cb in list(self._unlock_listeners):
            try:
                cb(address, lock)
            except Exception:
                logger.exception("unlock listener failed")
        if (address, lock) in self._stuck:
            return
        if self.open_delay > 0:
            self._later(self.open_delay, lambda: self.force_open(address, lock))
        else:
            self.force_open(address, lock)

    def _on_data(self, data: bytes) -> None:
        self._buf += data
        try:
            if self.family is BoardFamily.BOARD_485:
                self._parse_485()
            else:
                self._parse_kerong()
        except Exception:
            logger.exception("simulator failed on %s", bytes(self._buf).hex(" "))
            self._buf.clear()

    def _received(self, raw: bytes) -> None:
        self.frames_received.append(raw)
        for cb in list(self._frame_listeners):
            cb(raw)

    def _parse_485(self) -> None:
        buf = self._buf
        while buf:
            size = _REQUEST_LEN_485.get(buf[0])
            if size is None:
                del buf[:1]
                continue
            if len(buf) < size:
                return
            raw = bytes(buf[:size])
            if p485.bcc(raw[:-1]) != raw[-1]:
                logger.warning("simulator: bad BCC in request %s", raw.hex(" "))
                del buf[:1]
                continue
            del buf[:size]
            self._received(raw)
            self._handle_485(raw)

    def _handle_485(self, raw: bytes) -> None:
        head, address = raw[0], raw[1]
        count = self.boards.get(address)
        if count is None:
            return  # no board answers at this address
        if head == p485.HEAD_BATCH_OPEN:
            mask = (raw[2] << 16) | (raw[3] << 8) | raw[4]
            for lock in range(1, count + 1):
                if mask >> (lock - 1) & 1:
                    self._unlock(address, lock)
            return
        lock = raw[2]
        if head == p485.HEAD_UNLOCK:
            if lock == 0:
                for each in range(1, count + 1):
                    self._unlock(address, each)
                self._send(p485.encode_status_frame(head, address, 0, locked=False))
            elif lock <= count:
                self._unlock(address, lock)
                self._send(
                    p485.encode_status_frame(
                        head, address, lock, locked=not self.is_open(address, lock)
                    )
                )
        elif head == p485.HEAD_QUERY:
            if lock == 0:
                locked = {n: not self.is_open(address, n) for n in range(1, count + 1)}
                self._send(
                    p485.encode_query_all_reply(
                        address, locked, closed_bit=self.query_all_closed_bit
                    )
                )
            elif lock <= count:
                self._send(
                    p485.encode_status_frame(
                        head, address, lock, locked=not self.is_open(address, lock)
                    )
                )
        # 9A/9B hold power: no documented reply; a simulated latch has nothing to hold.

    def _parse_kerong(self) -> None:
        buf = self._buf
        while buf:
            if buf[0] != pk.STX:
                del buf[:1]
                continue
            size = next(
                (
                    n
                    for n in _KERONG_LENGTHS
                    if len(buf) >= n
                    and buf[n - 2] == pk.ETX
                    and pk.checksum(buf[: n - 1]) == buf[n - 1]
                ),
                None,
            )
            if size is None:
                if len(buf) < max(_KERONG_LENGTHS):
                    return  # maybe still arriving
                logger.warning("simulator: bad request %s", bytes(buf[:5]).hex(" "))
                del buf[:1]
                continue
            raw = bytes(buf[:size])
            del buf[:size]
            self._received(raw)
            self._handle_kerong(raw)

    def _handle_kerong(self, raw: bytes) -> None:
        addr, cmd = raw[1], raw[2]
        address, index = addr >> 4, addr & 0x0F
        count = self.boards.get(address)
        if count is None:
            return
        if cmd == pk.CMD_UNLOCK:
            if index + 1 > count:
                return
            self._unlock(address, index + 1)
            self._send(self._kerong_status(addr, self.unlock_reply_cmd))
        elif cmd == pk.CMD_UNLOCK_ALL:
            for lock in range(1, count + 1):
                self._unlock(address, lock)
            self._send(self._kerong_status(addr, self.unlock_reply_cmd))
        elif cmd == pk.CMD_STATUS:
            self._send(self._kerong_status(addr, self.status_reply_cmd))

    def _kerong_status(self, addr: int, cmd: int) -> bytes:
        address = addr >> 4
        hooks = ir = 0
        for lock in range(1, self.boards[address] + 1):
            if not self.is_open(address, lock):
                hooks |= 1 << (lock - 1)
            if (address, lock) in self._items:
                ir |= 1 << (lock - 1)
        return pk.encode_status_reply(addr, cmd, hooks, ir)

    def _noise(self) -> bytes:
        # Bytes no parser can take for a frame start: below 0x80 (2a heads) and not STX.
        return bytes(self._rng.choice(range(0x04, 0x80)) for _ in range(self._rng.randint(1, 6)))

    def _send(self, frame: bytes, *, reply: bool = True) -> None:
        if not reply:
            self._write(frame)  # reports are not subject to reply faults
            return
        if self._no_reply is not None and self._no_reply.take():
            logger.info("simulator: swallowed reply %s", frame.hex(" "))
            return
        if self._corrupt is not None and self._corrupt.take():
            frame = frame[:-1] + bytes([frame[-1] ^ 0x5A])
        if self._partial is not None and self._partial.take():
            frame = frame[: len(frame) // 2]
        if self._garbage is not None and self._garbage.take():
            frame = self._noise() + frame
        if self._late is not None and self._late.take():
            if self._late_delay is None:
                self._held.append(frame)
            else:
                self._later(self._late_delay, lambda: self._write(frame))
            return
        held, self._held = self._held, []
        self._write(b"".join(held) + frame)

    def _write(self, data: bytes) -> None:
        if self._pty.plugged:
            self.frames_sent.append(data)
        self._pty.write(data)


def _parse_boards(text: str) -> dict[int, int]:
    boards: dict[int, int] = {}
    for item in text.split(","):
        address, _, count = item.partition(":")
        boards[int(address, 0)] = int(count or 24)
    return boards


async def _serve(args: argparse.Namespace) -> None:
    sim = LockBoardSimulator(
        BoardFamily(args.family),
        _parse_boards(args.boards),
        link=args.link,
        unsolicited_reports=args.reports,
        open_delay=args.open_delay,
        auto_close_after=args.auto_close_after,
    )
    path = await sim.start()
    sim.add_unlock_listener(lambda a, lock: print(f"unlock board {a} lock {lock}", flush=True))
    print(path, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve simulated lock boards on a pty.")
    parser.add_argument("--family", choices=[f.value for f in BoardFamily], default="485-board")
    parser.add_argument("--boards", default="1:24", help="address:locks,... e.g. 1:24,2:24")
    parser.add_argument(
        "--link", default=None, help="stable symlink to the pty, e.g. /tmp/ttyLOCK0"
    )
    parser.add_argument("--reports", action="store_true", help="2a: send 0x82 on door changes")
    parser.add_argument("--open-delay", type=float, default=0.0)
    parser.add_argument("--auto-close-after", type=float, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
