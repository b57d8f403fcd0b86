"""LLRP (EPCglobal Low Level Reader Protocol 1.0.1) framing, parameters, encoders and decoders.

Only what the driver needs is modelled; everything else is carried as raw bytes and counted as
unknown, never fatal. See PROTOCOLS.md section 1d.

- Message header, 10 bytes big-endian: ``u16 (ver << 10 | type)`` (top 3 bits reserved),
  ``u32 length`` (the whole message), ``u32 message ID``. A response echoes its request's ID.
- TLV parameter: ``u16 type`` (top 6 bits reserved), ``u16 length`` (header included), value.
- TV parameter: one byte ``0x80 | type`` and a value whose size the type alone fixes; a TV type
  this module does not know therefore ends the parse of its parameter list (its size is unknown).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# -- message types ------------------------------------------------------------------------------

GET_READER_CAPABILITIES = 1
SET_READER_CONFIG = 3
CLOSE_CONNECTION_RESPONSE = 4
GET_READER_CAPABILITIES_RESPONSE = 11
SET_READER_CONFIG_RESPONSE = 13
CLOSE_CONNECTION = 14
ADD_ROSPEC = 20
DELETE_ROSPEC = 21
START_ROSPEC = 22
STOP_ROSPEC = 23
ENABLE_ROSPEC = 24
DISABLE_ROSPEC = 25
ADD_ROSPEC_RESPONSE = 30
DELETE_ROSPEC_RESPONSE = 31
START_ROSPEC_RESPONSE = 32
STOP_ROSPEC_RESPONSE = 33
ENABLE_ROSPEC_RESPONSE = 34
DISABLE_ROSPEC_RESPONSE = 35
RO_ACCESS_REPORT = 61
KEEPALIVE = 62
READER_EVENT_NOTIFICATION = 63
KEEPALIVE_ACK = 72
ERROR_MESSAGE = 100
CUSTOM_MESSAGE = 1023

#: The response type of every request type the driver may send (LLRP 1.0.1 section 16.1).
RESPONSE_TYPE: dict[int, int] = {
    GET_READER_CAPABILITIES: GET_READER_CAPABILITIES_RESPONSE,
    2: 12,  # GET_READER_CONFIG
    SET_READER_CONFIG: SET_READER_CONFIG_RESPONSE,
    CLOSE_CONNECTION: CLOSE_CONNECTION_RESPONSE,
    ADD_ROSPEC: ADD_ROSPEC_RESPONSE,
    DELETE_ROSPEC: DELETE_ROSPEC_RESPONSE,
    START_ROSPEC: START_ROSPEC_RESPONSE,
    STOP_ROSPEC: STOP_ROSPEC_RESPONSE,
    ENABLE_ROSPEC: ENABLE_ROSPEC_RESPONSE,
    DISABLE_ROSPEC: DISABLE_ROSPEC_RESPONSE,
    26: 36,  # GET_ROSPECS
    40: 50,  # ADD_ACCESSSPEC
    41: 51,  # DELETE_ACCESSSPEC
    42: 52,  # ENABLE_ACCESSSPEC
    43: 53,  # DISABLE_ACCESSSPEC
    44: 54,  # GET_ACCESSSPECS
    CUSTOM_MESSAGE: CUSTOM_MESSAGE,
}

# -- parameter types ----------------------------------------------------------------------------

# TV parameters and the size of their value (LLRP 1.0.1 plus the 1.1 XPC words).
TV_ANTENNA_ID = 1
TV_PEAK_RSSI = 6
TV_CHANNEL_INDEX = 7
TV_TAG_SEEN_COUNT = 8
TV_ROSPEC_ID = 9
TV_C1G2_PC = 12
TV_EPC_96 = 13
TV_SIZE: dict[int, int] = {
    1: 2,  # AntennaID
    2: 8,  # FirstSeenTimestampUTC
    3: 8,  # FirstSeenTimestampUptime
    4: 8,  # LastSeenTimestampUTC
    5: 8,  # LastSeenTimestampUptime
    6: 1,  # PeakRSSI (s8 dBm)
    7: 2,  # ChannelIndex
    8: 2,  # TagSeenCount
    9: 4,  # ROSpecID
    10: 2,  # InventoryParameterSpecID
    11: 2,  # C1G2_CRC
    12: 2,  # C1G2_PC
    13: 12,  # EPC-96
    14: 2,  # SpecIndex
    15: 2,  # ClientRequestOpSpecResult
    16: 4,  # AccessSpecID
    17: 2,  # OpSpecID
    18: 4,  # C1G2SingulationDetails
    19: 2,  # C1G2XPCW1
    20: 2,  # C1G2XPCW2
}

P_UTC_TIMESTAMP = 128
P_UPTIME = 129
P_GENERAL_DEVICE_CAPABILITIES = 137
P_LLRP_CAPABILITIES = 142
P_REGULATORY_CAPABILITIES = 143
P_UHF_BAND_CAPABILITIES = 144
P_TRANSMIT_POWER_LEVEL_ENTRY = 145
P_FREQUENCY_INFORMATION = 146
P_FREQUENCY_HOP_TABLE = 147
P_ROSPEC = 177
P_RO_BOUNDARY_SPEC = 178
P_ROSPEC_START_TRIGGER = 179
P_PERIODIC_TRIGGER_VALUE = 180
P_ROSPEC_STOP_TRIGGER = 182
P_AISPEC = 183
P_AISPEC_STOP_TRIGGER = 184
P_INVENTORY_PARAMETER_SPEC = 186
P_KEEPALIVE_SPEC = 220
P_ANTENNA_CONFIGURATION = 222
P_RF_TRANSMITTER = 224
P_RO_REPORT_SPEC = 237
P_TAG_REPORT_CONTENT_SELECTOR = 238
P_TAG_REPORT_DATA = 240
P_EPC_DATA = 241
P_READER_EVENT_NOTIFICATION_SPEC = 244
P_EVENT_NOTIFICATION_STATE = 245
P_READER_EVENT_NOTIFICATION_DATA = 246
P_AISPEC_EVENT = 254
P_CONNECTION_ATTEMPT_EVENT = 256
P_CONNECTION_CLOSE_EVENT = 257
P_LLRP_STATUS = 287
P_FIELD_ERROR = 288
P_PARAMETER_ERROR = 289
P_C1G2_EPC_MEMORY_SELECTOR = 348
P_CUSTOM = 1023

# Reader events the driver knows and ignores (logged, not counted as unknown).
EVENT_NAMES: dict[int, str] = {
    247: "HoppingEvent",
    248: "GPIEvent",
    249: "ROSpecEvent",
    250: "ReportBufferLevelWarningEvent",
    251: "ReportBufferOverflowErrorEvent",
    252: "ReaderExceptionEvent",
    253: "RFSurveyEvent",
    P_AISPEC_EVENT: "AISpecEvent",
    255: "AntennaEvent",
    P_CONNECTION_ATTEMPT_EVENT: "ConnectionAttemptEvent",
    P_CONNECTION_CLOSE_EVENT: "ConnectionCloseEvent",
}

# -- enumerations -------------------------------------------------------------------------------

STATUS_SUCCESS = 0
CONNECTION_SUCCESS = 0
CONNECTION_STATUS_NAMES = {
    0: "Success",
    1: "Failed (a reader-initiated connection already exists)",
    2: "Failed (a client-initiated connection already exists)",
    3: "Failed (reason other than a connection already exists)",
    4: "Another connection attempted",
}
PROTOCOL_EPC_C1G2 = 1
START_TRIGGER_PERIODIC = 2
STOP_TRIGGER_NULL = 0
AISPEC_STOP_DURATION = 1
REPORT_END_OF_AISPEC = 1  # Upon_N_Tags_Or_End_Of_AISpec
NOTIFY_AISPEC_EVENT = 6  # NotificationEventType AISpec_Event (7 would add singulation details)
AISPEC_EVENT_END = 0  # AISpecEventType End_Of_AISpec, the only one defined
KEEPALIVE_PERIODIC = 1

HEADER_LEN = 10
VERSION = 1  # LLRP 1.0.1
SUPPORTED_VERSIONS = frozenset({1, 2})  # 2 = LLRP 1.1, framed the same way
MAX_MESSAGE_LEN = 16 * 1024 * 1024
"""A sanity bound for the length field; real reports are far smaller."""

_HEADER = struct.Struct(">HII")


class LlrpDecodeError(ValueError):
    """A message or parameter whose lengths do not add up."""


# -- framing ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    type: int
    msg_id: int
    body: bytes
    version: int = VERSION

    @property
    def raw(self) -> bytes:
        return encode_message(self.type, self.body, self.msg_id, version=self.version)


def encode_message(msg_type: int, body: bytes, msg_id: int, *, version: int = VERSION) -> bytes:
    if not 0 <= msg_type <= 0x3FF:
        raise ValueError(f"LLRP message type must be 0..1023, got {msg_type}")
    return _HEADER.pack((version & 7) << 10 | msg_type, HEADER_LEN + len(body), msg_id) + body


def header_plausible(buf: bytes | bytearray, at: int = 0) -> bool | None:
    """Whether a header can start at ``at``: True, False, or None (need more bytes to tell)."""
    if len(buf) <= at:
        return None
    first = buf[at]
    if first & 0xE0 or (first >> 2) & 7 not in SUPPORTED_VERSIONS:
        return False
    if len(buf) < at + HEADER_LEN:
        return None
    length = int.from_bytes(buf[at + 2 : at + 6], "big")
    return HEADER_LEN <= length <= MAX_MESSAGE_LEN


class MessageDecoder:
    """Splits a TCP byte stream into messages.

    A TCP stream does not lose bytes, so garbage only appears when the peer is broken or is not
    an LLRP reader; the decoder then skips byte by byte to the next plausible header (counted in
    ``garbage_bytes``) rather than giving up, so one bad message cannot wedge the connection.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.garbage_bytes = 0

    def clear(self) -> None:
        self._buf.clear()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        self._buf += data
        messages: list[Message] = []
        buf = self._buf
        pos = 0
        while True:
            ok = header_plausible(buf, pos)
            if ok is None:
                break
            if not ok:
                pos += 1
                self.garbage_bytes += 1
                continue
            word, length, msg_id = _HEADER.unpack_from(buf, pos)
            if len(buf) < pos + length:
                break
            body = bytes(buf[pos + HEADER_LEN : pos + length])
            messages.append(Message(word & 0x3FF, msg_id, body, (word >> 10) & 7))
            pos += length
        del buf[:pos]
        return messages


