"""Chafon / UHFReader18 serial protocol (PROTOCOLS.md section 1b): frame codec and stream parser.

A frame is ``Len | Adr | Cmd | Data | CRC_L CRC_H``: ``Len`` counts every byte after itself, the
CRC is CRC-16/MCRF4XX over ``Len .. Data``, low byte first. A reply carries a status byte after
the command: ``Len | Adr | reCmd | Status | Data | CRC``.

There is no start byte, so any byte on the line may be a ``Len``. The parser finds frames by
trying offsets and confirming each candidate with its length and CRC; see ``ChafonParser``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

BROADCAST = 0xFF
DEFAULT_ADDRESS = 0x00
DEFAULT_BAUDRATE = 57600

CMD_INVENTORY = 0x01
CMD_READ = 0x02
CMD_WRITE = 0x03
CMD_WRITE_EPC = 0x04
CMD_READER_INFO = 0x21
CMD_SET_POWER = 0x2F
CMD_ERROR = 0x00
"""reCmd of the generic error reply some firmware sends to a command it cannot parse."""

COMMANDS = frozenset(
    {CMD_INVENTORY, CMD_READ, CMD_WRITE, CMD_WRITE_EPC, CMD_READER_INFO, CMD_SET_POWER}
)
"""Commands the parser takes as the sign of a (damaged) frame when accounting dropped bytes.
0x00 is left out: it is also the usual address, the byte after a reply's Len."""

STATUS_OK = 0x00
STATUS_FINISHED = 0x01
STATUS_TIME_OVERFLOW = 0x02
STATUS_MORE_FRAMES = 0x03
STATUS_BUFFER_FULL = 0x04
STATUS_ANTENNA_ERROR = 0xF8
STATUS_NO_TAG = 0xFB
""""No tag operable": some firmware answers an empty field with this instead of 0x01/Num 0."""
STATUS_ILLEGAL_COMMAND = 0xFE
STATUS_PARAMETER_ERROR = 0xFF

INVENTORY_STATUSES = frozenset(
    {STATUS_FINISHED, STATUS_TIME_OVERFLOW, STATUS_MORE_FRAMES, STATUS_BUFFER_FULL}
)
"""Inventory replies that carry ``Num | (EpcLen | EPC)...``; all but 0x03 end the round."""

MIN_POWER_DBM = 0
MAX_POWER_DBM = 30

REQUEST_MIN_LEN = 4  # Adr Cmd CRC CRC
REPLY_MIN_LEN = 5  # Adr reCmd Status CRC CRC
MAX_FRAME = 256  # Len is one byte: at most 255 bytes follow it
MAX_EPC = 62  # 31 words, the most a PC word can announce


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/MCRF4XX: reflected poly 0x8408, init 0xFFFF, no final XOR (table driven: the
    parser runs it at many offsets while resynchronising)."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def _check_byte(name: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{name} must be 0..255, got {value}")


def _frame(address: int, cmd: int, body: bytes) -> bytes:
    _check_byte("address", address)
    _check_byte("command", cmd)
    length = 2 + len(body) + 2  # Adr Cmd body CRC_L CRC_H
    if length > 0xFF:
        raise ValueError(f"frame too long: Len would be {length}")
    raw = bytes([length, address, cmd]) + body
    crc = crc16(raw)
    return raw + bytes([crc & 0xFF, crc >> 8])


def encode_request(address: int, cmd: int, data: bytes = b"") -> bytes:
    """``Len | Adr | Cmd | Data | CRC_L CRC_H``."""
    return _frame(address, cmd, bytes(data))


def encode_reply(address: int, cmd: int, status: int, data: bytes = b"") -> bytes:
    """``Len | Adr | reCmd | Status | Data | CRC_L CRC_H``."""
    _check_byte("status", status)
    return _frame(address, cmd, bytes([status]) + bytes(data))


def encode_inventory(address: int = DEFAULT_ADDRESS) -> bytes:
    """Inventory on the reader's antenna: ``04 00 01 DB 4B`` at address 0."""
    return encode_request(address, CMD_INVENTORY)


def encode_reader_info(address: int = DEFAULT_ADDRESS) -> bytes:
    return encode_request(address, CMD_READER_INFO)


def encode_set_power(address: int, dbm: int) -> bytes:
    """RF output power, one byte in dBm (0..30 on UHFReader18)."""
    if not MIN_POWER_DBM <= dbm <= MAX_POWER_DBM:
        raise ValueError(f"power must be {MIN_POWER_DBM}..{MAX_POWER_DBM} dBm, got {dbm}")
    return encode_request(address, CMD_SET_POWER, bytes([dbm]))


