"""MagicRF M100 / JRD-100 / YRM100 module protocol (PROTOCOLS.md section 1c): codec and parser.

A frame is ``BB | Type | Cmd | PL_H PL_L | Params | CS | 7E`` with Type 00 command, 01 response,
02 notification and CS = ``sum(Type .. last Param) & 0xFF``. Frames are delimited by the payload
length PL, never by searching for 0x7E: an EPC may contain 0x7E (and 0xBB).

A tag notification (Type 02, Cmd 22) carries ``RSSI | PC(2) | EPC | CRC(2)`` where the CRC is the
tag's own EPC Gen2 CRC-16 over PC+EPC, so a frame whose checksum happens to survive line noise is
still caught.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from drivers.stream import StreamBuffer

START = 0xBB
END = 0x7E

TYPE_COMMAND = 0x00
TYPE_RESPONSE = 0x01
TYPE_NOTIFICATION = 0x02

CMD_INFO = 0x03
CMD_REGION = 0x07
CMD_SINGLE_POLL = 0x22
CMD_MULTI_POLL = 0x27
CMD_STOP = 0x28
CMD_READ = 0x39
CMD_WRITE = 0x49
CMD_SET_POWER = 0xB6
CMD_GET_POWER = 0xB7
CMD_ERROR = 0xFF
"""Cmd of an error response; its one parameter is the error code."""

INFO_HARDWARE = 0x00
INFO_SOFTWARE = 0x01
INFO_MANUFACTURER = 0x02

ERROR_READ_FAIL = 0x09
ERROR_WRITE_FAIL = 0x10
ERROR_NO_TAG = 0x15
"""Reply to a poll when no tag answered: ``BB 01 FF 00 01 15 16 7E``."""
ERROR_COMMAND = 0x17

REGION_CHINA_900 = 0x01
REGION_US = 0x02
REGION_EU = 0x03
REGION_CHINA_800 = 0x04
REGION_KOREA = 0x06

MULTI_POLL_RESERVED = 0x22
DEFAULT_BAUDRATE = 115200
MIN_POWER_DBM = 0.0
MAX_POWER_DBM = 30.0

HEADER = 5  # BB Type Cmd PL_H PL_L
OVERHEAD = HEADER + 2  # + CS 7E
MAX_PAYLOAD = 0x3FF
"""Longer than any frame these modules send; a larger PL is taken for line noise at once."""


def checksum(body: bytes | bytearray | memoryview) -> int:
    """``sum(Type .. last Param) & 0xFF``."""
    return sum(body) & 0xFF


def gen2_crc(data: bytes | bytearray | memoryview) -> int:
    """EPC Gen2 CRC-16: poly 0x1021 MSB first, init 0xFFFF, final XOR 0xFFFF."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc ^ 0xFFFF


def encode_frame(frame_type: int, cmd: int, params: bytes = b"") -> bytes:
    if not (0 <= frame_type <= 0xFF and 0 <= cmd <= 0xFF):
        raise ValueError("type and command are bytes")
    if len(params) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(params)} bytes exceeds {MAX_PAYLOAD}")
    body = bytes([frame_type, cmd, len(params) >> 8, len(params) & 0xFF]) + bytes(params)
    return bytes([START]) + body + bytes([checksum(body), END])


def encode_command(cmd: int, params: bytes = b"") -> bytes:
    return encode_frame(TYPE_COMMAND, cmd, params)


def encode_info(kind: int = INFO_HARDWARE) -> bytes:
    """``BB 00 03 00 01 00 04 7E`` asks for the hardware version."""
    return encode_command(CMD_INFO, bytes([kind]))


def encode_single_poll() -> bytes:
    """``BB 00 22 00 00 22 7E``."""
    return encode_command(CMD_SINGLE_POLL)


def encode_multi_poll(count: int) -> bytes:
    """``BB 00 27 00 03 22 CNT_H CNT_L CS 7E``: ``count`` polls in a row until stopped."""
    if not 0 <= count <= 0xFFFF:
        raise ValueError(f"poll count must be 0..65535, got {count}")
    return encode_command(CMD_MULTI_POLL, bytes([MULTI_POLL_RESERVED, count >> 8, count & 0xFF]))


def encode_stop() -> bytes:
    return encode_command(CMD_STOP)


def power_value(dbm: float) -> int:
    """The wire value of a power setting: dBm * 100 (M5Stack: 2600 = 26 dBm)."""
    if not MIN_POWER_DBM <= dbm <= MAX_POWER_DBM:
        raise ValueError(f"power must be {MIN_POWER_DBM}..{MAX_POWER_DBM} dBm, got {dbm}")
    return round(dbm * 100)


def encode_set_power(dbm: float) -> bytes:
    """``BB 00 B6 00 02 POW_H POW_L CS 7E`` with power in dBm * 100, big-endian."""
    value = power_value(dbm)
    return encode_command(CMD_SET_POWER, value.to_bytes(2, "big"))


def encode_set_region(region: int) -> bytes:
    if not 0 <= region <= 0xFF:
        raise ValueError(f"region is a byte, got {region}")
    return encode_command(CMD_REGION, bytes([region]))


def encode_response(cmd: int, params: bytes = b"") -> bytes:
    return encode_frame(TYPE_RESPONSE, cmd, params)


def encode_error(code: int) -> bytes:
    """``BB 01 FF 00 01 code CS 7E``."""
    return encode_response(CMD_ERROR, bytes([code]))