# -- parameters ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    type: int
    value: bytes
    """TLV: the bytes after the 4-byte header; TV: the fixed-size value."""
    tv: bool = False


@dataclass(slots=True)
class ParamList:
    params: list[Param]
    unknown_tv: int | None = None
    """Type of a TV parameter of unknown size that cut the list short (None when complete)."""

    def first(self, ptype: int) -> Param | None:
        return next((p for p in self.params if p.type == ptype), None)

    def all(self, ptype: int) -> list[Param]:
        return [p for p in self.params if p.type == ptype]


def parse_params(data: bytes, start: int = 0) -> ParamList:
    """Every parameter in ``data[start:]``; raises LlrpDecodeError on a bad TLV length."""
    params: list[Param] = []
    pos, end = start, len(data)
    while pos < end:
        first = data[pos]
        if first & 0x80:
            ptype = first & 0x7F
            size = TV_SIZE.get(ptype)
            if size is None:
                return ParamList(params, unknown_tv=ptype)
            if pos + 1 + size > end:
                raise LlrpDecodeError(f"TV parameter {ptype} truncated at offset {pos}")
            params.append(Param(ptype, data[pos + 1 : pos + 1 + size], tv=True))
            pos += 1 + size
            continue
        if pos + 4 > end:
            raise LlrpDecodeError(f"TLV header truncated at offset {pos}")
        ptype = int.from_bytes(data[pos : pos + 2], "big") & 0x3FF
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 4 or pos + length > end:
            raise LlrpDecodeError(f"TLV parameter {ptype} has bad length {length} at {pos}")
        params.append(Param(ptype, data[pos + 4 : pos + length]))
        pos += length
    return ParamList(params)


