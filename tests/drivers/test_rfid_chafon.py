"""Chafon / UHFReader18 protocol: codec, stream parser (worked examples and fuzzing), and the
driver against the simulator over a pseudo-terminal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.rfid.chafon import ChafonReader
from drivers.rfid.chafon import protocol as p
from drivers.rfid.chafon.simulator import ChafonSimulator
from drivers.rfid.field import TagField
from drivers.rfid.reader import ReaderRejected, RoundEnd, TagRead

WAIT = 5.0  # upper bound for anything awaited; tests finish far sooner

# PROTOCOLS.md section 1b, worked examples.
INVENTORY = bytes.fromhex("04 00 01 DB 4B")
REPLY_MORE = bytes.fromhex("13 00 01 03 01 0C 00 00 00 00 00 00 00 00 00 00 03 13 3F 39")
# More fixtures of wabson/chafon-rfid (tests/test_uhfreader18.py, examples/single-read.py).
REPLY_TWO_TAGS = bytes.fromhex("20000103020c0000000000000000000003130c0000000000000000000003149ac9")
INFO_288M = bytes.fromhex("1100210000160c034e001e0a01000000e651")


class Recorder:
    """A parser whose corrupt and garbage reports are kept."""

    def __init__(self, **kwargs: Any) -> None:
        self.corrupt: list[bytes] = []
        self.garbage: list[bytes] = []
        self.parser = p.ChafonParser(
            on_corrupt=self.corrupt.append, on_garbage=self.garbage.append, **kwargs
        )

    def feed(self, *chunks: bytes) -> list[bytes]:
        return [frame.raw for chunk in chunks for frame in self.parser.feed(chunk)]


# -- worked examples -----------------------------------------------------------------------------


def test_worked_example_inventory_command() -> None:
    assert p.encode_inventory(0x00) == INVENTORY
    assert p.crc16(INVENTORY[:3]) == 0x4BDB  # LSB first on the wire
    (frame,) = p.ChafonParser(min_length=p.REQUEST_MIN_LEN).feed(INVENTORY)
    assert (frame.address, frame.cmd, frame.body) == (0x00, p.CMD_INVENTORY, b"")


def test_worked_example_inventory_reply_more_frames_follow() -> None:
    rec = Recorder(address=0)
    assert rec.feed(REPLY_MORE) == [REPLY_MORE]
    frame = p.decode_frame(REPLY_MORE)
    assert (frame.address, frame.cmd, frame.status) == (0x00, 0x01, p.STATUS_MORE_FRAMES)
    assert p.decode_inventory_data(frame.data) == [bytes.fromhex("000000000000000000000313")]
    assert p.encode_reply(0, 0x01, 0x03, frame.data) == REPLY_MORE
    assert rec.corrupt == [] and rec.garbage == []


def test_chafon_rfid_two_tag_fixture() -> None:
    frame = p.decode_frame(REPLY_TWO_TAGS)
    assert frame.status == p.STATUS_MORE_FRAMES
    assert [e.hex() for e in p.decode_inventory_data(frame.data)] == [
        "000000000000000000000313",
        "000000000000000000000314",
    ]


def test_reader_info_of_a_288m_fixture() -> None:
    frame = p.decode_frame(INFO_288M)
    assert (frame.cmd, frame.status) == (p.CMD_READER_INFO, p.STATUS_OK)
    info = p.ReaderInfo.decode(frame.data)
    assert info.version == (0x00, 0x16) and info.reader_type == 0x0C
    assert info.protocols == 0x03 and info.power == 0x1E and info.scan_time == 0x0A
    assert info.band == 0b0100  # EU
    assert info.extra == bytes.fromhex("01000000")
    assert info.encode() == frame.data


# -- codec ---------------------------------------------------------------------------------------


def test_request_and_reply_round_trip() -> None:
    request = p.encode_request(0x05, p.CMD_SET_POWER, b"\x14")
    assert request[0] == len(request) - 1
    frame = p.decode_frame(request)
    assert (frame.address, frame.cmd, frame.body) == (0x05, p.CMD_SET_POWER, b"\x14")
    assert p.encode_set_power(0x05, 20) == request
    reply = p.encode_reply(0x05, p.CMD_READER_INFO, 0x00, b"\x01\x02")
    frame = p.decode_frame(reply)
    assert (frame.status, frame.data) == (0x00, b"\x01\x02")


def test_codec_rejects_what_it_cannot_encode() -> None:
    with pytest.raises(ValueError):
        p.encode_set_power(0, 31)
    with pytest.raises(ValueError):
        p.encode_request(256, 1)
    with pytest.raises(ValueError):
        p.encode_request(0, 1, bytes(252))
    with pytest.raises(ValueError):
        p.decode_frame(INVENTORY[:-1] + b"\x00")
    with pytest.raises(ValueError):
        p.decode_frame(INVENTORY + b"\x00")


@pytest.mark.parametrize(
    "data",
    [b"", b"\x02\x02\xaa\xbb", b"\x01\x00", b"\x01\x03\xaa\xbb", b"\x01\x01\xaa\xbb"],
)
def test_inventory_data_that_does_not_add_up(data: bytes) -> None:
    with pytest.raises(ValueError):
        p.decode_inventory_data(data)


def test_empty_field_is_one_finished_frame_with_num_zero() -> None:
    (frame,) = p.encode_inventory_replies(0, [])
    decoded = p.decode_frame(frame)
    assert (decoded.status, decoded.data) == (p.STATUS_FINISHED, b"\x00")


@given(st.lists(st.binary(min_size=1, max_size=p.MAX_EPC), max_size=80), st.integers(64, 255))
def test_inventory_replies_split_and_round_trip(epcs: list[bytes], max_frame: int) -> None:
    frames = p.encode_inventory_replies(
        0x07, epcs, final_status=p.STATUS_BUFFER_FULL, max_frame=max_frame
    )
    decoded = [p.decode_frame(f) for f in frames]
    assert all(len(f) <= max_frame for f in frames)
    assert [d.status for d in decoded] == [p.STATUS_MORE_FRAMES] * (len(frames) - 1) + [
        p.STATUS_BUFFER_FULL
    ]
    assert [e for d in decoded for e in p.decode_inventory_data(d.data)] == epcs


def test_large_population_fills_255_byte_frames() -> None:
    epcs = [i.to_bytes(12, "big") for i in range(60)]
    frames = p.encode_inventory_replies(0, epcs)
    # 19 EPCs of 12 bytes fill a frame: 6 + 1 + 19 * 13 = 254 bytes, Len 0xFD.
    assert [len(f) for f in frames] == [254, 254, 254, 6 + 1 + 3 * 13]
    assert frames[0][0] == 0xFD


# -- parser ----------------------------------------------------------------------------------------


def test_corrupt_frame_is_reported_once_and_the_next_frame_found() -> None:
    bad = bytearray(REPLY_MORE)
    bad[9] ^= 0x10
    rec = Recorder(address=0)
    assert rec.feed(bytes(bad) + REPLY_TWO_TAGS) == [REPLY_TWO_TAGS]
    assert rec.corrupt == [bytes(bad)] and rec.garbage == []


def test_corrupt_last_frame_is_reported_without_waiting() -> None:
    bad = bytearray(REPLY_MORE)
    bad[2] ^= 0x04  # the command byte: the address still says "frame"
    rec = Recorder(address=0)
    assert rec.feed(bytes(bad)) == []
    assert rec.corrupt == [bytes(bad)]
    # Whatever bytes of it the parser still holds, the next reply is found and nothing more
    # is reported for the corrupt frame.
    assert rec.feed(INVENTORY + REPLY_MORE) == [REPLY_MORE]
    assert len(rec.corrupt) == 1 and b"".join(rec.garbage) == INVENTORY


def test_stray_byte_with_a_large_length_does_not_stall_the_next_reply() -> None:
    rec = Recorder(address=0)
    assert rec.feed(b"\xf0") == []
    assert rec.feed(REPLY_MORE) == [REPLY_MORE]
    assert rec.garbage == [b"\xf0"] and rec.corrupt == []


def test_partial_frame_waits_and_clear_drops_it() -> None:
    rec = Recorder()
    assert rec.feed(REPLY_MORE[:7]) == []
    assert rec.parser.pending == REPLY_MORE[:7]
    assert rec.parser.clear() == REPLY_MORE[:7]
    assert rec.feed(REPLY_MORE) == [REPLY_MORE]


reply_frames = st.builds(
    p.encode_reply,
    st.integers(0, 255),
    st.sampled_from(sorted(p.COMMANDS | {p.CMD_ERROR})),
    st.integers(0, 255),
    st.binary(max_size=40),
)


@settings(deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_never_raise(data: bytes) -> None:
    rec = Recorder(address=0)
    for raw in rec.feed(data[: len(data) // 2], data[len(data) // 2 :]):
        p.decode_frame(raw)  # anything handed out is a frame whose length and CRC hold
    # Nothing is buffered beyond one frame's worth while waiting.
    assert len(rec.parser.pending) <= p.MAX_FRAME


def _check_found(out: list[bytes], frames: list[bytes], stream: bytes) -> None:
    """Every frame handed out is a real frame of the stream; the embedded frames are all found,
    unless the garbage happened to form a valid frame of its own (no start byte: any byte may
    be a Len) that overlapped one of them."""
    for raw in out:
        p.decode_frame(raw)
        assert raw in stream
    extras = [raw for raw in out if raw not in frames]
    if not extras:
        assert out == frames


@settings(deadline=None)
@given(
    st.lists(st.tuples(st.binary(max_size=30), reply_frames), max_size=8), st.binary(max_size=30)
)
def test_fuzz_frames_between_garbage_are_found(
    pieces: list[tuple[bytes, bytes]], tail: bytes
) -> None:
    stream = b"".join(junk + frame for junk, frame in pieces) + tail
    frames = [frame for _, frame in pieces]
    _check_found(Recorder().feed(stream), frames, stream)


@settings(deadline=None)
@given(
    st.lists(st.tuples(st.binary(max_size=12), reply_frames), min_size=1, max_size=5),
    st.lists(st.integers(1, 40), min_size=1, max_size=30),
)
def test_fuzz_garbage_and_frames_in_random_chunks(
    pieces: list[tuple[bytes, bytes]], sizes: list[int]
) -> None:
    stream = b"".join(junk + frame for junk, frame in pieces)
    chunks, pos = [], 0
    for size in sizes * (len(stream) // sum(sizes) + 1):
        chunks.append(stream[pos : pos + size])
        pos += size
    _check_found(Recorder().feed(*chunks), [frame for _, frame in pieces], stream)


@settings(deadline=None)
@given(st.lists(reply_frames, min_size=1, max_size=4))
def test_fuzz_frames_split_at_every_boundary(frames: list[bytes]) -> None:
    stream = b"".join(frames)
    for cut in range(len(stream) + 1):
        rec = Recorder()
        assert rec.feed(stream[:cut], stream[cut:]) == frames
        assert rec.corrupt == [] and rec.garbage == []


def test_worked_examples_split_at_every_boundary_and_byte_by_byte() -> None:
    stream = REPLY_MORE + REPLY_TWO_TAGS + INFO_288M
    for cut in range(len(stream) + 1):
        assert Recorder().feed(stream[:cut], stream[cut:]) == [
            REPLY_MORE,
            REPLY_TWO_TAGS,
            INFO_288M,
        ]
    rec = Recorder()
    bytewise = [raw for i in range(len(stream)) for raw in rec.feed(stream[i : i + 1])]
    assert bytewise == [REPLY_MORE, REPLY_TWO_TAGS, INFO_288M]


# -- driver against the simulator ----------------------------------------------------------------


class Rig:
    """A simulator on a pty behind a stable link, the driver on that link, and what it reports."""

    def __init__(self, tmp_path: Path) -> None:
        self.link = str(tmp_path / "ttyCHAFON0")
        self.field = TagField(seed=7)
        self.sim = ChafonSimulator(self.field, link=self.link)
        self.reader: ChafonReader | None = None
        self.tags: list[TagRead] = []
        self.rounds: list[RoundEnd] = []
        self.availability: asyncio.Queue[bool] = asyncio.Queue()
        self._changed = asyncio.Event()

    async def start(self, **kwargs: Any) -> ChafonReader:
        self.sim.open()
        options: dict[str, Any] = {
            "command_timeout": 0.3,
            "round_timeout": 0.6,
            "reconnect_initial": 0.02,
            "reconnect_max": 0.1,
        }
        options.update(kwargs)
        reader = ChafonReader("chafon", self.link, **options)
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
    return f"3000{i:020d}"


async def test_identify_reads_reader_info(rig: Rig) -> None:
    reader = await rig.start()
    assert rig.sim.received[0] == bytes.fromhex("04 00 21 D9 6A")
    assert reader.info is not None
    assert reader.info.reader_type == 0x09 and reader.info.power == 30
    assert reader.available and reader.baudrate == 57600


async def test_rounds_report_every_tag_on_the_inventoried_antenna(rig: Rig) -> None:
    for i in range(3):
        rig.field.place(epc(i))
    reader = await rig.start()
    await reader.start_inventory()
    await rig.wait_rounds(3)
    await reader.stop_inventory()
    assert all(r.reads == 3 and r.antennas == (1,) for r in rig.rounds)
    assert [r.number for r in rig.rounds] == list(range(1, len(rig.rounds) + 1))
    assert {t.epc for t in rig.tags} == rig.field.epcs()
    assert all(t.antenna == 1 and t.rssi is None and t.pc is None for t in rig.tags)
    assert INVENTORY in rig.sim.received
    assert reader.metrics.rounds == len(rig.rounds) and reader.metrics.unknown_frames == 0


async def test_empty_field_still_makes_rounds(rig: Rig) -> None:
    reader = await rig.start()
    await reader.start_inventory()
    await rig.wait_rounds(2)
    await reader.stop_inventory()
    assert all(r.reads == 0 for r in rig.rounds) and rig.tags == []
    assert rig.sim.sent[-1] == p.encode_reply(0, p.CMD_INVENTORY, p.STATUS_FINISHED, b"\x00")


async def test_logical_antennas_each_get_one_inventory_per_round(rig: Rig) -> None:
    rig.field.place(epc(1))
    reader = await rig.start(antennas=(1, 2))
    await reader.start_inventory()
    await rig.wait_rounds(2)
    await reader.stop_inventory()
    assert all(r.antennas == (1, 2) and r.reads == 2 for r in rig.rounds)
    assert {t.antenna for t in rig.tags} == {1, 2}


async def test_200_tags_found_over_a_few_rounds(rig: Rig) -> None:
    rig.field.read_probability = 0.95
    for i in range(200):
        rig.field.place(epc(i))
    reader = await rig.start()
    await reader.start_inventory()
    await rig.wait_for(lambda: {t.epc for t in rig.tags} == rig.field.epcs())
    await reader.stop_inventory()
    assert len(rig.rounds) <= 4
    # Each round came as "more frames follow" frames of at most 255 bytes, then a final one.
    last_round = p.ChafonParser().feed(rig.sim.sent[-1])
    assert len(last_round) >= 10 and all(len(f.raw) <= 255 for f in last_round)
    assert {f.status for f in last_round[:-1]} == {p.STATUS_MORE_FRAMES}
    assert last_round[-1].status == p.STATUS_FINISHED
    assert reader.metrics.corrupt_frames == 0 and reader.metrics.timeouts == 0


async def test_set_power_sends_the_frame(rig: Rig) -> None:
    reader = await rig.start()
    await reader.set_power(20)
    assert rig.sim.received[-1] == p.encode_set_power(0, 20)
    assert rig.sim.received[-1][:4] == bytes.fromhex("05 00 2F 14")
    assert rig.sim.power == 20
    with pytest.raises(ValueError):
        await reader.set_power(33)


async def test_set_power_refused(rig: Rig) -> None:
    reader = await rig.start()
    rig.sim.fail_next(p.STATUS_PARAMETER_ERROR)
    with pytest.raises(ReaderRejected):
        await reader.set_power(10)
    assert reader.metrics.error_replies == 1 and reader.available


async def test_corrupt_frames_are_skipped_and_counted(rig: Rig) -> None:
    rig.field.misread_rate = 0.3
    for i in range(40):
        rig.field.place(epc(i))
    reader = await rig.start()
    await reader.start_inventory()
    await rig.wait_for(lambda: rig.sim.corrupted >= 4 and len(rig.rounds) >= 4)
    await reader.stop_inventory()
    assert reader.metrics.corrupt_frames == rig.sim.corrupted
    assert {t.epc for t in rig.tags} <= rig.field.epcs()  # no damaged EPC got through
    assert reader.available and reader.metrics.reconnects == 0


async def test_garbage_and_stray_frames_are_skipped(rig: Rig) -> None:
    rig.field.place(epc(1))
    reader = await rig.start()
    rig.sim.inject(b"\xfa\x11\x22")  # a large "Len" that waits for bytes that never come
    await reader.set_power(12)
    assert reader.metrics.garbage_bytes == 3 and reader.metrics.corrupt_frames == 0
    rig.sim.inject(p.encode_reply(0, p.CMD_READER_INFO, 0, bytes(8)))
    await reader.start_inventory()
    await rig.wait_rounds(2)
    await reader.stop_inventory()
    assert reader.metrics.unknown_frames == 1
    assert all(r.reads == 1 for r in rig.rounds)


async def test_error_reply_to_inventory_is_retried(rig: Rig) -> None:
    rig.field.place(epc(1))
    reader = await rig.start()
    rig.sim.fail_next(p.STATUS_ANTENNA_ERROR)
    await reader.start_inventory()
    await rig.wait_rounds(2)
    await reader.stop_inventory()
    assert reader.metrics.error_replies == 1
    assert rig.sim.sent[0] == p.encode_reply(0, p.CMD_READER_INFO, 0, rig.sim.info.encode())
    assert p.encode_reply(0, p.CMD_INVENTORY, p.STATUS_ANTENNA_ERROR) in rig.sim.sent
    assert all(r.reads == 1 for r in rig.rounds)  # the failed try made no round of its own
    assert rig.availability.empty() and reader.available


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
    await rig.wait_rounds(2)  # inventory resumes by itself
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
    reader = await rig.start()
    await reader.start_inventory()
    await rig.wait_rounds(2)
    await reader.stop_inventory()
    rounds, inventories = len(rig.rounds), rig.sim.inventories
    # Two full exchanges later the reader has still not been asked for another inventory.
    await reader.set_power(5)
    await reader.set_power(6)
    assert len(rig.rounds) == rounds and rig.sim.inventories == inventories
    assert rig.sim.received[-1] == p.encode_set_power(0, 6)


async def test_broadcast_address_is_answered(rig: Rig) -> None:
    rig.field.place(epc(2))
    reader = await rig.start(address=p.BROADCAST)
    assert rig.sim.received[0] == p.encode_reader_info(p.BROADCAST)
    await reader.start_inventory()
    await rig.wait_rounds(1)
    await reader.stop_inventory()
    assert rig.sim.received[-1] == p.encode_inventory(p.BROADCAST)
    assert rig.tags[0] == TagRead(epc(2), antenna=1)


class LengthPlusOne(TagField):
    """A line that adds one to the Len of every inventory frame."""

    def maybe_corrupt(self, frame: bytes) -> bytes:
        return bytes([frame[0] + 1]) + frame[1:]


async def test_final_frame_with_damaged_length_ends_the_round_quietly(rig: Rig) -> None:
    """The round's only frame arrives with Len one too large: the parser waits for a byte that
    belongs to the next reply. The round ends one command timeout later instead of failing, and
    the frame is reported corrupt once the next reply completes it."""
    rig.sim.field = rig.field = LengthPlusOne()
    rig.field.place(epc(1))
    reader = await rig.start()
    await reader.start_inventory()
    await rig.wait_rounds(2)
    await reader.stop_inventory()
    assert all(r.reads == 0 for r in rig.rounds) and rig.tags == []
    assert reader.metrics.corrupt_frames >= 1 and reader.metrics.timeouts == 0
    assert reader.available and reader.metrics.reconnects == 0