def encode_inventory_data(epcs: Sequence[bytes]) -> bytes:
    """``Num | (EpcLen | EPC)...``."""
    if len(epcs) > 0xFF:
        raise ValueError("at most 255 EPCs in one frame")
    out = bytearray([len(epcs)])
    for epc in epcs:
        if not 0 < len(epc) <= MAX_EPC:
            raise ValueError(f"EPC length must be 1..{MAX_EPC} bytes, got {len(epc)}")
        out.append(len(epc))
        out += epc
    return bytes(out)


def decode_inventory_data(data: bytes) -> list[bytes]:
    """The EPCs of an inventory reply; ValueError when ``Num`` and the lengths do not add up."""
    if not data:
        raise ValueError("inventory data is empty (no Num byte)")
    count, pos = data[0], 1
    epcs: list[bytes] = []
    for _ in range(count):
        if pos >= len(data):
            raise ValueError(f"inventory data ends after {len(epcs)} of {count} EPCs")
        size = data[pos]
        if size == 0 or pos + 1 + size > len(data):
            raise ValueError(f"EPC {len(epcs) + 1}: length {size} does not fit the frame")
        epcs.append(bytes(data[pos + 1 : pos + 1 + size]))
        pos += 1 + size
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} bytes left over after {count} EPCs")
    return epcs


def encode_inventory_replies(
    address: int,
    epcs: Iterable[bytes],
    *,
    final_status: int = STATUS_FINISHED,
    max_frame: int = 255,
) -> list[bytes]:
    """One inventory round as the reader sends it: frames with status 0x03 (more frames follow)
    while the EPCs do not fit one frame of at most ``max_frame`` bytes, then one frame with
    ``final_status``. An empty field is a single ``final_status`` frame with Num 0."""
    budget = max_frame - 1 - REPLY_MIN_LEN - 1  # bytes of (EpcLen | EPC) pairs per frame
    batches: list[list[bytes]] = [[]]
    used = 0
    for epc in epcs:
        if 1 + len(epc) > budget:
            raise ValueError(f"an EPC of {len(epc)} bytes does not fit a {max_frame}-byte frame")
        if used + 1 + len(epc) > budget:
            batches.append([])
            used = 0
        batches[-1].append(epc)
        used += 1 + len(epc)
    last = len(batches) - 1
    return [
        encode_reply(
            address,
            CMD_INVENTORY,
            final_status if i == last else STATUS_MORE_FRAMES,
            encode_inventory_data(batch),
        )
        for i, batch in enumerate(batches)
    ]