def tlv(ptype: int, value: bytes = b"", *children: bytes) -> bytes:
    body = value + b"".join(children)
    return struct.pack(">HH", ptype, 4 + len(body)) + body


def tv(ptype: int, value: bytes) -> bytes:
    if TV_SIZE.get(ptype) != len(value):
        raise ValueError(f"TV parameter {ptype} takes {TV_SIZE.get(ptype)} bytes, not {len(value)}")
    return bytes([0x80 | ptype]) + value


def _u16(data: bytes, at: int) -> int:
    if at + 2 > len(data):
        raise LlrpDecodeError(f"field truncated at offset {at}")
    return int.from_bytes(data[at : at + 2], "big")


def _u32(data: bytes, at: int) -> int:
    if at + 4 > len(data):
        raise LlrpDecodeError(f"field truncated at offset {at}")
    return int.from_bytes(data[at : at + 4], "big")


def _utf8v(data: bytes, at: int) -> tuple[str, int]:
    """A u16 byte count and that many UTF-8 bytes; returns the text and the offset after it."""
    count = _u16(data, at)
    if at + 2 + count > len(data):
        raise LlrpDecodeError(f"string of {count} bytes truncated at offset {at}")
    return data[at + 2 : at + 2 + count].decode("utf-8", "replace"), at + 2 + count


