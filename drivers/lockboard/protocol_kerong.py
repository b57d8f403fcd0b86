"""Family 2b, Kerong KR-CU16 / CU12: frame codec and streaming parser.

Requests are ``02 ADDR CMD 03 SUM`` (SUM = sum of the preceding bytes & 0xFF); ADDR carries the
board in the high nibble and the lock index (0..15, lock 1 = index 0) in the low nibble. A board
answers with the 9-byte status frame ``02 ADDR CMD H1-8 H9-16 IR1-8 IR9-16 03 SUM``. See
PROTOCOLS.md section 2b.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.stream import StreamBuffer

STX = 0x02
ETX = 0x03

CMD_STATUS = 0x30
CMD_UNLOCK = 0x31
CMD_STATUS_ALL = 0x32
CMD_UNLOCK_ALL = 0x33
CMD_STATUS_ALT = 0x35  # some sources give 0x35 as the status reply's command byte
CMD_UNLOCK_TIME = 0x37
CMD_DELAYED_UNLOCK = 0x39
CMD_BAUD = 0x40

STATUS_REPLY_CMDS = frozenset({CMD_STATUS, CMD_STATUS_ALT})
REPLY_CMDS = STATUS_REPLY_CMDS | {CMD_UNLOCK}

MAX_ADDRESS = 15
MAX_LOCKS = 16

REQUEST_LEN = 5
STATUS_LEN = 9


def checksum(data: bytes | bytearray | memoryview) -> int:
    """Sum of all bytes, modulo 256."""
    return sum(bytes(data)) & 0xFF


def _with_sum(*body: int) -> bytes:
    raw = bytes(body)
    return raw + bytes([checksum(raw)])


def check_address(address: int) -> None:
    if not 0 <= address <= MAX_ADDRESS:
        raise ValueError(f"Kerong board address must be 0..{MAX_ADDRESS}, got {address}")


def check_lock(lock: int) -> None:
    if not 1 <= lock <= MAX_LOCKS:
        raise ValueError(f"Kerong lock must be 1..{MAX_LOCKS}, got {lock}")


def encode_addr(address: int, index: int = 0) -> int:
    return ((address & 0x0F) << 4) | (index & 0x0F)


def encode_request(address: int, cmd: int, index: int = 0) -> bytes:
    check_address(address)
    return _with_sum(STX, encode_addr(address, index), cmd, ETX)


def encode_status(address: int) -> bytes:
    """``02 A0 30 03 SUM``: status of every lock of one board."""
    return encode_request(address, CMD_STATUS)


def encode_unlock(address: int, lock: int) -> bytes:
    """``02 A(l-1) 31 03 SUM``; lock is 1-based, the wire carries the index."""
    check_lock(lock)
    return encode_request(address, CMD_UNLOCK, lock - 1)


def encode_status_reply(addr: int, cmd: int, hooks: int, ir: int) -> bytes:
    """9-byte status frame; ``hooks``/``ir`` are 16-bit maps with bit 0 = lock 1."""
    return _with_sum(
        STX, addr & 0xFF, cmd, hooks & 0xFF, (hooks >> 8) & 0xFF, ir & 0xFF, (ir >> 8) & 0xFF, ETX
    )


@dataclass(frozen=True, slots=True)
class KerongFrame:
    """A validated 9-byte status frame."""

    addr: int
    cmd: int
    hooks: int  # bit 0 = lock 1, set = locked
    ir: int  # bit 0 = lock 1, set = item present
    raw: bytes

    @property
    def address(self) -> int:
        return self.addr >> 4

    @property
    def index(self) -> int:
        return self.addr & 0x0F

    def locked(self, lock: int) -> bool:
        return bool((self.hooks >> (lock - 1)) & 1)

    def item_present(self, lock: int) -> bool:
        return bool((self.ir >> (lock - 1)) & 1)


def _valid(buf: bytearray) -> bool:
    return buf[STATUS_LEN - 2] == ETX and checksum(buf[: STATUS_LEN - 1]) == buf[STATUS_LEN - 1]


class KerongParser(StreamBuffer):
    """Turns the byte stream from the bus into status frames.

    Bytes before an STX are skipped (``on_garbage``); a 9-byte candidate with a bad ETX/SUM is
    reported (``on_corrupt``) and the parser resynchronises on the next STX; a partial frame
    stays buffered until complete or ``clear()``.
    """

    def feed(self, data: bytes) -> list[KerongFrame]:
        self._buf += data
        frames: list[KerongFrame] = []
        while True:
            start = self._buf.find(STX)
            junk_len = len(self._buf) if start < 0 else start
            if junk_len:
                junk = bytes(self._buf[:junk_len])
                del self._buf[:junk_len]
                if self._on_garbage is not None:
                    self._on_garbage(junk)
            if len(self._buf) < STATUS_LEN:
                break
            if not _valid(self._buf):
                bad = bytes(self._buf[:STATUS_LEN])
                # Resync from the next byte: STX may legitimately occur inside the candidate.
                del self._buf[:1]
                if self._on_corrupt is not None:
                    self._on_corrupt(bad)
                continue
            raw = bytes(self._buf[:STATUS_LEN])
            del self._buf[:STATUS_LEN]
            hooks = raw[3] | (raw[4] << 8)
            ir = raw[5] | (raw[6] << 8)
            frames.append(KerongFrame(addr=raw[1], cmd=raw[2], hooks=hooks, ir=ir, raw=raw))
        return frames
