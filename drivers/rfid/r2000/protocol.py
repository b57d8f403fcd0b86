"""Impinj R2000 serial protocol ("0xA0 frames"): frame codec and streaming parser.

Frame: ``A0 | Len | Addr | Cmd | Data... | Check`` where ``Len`` counts ``Addr`` through
``Check`` and ``Check`` is the two's complement of the byte sum, so the bytes of a whole valid
frame sum to 0 mod 256. There is no byte stuffing: the parser resynchronises on 0xA0 and
confirms a candidate with its ``Len`` and ``Check``. See PROTOCOLS.md section 1a.

Replies to 0x89 (real-time inventory) are told apart by the length of their data:
1 byte = error code, 7 = end of round, 5 = the older IND903 end of round, anything else a tag.
A tag's data is ``FreqAnt | PC(2) | EPC | RSSI`` (always an even length), so it never collides
with the odd-length control replies.

The parser is on the hot path (hundreds of tag frames per second per reader, and a benchmark
of >= 100,000/s on one core): ``feed`` walks a bytearray with an index, finds frame starts with
``bytearray.find`` and checks a frame with one C-level ``sum`` over a slice, so the in-sync
path has no per-byte Python loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drivers.rfid.reader import TagRead

HEAD = 0xA0
BROADCAST = 0xFF
MIN_LEN = 3  # Addr, Cmd, Check: a frame without data

CMD_RESET = 0x70
CMD_SET_BAUD = 0x71
CMD_GET_FIRMWARE = 0x72
CMD_SET_ADDRESS = 0x73
CMD_SET_WORK_ANTENNA = 0x74
CMD_GET_WORK_ANTENNA = 0x75
CMD_SET_OUTPUT_POWER = 0x76
CMD_GET_OUTPUT_POWER = 0x77
CMD_INVENTORY = 0x80
CMD_REALTIME_INVENTORY = 0x89

# Status codes, from the public "Serial Protocol User's Guide V2.38" as transcribed in open repos.
SUCCESS = 0x10
FAIL = 0x11
ANTENNA_MISSING = 0x22
TAG_INVENTORY_ERROR = 0x31
NO_TAG = 0x36
PARAMETER_INVALID = 0x41
ANTENNA_ID_OUT_OF_RANGE = 0x47
OUTPUT_POWER_OUT_OF_RANGE = 0x48

ERROR_NAMES = {
    SUCCESS: "success",
    FAIL: "command failed",
    0x20: "MCU reset error",
    0x21: "CW on error",
    ANTENNA_MISSING: "antenna missing",
    0x23: "write flash error",
    0x24: "read flash error",
    0x25: "set output power error",
    TAG_INVENTORY_ERROR: "tag inventory error",
    NO_TAG: "no tag",
    PARAMETER_INVALID: "parameter invalid",
    ANTENNA_ID_OUT_OF_RANGE: "antenna id out of range",
    OUTPUT_POWER_OUT_OF_RANGE: "output power out of range",
    0x52: "PLL lock fail",
    0x53: "RF chip fails to respond",
    0x54: "fail to achieve desired output power",
    0x57: "output power too low",
}

MAX_ANTENNAS = 4  # FreqAnt carries the antenna in 2 bits
MAX_POWER_DBM = 33

# Data lengths of the non-tag replies to 0x89.
ERROR_DATA_LEN = 1
ROUND_END_DATA_LEN = 7
LEGACY_ROUND_END_DATA_LEN = 5


def error_name(code: int) -> str:
    return f"0x{code:02X} {ERROR_NAMES.get(code, 'unknown error')}"


def checksum(data: bytes | bytearray | memoryview) -> int:
    """Two's complement of the byte sum, over ``A0`` through the last data byte."""
    return -sum(data) & 0xFF


def encode(address: int, cmd: int, data: bytes | bytearray = b"") -> bytes:
    """One frame, request or reply (they have the same shape)."""
    if not 0 <= address <= 0xFF or not 0 <= cmd <= 0xFF:
        raise ValueError(f"address and command are bytes, got {address}, {cmd}")
    if len(data) > 0xFF - MIN_LEN:
        raise ValueError(f"{len(data)} data bytes do not fit one frame")
    body = bytes((HEAD, len(data) + MIN_LEN, address, cmd)) + bytes(data)
    return body + bytes((checksum(body),))