# -- LLRPStatus ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LlrpStatus:
    code: int
    description: str = ""
    details: tuple[str, ...] = ()
    """FieldError / ParameterError findings, e.g. ``parameter 177: error 101``."""

    @property
    def ok(self) -> bool:
        return self.code == STATUS_SUCCESS

    def __str__(self) -> str:
        text = f"status {self.code}"
        if self.description:
            text += f" ({self.description})"
        if self.details:
            text += ": " + "; ".join(self.details)
        return text


def _status_details(params: ParamList, where: str = "") -> list[str]:
    details: list[str] = []
    for p in params.params:
        if p.type == P_FIELD_ERROR:
            details.append(f"{where}field {_u16(p.value, 0)}: error {_u16(p.value, 2)}")
        elif p.type == P_PARAMETER_ERROR:
            inner = f"{where}parameter {_u16(p.value, 0)}"
            details.append(f"{inner}: error {_u16(p.value, 2)}")
            details += _status_details(parse_params(p.value, 4), inner + " / ")
    return details


def decode_status(value: bytes) -> LlrpStatus:
    """The value of an LLRPStatus parameter."""
    code = _u16(value, 0)
    description, end = _utf8v(value, 2)
    return LlrpStatus(code, description, tuple(_status_details(parse_params(value, end))))


def response_status(msg: Message) -> LlrpStatus:
    """The LLRPStatus that leads every *_RESPONSE and ERROR_MESSAGE body."""
    params = parse_params(msg.body)
    status = params.first(P_LLRP_STATUS)
    if status is None:
        raise LlrpDecodeError(f"message type {msg.type} carries no LLRPStatus")
    return decode_status(status.value)


def encode_status(code: int, description: str = "") -> bytes:
    text = description.encode()
    return tlv(P_LLRP_STATUS, struct.pack(">HH", code, len(text)) + text)


# -- RO_ACCESS_REPORT ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TagReport:
    epc: bytes
    antenna: int | None = None
    peak_rssi: int | None = None
    seen_count: int | None = None
    pc: int | None = None
    channel: int | None = None


@dataclass(slots=True)
class AccessReport:
    tags: list[TagReport] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    """Types of parameters skipped because this module does not model them."""