@dataclass(frozen=True, slots=True)
class ReaderInfo:
    """Reply to 0x21: ``Version(2) | Type | Tr_Type | dmaxfre | dminfre | Power | Scntm``.

    Newer models append more bytes; they are kept in ``extra``."""

    version: tuple[int, int]
    reader_type: int
    """0x09 UHFReader18, 0x0C UHFReader288M, 0x0F/0x10 UHFReader86."""
    protocols: int
    """Bit 1: ISO 18000-6C (EPC Gen2), bit 0: 18000-6B."""
    max_frequency: int
    min_frequency: int
    power: int
    """dBm."""
    scan_time: int
    """Inventory time limit in units of 100 ms."""
    extra: bytes = b""

    @property
    def band(self) -> int:
        """Frequency band code from the top two bits of dmaxfre and dminfre."""
        return ((self.max_frequency >> 6) << 2) | (self.min_frequency >> 6)

    def encode(self) -> bytes:
        return (
            bytes(
                [
                    *self.version,
                    self.reader_type,
                    self.protocols,
                    self.max_frequency,
                    self.min_frequency,
                    self.power,
                    self.scan_time,
                ]
            )
            + self.extra
        )

    @classmethod
    def decode(cls, data: bytes) -> ReaderInfo:
        if len(data) < 8:
            raise ValueError(f"reader info needs 8 bytes, got {len(data)}")
        return cls(
            version=(data[0], data[1]),
            reader_type=data[2],
            protocols=data[3],
            max_frequency=data[4],
            min_frequency=data[5],
            power=data[6],
            scan_time=data[7],
            extra=bytes(data[8:]),
        )


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame whose length and CRC add up. ``body`` is everything between Cmd and CRC."""

    address: int
    cmd: int
    body: bytes
    raw: bytes

    @property
    def status(self) -> int:
        """Status byte of a reply (first body byte)."""
        return self.body[0] if self.body else -1

    @property
    def data(self) -> bytes:
        """Data of a reply (after the status byte)."""
        return self.body[1:]


def decode_frame(raw: bytes) -> Frame:
    """A complete, CRC-checked frame; ValueError if it is not one."""
    if len(raw) < 1 + REQUEST_MIN_LEN or raw[0] != len(raw) - 1:
        raise ValueError(f"bad frame length: {raw.hex(' ')}")
    if crc16(raw[:-2]) != raw[-2] | (raw[-1] << 8):
        raise ValueError(f"bad CRC: {raw.hex(' ')}")
    return Frame(address=raw[1], cmd=raw[2], body=bytes(raw[3:-2]), raw=bytes(raw))


_INCOMPLETE = 0
_INVALID = -1


class ChafonParser:
    """Turns a byte stream into frames, resynchronising without a start byte.

    At each offset the byte there is taken for ``Len``: a candidate is valid when the ``Len``
    bytes after it are all there and the CRC matches. When the candidate at the head of the
    buffer cannot be a frame, bytes are dropped up to the next offset that is a valid frame or
    could still become one; a head candidate still waiting for bytes is given up as soon as a
    complete valid frame shows up later in the buffer (it was a stray byte with a large value,
    not a frame). So a real frame is never skipped, and the buffer never holds more than one
    frame's worth of bytes while it waits.

    Dropped bytes are reported as a corrupt frame when they start with a plausible header (a
    known command or the expected address; one flipped bit leaves one of the two intact), as
    garbage otherwise.
    """

    def __init__(
        self,
        *,
        min_length: int = REPLY_MIN_LEN,
        address: int | None = None,
        commands: frozenset[int] = COMMANDS,
        on_corrupt: Callable[[bytes], None] | None = None,
        on_garbage: Callable[[bytes], None] | None = None,
    ) -> None:
        self._buf = bytearray()
        self._min = min_length
        self._address = address
        self._commands = commands
        self._on_corrupt = on_corrupt
        self._on_garbage = on_garbage
        self._shadow = 0  # bytes ahead that belong to a corrupt frame already reported

    @property
    def pending(self) -> bytes:
        return bytes(self._buf)

    def clear(self) -> bytes:
        """Drop buffered bytes (after a reconnect); returns them."""
        dropped = bytes(self._buf)
        self._buf.clear()
        self._shadow = 0
        return dropped

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        return list(self._frames())

    def _frames(self) -> Iterator[Frame]:
        buf = self._buf
        while buf:
            size = self._candidate(0)
            if size > 0:
                raw = bytes(buf[:size])
                del buf[:size]
                self._shadow = 0
                yield Frame(address=raw[1], cmd=raw[2], body=raw[3:-2], raw=raw)
                continue
            end = len(buf)
            if size == _INCOMPLETE:
                nxt = next((i for i in range(1, end) if self._candidate(i) > 0), None)
            else:
                nxt = next((i for i in range(1, end) if self._candidate(i) >= 0), None)
            if nxt is None:
                if size == _INCOMPLETE:
                    return  # wait for the rest
                nxt = end
            self._drop(nxt)

    def _candidate(self, i: int) -> int:
        """Size of the valid frame at offset i, _INCOMPLETE or _INVALID."""
        buf = self._buf
        length = buf[i]
        if length < self._min:
            return _INVALID
        end = i + length + 1
        if end > len(buf):
            return _INCOMPLETE
        if crc16(memoryview(buf)[i : end - 2]) != buf[end - 2] | (buf[end - 1] << 8):
            return _INVALID
        return length + 1

    def _plausible(self) -> bool:
        buf = self._buf
        if buf[0] < self._min:
            return False
        address_ok = len(buf) > 1 and self._address is not None and buf[1] == self._address
        command_ok = len(buf) > 2 and buf[2] in self._commands
        return address_ok or command_ok

    def _drop(self, count: int) -> None:
        buf = self._buf
        shadow = min(self._shadow, count)
        self._shadow -= shadow
        del buf[:shadow]
        count -= shadow
        if count <= 0:
            return
        if self._plausible():
            size = buf[0] + 1
            bad = bytes(buf[:size])
            taken = min(size, count)
            self._shadow = size - taken
            del buf[:taken]
            count -= taken
            if self._on_corrupt is not None:
                self._on_corrupt(bad)
        if count > 0:
            junk = bytes(buf[:count])
            del buf[:count]
            if self._on_garbage is not None:
                self._on_garbage(junk)