def pc_for(epc: bytes) -> int:
    """The PC word a tag with this EPC reports: the EPC length in words in bits 15..11."""
    if len(epc) % 2 or len(epc) > 62:
        raise ValueError(f"an EPC is 0..31 whole words, got {len(epc)} bytes")
    return (len(epc) // 2) << 11


def encode_tag_notification(epc: bytes, rssi: int, pc: int | None = None) -> bytes:
    """``BB 02 22 PL RSSI PC(2) EPC CRC(2) CS 7E``."""
    if not -128 <= rssi <= 127:
        raise ValueError(f"RSSI must fit a signed byte, got {rssi}")
    pc_epc = (pc_for(epc) if pc is None else pc).to_bytes(2, "big") + bytes(epc)
    params = bytes([rssi & 0xFF]) + pc_epc + gen2_crc(pc_epc).to_bytes(2, "big")
    return encode_frame(TYPE_NOTIFICATION, CMD_SINGLE_POLL, params)


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame whose length, checksum and end byte add up."""

    frame_type: int
    cmd: int
    params: bytes
    raw: bytes

    @property
    def is_error(self) -> bool:
        return self.frame_type == TYPE_RESPONSE and self.cmd == CMD_ERROR

    @property
    def error_code(self) -> int | None:
        return self.params[0] if self.is_error and self.params else None

    @property
    def is_tag(self) -> bool:
        return self.frame_type == TYPE_NOTIFICATION and self.cmd == CMD_SINGLE_POLL


@dataclass(frozen=True, slots=True)
class TagNotification:
    rssi: int
    """Signed dBm."""
    pc: int
    epc: bytes


def decode_tag(params: bytes) -> TagNotification:
    """The parameters of a tag notification; ValueError if they do not hold together (too
    short, tag CRC mismatch, or a PC word announcing more EPC than the frame carries)."""
    if len(params) < 5:
        raise ValueError(f"tag notification too short: {params.hex(' ')}")
    pc_epc, crc = params[1:-2], int.from_bytes(params[-2:], "big")
    if gen2_crc(pc_epc) != crc:
        raise ValueError(f"tag CRC mismatch: {params.hex(' ')}")
    pc = int.from_bytes(pc_epc[:2], "big")
    size = ((pc >> 11) & 0x1F) * 2
    if size > len(pc_epc) - 2:
        raise ValueError(f"PC {pc:04x} announces {size} EPC bytes, frame has {len(pc_epc) - 2}")
    rssi = params[0] - 256 if params[0] > 127 else params[0]
    return TagNotification(rssi=rssi, pc=pc, epc=bytes(pc_epc[2 : 2 + size]))


def decode_frame(raw: bytes) -> Frame:
    """A complete frame; ValueError if length, checksum or end byte do not add up."""
    if len(raw) < OVERHEAD or raw[0] != START:
        raise ValueError(f"not a frame: {raw.hex(' ')}")
    size = OVERHEAD + ((raw[3] << 8) | raw[4])
    if len(raw) != size or raw[-1] != END or checksum(raw[1:-2]) != raw[-2]:
        raise ValueError(f"bad frame: {raw.hex(' ')}")
    return Frame(frame_type=raw[1], cmd=raw[2], params=bytes(raw[HEADER:-2]), raw=bytes(raw))


_INCOMPLETE = 0
_INVALID = -1


class M100Parser(StreamBuffer):
    """Turns a byte stream into frames.

    Frames start at 0xBB and are measured by PL. Bytes before a 0xBB are garbage. A candidate
    with the end byte where PL says but a bad checksum is reported as corrupt and skipped as far
    as PL says, never past a later 0xBB that is a valid frame or could still become one; with
    no end byte there, PL itself is suspect and only the bytes up to the next 0xBB go. A candidate
    still waiting for bytes is given up as soon as a complete valid frame shows up later in the
    buffer (its PL was damaged): it is reported as corrupt up to the next 0xBB. So a real frame
    is never skipped and a bad PL never stalls the line.
    """

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        return list(self._frames())

    def _frames(self) -> Iterator[Frame]:
        buf = self._buf
        while buf:
            if buf[0] != START:
                end = buf.find(START)
                self._drop(len(buf) if end < 0 else end, self._on_garbage)
                continue
            size = self._candidate(0)
            if size > 0:
                raw = bytes(buf[:size])
                del buf[:size]
                yield Frame(frame_type=raw[1], cmd=raw[2], params=raw[HEADER:-2], raw=raw)
                continue
            starts = [i for i in range(1, len(buf)) if buf[i] == START]
            if size == _INCOMPLETE:
                if not any(self._candidate(i) > 0 for i in starts):
                    return  # wait for the rest
                self._drop(starts[0], self._on_corrupt)
                continue
            payload = (buf[3] << 8) | buf[4]
            span = OVERHEAD + payload
            if payload <= MAX_PAYLOAD and buf[span - 1] == END:
                # The end byte sits where PL says: the damage is inside. Skip the whole span,
                # but not past a real frame starting inside it.
                end = next((i for i in starts if i < span and self._candidate(i) >= 0), span)
            else:
                # PL is the damage: where the frame really ends is unknown.
                end = starts[0] if starts else len(buf)
            self._drop(end, self._on_corrupt)

    def _candidate(self, i: int) -> int:
        buf = self._buf
        if buf[i] != START:
            return _INVALID
        if len(buf) - i < HEADER:
            return _INCOMPLETE
        payload = (buf[i + 3] << 8) | buf[i + 4]
        if payload > MAX_PAYLOAD:
            return _INVALID
        end = i + OVERHEAD + payload
        if end > len(buf):
            return _INCOMPLETE
        if buf[end - 1] != END or checksum(memoryview(buf)[i + 1 : end - 2]) != buf[end - 2]:
            return _INVALID
        return end - i

    def _drop(self, count: int, report: Callable[[bytes], None] | None) -> None:
        dropped = bytes(self._buf[:count])
        del self._buf[:count]
        if report is not None:
            report(dropped)