_TAG_DATA_IGNORED = frozenset(TV_SIZE) - {
    TV_ANTENNA_ID,
    TV_PEAK_RSSI,
    TV_CHANNEL_INDEX,
    TV_TAG_SEEN_COUNT,
    TV_C1G2_PC,
    TV_EPC_96,
}


def _decode_tag_report_data(value: bytes, unknown: list[int]) -> TagReport | None:
    params = parse_params(value)
    if params.unknown_tv is not None:
        unknown.append(params.unknown_tv)
    epc: bytes | None = None
    fields: dict[str, int] = {}
    for p in params.params:
        if p.tv:
            if p.type == TV_EPC_96:
                epc = p.value
            elif p.type == TV_ANTENNA_ID:
                fields["antenna"] = int.from_bytes(p.value, "big")
            elif p.type == TV_PEAK_RSSI:
                fields["peak_rssi"] = int.from_bytes(p.value, "big", signed=True)
            elif p.type == TV_TAG_SEEN_COUNT:
                fields["seen_count"] = int.from_bytes(p.value, "big")
            elif p.type == TV_C1G2_PC:
                fields["pc"] = int.from_bytes(p.value, "big")
            elif p.type == TV_CHANNEL_INDEX:
                fields["channel"] = int.from_bytes(p.value, "big")
            # Timestamps, spec IDs, CRC: known, not needed.
        elif p.type == P_EPC_DATA:
            bits = _u16(p.value, 0)
            nbytes = (bits + 7) // 8
            if 2 + nbytes > len(p.value):
                raise LlrpDecodeError(f"EPCData of {bits} bits truncated")
            epc = p.value[2 : 2 + nbytes]
        else:
            unknown.append(p.type)  # access results, custom parameters...
    if epc is None:
        return None
    return TagReport(epc, **fields)


def decode_ro_access_report(body: bytes) -> AccessReport:
    report = AccessReport()
    params = parse_params(body)
    if params.unknown_tv is not None:
        report.unknown.append(params.unknown_tv)
    for p in params.params:
        if p.type == P_TAG_REPORT_DATA and not p.tv:
            tag = _decode_tag_report_data(p.value, report.unknown)
            if tag is None:
                report.unknown.append(P_TAG_REPORT_DATA)  # no EPC: nothing to report
            else:
                report.tags.append(tag)
        else:
            report.unknown.append(p.type)
    return report


def encode_tag_report_data(tag: TagReport) -> bytes:
    """The reader side, for tests and simulators: EPC-96 as TV, any other length as EPCData."""
    if len(tag.epc) == 12:
        out = tv(TV_EPC_96, tag.epc)
    else:
        out = tlv(P_EPC_DATA, struct.pack(">H", len(tag.epc) * 8) + tag.epc)
    if tag.antenna is not None:
        out += tv(TV_ANTENNA_ID, struct.pack(">H", tag.antenna))
    if tag.peak_rssi is not None:
        out += tv(TV_PEAK_RSSI, struct.pack(">b", tag.peak_rssi))
    if tag.channel is not None:
        out += tv(TV_CHANNEL_INDEX, struct.pack(">H", tag.channel))
    if tag.seen_count is not None:
        out += tv(TV_TAG_SEEN_COUNT, struct.pack(">H", tag.seen_count))
    if tag.pc is not None:
        out += tv(TV_C1G2_PC, struct.pack(">H", tag.pc))
    return tlv(P_TAG_REPORT_DATA, out)


def encode_ro_access_report(msg_id: int, tags: Iterable[TagReport]) -> bytes:
    return encode_message(
        RO_ACCESS_REPORT, b"".join(encode_tag_report_data(t) for t in tags), msg_id
    )


# -- READER_EVENT_NOTIFICATION -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AISpecEvent:
    """An AISpecEvent: ``u8 EventType, u32 ROSpecID, u16 SpecIndex`` (1-based index of the
    AISpec in its ROSpec), optionally followed by singulation details this module skips."""

    event_type: int
    rospec_id: int
    spec_index: int

    @property
    def end(self) -> bool:
        return self.event_type == AISPEC_EVENT_END


