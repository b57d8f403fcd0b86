"""The LLRP codec byte for byte, and the LLRP driver against two peers over real TCP.

The main peer is llrpkit's LLRP reader emulator (MIT, test-only dependency). llrpkit's own
decoder also cross-checks every message the driver encodes. A small scripted reader in this
file covers what the emulator cannot do: garbage and unknown messages on the wire, the PROTOCOLS
worked example as a live report, silence, recording the exact request sequence, and AISpec end
events (the emulator sends none, so against it the driver runs its one-report-one-round fallback).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llrpkit.emulator.core import EmulatedTag, LLRPEmulator
from llrpkit.protocol import BitStr, decode_message, enums
from llrpkit.protocol import messages as llrp_messages
from llrpkit.protocol import params as llrp_params

from drivers.rfid.llrp import ROSPEC_ID, LlrpReader, LlrpRejected
from drivers.rfid.llrp import codec as c
from drivers.rfid.reader import (
    ReaderRejected,
    ReaderTimeout,
    ReaderUnavailable,
    RoundEnd,
    TagRead,
)

WAIT = 5.0  # upper bound for anything awaited; tests finish far sooner

WORKED_EXAMPLE = bytes.fromhex(
    "04 3d 00 00 00 2c 40 95 89 2f 00 f0 00 22 8d 30 05 fb 63 ac 1f 38 41 ec 88 04 67 "
    "81 00 01 86 ce 82 00 04 ec 2e a8 35 4c 09 88 00 01"
)
WORKED_EPC = "3005fb63ac1f3841ec880467"


# -- codec: the worked example ------------------------------------------------------------------


def test_worked_example_ro_access_report() -> None:
    decoder = c.MessageDecoder()
    (msg,) = decoder.feed(WORKED_EXAMPLE)
    assert (msg.version, msg.type, msg.msg_id) == (1, c.RO_ACCESS_REPORT, 0x4095892F)
    assert msg.raw == WORKED_EXAMPLE
    report = c.decode_ro_access_report(msg.body)
    assert report.unknown == []
    (tag,) = report.tags
    assert tag.epc.hex() == WORKED_EPC
    assert (tag.antenna, tag.peak_rssi, tag.seen_count) == (1, -50, 1)
    assert decoder.buffered == 0 and decoder.garbage_bytes == 0


def test_worked_example_split_at_every_byte_boundary() -> None:
    stream = WORKED_EXAMPLE + c.encode_keepalive(7) + WORKED_EXAMPLE
    for cut in range(len(stream) + 1):
        decoder = c.MessageDecoder()
        found = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert [m.type for m in found] == [c.RO_ACCESS_REPORT, c.KEEPALIVE, c.RO_ACCESS_REPORT]
        assert b"".join(m.raw for m in found) == stream


# -- codec: golden bytes and round trips ---------------------------------------------------------


def test_simple_requests_byte_exact() -> None:
    assert c.encode_keepalive_ack(5) == bytes.fromhex("04 48 00 00 00 0a 00 00 00 05")
    assert c.encode_close_connection(2) == bytes.fromhex("04 0e 00 00 00 0a 00 00 00 02")
    assert c.encode_rospec_command(c.DELETE_ROSPEC, 1, 0) == bytes.fromhex(
        "04 15 00 00 00 0e 00 00 00 01 00 00 00 00"
    )
    assert c.encode_get_reader_capabilities(3) == bytes.fromhex("04 01 00 00 00 0b 00 00 00 03 00")


def test_tag_report_round_trip_epc96_and_epcdata() -> None:
    tags = [
        c.TagReport(bytes.fromhex(WORKED_EPC), antenna=1, peak_rssi=-50, seen_count=1),
        c.TagReport(bytes.fromhex("e2801105"), antenna=2, peak_rssi=-71, seen_count=3, pc=0x1000),
        c.TagReport(bytes(range(62)), antenna=4, peak_rssi=0, channel=7),
    ]
    raw = c.encode_ro_access_report(9, tags)
    assert raw[10:12] == b"\x00\xf0" and raw[14:15] == b"\x8d"  # EPC-96 goes as TV
    (msg,) = c.MessageDecoder().feed(raw)
    report = c.decode_ro_access_report(msg.body)
    assert report.tags == tags and report.unknown == []


def test_reader_event_and_status_round_trip() -> None:
    (msg,) = c.MessageDecoder().feed(c.encode_connection_attempt_event(0, 2, utc_us=123))
    event = c.decode_reader_event(msg.body)
    assert event.connection_attempt == 2 and event.unknown == []
    (msg,) = c.MessageDecoder().feed(c.encode_response(c.ADD_ROSPEC_RESPONSE, 4, 104, "dup"))
    assert (msg.type, msg.msg_id) == (c.ADD_ROSPEC_RESPONSE, 4)
    status = c.response_status(msg)
    assert (status.code, status.description, status.ok) == (104, "dup", False)


def test_status_with_field_and_parameter_errors() -> None:
    field_error = c.tlv(c.P_FIELD_ERROR, struct.pack(">HH", 2, 101))
    param_error = c.tlv(c.P_PARAMETER_ERROR, struct.pack(">HH", 183, 100), field_error)
    text = b"bad AISpec"
    status_tlv = c.tlv(c.P_LLRP_STATUS, struct.pack(">HH", 100, len(text)) + text, param_error)
    msg = c.Message(c.ADD_ROSPEC_RESPONSE, 1, status_tlv)
    status = c.response_status(msg)
    assert status.code == 100 and status.description == "bad AISpec"
    assert status.details == ("parameter 183: error 100", "parameter 183 / field 2: error 101")
    assert "parameter 183" in str(status)


def test_unknown_parameters_are_skipped_and_listed() -> None:
    custom = c.tlv(c.P_CUSTOM, struct.pack(">II", 25882, 56) + b"\x01\x02")
    unknown_tv = bytes([0x80 | 99, 0, 0])  # a TV type of unknown size ends its list
    good = c.tv(c.TV_EPC_96, bytes.fromhex(WORKED_EPC)) + c.tv(c.TV_ANTENNA_ID, b"\x00\x03")
    body = c.tlv(c.P_TAG_REPORT_DATA, good + unknown_tv) + custom
    report = c.decode_ro_access_report(body)
    assert report.tags == [c.TagReport(bytes.fromhex(WORKED_EPC), antenna=3)]
    assert sorted(report.unknown) == [99, c.P_CUSTOM]


def test_capabilities_from_llrpkit_encoding() -> None:
    response = llrp_messages.GET_READER_CAPABILITIES_RESPONSE(
        llrp_status=llrp_params.LLRPStatus(status_code=0),
        general_device_capabilities=llrp_params.GeneralDeviceCapabilities(
            max_number_of_antenna_supported=4,
            device_manufacturer_name=25882,
            model_name=2001002,
            reader_firmware_version="8.4.1",
            receive_sensitivity_table_entrys=[
                llrp_params.ReceiveSensitivityTableEntry(index=1, receive_sensitivity_value=0)
            ],
            gpio_capabilities=llrp_params.GPIOCapabilities(num_gp_is=4, num_gp_os=4),
            per_antenna_air_protocols=[
                llrp_params.PerAntennaAirProtocol(antenna_id=1, protocol_id=b"\x01")
            ],
        ),
        regulatory_capabilities=llrp_params.RegulatoryCapabilities(
            country_code=840,
            communications_standard=1,
            uhf_band_capabilities=llrp_params.UHFBandCapabilities(
                transmit_power_level_table_entrys=[
                    llrp_params.TransmitPowerLevelTableEntry(index=i, transmit_power_value=v)
                    for i, v in [(1, 1000), (2, 1025), (3, 3150)]
                ],
                frequency_information=llrp_params.FrequencyInformation(
                    hopping=True,
                    frequency_hop_tables=[
                        llrp_params.FrequencyHopTable(hop_table_id=3, frequency=[902750])
                    ],
                ),
                air_protocol_uhfrf_mode_tables=[
                    llrp_params.C1G2UHFRFModeTable(
                        c1_g2_uhfrf_mode_table_entrys=[llrp_params.C1G2UHFRFModeTableEntry()]
                    )
                ],
            ),
        ),
    )
    (msg,) = c.MessageDecoder().feed(response.to_bytes(message_id=8))
    assert c.response_status(msg).ok
    caps = c.decode_capabilities(msg.body)
    assert (caps.max_antennas, caps.manufacturer, caps.model) == (4, 25882, 2001002)
    assert caps.firmware == "8.4.1"
    assert caps.power_table == {1: 10.0, 2: 10.25, 3: 31.5}
    assert caps.hop_table_ids == [3]
    assert caps.nearest_power(10.125) == (1, 10.0)  # a tie takes the lower index
    assert caps.nearest_power(99) == (3, 31.5)
    assert caps.nearest_power(-5) == (1, 10.0)
    with pytest.raises(LookupError):
        c.Capabilities().nearest_power(20)


# -- codec: what llrpkit makes of the messages the driver sends ----------------------------------


def test_add_rospec_as_llrpkit_decodes_it() -> None:
    raw = c.encode_add_rospec(11, ROSPEC_ID, (1, 2), duration_ms=200, period_ms=220)
    msg = decode_message(raw)
    assert isinstance(msg, llrp_messages.ADD_ROSPEC) and msg.message_id == 11
    spec = msg.ro_spec
    assert spec.ro_spec_id == ROSPEC_ID and int(spec.current_state) == 0
    start = spec.ro_boundary_spec.ro_spec_start_trigger
    assert int(start.ro_spec_start_trigger_type) == int(enums.ROSpecStartTriggerType.Periodic)
    assert start.periodic_trigger_value is not None
    assert (start.periodic_trigger_value.offset, start.periodic_trigger_value.period) == (0, 220)
    stop = spec.ro_boundary_spec.ro_spec_stop_trigger
    assert int(stop.ro_spec_stop_trigger_type) == int(enums.ROSpecStopTriggerType.Null)
    (aispec,) = spec.spec_parameters
    assert isinstance(aispec, llrp_params.AISpec)
    assert aispec.antenna_ids == [1, 2]
    trigger = aispec.ai_spec_stop_trigger
    assert int(trigger.ai_spec_stop_trigger_type) == int(enums.AISpecStopTriggerType.Duration)
    assert trigger.duration_trigger == 200
    (inventory,) = aispec.inventory_parameter_specs
    assert int(inventory.protocol_id) == int(enums.AirProtocols.EPCGlobalClass1Gen2)
    report = spec.ro_report_spec
    assert report is not None and report.n == 0
    assert int(report.ro_report_trigger) == int(
        enums.ROReportTriggerType.Upon_N_Tags_Or_End_Of_AISpec
    )
    selector = report.tag_report_content_selector
    assert selector.enable_antenna_id and selector.enable_peak_rssi
    assert selector.enable_tag_seen_count
    assert not (selector.enable_first_seen_timestamp or selector.enable_ro_spec_id)
    (memory,) = selector.air_protocol_epc_memory_selectors
    assert memory.enable_pc_bits and not memory.enable_crc


def test_set_reader_config_as_llrpkit_decodes_it() -> None:
    raw = c.encode_set_reader_config(
        12, keepalive_ms=5000, power_index=11, antennas=(1, 2), hop_table_id=3, aispec_events=True
    )
    msg = decode_message(raw)
    assert isinstance(msg, llrp_messages.SET_READER_CONFIG)
    assert not msg.reset_to_factory_default
    spec = msg.reader_event_notification_spec
    assert spec is not None
    (state,) = spec.event_notification_states
    assert int(state.event_type) == int(enums.NotificationEventType.AISpec_Event)
    assert state.notification_state
    assert [a.antenna_id for a in msg.antenna_configurations] == [1, 2]
    for config in msg.antenna_configurations:
        assert config.rf_transmitter is not None
        transmitter = config.rf_transmitter
        assert (transmitter.hop_table_id, transmitter.channel_index) == (3, 1)
        assert transmitter.transmit_power == 11
    assert msg.keepalive_spec is not None
    assert int(msg.keepalive_spec.keepalive_trigger_type) == 1
    assert msg.keepalive_spec.periodic_trigger_value == 5000
    plain = decode_message(c.encode_set_reader_config(13, keepalive_ms=5000))
    assert isinstance(plain, llrp_messages.SET_READER_CONFIG)
    assert plain.reader_event_notification_spec is None


def test_event_notification_spec_byte_exact() -> None:
    body = c.set_reader_config_body(aispec_events=True)
    # Reset byte, then ReaderEventNotificationSpec (244, 11 bytes) holding EventNotificationState
    # (245, 7 bytes): EventType 6 (AISpec_Event), NotificationState 1 in the top bit.
    assert body == bytes.fromhex("00 00 f4 00 0b 00 f5 00 07 00 06 80")


def test_aispec_event_round_trip_and_llrpkit() -> None:
    raw = c.encode_aispec_event(5, ROSPEC_ID, 1, utc_us=99)
    theirs = decode_message(raw)
    assert isinstance(theirs, llrp_messages.READER_EVENT_NOTIFICATION)
    aispec = theirs.reader_event_notification_data.ai_spec_event
    assert aispec is not None
    assert int(aispec.event_type) == int(enums.AISpecEventType.End_Of_AISpec)
    assert (aispec.ro_spec_id, aispec.spec_index) == (ROSPEC_ID, 1)
    (msg,) = c.MessageDecoder().feed(raw)
    event = c.decode_reader_event(msg.body)
    assert event.aispec == c.AISpecEvent(0, ROSPEC_ID, 1) and event.aispec.end
    assert event.unknown == [] and event.events == [] and event.connection_attempt is None
    # llrpkit's encoding of the same event, from a reader's point of view.
    notification = llrp_messages.READER_EVENT_NOTIFICATION(
        reader_event_notification_data=llrp_params.ReaderEventNotificationData(
            timestamp=llrp_params.UTCTimestamp(microseconds=1),
            ai_spec_event=llrp_params.AISpecEvent(event_type=0, ro_spec_id=77, spec_index=2),
        )
    )
    (msg,) = c.MessageDecoder().feed(notification.to_bytes(message_id=6))
    assert c.decode_reader_event(msg.body).aispec == c.AISpecEvent(0, 77, 2)
    truncated = c.tlv(c.P_READER_EVENT_NOTIFICATION_DATA, b"", c.tlv(c.P_AISPEC_EVENT, b"\x00"))
    with pytest.raises(c.LlrpDecodeError):
        c.decode_reader_event(truncated)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (c.encode_keepalive_ack(1), llrp_messages.KEEPALIVE_ACK),
        (c.encode_close_connection(1), llrp_messages.CLOSE_CONNECTION),
        (c.encode_get_reader_capabilities(1), llrp_messages.GET_READER_CAPABILITIES),
        (c.encode_rospec_command(c.START_ROSPEC, 1, 7), llrp_messages.START_ROSPEC),
        (c.encode_rospec_command(c.STOP_ROSPEC, 1, 7), llrp_messages.STOP_ROSPEC),
        (c.encode_rospec_command(c.ENABLE_ROSPEC, 1, 7), llrp_messages.ENABLE_ROSPEC),
        (c.encode_rospec_command(c.DISABLE_ROSPEC, 1, 7), llrp_messages.DISABLE_ROSPEC),
        (c.encode_rospec_command(c.DELETE_ROSPEC, 1, 0), llrp_messages.DELETE_ROSPEC),
    ],
)
def test_requests_as_llrpkit_decodes_them(raw: bytes, expected: type[Any]) -> None:
    assert isinstance(decode_message(raw), expected)


def test_llrpkit_report_decodes() -> None:
    trd = llrp_params.TagReportData(
        epc_parameter=llrp_params.EPCData(epc=BitStr.from_bytes(b"\xab\xcd")),
        antenna_id=llrp_params.AntennaID(antenna_id=2),
        peak_rssi=llrp_params.PeakRSSI(peak_rssi=-61),
        tag_seen_count=llrp_params.TagSeenCount(tag_count=4),
    )
    raw = llrp_messages.RO_ACCESS_REPORT(tag_report_datas=[trd]).to_bytes(message_id=3)
    (msg,) = c.MessageDecoder().feed(raw)
    (tag,) = c.decode_ro_access_report(msg.body).tags
    assert (tag.epc, tag.antenna, tag.peak_rssi, tag.seen_count) == (b"\xab\xcd", 2, -61, 4)


# -- codec: fuzzing ------------------------------------------------------------------------------

messages_st = st.builds(
    lambda t, i, b: c.encode_message(t, b, i),
    st.integers(0, 1023),
    st.integers(0, 0xFFFFFFFF),
    st.binary(max_size=48),
) | st.sampled_from([WORKED_EXAMPLE, c.encode_keepalive(1), c.encode_close_connection(2)])
# No byte that can start a header: reserved bits 0 and version 1 or 2 means 0x04..0x0B.
garbage_st = st.binary(max_size=12).map(lambda b: bytes(x for x in b if not 0x04 <= x <= 0x0B))


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=6))
def test_random_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    decoder = c.MessageDecoder()
    for chunk in _chunks(data, cuts):
        for msg in decoder.feed(chunk):
            assert c.HEADER_LEN + len(msg.body) <= c.MAX_MESSAGE_LEN


@settings(deadline=None)
@given(st.binary(max_size=300))
def test_body_decoders_raise_only_decode_errors(body: bytes) -> None:
    decoders: list[Callable[[bytes], object]] = [
        c.decode_ro_access_report,
        c.decode_reader_event,
        c.decode_capabilities,
        c.parse_params,
        lambda b: c.response_status(c.Message(c.ADD_ROSPEC_RESPONSE, 1, b)),
    ]
    for decode in decoders:
        with contextlib.suppress(c.LlrpDecodeError):
            decode(body)
    assert True  # reaching here means nothing else was raised


@settings(deadline=None)
@given(st.lists(messages_st, min_size=1, max_size=8), st.lists(st.integers(0, 500), max_size=8))
def test_valid_messages_found_whatever_the_chunking(raws: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(raws)
    decoder = c.MessageDecoder()
    found = [m for chunk in _chunks(stream, cuts) for m in decoder.feed(chunk)]
    assert [m.raw for m in found] == raws
    assert decoder.garbage_bytes == 0 and decoder.buffered == 0


@settings(deadline=None)
@given(st.lists(st.tuples(garbage_st, messages_st), max_size=8), garbage_st)
def test_valid_messages_found_between_garbage(
    pairs: list[tuple[bytes, bytes]], tail: bytes
) -> None:
    stream = b"".join(g + m for g, m in pairs) + tail
    decoder = c.MessageDecoder()
    found = decoder.feed(stream)
    assert [m.raw for m in found] == [m for _, m in pairs]
    assert decoder.garbage_bytes == sum(len(g) for g, _ in pairs) + len(tail)


# -- driver helpers ------------------------------------------------------------------------------


class Recorder:
    """An InventoryListener that lets a test wait for a condition without sleeping."""

    def __init__(self) -> None:
        self.tags: list[TagRead] = []
        self.tag_rounds: list[int] = []
        """For each tag, the number of the round it is part of (the next one to end)."""
        self.rounds: list[RoundEnd] = []
        self.availability: list[bool] = []
        self.reasons: list[str | None] = []
        self.reader: LlrpReader | None = None
        self._changed = asyncio.Event()

    def on_tag(self, read: TagRead) -> None:
        self.tags.append(read)
        self.tag_rounds.append(self.rounds[-1].number + 1 if self.rounds else 1)
        self._changed.set()

    def on_round(self, end: RoundEnd) -> None:
        self.rounds.append(end)
        self._changed.set()

    def on_available(self, available: bool) -> None:
        self.availability.append(available)
        if not available and self.reader is not None:
            self.reasons.append(self.reader.metrics.last_error)
        self._changed.set()

    async def until(self, condition: Callable[[], bool], timeout: float = WAIT) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    def epcs_after(self, round_number: int) -> set[str]:
        """EPCs read in rounds numbered above ``round_number`` (one tag per emulator report)."""
        return {
            t.epc for t, r in zip(self.tags, self.rounds, strict=False) if r.number > round_number
        }


EPC_A = bytes.fromhex("3005fb63ac1f3841ec880467")
EPC_B = bytes.fromhex("e28011052000a1b2c3d4e5f6")
EPC_C = bytes.fromhex("e2801105")  # 32 bits: the emulator sends it as EPCData
EPC_OFF = bytes.fromhex("300000000000000000000099")


def population() -> list[EmulatedTag]:
    return [
        EmulatedTag(EPC_A, antennas=(1,), rssi_dbm=-50.0),
        EmulatedTag(EPC_B, antennas=(2,), rssi_dbm=-64.0),
        EmulatedTag(EPC_OFF, antennas=(3,), rssi_dbm=-40.0),  # antenna 3 is not configured
    ]


@pytest.fixture
async def emulator() -> AsyncIterator[LLRPEmulator]:
    emu = LLRPEmulator(tags=population(), reads_per_sec=400.0, seed=7)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


@contextlib.asynccontextmanager
async def running(port: int, **kwargs: Any) -> AsyncIterator[tuple[LlrpReader, Recorder]]:
    options: dict[str, Any] = {
        "antennas": (1, 2),
        "command_timeout": 1.0,
        "reconnect_initial": 0.02,
        "reconnect_max": 0.2,
    }
    options.update(kwargs)
    reader = LlrpReader("llrp-test", "127.0.0.1", port, **options)
    recorder = Recorder()
    recorder.reader = reader
    reader.add_listener(recorder)
    reader.add_availability_listener(recorder.on_available)
    await reader.start()
    try:
        yield reader, recorder
    finally:
        await reader.close()


# -- driver against the llrpkit emulator ---------------------------------------------------------


async def test_rounds_over_two_antennas(emulator: LLRPEmulator) -> None:
    async with running(emulator.port) as (reader, rec):
        assert await reader.wait_available(WAIT)
        assert reader.capabilities is not None and reader.capabilities.max_antennas == 4
        await reader.start_inventory()
        epcs = {EPC_A.hex(), EPC_B.hex()}
        await rec.until(lambda: len(rec.rounds) >= 30 and {t.epc for t in rec.tags} >= epcs)
        await reader.stop_inventory()
    by_epc: dict[str, list[TagRead]] = {}
    for read in rec.tags:
        by_epc.setdefault(read.epc, []).append(read)
    assert set(by_epc) == epcs  # the tag on antenna 3 is outside the AISpec
    assert {r.antenna for r in by_epc[EPC_A.hex()]} == {1}
    assert {r.antenna for r in by_epc[EPC_B.hex()]} == {2}
    # The emulator adds N(0, 1.5 dB) noise to each tag's RSSI.
    assert all(r.rssi is not None and abs(r.rssi + 50) <= 8 for r in by_epc[EPC_A.hex()])
    assert all(r.rssi is not None and abs(r.rssi + 64) <= 8 for r in by_epc[EPC_B.hex()])
    assert [r.number for r in rec.rounds] == list(range(1, len(rec.rounds) + 1))
    assert all(r.antennas == (1, 2) for r in rec.rounds)
    assert sum(r.reads for r in rec.rounds) == len(rec.tags) == reader.metrics.tag_reads
    assert reader.metrics.rounds == len(rec.rounds)
    assert reader.metrics.corrupt_frames == reader.metrics.unknown_frames == 0
    # The emulator sends no AISpec events: every report was a round (the fallback).
    assert "aispec_events" not in reader.metrics.extra


async def test_epcdata_tags_and_population_change(emulator: LLRPEmulator) -> None:
    async with running(emulator.port) as (reader, rec):
        assert await reader.wait_available(WAIT)
        await reader.start_inventory()
        await rec.until(lambda: EPC_A.hex() in {t.epc for t in rec.tags})
        emulator.tags = [EmulatedTag(EPC_C, antennas=(2,), rssi_dbm=-58.0)]
        await rec.until(lambda: EPC_C.hex() in {t.epc for t in rec.tags})
        changed_at = next(
            r.number for t, r in zip(rec.tags, rec.rounds, strict=False) if t.epc == EPC_C.hex()
        )
        await rec.until(lambda: len(rec.rounds) >= changed_at + 20)
        await reader.stop_inventory()
    assert rec.epcs_after(changed_at - 1) == {EPC_C.hex()}
    assert {t.antenna for t in rec.tags if t.epc == EPC_C.hex()} == {2}


async def test_set_power_uses_the_nearest_table_entry(emulator: LLRPEmulator) -> None:
    async with running(emulator.port) as (reader, _):
        with pytest.raises(ReaderUnavailable):
            await reader.set_power(20)  # not connected yet
        assert await reader.wait_available(WAIT)
        await reader.set_power(19.96)
        assert reader.power_dbm == 20.0  # the emulator's table: 10..30 dBm in 1 dB steps
        await reader.set_power(99)
        assert reader.power_dbm == 30.0
        await reader.set_power(0)
        assert reader.power_dbm == 10.0
        assert reader.available and reader.metrics.timeouts == 0


async def test_keepalives_are_answered(emulator: LLRPEmulator) -> None:
    # The driver's KeepaliveSpec makes the emulator send KEEPALIVE every 50 ms.
    async with running(emulator.port, keepalive_period=0.05) as (reader, _):
        assert await reader.wait_available(WAIT)
        await emulator.wait_keepalive_ack(WAIT)
        acks = emulator.keepalive_acks
        await emulator.send_keepalive()
        await emulator.wait_keepalive_ack(WAIT)
        assert emulator.keepalive_acks > acks
        assert reader.metrics.extra["keepalives"] >= 2
        assert reader.available


async def test_reconnects_after_the_reader_restarts(emulator: LLRPEmulator) -> None:
    port = emulator.port
    async with running(port) as (reader, rec):
        assert await reader.wait_available(WAIT)
        await reader.start_inventory()
        await rec.until(lambda: len(rec.rounds) >= 5)
        await emulator.stop()
        await rec.until(lambda: rec.availability[-1:] == [False])
        assert not reader.available and reader.metrics.last_error
        before = len(rec.rounds)
        restarted = LLRPEmulator(port=port, tags=population(), reads_per_sec=400.0, seed=8)
        await restarted.start()
        try:
            await rec.until(lambda: rec.availability[-1:] == [True])
            # Inventory resumes by itself: nobody called start_inventory again.
            await rec.until(lambda: len(rec.rounds) >= before + 10)
            assert reader.metrics.reconnects == 1
            await reader.stop_inventory()
        finally:
            await reader.close()
            await restarted.stop()
    assert rec.availability == [True, False, True, False]
    assert [r.number for r in rec.rounds] == list(range(1, len(rec.rounds) + 1))
    assert {t.epc for t in rec.tags[before:]} <= {EPC_A.hex(), EPC_B.hex()}


async def test_stop_inventory_stops_rounds_and_start_resumes(emulator: LLRPEmulator) -> None:
    async with running(emulator.port) as (reader, rec):
        assert await reader.wait_available(WAIT)
        await reader.start_inventory()
        await rec.until(lambda: len(rec.rounds) >= 5)
        await reader.stop_inventory()
        stopped_at = len(rec.rounds)
        # A keepalive round trip is a barrier: everything sent before it has been handled.
        await emulator.send_keepalive()
        await emulator.wait_keepalive_ack(WAIT)
        await emulator.send_keepalive()
        await emulator.wait_keepalive_ack(WAIT)
        assert len(rec.rounds) == stopped_at
        await reader.start_inventory()
        await rec.until(lambda: len(rec.rounds) >= stopped_at + 5)
        assert reader.available


async def test_refused_commands_raise_reader_rejected(emulator: LLRPEmulator) -> None:
    async with running(emulator.port) as (reader, _):
        assert await reader.wait_available(WAIT)
        with pytest.raises(LlrpRejected) as refused:
            await reader.transact(c.ENABLE_ROSPEC, c.rospec_id_body(4242))
        assert isinstance(refused.value, ReaderRejected)
        assert refused.value.status.code == int(enums.StatusCode.M_ParameterError)
        assert "no ROSpec 4242" in str(refused.value)
        # A message the emulator does not handle comes back as ERROR_MESSAGE.
        with pytest.raises(LlrpRejected) as unsupported:
            await reader.transact(900)
        assert unsupported.value.status.code == int(enums.StatusCode.M_UnsupportedMessage)
        assert "ERROR_MESSAGE" in str(unsupported.value)
        assert reader.available  # a refusal is not a lost reader


async def test_second_client_is_refused_until_the_first_closes(emulator: LLRPEmulator) -> None:
    async with running(emulator.port) as (first, _):
        assert await first.wait_available(WAIT)
        async with running(emulator.port) as (second, _):
            assert not await second.wait_available(0.5)
            assert "status 2" in (second.metrics.last_error or "")
            await first.close()
            assert await second.wait_available(WAIT)


async def test_unanswered_command_times_out_and_reconnects(emulator: LLRPEmulator) -> None:
    async with running(emulator.port, command_timeout=0.3) as (reader, rec):
        assert await reader.wait_available(WAIT)
        emulator.drop_next(llrp_messages.SET_READER_CONFIG)
        with pytest.raises(ReaderTimeout):
            await reader.set_power(20)
        await rec.until(lambda: rec.availability[-2:] == [False, True])
        assert reader.metrics.reconnects == 1 and reader.metrics.timeouts >= 1
        await reader.set_power(20)
        assert reader.power_dbm == 20.0


# -- driver against a scripted reader -------------------------------------------------------------


class ScriptedReader:
    """A minimal LLRP reader: answers every request with success and records it; can stay silent
    and can push any bytes to the driver.

    ``on_start`` is written once right after the START_ROSPEC response. ``run`` plays one AISpec
    run: while the ROSpec is started it is written every ``run_period`` seconds, the way a real
    reader with a periodic start trigger repeats its runs (a real reader sends no report for an
    empty run, only the AISpec end event).
    """

    def __init__(self) -> None:
        self.received: list[c.Message] = []
        self.silent = False
        self.on_start: list[bytes] = []
        self.run: list[bytes] = []
        self.run_period = 0.01
        self.refuse_event_spec = False
        self.connections = 0
        self._writer: asyncio.StreamWriter | None = None
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Event()
        self._keepalive: asyncio.Task[None] | None = None
        self._runs: asyncio.Task[None] | None = None
        self._barrier_id = 5000
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._stop_runs()
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def types(self) -> list[int]:
        return [m.type for m in self.received if m.type != c.KEEPALIVE_ACK]

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    def send(self, raw: bytes) -> None:
        assert self._writer is not None
        self._writer.write(raw)

    def drop(self) -> None:
        """Cut the current connection, as a reader reboot would."""
        assert self._writer is not None
        self._writer.transport.abort()

    async def barrier(self) -> None:
        """Returns once the driver has handled everything sent before: a KEEPALIVE is answered
        in order, after every message ahead of it."""
        self._barrier_id += 1
        msg_id = self._barrier_id
        self.send(c.encode_keepalive(msg_id))
        await self.until(
            lambda: any(m.type == c.KEEPALIVE_ACK and m.msg_id == msg_id for m in self.received)
        )

    def _stop_runs(self) -> None:
        if self._runs is not None:
            self._runs.cancel()
            self._runs = None

    def _start_runs(self, writer: asyncio.StreamWriter) -> None:
        self._stop_runs()
        if not self.run:
            return

        async def play() -> None:
            while not writer.is_closing():
                await asyncio.sleep(self.run_period)  # the peer's own clock, not a test wait
                for raw in self.run:
                    writer.write(raw)

        self._runs = asyncio.get_running_loop().create_task(play())

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writer = writer
        self._changed.set()
        if not self.silent:
            writer.write(c.encode_connection_attempt_event(0, c.CONNECTION_SUCCESS))
        decoder = c.MessageDecoder()
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(4096):
                for msg in decoder.feed(data):
                    self.received.append(msg)
                    self._changed.set()
                    if self.silent or msg.type not in c.RESPONSE_TYPE:
                        continue
                    reply_type = c.RESPONSE_TYPE[msg.type]
                    if self.refuse_event_spec and _asks_for_events(msg):
                        writer.write(c.encode_response(reply_type, msg.msg_id, 111, "no events"))
                        continue
                    writer.write(c.encode_response(reply_type, msg.msg_id))
                    if msg.type == c.SET_READER_CONFIG:
                        self._honour_keepalive_spec(msg, writer)
                    if msg.type == c.START_ROSPEC:
                        for raw in self.on_start:
                            writer.write(raw)
                        self._start_runs(writer)
                    if msg.type in (c.STOP_ROSPEC, c.DISABLE_ROSPEC, c.DELETE_ROSPEC):
                        self._stop_runs()
        writer.close()
        self._stop_runs()
        if self._keepalive is not None:
            self._keepalive.cancel()

    def _honour_keepalive_spec(self, msg: c.Message, writer: asyncio.StreamWriter) -> None:
        spec = c.parse_params(msg.body, 1).first(c.P_KEEPALIVE_SPEC)
        if spec is None:
            return
        period = struct.unpack(">BI", spec.value)[1] / 1000

        async def beat() -> None:
            while not writer.is_closing():
                await asyncio.sleep(period)  # the peer's own clock, not a test wait
                if not self.silent:
                    writer.write(c.encode_keepalive(1000))

        if self._keepalive is not None:
            self._keepalive.cancel()
        self._keepalive = asyncio.get_running_loop().create_task(beat())


def _asks_for_events(msg: c.Message) -> bool:
    if msg.type != c.SET_READER_CONFIG:
        return False
    return c.parse_params(msg.body, 1).first(c.P_READER_EVENT_NOTIFICATION_SPEC) is not None


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedReader]:
    peer = ScriptedReader()
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()


async def test_request_sequence_and_worked_example_report(scripted: ScriptedReader) -> None:
    scripted.on_start = [WORKED_EXAMPLE]
    async with running(scripted.port, antennas=(1,), round_duration=0.5) as (reader, rec):
        assert await reader.wait_available(WAIT)
        assert scripted.types() == [
            c.GET_READER_CAPABILITIES,
            c.SET_READER_CONFIG,
            c.DELETE_ROSPEC,
            c.ADD_ROSPEC,
        ]
        await reader.start_inventory()
        await rec.until(lambda: len(rec.rounds) == 1)
        assert rec.tags == [TagRead(WORKED_EPC, 1, -50, None)]
        assert rec.rounds == [RoundEnd(1, (1,), 1)]
        await reader.stop_inventory()
        with pytest.raises(ReaderRejected, match="no transmit power table"):
            await reader.set_power(20)  # this reader reported no capabilities
    await scripted.until(lambda: c.CLOSE_CONNECTION in scripted.types())
    assert scripted.types()[4:] == [
        c.ENABLE_ROSPEC,
        c.START_ROSPEC,
        c.STOP_ROSPEC,
        c.DISABLE_ROSPEC,
        c.DELETE_ROSPEC,
        c.CLOSE_CONNECTION,
    ]
    config = decode_message(scripted.received[1].raw)
    assert isinstance(config, llrp_messages.SET_READER_CONFIG)
    assert config.keepalive_spec is not None
    assert config.reader_event_notification_spec is not None
    (state,) = config.reader_event_notification_spec.event_notification_states
    assert int(state.event_type) == int(enums.NotificationEventType.AISpec_Event)
    assert state.notification_state
    add = decode_message(scripted.received[3].raw)
    assert isinstance(add, llrp_messages.ADD_ROSPEC)
    (aispec,) = add.ro_spec.spec_parameters
    assert isinstance(aispec, llrp_params.AISpec)
    assert aispec.ai_spec_stop_trigger.duration_trigger == 500
    delete_all = scripted.received[2]
    assert delete_all.body == b"\x00\x00\x00\x00"  # ROSpecID 0: every ROSpec


async def test_garbage_and_unknown_messages_never_crash(scripted: ScriptedReader) -> None:
    good = c.encode_ro_access_report(
        5, [c.TagReport(EPC_C, antenna=2, peak_rssi=-60, seen_count=3, pc=0x1000)]
    )
    unknown_param = c.tlv(c.P_CUSTOM, struct.pack(">II", 25882, 1) + b"\x00")
    corrupt = c.encode_message(c.RO_ACCESS_REPORT, c.tlv(c.P_TAG_REPORT_DATA)[:2] + b"\xff\xff", 6)
    scripted.on_start = [
        b"\xff\xee\x00garbage",  # no header can start in these bytes
        c.encode_message(999, b"\x01\x02", 77),  # a message type nobody defined
        corrupt,  # a TLV whose length runs past the message
        c.encode_message(c.RO_ACCESS_REPORT, unknown_param, 8),  # an empty round + unknown param
        good,
    ]
    async with running(scripted.port) as (reader, rec):
        assert await reader.wait_available(WAIT)
        await reader.start_inventory()
        await rec.until(lambda: len(rec.rounds) == 2)
        assert rec.tags == [TagRead(EPC_C.hex(), 2, -60, 0x1000)]
        assert rec.rounds == [RoundEnd(1, (1, 2), 0), RoundEnd(2, (1, 2), 3)]
        metrics = reader.metrics
        assert metrics.garbage_bytes == len(b"\xff\xee\x00garbage")
        assert metrics.unknown_frames == 1
        assert metrics.corrupt_frames == 1
        assert metrics.extra["unknown_parameters"] == 1
        assert reader.available


async def test_silent_reader_goes_unavailable_and_comes_back(scripted: ScriptedReader) -> None:
    async with running(scripted.port, keepalive_period=0.05, command_timeout=0.2) as (
        reader,
        rec,
    ):
        assert await reader.wait_available(WAIT)
        scripted.silent = True  # answers nothing, sends no KEEPALIVE: the watchdog must fire
        await rec.until(lambda: rec.availability[-1:] == [False])
        assert "nothing from the reader" in (rec.reasons[-1] or "")
        await scripted.until(lambda: scripted.connections >= 2)  # retrying by itself
        scripted.silent = False
        await rec.until(lambda: rec.availability[-1:] == [True])
        assert reader.metrics.reconnects >= 1


# -- rounds ended by AISpec events ---------------------------------------------------------------


def _report(msg_id: int, *tags: c.TagReport) -> bytes:
    return c.encode_ro_access_report(msg_id, tags)


def _ended(msg_id: int, rospec_id: int = ROSPEC_ID) -> bytes:
    return c.encode_aispec_event(msg_id, rospec_id, 1)


TAG_A = c.TagReport(EPC_A, antenna=1, peak_rssi=-50)
TAG_B = c.TagReport(EPC_B, antenna=2, peak_rssi=-64)
TAG_C = c.TagReport(EPC_C, antenna=2, peak_rssi=-58, seen_count=3)


async def test_empty_runs_end_rounds_with_zero_reads(scripted: ScriptedReader) -> None:
    # An empty read zone: the reader sends no report at all, only the end of every AISpec run.
    scripted.run = [_ended(900)]
    async with running(scripted.port) as (reader, rec):
        assert await reader.wait_available(WAIT)
        await reader.start_inventory()
        await rec.until(lambda: len(rec.rounds) >= 20)
        await reader.stop_inventory()
        await scripted.barrier()
        stopped_at = len(rec.rounds)
        scripted.send(_ended(901))  # the end of a run cut short by STOP_ROSPEC
        await scripted.barrier()
        assert len(rec.rounds) == stopped_at  # no round after stop_inventory returned
        assert reader.available
    assert rec.tags == []
    assert [r.number for r in rec.rounds] == list(range(1, stopped_at + 1))
    assert all(r.reads == 0 and r.antennas == (1, 2) for r in rec.rounds)
    assert reader.metrics.rounds == stopped_at
    assert reader.metrics.extra["aispec_events"] >= stopped_at + 1


async def test_reports_before_the_end_event_land_in_that_round(scripted: ScriptedReader) -> None:
    scripted.on_start = [
        _ended(1),  # run 1: nothing read
        _report(2, TAG_A, TAG_B),  # run 2: two tags, then its end
        _ended(3),
        _ended(4, rospec_id=7),  # another client's ROSpec: not ours, not a round
        _report(5, TAG_C),  # run 3: one tag seen three times
        _ended(6),
    ]
    async with running(scripted.port) as (reader, rec):
        assert await reader.wait_available(WAIT)
        await reader.start_inventory()
        await rec.until(lambda: len(rec.rounds) == 3)
        await scripted.barrier()
        assert rec.rounds == [
            RoundEnd(1, (1, 2), 0),
            RoundEnd(2, (1, 2), 2),
            RoundEnd(3, (1, 2), 3),
        ]
        assert [t.epc for t in rec.tags] == [EPC_A.hex(), EPC_B.hex(), EPC_C.hex()]
        assert rec.tag_rounds == [2, 2, 3]
        assert reader.metrics.extra["aispec_events"] == 3
        assert reader.metrics.extra["aispec_events_ignored"] == 1


async def test_report_after_the_end_event_counts_in_the_next_round(
    scripted: ScriptedReader,
) -> None:
    scripted.on_start = [
        _report(1, TAG_A),  # run 1, before any event: the fallback ends the round here...
        _ended(2),  # ...so the first event, for the same run, ends no second round
        _ended(3),  # run 2 ends...
        _report(4, TAG_B),  # ...and its report comes late
        _report(5, TAG_C),  # run 3
        _ended(6),
        _ended(7),  # run 4: nothing read
    ]
    async with running(scripted.port) as (reader, rec):
        assert await reader.wait_available(WAIT)
        await reader.start_inventory()
        await rec.until(lambda: len(rec.rounds) == 4)
        await scripted.barrier()
        assert [(r.number, r.reads) for r in rec.rounds] == [(1, 1), (2, 0), (3, 4), (4, 0)]
        assert [t.epc for t in rec.tags] == [EPC_A.hex(), EPC_B.hex(), EPC_C.hex()]
        assert rec.tag_rounds == [1, 3, 3]  # the late tag is in the next round, not lost
        assert sum(r.reads for r in rec.rounds) == 1 + 1 + 3


async def test_reader_refusing_events_falls_back_to_reports(scripted: ScriptedReader) -> None:
    scripted.refuse_event_spec = True
    scripted.on_start = [_report(1, TAG_A), _report(2, TAG_B)]
    async with running(scripted.port) as (reader, rec):
        assert await reader.wait_available(WAIT)
        await reader.start_inventory()
        await rec.until(lambda: len(rec.rounds) == 2)
        assert rec.rounds == [RoundEnd(1, (1, 2), 1), RoundEnd(2, (1, 2), 1)]
        assert rec.tag_rounds == [1, 2]
        assert reader.metrics.extra["aispec_events_refused"] == 1
    configs = [m for m in scripted.received if m.type == c.SET_READER_CONFIG]
    assert [_asks_for_events(m) for m in configs] == [True, False]
    retry = decode_message(configs[1].raw)
    assert isinstance(retry, llrp_messages.SET_READER_CONFIG)
    assert retry.keepalive_spec is not None


async def test_event_mode_is_per_connection(scripted: ScriptedReader) -> None:
    scripted.on_start = [_ended(1), _report(2, TAG_A)]  # ends in event mode, a read pending
    async with running(scripted.port) as (reader, rec):
        assert await reader.wait_available(WAIT)
        await reader.start_inventory()
        await rec.until(lambda: len(rec.rounds) == 1 and len(rec.tags) == 1)
        # The reader is replaced by one without AISpec events: reports are rounds again, and
        # nothing pending from the lost connection leaks into them.
        scripted.on_start = [_report(3, TAG_B)]
        await scripted.barrier()
        scripted.drop()
        await rec.until(lambda: rec.availability[-2:] == [False, True])
        await rec.until(lambda: len(rec.rounds) == 2)
        assert rec.rounds[1] == RoundEnd(2, (1, 2), 1)
        assert [t.epc for t in rec.tags] == [EPC_A.hex(), EPC_B.hex()]
