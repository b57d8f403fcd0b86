"""Family 2a, the widely copied "485 lock control board": frame codec and streaming parser.

Requests are ``Head Board Lock Func BCC`` with BCC = XOR of all preceding bytes. Replies are
5 bytes (``Head Board Lock Status BCC``), except the query-all reply, which is 7 bytes
(``80 bb S17-24 S9-16 S1-8 33 BCC``, one bit per lock). See PROTOCOLS.md section 2a.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import reduce

from drivers.stream import StreamBuffer

HEAD_QUERY = 0x80
HEAD_REPORT = 0x82
HEAD_UNLOCK = 0x8A
HEAD_BATCH_OPEN = 0x90
HEAD_POWER_ON = 0x9A
HEAD_POWER_OFF = 0x9B

FUNC_UNLOCK = 0x11
FUNC_QUERY = 0x33

STATUS_CLOSED = 0x11
STATUS_OPEN = 0x00

MIN_ADDRESS = 1
MAX_ADDRESS = 32
MAX_LOCKS = 24

SHORT_LEN = 5
QUERY_ALL_LEN = 7

# Heads a board sends; every other byte between frames is line noise.
REPLY_HEADS = frozenset({HEAD_QUERY, HEAD_REPORT, HEAD_UNLOCK})


def bcc(data: bytes | bytearray | memoryview) -> int:
    """XOR of all bytes."""
    return reduce(lambda acc, b: acc ^ b, bytes(data), 0)


def _with_bcc(*body: int) -> bytes:
    raw = bytes(body)
    return raw + bytes([bcc(raw)])


def check_address(address: int) -> None:
    if not MIN_ADDRESS <= address <= MAX_ADDRESS:
        raise ValueError(
            f"485-board address must be {MIN_ADDRESS}..{MAX_ADDRESS} (DIP switch), got {address}"
        )


def check_lock(lock: int, *, allow_all: bool = False) -> None:
    low = 0 if allow_all else 1
    if not low <= lock <= MAX_LOCKS:
        raise ValueError(f"485-board lock must be {low}..{MAX_LOCKS}, got {lock}")


def encode_unlock(address: int, lock: int) -> bytes:
    """``8A bb ll 11 BCC``; lock 0 opens every lock of the board."""
    check_address(address)
    check_lock(lock, allow_all=True)
    return _with_bcc(HEAD_UNLOCK, address, lock, FUNC_UNLOCK)


def encode_query(address: int, lock: int) -> bytes:
    """``80 bb ll 33 BCC``; lock 0 asks for every lock (7-byte reply)."""
    check_address(address)
    check_lock(lock, allow_all=True)
    return _with_bcc(HEAD_QUERY, address, lock, FUNC_QUERY)


def encode_query_all(address: int) -> bytes:
    return encode_query(address, 0)


def locks_to_mask(locks: Iterable[int]) -> int:
    """24-bit map, bit 0 = lock 1."""
    mask = 0
    for lock in locks:
        check_lock(lock)
        mask |= 1 << (lock - 1)
    return mask


def mask_bytes(mask: int) -> tuple[int, int, int]:
    """The wire order of a 24-bit map: locks 17-24, 9-16, 1-8."""
    return (mask >> 16) & 0xFF, (mask >> 8) & 0xFF, mask & 0xFF


def encode_batch_open(address: int, locks: Iterable[int]) -> bytes:
    """``90 bb m3 m2 m1 BCC`` where m3 covers locks 17-24 and m1 locks 1-8."""
    check_address(address)
    return _with_bcc(HEAD_BATCH_OPEN, address, *mask_bytes(locks_to_mask(locks)))


def encode_hold_power(address: int, lock: int, on: bool) -> bytes:
    """``9A bb ll 11 BCC`` keeps a lock powered, ``9B`` releases it."""
    check_address(address)
    check_lock(lock, allow_all=True)
    return _with_bcc(HEAD_POWER_ON if on else HEAD_POWER_OFF, address, lock, FUNC_UNLOCK)


def encode_status_frame(head: int, address: int, lock: int, locked: bool) -> bytes:
    """A 5-byte board frame: unlock reply (8A), query reply (80) or report (82)."""
    return _with_bcc(head, address, lock, STATUS_CLOSED if locked else STATUS_OPEN)


def encode_query_all_reply(
    address: int, locked: Mapping[int, bool], *, closed_bit: int = 1
) -> bytes:
    """``80 bb S17-24 S9-16 S1-8 33 BCC``; ``closed_bit`` is the bit value meaning locked."""
    mask = locks_to_mask(
        lock for lock, is_locked in locked.items() if is_locked == bool(closed_bit)
    )
    return _with_bcc(HEAD_QUERY, address, *mask_bytes(mask), FUNC_QUERY)


def status_locked(status: int) -> bool:
    """0x11 = closed, 0x00 = open; boards are not known to send anything else, so any other
    non-zero value is read as closed (the safe reading for a locker: it never claims a door
    is open that may be shut)."""
    return status != STATUS_OPEN


@dataclass(frozen=True, slots=True)
class Frame485:
    """One validated frame from a board."""

    head: int
    address: int
    lock: int  # 0 in a query-all reply
    status: int  # status byte of a 5-byte frame; 0 in a query-all reply
    mask: int | None  # 24-bit lock map (bit 0 = lock 1) of a query-all reply, else None
    raw: bytes

    @property
    def is_query_all(self) -> bool:
        return self.mask is not None

    @property
    def locked(self) -> bool:
        return status_locked(self.status)

    def locks(self, lock_count: int, *, closed_bit: int = 1) -> dict[int, bool]:
        """Lock number -> locked, from a query-all reply."""
        if self.mask is None:
            raise ValueError("not a query-all reply")
        return {
            lock: bool((self.mask >> (lock - 1)) & 1) == bool(closed_bit)
            for lock in range(1, lock_count + 1)
        }


def _valid_short(buf: bytearray) -> bool:
    return len(buf) >= SHORT_LEN and bcc(buf[: SHORT_LEN - 1]) == buf[SHORT_LEN - 1]


def _valid_long(buf: bytearray) -> bool:
    return (
        len(buf) >= QUERY_ALL_LEN
        and buf[5] == FUNC_QUERY
        and bcc(buf[: QUERY_ALL_LEN - 1]) == buf[QUERY_ALL_LEN - 1]
    )


class Parser485(StreamBuffer):
    """Turns the byte stream from the bus into frames.

    Bytes that cannot start a frame are skipped (``on_garbage``); a frame with a bad BCC is
    reported (``on_corrupt``) and the parser resynchronises on the next head byte; a partial
    frame stays buffered until the rest arrives or ``clear()`` drops it.
    """

    def __init__(
        self,
        on_corrupt: Callable[[bytes], None] | None = None,
        on_garbage: Callable[[bytes], None] | None = None,
    ) -> None:
        super().__init__(on_corrupt, on_garbage)
        # A 0x80 reply is 5 or 7 bytes; knowing a query-all is outstanding lets the parser wait
        # for the long form instead of taking a coincidentally valid 5-byte prefix.
        self.expect_query_all = False

    def feed(self, data: bytes) -> list[Frame485]:
        self._buf += data
        frames: list[Frame485] = []
        while True:
            self._skip_garbage()
            if not self._buf:
                break
            size = self._frame_size()
            if size is None:
                break  # wait for more bytes
            if size == 0:
                self._corrupt()
                continue
            raw = bytes(self._buf[:size])
            del self._buf[:size]
            frames.append(_decode(raw))
        return frames

    def _skip_garbage(self) -> None:
        start = 0
        while start < len(self._buf) and self._buf[start] not in REPLY_HEADS:
            start += 1
        if start:
            junk = bytes(self._buf[:start])
            del self._buf[:start]
            if self._on_garbage is not None:
                self._on_garbage(junk)

    def _frame_size(self) -> int | None:
        """Length of the valid frame at the head of the buffer, None = incomplete, 0 = corrupt."""
        buf = self._buf
        if buf[0] != HEAD_QUERY:
            if len(buf) < SHORT_LEN:
                return None
            return SHORT_LEN if _valid_short(buf) else 0
        if _valid_long(buf):
            return QUERY_ALL_LEN
        if len(buf) < SHORT_LEN or (self.expect_query_all and len(buf) < QUERY_ALL_LEN):
            return None
        if _valid_short(buf):
            return SHORT_LEN
        if len(buf) >= QUERY_ALL_LEN:
            return 0
        # A short reply was asked for and these bytes fail as one: call them corrupt now unless
        # a long frame is visibly arriving (sixth byte 0x33), rather than stall until 7 bytes.
        return None if len(buf) == SHORT_LEN + 1 and buf[5] == FUNC_QUERY else 0

    def _corrupt(self) -> None:
        long = self._buf[0] == HEAD_QUERY and self.expect_query_all
        size = QUERY_ALL_LEN if long else SHORT_LEN
        bad = bytes(self._buf[:size])
        # Drop only the head byte: the real next frame may start inside the bad candidate.
        del self._buf[:1]
        if self._on_corrupt is not None:
            self._on_corrupt(bad)


def _decode(raw: bytes) -> Frame485:
    if len(raw) == QUERY_ALL_LEN:
        mask = (raw[2] << 16) | (raw[3] << 8) | raw[4]
        return Frame485(head=raw[0], address=raw[1], lock=0, status=0, mask=mask, raw=raw)
    return Frame485(head=raw[0], address=raw[1], lock=raw[2], status=raw[3], mask=None, raw=raw)