@dataclass(slots=True)
class ReaderEvent:
    connection_attempt: int | None = None
    """ConnectionAttemptEvent status (0 = success), None when the event is not in this one."""
    connection_closed: bool = False
    aispec: AISpecEvent | None = None
    """The AISpecEvent (the end of one AISpec run), None when the event is not in this one."""
    events: list[str] = field(default_factory=list)
    """Names of the other (known, ignored) events in the notification."""
    unknown: list[int] = field(default_factory=list)


def decode_reader_event(body: bytes) -> ReaderEvent:
    event = ReaderEvent()
    outer = parse_params(body)
    data = outer.first(P_READER_EVENT_NOTIFICATION_DATA)
    event.unknown += [p.type for p in outer.params if p.type != P_READER_EVENT_NOTIFICATION_DATA]
    if data is None:
        return event
    params = parse_params(data.value)
    if params.unknown_tv is not None:
        event.unknown.append(params.unknown_tv)
    for p in params.params:
        if p.type == P_CONNECTION_ATTEMPT_EVENT:
            event.connection_attempt = _u16(p.value, 0)
        elif p.type == P_CONNECTION_CLOSE_EVENT:
            event.connection_closed = True
        elif p.type == P_AISPEC_EVENT:
            if len(p.value) < 7:
                raise LlrpDecodeError(f"AISpecEvent of {len(p.value)} bytes truncated")
            event.aispec = AISpecEvent(p.value[0], _u32(p.value, 1), _u16(p.value, 5))
        elif p.type in EVENT_NAMES:
            event.events.append(EVENT_NAMES[p.type])
        elif p.type not in (P_UTC_TIMESTAMP, P_UPTIME):
            event.unknown.append(p.type)
    return event


def encode_connection_attempt_event(msg_id: int, status: int, *, utc_us: int = 0) -> bytes:
    data = tlv(
        P_READER_EVENT_NOTIFICATION_DATA,
        b"",
        tlv(P_UTC_TIMESTAMP, struct.pack(">Q", utc_us)),
        tlv(P_CONNECTION_ATTEMPT_EVENT, struct.pack(">H", status)),
    )
    return encode_message(READER_EVENT_NOTIFICATION, data, msg_id)


def encode_aispec_event(
    msg_id: int,
    rospec_id: int,
    spec_index: int = 1,
    *,
    event_type: int = AISPEC_EVENT_END,
    utc_us: int = 0,
) -> bytes:
    """The reader side, for tests and simulators: the end of one AISpec run."""
    data = tlv(
        P_READER_EVENT_NOTIFICATION_DATA,
        b"",
        tlv(P_UTC_TIMESTAMP, struct.pack(">Q", utc_us)),
        tlv(P_AISPEC_EVENT, struct.pack(">BIH", event_type, rospec_id, spec_index)),
    )
    return encode_message(READER_EVENT_NOTIFICATION, data, msg_id)


# -- GET_READER_CAPABILITIES_RESPONSE ------------------------------------------------------------


@dataclass(slots=True)
class Capabilities:
    max_antennas: int | None = None
    manufacturer: int | None = None
    """IANA private enterprise number (Impinj 25882, Zebra/Motorola 161)."""
    model: int | None = None
    firmware: str | None = None
    power_table: dict[int, float] = field(default_factory=dict)
    """Transmit power index -> dBm."""
    hop_table_ids: list[int] = field(default_factory=list)

    def nearest_power(self, dbm: float) -> tuple[int, float]:
        """The table entry closest to ``dbm`` (the lower one on a tie)."""
        if not self.power_table:
            raise LookupError("the reader reported no transmit power table")
        index = min(self.power_table, key=lambda i: (abs(self.power_table[i] - dbm), i))
        return index, self.power_table[index]


