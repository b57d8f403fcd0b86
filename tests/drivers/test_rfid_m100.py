"""MagicRF M100 / JRD-100 protocol: codec, stream parser (worked examples and fuzzing), the
simulator's multi-poll, and the driver against the simulator over a pseudo-terminal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import serial_asyncio_fast
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.rfid.field import TagField
from drivers.rfid.m100 import M100Reader
from drivers.rfid.m100 import protocol as p
from drivers.rfid.m100.simulator import M100Simulator
from drivers.rfid.reader import ReaderRejected, RoundEnd, TagRead

WAIT = 5.0  # upper bound for anything awaited; tests finish far sooner

# PROTOCOLS.md section 1c, worked examples.
NOTIFICATION = bytes.fromhex(
    "BB 02 22 00 11 C9 34 00 30 75 1F EB 70 5C 59 04 E3 D5 0D 70 3A 76 EF 7E"
)
NO_TAG = bytes.fromhex("BB 01 FF 00 01 15 16 7E")
EPC = "30751feb705c5904e3d50d70"
# From m5stack/M5Unit-UHF-RFID src/CMD.h.
HARDWARE_VERSION = bytes.fromhex("BB 00 03 00 01 00 04 7E")
SINGLE_POLL = bytes.fromhex("BB 00 22 00 00 22 7E")
MULTI_POLL_10000 = bytes.fromhex("BB 00 27 00 03 22 27 10 83 7E")
STOP = bytes.fromhex("BB 00 28 00 00 28 7E")
SET_POWER_20DBM = bytes.fromhex("BB 00 B6 00 02 07 D0 8F 7E")
SET_REGION_CHINA = bytes.fromhex("BB 00 07 00 01 01 09 7E")


class Recorder:
    def __init__(self) -> None:
        self.corrupt: list[bytes] = []
        self.garbage: list[bytes] = []
        self.parser = p.M100Parser(self.corrupt.append, self.garbage.append)

    def feed(self, *chunks: bytes) -> list[bytes]:
        return [frame.raw for chunk in chunks for frame in self.parser.feed(chunk)]


# -- worked examples -----------------------------------------------------------------------------


def test_worked_example_tag_notification() -> None:
    frame = p.decode_frame(NOTIFICATION)
    assert frame.is_tag and not frame.is_error
    tag = p.decode_tag(frame.params)
    assert tag == p.TagNotification(rssi=-55, pc=0x3400, epc=bytes.fromhex(EPC))
    assert p.gen2_crc(NOTIFICATION[6:20]) == 0x3A76
    assert p.checksum(NOTIFICATION[1:-2]) == 0xEF
    assert p.encode_tag_notification(bytes.fromhex(EPC), -55, pc=0x3400) == NOTIFICATION
    assert Recorder().feed(NOTIFICATION) == [NOTIFICATION]


def test_worked_example_no_tag_reply() -> None:
    assert p.encode_error(p.ERROR_NO_TAG) == NO_TAG
    frame = p.decode_frame(NO_TAG)
    assert frame.is_error and frame.error_code == 0x15


def test_m5stack_command_frames() -> None:
    assert p.encode_info(p.INFO_HARDWARE) == HARDWARE_VERSION
    assert p.encode_single_poll() == SINGLE_POLL
    assert p.encode_multi_poll(10000) == MULTI_POLL_10000
    assert p.encode_stop() == STOP
    assert p.encode_set_power(20) == SET_POWER_20DBM
    assert p.encode_set_region(p.REGION_CHINA_900) == SET_REGION_CHINA


# -- codec ---------------------------------------------------------------------------------------


def test_tag_crc_mismatch_is_rejected() -> None:
    params = bytearray(p.decode_frame(NOTIFICATION).params)
    params[-1] ^= 0x01
    with pytest.raises(ValueError, match="CRC"):
        p.decode_tag(bytes(params))


def test_pc_announcing_more_epc_than_the_frame_carries_is_rejected() -> None:
    pc_epc = (0x7C00).to_bytes(2, "big") + bytes(4)  # PC says 31 words
    params = b"\xc9" + pc_epc + p.gen2_crc(pc_epc).to_bytes(2, "big")
    with pytest.raises(ValueError, match="announces"):
        p.decode_tag(params)
    with pytest.raises(ValueError):
        p.decode_tag(b"\xc9\x00")


def test_epc_length_follows_the_pc_word() -> None:
    # An XPC-style extra word after the EPC: the EPC is what the PC word says.
    pc_epc = (0x0800).to_bytes(2, "big") + bytes.fromhex("1234") + bytes.fromhex("abcd")
    params = b"\x10" + pc_epc + p.gen2_crc(pc_epc).to_bytes(2, "big")
    assert p.decode_tag(params) == p.TagNotification(rssi=16, pc=0x0800, epc=b"\x12\x34")


@given(
    st.integers(0, 31).flatmap(lambda words: st.binary(min_size=2 * words, max_size=2 * words)),
    st.integers(-128, 127),
)
def test_tag_notification_round_trip(epc: bytes, rssi: int) -> None:
    frame = p.decode_frame(p.encode_tag_notification(epc, rssi))
    assert p.decode_tag(frame.params) == p.TagNotification(rssi, p.pc_for(epc), epc)


@given(st.integers(0, 2), st.integers(0, 255), st.binary(max_size=300))
def test_frame_round_trip(frame_type: int, cmd: int, params: bytes) -> None:
    raw = p.encode_frame(frame_type, cmd, params)
    frame = p.decode_frame(raw)
    assert (frame.frame_type, frame.cmd, frame.params, frame.raw) == (frame_type, cmd, params, raw)


def test_power_is_dbm_times_100_big_endian() -> None:
    assert p.encode_set_power(26)[5:7] == (2600).to_bytes(2, "big")
    assert p.encode_set_power(18.5)[5:7] == (1850).to_bytes(2, "big")
    with pytest.raises(ValueError):
        p.encode_set_power(31)


# -- parser ----------------------------------------------------------------------------------------


def test_epc_containing_7e_and_bb_is_framed_by_length() -> None:
    tricky = p.encode_tag_notification(bytes.fromhex("7E7EBB7E00BB7E7E"), -40)
    rec = Recorder()
    assert rec.feed(tricky + NO_TAG) == [tricky, NO_TAG]
    assert rec.corrupt == [] and rec.garbage == []


def test_corrupt_frame_reported_once_and_resynchronised() -> None:
    bad = bytearray(NOTIFICATION)
    bad[10] ^= 0x20
    rec = Recorder()
    assert rec.feed(b"\x01\x02" + bytes(bad) + NO_TAG) == [NO_TAG]
    assert rec.corrupt == [bytes(bad)] and rec.garbage == [b"\x01\x02"]


def test_corrupted_length_does_not_stall_the_next_frame() -> None:
    bad = bytearray(NOTIFICATION)
    bad[4] = 0xF0  # PL says 240: the candidate waits for bytes that belong to other frames
    rec = Recorder()
    assert rec.feed(bytes(bad)) == []
    assert rec.feed(NO_TAG) == [NO_TAG]
    assert rec.corrupt == [bytes(bad)] and rec.garbage == []


def test_partial_frame_waits_and_clear_drops_it() -> None:
    rec = Recorder()
    assert rec.feed(NOTIFICATION[:9]) == []
    assert rec.parser.clear() == NOTIFICATION[:9]
    assert rec.feed(NOTIFICATION) == [NOTIFICATION]


frames = st.builds(
    p.encode_frame, st.integers(0, 2), st.integers(0, 255), st.binary(max_size=40)
) | st.builds(
    p.encode_tag_notification,
    st.binary(max_size=12).filter(lambda b: len(b) % 2 == 0),
    st.integers(-128, 127),
)
no_start = st.binary(max_size=30).map(lambda junk: junk.replace(b"\xbb", b"\x00"))


@settings(deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_never_raise(data: bytes) -> None:
    rec = Recorder()
    for raw in rec.feed(data[: len(data) // 3], data[len(data) // 3 :]):
        p.decode_frame(raw)


@settings(deadline=None)
@given(st.lists(st.tuples(no_start, frames), max_size=8), no_start)
def test_fuzz_frames_between_garbage_are_all_found(
    pieces: list[tuple[bytes, bytes]], tail: bytes
) -> None:
    rec = Recorder()
    stream = b"".join(junk + frame for junk, frame in pieces) + tail
    assert rec.feed(stream) == [frame for _, frame in pieces]
    assert rec.corrupt == []
    assert b"".join(rec.garbage) == b"".join(junk for junk, _ in pieces) + tail


@settings(deadline=None)
@given(
    st.lists(st.tuples(st.binary(max_size=12), frames), min_size=1, max_size=5),
    st.lists(st.integers(1, 40), min_size=1, max_size=30),
)
def test_fuzz_garbage_with_start_bytes_in_random_chunks(
    pieces: list[tuple[bytes, bytes]], sizes: list[int]
) -> None:
    """Garbage may hold 0xBB here: every real frame is still found unless the garbage formed a
    valid frame of its own that overlapped it."""
    stream = b"".join(junk + frame for junk, frame in pieces)
    chunks, pos = [], 0
    for size in sizes * (len(stream) // sum(sizes) + 1):
        chunks.append(stream[pos : pos + size])
        pos += size
    out = Recorder().feed(*chunks)
    expected = [frame for _, frame in pieces]
    for raw in out:
        p.decode_frame(raw)
        assert raw in stream
    if all(raw in expected for raw in out):
        assert out == expected


@settings(deadline=None)
@given(st.lists(frames, min_size=1, max_size=4))
def test_fuzz_frames_split_at_every_boundary(frame_list: list[bytes]) -> None:
    stream = b"".join(frame_list)
    for cut in range(len(stream) + 1):
        rec = Recorder()
        assert rec.feed(stream[:cut], stream[cut:]) == frame_list
        assert rec.corrupt == [] and rec.garbage == []


def test_worked_examples_byte_by_byte() -> None:
    stream = NOTIFICATION + NO_TAG + NOTIFICATION
    rec = Recorder()
    assert [raw for b in stream for raw in rec.feed(bytes([b]))] == [
        NOTIFICATION,
        NO_TAG,
        NOTIFICATION,
    ]


# -- rig -----------------------------------------------------------------------------------------


class Rig:
    """A simulator on a pty behind a stable link, the driver on that link, and what it reports."""

    def __init__(self, tmp_path: Path) -> None:
        self.link = str(tmp_path / "ttyM100")
        self.field = TagField(seed=11)
        self.sim = M100Simulator(self.field, link=self.link)
        self.reader: M100Reader | None = None
        self.tags: list[TagRead] = []
        self.rounds: list[RoundEnd] = []
        self.availability: asyncio.Queue[bool] = asyncio.Queue()
        self._changed = asyncio.Event()

    async def start(self, **kwargs: Any) -> M100Reader:
        self.sim.open()
        options: dict[str, Any] = {
            "command_timeout": 0.3,
            "round_timeout": 1.0,
            "reconnect_initial": 0.02,
            "reconnect_max": 0.1,
            "quiet_gap": 0.03,
        }
        options.update(kwargs)
        reader = M100Reader("m100", self.link, **options)
        reader.add_listener(self)
        reader.add_availability_listener(self.availability.put_nowait)
        self.reader = reader
        await reader.start()
        assert await self.next_availability() is True
        return reader

    def on_tag(self, read: TagRead) -> None:
        self.tags.append(read)

    def on_round(self, end: RoundEnd) -> None:
        self.rounds.append(end)
        self._changed.set()

    async def wait_for(self, condition: Callable[[], bool], timeout: float = WAIT) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def wait_rounds(self, count: int) -> None:
        target = len(self.rounds) + count
        await self.wait_for(lambda: len(self.rounds) >= target)

    async def next_availability(self) -> bool:
        return await asyncio.wait_for(self.availability.get(), WAIT)

    async def aclose(self) -> None:
        if self.reader is not None:
            await self.reader.close()
        self.sim.close()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(tmp_path)
    yield r
    await r.aclose()


def epc(i: int) -> str:
    # Decimal digits only: no 0xBB inside, so corruption accounting in the tests is exact.
    return f"3000{i:020d}"


# -- the simulator's multi-poll, seen from a plain serial client ------------------------------


async def read_frames(
    reader: asyncio.StreamReader, until: Callable[[p.Frame], bool]
) -> list[p.Frame]:
    parser = p.M100Parser()
    got: list[p.Frame] = []
    async with asyncio.timeout(WAIT):
        while not got or not until(got[-1]):
            got += parser.feed(await reader.read(4096))
    return got


async def test_simulator_multi_poll_repeats_until_stopped(tmp_path: Path) -> None:
    field = TagField(seed=1)
    field.place(epc(1), rssi=-61)
    field.place(epc(2))
    sim = M100Simulator(field, link=str(tmp_path / "ttyMP"))
    path = sim.open()
    reader, writer = await serial_asyncio_fast.open_serial_connection(url=path, baudrate=115200)
    try:
        writer.write(p.encode_multi_poll(3))
        got = await read_frames(reader, lambda _f: sim.polls == 3 and not sim.multi_polling)
        while len(got) < 6:
            got += await read_frames(reader, lambda _f: True)
        assert [f.is_tag for f in got] == [True] * 6 and sim.polls == 3
        rssi = {p.decode_tag(f.params).epc.hex(): p.decode_tag(f.params).rssi for f in got}
        assert rssi == {epc(1): -61, epc(2): -55}
        writer.write(MULTI_POLL_10000)
        await read_frames(reader, lambda f: f.is_tag)
        assert sim.multi_polling
        writer.write(STOP)
        tail = await read_frames(reader, lambda f: f.cmd == p.CMD_STOP)
        assert tail[-1].raw == p.encode_response(p.CMD_STOP, b"\0")
        assert not sim.multi_polling and sim.received[-2:] == [MULTI_POLL_10000, STOP]
    finally:
        writer.close()
        sim.close()


# -- driver against the simulator ----------------------------------------------------------------


async def test_identify_reads_the_hardware_version(rig: Rig) -> None:
    reader = await rig.start()
    assert rig.sim.received[0] == HARDWARE_VERSION
    assert reader.info == "M100 26dBm V1.0"
    assert reader.baudrate == 115200 and reader.antennas == (1,)


async def test_rounds_end_at_the_quiet_gap_with_signed_rssi(rig: Rig) -> None:
    rig.field.place(epc(1), rssi=-48)
    rig.field.place(epc(2), rssi=-70)
    rig.field.place(epc(3))
    reader = await rig.start()
    await reader.start_inventory()
    await rig.wait_rounds(3)
    await reader.stop_inventory()
    assert all(r.reads == 3 and r.antennas == (1,) for r in rig.rounds)
    assert {(t.epc, t.rssi) for t in rig.tags} == {(epc(1), -48), (epc(2), -70), (epc(3), -55)}
    assert all(t.antenna == 1 and t.pc == 0x3000 for t in rig.tags)
    assert SINGLE_POLL in rig.sim.received
    assert reader.metrics.timeouts == 0 and reader.metrics.unknown_frames == 0


async def test_empty_field_rounds_end_at_the_no_tag_error(rig: Rig) -> None:
    reader = await rig.start()
    await reader.start_inventory()
    await rig.wait_rounds(3)
    await reader.stop_inventory()
    assert all(r.reads == 0 for r in rig.rounds)
    assert rig.sim.sent[-1] == NO_TAG
    assert reader.metrics.error_replies == 0  # "no tag" is how an empty round ends


async def test_logical_antennas_share_the_single_port(rig: Rig) -> None:
    rig.field.place(epc(5))
    reader = await rig.start(antennas=(1, 3))
    await reader.start_inventory()
    await rig.wait_rounds(2)
    await reader.stop_inventory()
    assert all(r.antennas == (1, 3) and r.reads == 2 for r in rig.rounds)
    assert {t.antenna for t in rig.tags} == {1, 3}


async def test_200_tags_found_over_a_few_rounds(rig: Rig) -> None:
    rig.field.read_probability = 0.95
    for i in range(200):
        rig.field.place(epc(i))
    reader = await rig.start()
    await reader.start_inventory()
    await rig.wait_for(lambda: {t.epc for t in rig.tags} == rig.field.epcs())
    await reader.stop_inventory()
    assert len(rig.rounds) <= 4
    assert all(r.reads >= 170 for r in rig.rounds)
    assert reader.metrics.corrupt_frames == 0


async def test_set_power_and_region_frames(rig: Rig) -> None:
    reader = await rig.start()
    await reader.set_power(20)
    assert rig.sim.received[-1] == SET_POWER_20DBM and rig.sim.power == 2000
    await reader.set_power(26)
    assert rig.sim.received[-1] == bytes.fromhex("BB 00 B6 00 02 0A 28 EA 7E")
    await reader.set_region(p.REGION_CHINA_900)
    assert rig.sim.received[-1] == SET_REGION_CHINA and rig.sim.region == 1
    with pytest.raises(ValueError):
        await reader.set_power(40)


async def test_error_reply_to_a_command(rig: Rig) -> None:
    reader = await rig.start()
    rig.sim.fail_next(p.ERROR_COMMAND)
    with pytest.raises(ReaderRejected):
        await reader.set_power(18)
    assert rig.sim.sent[-1] == p.encode_error(p.ERROR_COMMAND)
    assert reader.metrics.error_replies == 1 and reader.available


async def test_error_reply_to_a_poll_is_retried(rig: Rig) -> None:
    rig.field.place(epc(1))
    reader = await rig.start()
    rig.sim.fail_next(0x20)
    await reader.start_inventory()
    await rig.wait_rounds(2)
    await reader.stop_inventory()
    assert reader.metrics.error_replies == 1
    assert all(r.reads == 1 for r in rig.rounds)
    assert rig.availability.empty() and reader.available


async def test_corrupt_frames_are_skipped_and_counted(rig: Rig) -> None:
    rig.field.misread_rate = 0.2
    for i in range(20):
        rig.field.place(epc(i))
    reader = await rig.start()
    await reader.start_inventory()
    await rig.wait_for(lambda: rig.sim.corrupted >= 5 and len(rig.rounds) >= 3)
    await reader.stop_inventory()
    # A frame whose PL was damaged is given up when the next valid frame arrives.
    await reader.set_power(20)
    assert reader.metrics.corrupt_frames == rig.sim.corrupted
    assert {t.epc for t in rig.tags} <= rig.field.epcs()
    assert sum(r.reads for r in rig.rounds) == len(rig.tags)
    assert reader.available and reader.metrics.reconnects == 0


async def test_frame_with_good_checksum_but_bad_tag_crc_is_corrupt(rig: Rig) -> None:
    reader = await rig.start()
    params = bytearray(p.decode_frame(NOTIFICATION).params)
    params[-1] ^= 0xFF
    rig.sim.inject(p.encode_frame(p.TYPE_NOTIFICATION, p.CMD_SINGLE_POLL, bytes(params)))
    rig.sim.inject(NOTIFICATION)
    await reader.set_power(20)  # one exchange later both frames have been handled
    assert reader.metrics.corrupt_frames == 1
    assert rig.tags == [TagRead(EPC, antenna=1, rssi=-55, pc=0x3400)]


async def test_garbage_and_stray_frames_are_skipped(rig: Rig) -> None:
    rig.field.place(epc(1))
    reader = await rig.start()
    rig.sim.inject(b"\x7e\x00\x12\x7e")
    rig.sim.inject(p.encode_response(p.CMD_GET_POWER, b"\x0a\x28"))
    await reader.set_power(20)
    assert reader.metrics.garbage_bytes == 4 and reader.metrics.corrupt_frames == 0
    assert reader.metrics.unknown_frames == 1
    await reader.start_inventory()
    await rig.wait_rounds(2)
    await reader.stop_inventory()
    assert all(r.reads == 1 for r in rig.rounds)


async def test_silence_makes_it_unavailable_until_it_answers_again(rig: Rig) -> None:
    rig.field.place(epc(1))
    reader = await rig.start()
    await reader.start_inventory()
    await rig.wait_rounds(1)
    rig.sim.silent = True
    assert await rig.next_availability() is False
    assert reader.metrics.timeouts >= 1
    rig.sim.silent = False
    assert await rig.next_availability() is True
    await rig.wait_rounds(2)
    await reader.stop_inventory()


async def test_unplug_and_replug_reconnects_and_resumes(rig: Rig) -> None:
    rig.field.place(epc(1))
    reader = await rig.start()
    await reader.start_inventory()
    await rig.wait_rounds(1)
    rig.sim.unplug()
    assert await rig.next_availability() is False
    rig.sim.replug()
    assert await rig.next_availability() is True
    await rig.wait_rounds(2)
    await reader.stop_inventory()
    assert reader.metrics.reconnects >= 1


async def test_stop_inventory_stops_rounds(rig: Rig) -> None:
    rig.field.place(epc(1))
    reader = await rig.start()
    await reader.start_inventory()
    await rig.wait_rounds(2)
    await reader.stop_inventory()
    rounds, polls = len(rig.rounds), rig.sim.polls
    await reader.set_power(21)
    await reader.set_power(22)
    assert len(rig.rounds) == rounds and rig.sim.polls == polls
    assert rig.sim.received[-1] == p.encode_set_power(22)


class LengthPlusOne(TagField):
    """A line that adds one to the PL of every inventory frame."""

    def maybe_corrupt(self, frame: bytes) -> bytes:
        return frame[:4] + bytes([frame[4] + 1]) + frame[5:]


async def test_notification_with_damaged_length_ends_the_round_quietly(rig: Rig) -> None:
    """The only notification of a poll arrives with PL one too large: the parser waits for a
    byte that belongs to the next frame. The round ends at the quiet gap, not in a timeout, and
    the frame is reported corrupt once the next one shows it cannot be a frame."""
    rig.sim.field = rig.field = LengthPlusOne()
    rig.field.place(epc(1))
    reader = await rig.start()
    await reader.start_inventory()
    await rig.wait_rounds(3)
    await reader.stop_inventory()
    assert all(r.reads == 0 for r in rig.rounds) and rig.tags == []
    assert reader.metrics.corrupt_frames >= 2 and reader.metrics.timeouts == 0
    assert reader.available and reader.metrics.reconnects == 0