def encode_realtime_inventory(address: int = BROADCAST, repeat: int = 1) -> bytes:
    """0x89 with a repeat count: the reader runs that many rounds and sends one end frame."""
    return encode(address, CMD_REALTIME_INVENTORY, bytes((repeat,)))


def encode_set_work_antenna(address: int, antenna: int) -> bytes:
    """0x74; ``antenna`` is 1-based here, 0-based on the wire."""
    check_antenna(antenna)
    return encode(address, CMD_SET_WORK_ANTENNA, bytes((antenna - 1,)))


def encode_set_output_power(address: int, dbm: int) -> bytes:
    """0x76 with one byte for every antenna, 0..33 dBm."""
    if not 0 <= dbm <= MAX_POWER_DBM:
        raise ValueError(f"R2000 output power is 0..{MAX_POWER_DBM} dBm, got {dbm}")
    return encode(address, CMD_SET_OUTPUT_POWER, bytes((dbm,)))


def check_antenna(antenna: int) -> None:
    if not 1 <= antenna <= MAX_ANTENNAS:
        raise ValueError(f"R2000 antennas are 1..{MAX_ANTENNAS}, got {antenna}")


def encode_tag(address: int, antenna: int, epc: bytes, rssi: int, freq: int = 0) -> bytes:
    """A 0x89 tag reply (what a reader sends; for simulators and tests)."""
    check_antenna(antenna)
    if len(epc) % 2 or len(epc) > 62:
        raise ValueError("an EPC is 0..31 whole 16-bit words")
    pc = (len(epc) // 2) << 11
    data = bytes(((freq << 2) | (antenna - 1), pc >> 8, pc & 0xFF)) + epc + bytes((rssi,))
    return encode(address, CMD_REALTIME_INVENTORY, data)


def encode_round_end(address: int, antenna: int, read_rate: int, total_reads: int) -> bytes:
    """The 7-byte end of a 0x89 round: ``AntID | ReadRate(2) | TotalRead(4)``, big-endian."""
    data = bytes((antenna - 1,)) + read_rate.to_bytes(2, "big") + total_reads.to_bytes(4, "big")
    return encode(address, CMD_REALTIME_INVENTORY, data)


def encode_legacy_round_end(address: int, antenna: int, total_reads: int) -> bytes:
    """The older IND903 end of round: ``Ant | Total(4)``."""
    data = bytes((antenna - 1,)) + total_reads.to_bytes(4, "big")
    return encode(address, CMD_REALTIME_INVENTORY, data)


@dataclass(frozen=True, slots=True)
class R2000Frame:
    """One valid frame that is not a tag read."""

    address: int
    cmd: int
    data: bytes
    raw: bytes

    @property
    def is_error(self) -> bool:
        """A one-byte reply whose byte is not SUCCESS: a status code reporting a failure."""
        return len(self.data) == 1 and self.data[0] != SUCCESS


@dataclass(frozen=True, slots=True)
class RoundEndFrame:
    """The end of one 0x89 round."""

    antenna: int
    """1-based (the wire carries the 0-based antenna id)."""
    read_rate: int | None
    """Tags per second; None in the IND903 form, which does not carry it."""
    total_reads: int


def is_inventory_end(frame: R2000Frame) -> bool:
    """A 0x89 reply that ends a round: end-of-round (either form) or an error code."""
    return frame.cmd == CMD_REALTIME_INVENTORY and len(frame.data) in (
        ERROR_DATA_LEN,
        ROUND_END_DATA_LEN,
        LEGACY_ROUND_END_DATA_LEN,
    )


def decode_round_end(frame: R2000Frame) -> RoundEndFrame | None:
    """The end-of-round of a 0x89 reply, or None if ``frame`` is not one."""
    data = frame.data
    if frame.cmd != CMD_REALTIME_INVENTORY:
        return None
    if len(data) == ROUND_END_DATA_LEN:
        return RoundEndFrame(
            data[0] + 1, int.from_bytes(data[1:3], "big"), int.from_bytes(data[3:7], "big")
        )
    if len(data) == LEGACY_ROUND_END_DATA_LEN:
        return RoundEndFrame(data[0] + 1, None, int.from_bytes(data[1:5], "big"))
    return None


TagHandler = Callable[[TagRead], None]
FrameHandler = Callable[[R2000Frame], None]
BytesHandler = Callable[[bytes], None]


def _ignore(_: object) -> None:
    return None


class R2000Parser:
    """Turns the byte stream from a reader into tag reads and other frames.

    - ``on_tag(TagRead)``: a 0x89 tag reply, decoded inline (no intermediate frame object);
    - ``on_frame(R2000Frame)``: every other valid frame;
    - ``on_corrupt(bytes)``: a candidate whose Check or Len does not add up (including a tag
      reply whose PC word disagrees with Len); the parser drops its 0xA0 and rescans;
    - ``on_garbage(bytes)``: bytes skipped while looking for 0xA0.

    A partial frame stays buffered until the rest arrives. A corrupted ``Len`` byte can make a
    candidate claim more bytes than the reader will ever send; ``flush()`` (called by the driver
    when the line has gone quiet) gives such a candidate up and rescans what it held.
    """

    __slots__ = ("_buf", "_on_corrupt", "_on_frame", "_on_garbage", "_on_tag")

    def __init__(
        self,
        on_tag: TagHandler,
        on_frame: FrameHandler | None = None,
        on_corrupt: BytesHandler | None = None,
        on_garbage: BytesHandler | None = None,
    ) -> None:
        self._on_tag = on_tag
        self._on_frame: FrameHandler = on_frame or _ignore
        self._on_corrupt: BytesHandler = on_corrupt or _ignore
        self._on_garbage: BytesHandler = on_garbage or _ignore
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def reset(self) -> None:
        """Drop a half-received frame (after a reconnect)."""
        self._buf.clear()

    def flush(self) -> None:
        """The line went quiet: nothing will complete the buffered candidate. Give it up as
        corrupt and rescan the bytes after its 0xA0 (they may hold whole frames)."""
        buf = self._buf
        while buf:
            self._on_corrupt(bytes(buf))
            del buf[:1]
            self._scan()

    def feed(self, data: bytes | bytearray) -> None:
        self._buf += data
        self._scan()

    def _scan(self) -> None:
        buf = self._buf
        n = len(buf)
        i = 0
        on_tag = self._on_tag
        try:
            while i < n:
                s = i
                if buf[s] != HEAD:
                    i = buf.find(HEAD, s)
                    if i < 0:
                        i = n
                    self._on_garbage(bytes(buf[s:i]))
                    continue
                if n - s < 2:
                    break
                length = buf[s + 1]
                end = s + 2 + length
                if length < MIN_LEN:
                    i = s + 1
                    self._on_corrupt(bytes(buf[s : s + 2]))  # a header no frame can have
                    continue
                if end > n:
                    break  # wait for the rest
                if sum(buf[s:end]) & 0xFF:
                    i = s + 1  # the real next frame may start inside the bad candidate
                    self._on_corrupt(bytes(buf[s:end]))
                    continue
                # Advance before calling out: a handler that raises never sees a frame twice.
                i = end
                data_len = length - MIN_LEN
                if buf[s + 3] == CMD_REALTIME_INVENTORY and data_len >= 4 and not data_len & 1:
                    # A tag: FreqAnt | PC(2) | EPC | RSSI. The EPC length from the PC word must
                    # agree with Len, or the frame is not what it claims to be.
                    if ((buf[s + 5] >> 3) << 1) + 4 != data_len:
                        self._on_corrupt(bytes(buf[s:end]))
                        continue
                    on_tag(
                        TagRead(
                            buf[s + 7 : end - 2].hex(),
                            (buf[s + 4] & 3) + 1,
                            buf[end - 2],
                            (buf[s + 5] << 8) | buf[s + 6],
                        )
                    )
                else:
                    self._on_frame(
                        R2000Frame(
                            buf[s + 2], buf[s + 3], bytes(buf[s + 4 : end - 1]), bytes(buf[s:end])
                        )
                    )
        finally:
            if i:
                del buf[:i]