def decode_capabilities(body: bytes) -> Capabilities:
    caps = Capabilities()
    params = parse_params(body)
    general = params.first(P_GENERAL_DEVICE_CAPABILITIES)
    if general is not None:
        caps.max_antennas = _u16(general.value, 0)
        caps.manufacturer = _u32(general.value, 4)
        caps.model = _u32(general.value, 8)
        caps.firmware, _ = _utf8v(general.value, 12)
    regulatory = params.first(P_REGULATORY_CAPABILITIES)
    if regulatory is not None:
        # u16 country code, u16 communications standard, then UHFBandCapabilities.
        uhf = parse_params(regulatory.value, 4).first(P_UHF_BAND_CAPABILITIES)
        if uhf is not None:
            band = parse_params(uhf.value)
            for entry in band.all(P_TRANSMIT_POWER_LEVEL_ENTRY):
                if len(entry.value) < 4:
                    raise LlrpDecodeError("TransmitPowerLevelTableEntry truncated")
                index = _u16(entry.value, 0)
                centi_dbm = int.from_bytes(entry.value[2:4], "big", signed=True)
                caps.power_table[index] = centi_dbm / 100.0
            frequency = band.first(P_FREQUENCY_INFORMATION)
            if frequency is not None:
                for table in parse_params(frequency.value, 1).all(P_FREQUENCY_HOP_TABLE):
                    if table.value:
                        caps.hop_table_ids.append(table.value[0])
    return caps


# -- requests the driver sends -------------------------------------------------------------------


def encode_get_reader_capabilities(msg_id: int, requested: int = 0) -> bytes:
    """``requested`` 0 = all capabilities."""
    return encode_message(GET_READER_CAPABILITIES, bytes([requested]), msg_id)


def rospec_id_body(rospec_id: int) -> bytes:
    """The body of DELETE/START/STOP/ENABLE/DISABLE_ROSPEC: a bare ROSpecID (0 = all)."""
    return struct.pack(">I", rospec_id)


def encode_rospec_command(msg_type: int, msg_id: int, rospec_id: int) -> bytes:
    return encode_message(msg_type, rospec_id_body(rospec_id), msg_id)


def encode_close_connection(msg_id: int) -> bytes:
    return encode_message(CLOSE_CONNECTION, b"", msg_id)


def encode_keepalive_ack(msg_id: int) -> bytes:
    return encode_message(KEEPALIVE_ACK, b"", msg_id)


def encode_keepalive(msg_id: int) -> bytes:
    return encode_message(KEEPALIVE, b"", msg_id)


def set_reader_config_body(
    *,
    keepalive_ms: int | None = None,
    power_index: int | None = None,
    antennas: Sequence[int] = (),
    hop_table_id: int = 1,
    channel_index: int = 1,
    aispec_events: bool = False,
) -> bytes:
    """SET_READER_CONFIG without factory reset: a ReaderEventNotificationSpec turning AISpec
    events on, one AntennaConfiguration with an RFTransmitter per antenna and/or a periodic
    KeepaliveSpec, in the order LLRP fixes for the message's parameters.

    HopTableID and ChannelIndex are mandatory fields of RFTransmitter; a hopping reader uses the
    hop table and ignores the channel, a fixed-frequency one the reverse, so 1-based first
    entries are safe for both. The notification spec names only the events it changes; the
    reader keeps its own setting for the others.
    """
    body = bytes([0])  # ResetToFactoryDefault = 0, 7 reserved bits
    if aispec_events:
        # EventNotificationState: u16 EventType, then NotificationState in the top bit.
        state = tlv(P_EVENT_NOTIFICATION_STATE, struct.pack(">HB", NOTIFY_AISPEC_EVENT, 0x80))
        body += tlv(P_READER_EVENT_NOTIFICATION_SPEC, b"", state)
    if power_index is not None:
        for antenna in antennas:
            transmitter = tlv(
                P_RF_TRANSMITTER, struct.pack(">HHH", hop_table_id, channel_index, power_index)
            )
            body += tlv(P_ANTENNA_CONFIGURATION, struct.pack(">H", antenna), transmitter)
    if keepalive_ms is not None:
        body += tlv(P_KEEPALIVE_SPEC, struct.pack(">BI", KEEPALIVE_PERIODIC, keepalive_ms))
    return body


def encode_set_reader_config(
    msg_id: int,
    *,
    keepalive_ms: int | None = None,
    power_index: int | None = None,
    antennas: Sequence[int] = (),
    hop_table_id: int = 1,
    channel_index: int = 1,
    aispec_events: bool = False,
) -> bytes:
    body = set_reader_config_body(
        keepalive_ms=keepalive_ms,
        power_index=power_index,
        antennas=antennas,
        hop_table_id=hop_table_id,
        channel_index=channel_index,
        aispec_events=aispec_events,
    )
    return encode_message(SET_READER_CONFIG, body, msg_id)


def encode_rospec(
    rospec_id: int, antennas: Sequence[int], duration_ms: int, period_ms: int
) -> bytes:
    """The ROSpec parameter of ADD_ROSPEC: periodic start, one AISpec over ``antennas`` that
    stops after ``duration_ms``, one report at the end of every AISpec run (a real reader sends
    none for a run that read no tag: the AISpecEvent is what marks the end of every run).

    The periodic start trigger is what makes inventory continuous: when the ROSpec has no stop
    trigger it ends with its only AISpec, and the next period starts it again.
    """
    start = tlv(
        P_ROSPEC_START_TRIGGER,
        bytes([START_TRIGGER_PERIODIC]),
        tlv(P_PERIODIC_TRIGGER_VALUE, struct.pack(">II", 0, period_ms)),
    )
    stop = tlv(P_ROSPEC_STOP_TRIGGER, struct.pack(">BI", STOP_TRIGGER_NULL, 0))
    boundary = tlv(P_RO_BOUNDARY_SPEC, b"", start, stop)
    ai_stop = tlv(P_AISPEC_STOP_TRIGGER, struct.pack(">BI", AISPEC_STOP_DURATION, duration_ms))
    inventory = tlv(P_INVENTORY_PARAMETER_SPEC, struct.pack(">HB", 1, PROTOCOL_EPC_C1G2))
    aispec = tlv(
        P_AISPEC,
        struct.pack(f">H{len(antennas)}H", len(antennas), *antennas),
        ai_stop,
        inventory,
    )
    # TagReportContentSelector bits, MSB first: ROSpecID, SpecIndex, InventoryParameterSpecID,
    # AntennaID, ChannelIndex, PeakRSSI, FirstSeen, LastSeen, TagSeenCount, AccessSpecID.
    selector_bits = (1 << 12) | (1 << 10) | (1 << 7)
    # C1G2EPCMemorySelector: EnableCRC = 0, EnablePCBits = 1 (the PC word gives the EPC length).
    memory = tlv(P_C1G2_EPC_MEMORY_SELECTOR, bytes([0x40]))
    selector = tlv(P_TAG_REPORT_CONTENT_SELECTOR, struct.pack(">H", selector_bits), memory)
    report = tlv(P_RO_REPORT_SPEC, struct.pack(">BH", REPORT_END_OF_AISPEC, 0), selector)
    # Priority 0, CurrentState 0 (Disabled).
    return tlv(P_ROSPEC, struct.pack(">IBB", rospec_id, 0, 0), boundary, aispec, report)


def encode_add_rospec(
    msg_id: int, rospec_id: int, antennas: Sequence[int], duration_ms: int, period_ms: int
) -> bytes:
    return encode_message(
        ADD_ROSPEC, encode_rospec(rospec_id, antennas, duration_ms, period_ms), msg_id
    )


def encode_response(msg_type: int, msg_id: int, code: int = 0, description: str = "") -> bytes:
    """A reply carrying only an LLRPStatus (the reader side, for tests)."""
    return encode_message(msg_type, encode_status(code, description), msg_id)
