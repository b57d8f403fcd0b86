"""R2000 "0xA0" protocol: codec, stream parser (worked examples and fuzzing), and the driver
against the simulator over a pseudo-terminal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.rfid.field import TagField
from drivers.rfid.r2000 import R2000Reader
from drivers.rfid.r2000 import protocol as p
from drivers.rfid.r2000.simulator import R2000Simulator
from drivers.rfid.reader import ReaderRejected, RoundEnd, TagRead

WAIT = 5.0  # upper bound for anything awaited; tests finish far sooner

# PROTOCOLS.md section 1a, worked examples.
REQUEST_89 = bytes.fromhex("A0 04 01 89 01 D1")
TAG_REPLY = bytes.fromhex("A0 13 01 89 04 30 00 E2 00 30 16 66 13 01 21 15 50 74 EF 45 BF")
FAILING_FIXTURE = bytes.fromhex("A0 04 01 89 11 BD")


class Recorder:
    """Collects what a parser hands out, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def parser(self) -> p.R2000Parser:
        return p.R2000Parser(
            lambda read: self.events.append(("tag", read)),
            lambda frame: self.events.append(("frame", frame.raw)),
            lambda raw: self.events.append(("corrupt", raw)),
            lambda junk: self.events.append(("garbage", junk)),
        )

    def of(self, kind: str) -> list[Any]:
        return [value for k, value in self.events if k == kind]

    def decoded(self) -> list[tuple[str, Any]]:
        return [(k, v) for k, v in self.events if k in ("tag", "frame")]


def parse(*chunks: bytes) -> Recorder:
    rec = Recorder()
    parser = rec.parser()
    for chunk in chunks:
        parser.feed(chunk)
    return rec


# -- worked examples -----------------------------------------------------------------------------


def test_worked_example_request() -> None:
    assert p.encode_realtime_inventory(0x01, repeat=1) == REQUEST_89
    assert p.checksum(REQUEST_89[:-1]) == 0xD1
    rec = parse(REQUEST_89)
    assert rec.decoded() == [("frame", REQUEST_89)]


def test_worked_example_tag_reply() -> None:
    assert p.checksum(TAG_REPLY[:-1]) == 0xBF
    rec = parse(TAG_REPLY)
    assert rec.of("tag") == [TagRead("e200301666130121155074ef", antenna=1, rssi=0x45, pc=0x3000)]
    assert rec.of("corrupt") == [] and rec.of("garbage") == []
    # FreqAnt 0x04: frequency index 1, antenna id 0.
    assert p.encode_tag(0x01, 1, bytes.fromhex("E200301666130121155074EF"), 0x45, 1) == TAG_REPLY


def test_failing_fixture_is_corrupt_and_its_check_is_c1() -> None:
    rec = parse(FAILING_FIXTURE)
    assert rec.of("corrupt") == [FAILING_FIXTURE]
    assert rec.decoded() == []
    assert p.checksum(FAILING_FIXTURE[:-1]) == 0xC1
    fixed = FAILING_FIXTURE[:-1] + b"\xc1"
    frames: list[p.R2000Frame] = []
    p.R2000Parser(lambda _r: None, frames.append).feed(fixed)
    # One data byte after 0x89: an error code (0x11, command failed), which ends a round.
    assert frames == [p.R2000Frame(0x01, 0x89, b"\x11", fixed)]
    assert p.is_inventory_end(frames[0]) and frames[0].is_error
    assert p.decode_round_end(frames[0]) is None


def test_fixture_and_valid_frames_in_one_stream() -> None:
    rec = parse(FAILING_FIXTURE + TAG_REPLY + REQUEST_89)
    assert rec.of("corrupt") == [FAILING_FIXTURE]
    assert len(rec.of("tag")) == 1 and rec.of("frame") == [REQUEST_89]
    # The bytes of the bad candidate after its 0xA0 are skipped as garbage, not lost frames.
    assert b"".join(rec.of("garbage")) == FAILING_FIXTURE[1:]


# -- 0x89 replies ------------------------------------------------------------------------------


def test_round_end_forms() -> None:
    end = p.encode_round_end(0x01, 2, read_rate=0x0123, total_reads=0x01020304)
    assert end == bytes.fromhex("A0 0A 01 89 01 01 23 01 02 03 04") + bytes([p.checksum(end[:-1])])
    legacy = p.encode_legacy_round_end(0x01, 1, total_reads=7)
    assert legacy[:2] == bytes.fromhex("A0 08")  # the IND903 shape from PROTOCOLS.md
    frames: list[p.R2000Frame] = []
    p.R2000Parser(lambda _r: None, frames.append).feed(end + legacy)
    assert [p.decode_round_end(f) for f in frames] == [
        p.RoundEndFrame(antenna=2, read_rate=0x0123, total_reads=0x01020304),
        p.RoundEndFrame(antenna=1, read_rate=None, total_reads=7),
    ]
    assert all(p.is_inventory_end(f) and not f.is_error for f in frames)


def test_tag_antenna_and_frequency_bits() -> None:
    frame = p.encode_tag(0x01, 4, bytes(4), 0x50, freq=0x3F)
    assert frame[4] == 0xFF  # freq 63 << 2 | antenna id 3
    (read,) = parse(frame).of("tag")
    assert read == TagRead("00000000", antenna=4, rssi=0x50, pc=0x1000)


def test_pc_word_must_agree_with_len() -> None:
    good = p.encode_tag(0x01, 1, bytes(range(12)), 0x40)
    body = bytearray(good[:-1])
    body[5] = 0x28  # PC says 5 words (10 bytes), Len says 12
    bad = bytes(body) + bytes([p.checksum(body)])
    rec = parse(bad + good)
    assert rec.of("corrupt") == [bad]
    assert [r.epc for r in rec.of("tag")] == [bytes(range(12)).hex()]


def test_zero_length_epc_is_a_tag() -> None:
    frame = p.encode_tag(0x01, 2, b"", 0x30)
    assert parse(frame).of("tag") == [TagRead("", antenna=2, rssi=0x30, pc=0)]


def test_len_too_short_is_corrupt() -> None:
    rec = parse(b"\xa0\x02\x01" + TAG_REPLY)
    assert rec.of("corrupt") == [b"\xa0\x02"]
    assert rec.of("garbage") == [b"\x02\x01"]
    assert len(rec.of("tag")) == 1


def test_other_replies_are_frames() -> None:
    version = p.encode(0x01, p.CMD_GET_FIRMWARE, b"\x08\x01")
    frames: list[p.R2000Frame] = []
    p.R2000Parser(lambda _r: None, frames.append).feed(version)
    assert frames == [p.R2000Frame(0x01, 0x72, b"\x08\x01", version)]
    assert p.encode(0xFF, p.CMD_GET_FIRMWARE) == bytes.fromhex("A0 03 FF 72 EC")


def test_encode_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match=r"0\.\.33"):
        p.encode_set_output_power(0xFF, 34)
    with pytest.raises(ValueError, match=r"1\.\.4"):
        p.encode_set_work_antenna(0xFF, 0)
    with pytest.raises(ValueError, match="fit"):
        p.encode(0xFF, 0x80, bytes(253))
    assert p.encode_set_work_antenna(0xFF, 2) == p.encode(0xFF, 0x74, b"\x01")


def test_stalled_candidate_is_given_up_by_flush() -> None:
    """A corrupted Len that claims more than the reader sends holds up the frames after it
    until the line goes quiet; flush() then rescans them."""
    good = p.encode_tag(0x01, 1, bytes(12), 0x40)
    end = p.encode_round_end(0x01, 1, 0, 2)
    stretched = bytearray(good)
    stretched[1] = 0x93  # Len 0x13 with one bit flipped: 149 bytes claimed
    rec = Recorder()
    parser = rec.parser()
    parser.feed(good + bytes(stretched) + end)
    assert len(rec.of("tag")) == 1 and rec.of("frame") == []
    assert parser.pending == len(stretched) + len(end)
    parser.flush()
    assert parser.pending == 0
    assert rec.of("frame") == [end]
    assert len(rec.of("corrupt")) == 1


def test_parser_survives_a_raising_handler_without_repeating_frames() -> None:
    seen: list[TagRead] = []

    def on_tag(read: TagRead) -> None:
        seen.append(read)
        if len(seen) == 1:
            raise RuntimeError("listener bug")

    parser = p.R2000Parser(on_tag)
    with pytest.raises(RuntimeError):
        parser.feed(TAG_REPLY + TAG_REPLY)
    parser.feed(b"")
    assert len(seen) == 2 and parser.pending == 0


# -- fuzzing -----------------------------------------------------------------------------------

epcs = st.integers(0, 31).flatmap(lambda words: st.binary(min_size=2 * words, max_size=2 * words))
tag_frames = st.builds(
    p.encode_tag,
    st.integers(0, 255),
    st.integers(1, 4),
    epcs,
    st.integers(0, 255),
    st.integers(0, 63),
)
control_frames = st.one_of(
    st.builds(
        p.encode_round_end,
        st.integers(0, 255),
        st.integers(1, 4),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFFFFFF),
    ),
    st.builds(
        p.encode_legacy_round_end, st.integers(0, 255), st.integers(1, 4), st.integers(0, 2**32 - 1)
    ),
    st.builds(
        lambda a, c: p.encode(a, p.CMD_REALTIME_INVENTORY, bytes([c])),
        st.integers(0, 255),
        st.integers(0, 255),
    ),
    st.builds(
        p.encode,
        st.integers(0, 255),
        st.integers(0, 255).filter(lambda c: c != p.CMD_REALTIME_INVENTORY),
        st.binary(max_size=40),
    ),
)
frames = st.one_of(tag_frames, control_frames)
# Line noise that cannot start a frame.
garbage = st.binary(max_size=12).map(lambda b: b.replace(b"\xa0", b""))


def expected(frame: bytes) -> tuple[str, Any]:
    """What the parser must hand out for one valid frame, decoded independently."""
    data = frame[4:-1]
    if frame[3] == p.CMD_REALTIME_INVENTORY and len(data) >= 4 and len(data) % 2 == 0:
        pc = int.from_bytes(data[1:3], "big")
        return ("tag", TagRead(data[3:-1].hex(), (data[0] & 3) + 1, data[-1], pc))
    return ("frame", frame)


@settings(deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_never_raise(data: bytes) -> None:
    rec = Recorder()
    parser = rec.parser()
    parser.feed(data)
    parser.flush()
    assert parser.pending == 0
    # Every byte is accounted for: handed out in a frame, or reported.
    assert all(isinstance(v, TagRead | bytes) for _k, v in rec.events)


@settings(deadline=None)
@given(st.lists(st.tuples(garbage, frames), max_size=12), garbage)
def test_fuzz_frames_between_garbage_are_all_found(
    pieces: list[tuple[bytes, bytes]], tail: bytes
) -> None:
    stream = b"".join(junk + frame for junk, frame in pieces) + tail
    rec = parse(stream)
    assert rec.decoded() == [expected(frame) for _junk, frame in pieces]
    assert rec.of("corrupt") == []
    assert b"".join(rec.of("garbage")) == b"".join(junk for junk, _f in pieces) + tail


@settings(deadline=None)
@given(st.lists(frames, min_size=1, max_size=4))
def test_fuzz_split_at_every_boundary(batch: list[bytes]) -> None:
    stream = b"".join(batch)
    want = [expected(frame) for frame in batch]
    for cut in range(len(stream) + 1):
        assert parse(stream[:cut], stream[cut:]).decoded() == want
    assert parse(*(stream[k : k + 1] for k in range(len(stream)))).decoded() == want


@settings(deadline=None)
@given(st.lists(frames, max_size=8), st.data())
def test_fuzz_random_chunking(batch: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(batch)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert parse(*chunks).decoded() == [expected(frame) for frame in batch]


# -- the driver against the simulator ------------------------------------------------------------


class Listener:
    def __init__(self) -> None:
        self.tags: list[TagRead] = []
        self.rounds: list[RoundEnd] = []
        self._changed = asyncio.Event()

    def on_tag(self, read: TagRead) -> None:
        self.tags.append(read)

    def on_round(self, end: RoundEnd) -> None:
        self.rounds.append(end)
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def rounds_at_least(self, count: int) -> None:
        await self.until(lambda: len(self.rounds) >= count)

    def epcs(self) -> set[str]:
        return {read.epc for read in self.tags}


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.sims: list[R2000Simulator] = []
        self.readers: list[R2000Reader] = []
        self.listener = Listener()
        self.availability: asyncio.Queue[bool] = asyncio.Queue()

    async def start(
        self,
        field: TagField,
        *,
        link: bool = False,
        sim: dict[str, Any] | None = None,
        **reader_kwargs: Any,
    ) -> tuple[R2000Simulator, R2000Reader]:
        link_path = str(self.tmp_path / "ttyUSB0") if link else None
        simulator = R2000Simulator(field, link=link_path, **(sim or {}))
        self.sims.append(simulator)
        path = simulator.open()
        options: dict[str, Any] = {
            "command_timeout": 0.3,
            "round_timeout": 1.0,
            "reconnect_initial": 0.02,
            "reconnect_max": 0.2,
        }
        options.update(reader_kwargs)
        reader = R2000Reader("test", path, **options)
        self.readers.append(reader)
        reader.add_listener(self.listener)
        reader.add_availability_listener(self.availability.put_nowait)
        await reader.start()
        assert await self.next_availability() is True
        return simulator, reader

    async def next_availability(self) -> bool:
        return await asyncio.wait_for(self.availability.get(), WAIT)

    async def aclose(self) -> None:
        for reader in self.readers:
            await reader.close()
        for sim in self.sims:
            sim.close()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(tmp_path)
    yield r
    await r.aclose()


def field_with(count: int, antennas: int = 1, **kwargs: Any) -> TagField:
    field = TagField(**kwargs)
    for n in range(count):
        field.place(bytes.fromhex("E280") + n.to_bytes(10, "big"), antenna=n % antennas + 1)
    return field


def requests(sim: R2000Simulator, cmd: int) -> list[bytes]:
    return [raw for raw in sim.received if raw[3] == cmd]


async def test_identify_with_firmware_version(rig: Rig) -> None:
    sim, reader = await rig.start(field_with(0), sim={"firmware": (8, 2)})
    assert reader.available and reader.firmware == (8, 2)
    # Broadcast address; the simulated reader answers from its own address 0x01.
    assert sim.received[0] == bytes.fromhex("A0 03 FF 72 EC")
    assert sim.sent[0][2] == 0x01
    assert reader.baudrate == 115200


async def test_rounds_over_two_antennas_carry_the_right_antenna(rig: Rig) -> None:
    field = field_with(6, antennas=3)  # tags on antennas 1, 2 and 3; the reader uses 1 and 3
    sim, reader = await rig.start(field, antennas=(1, 3))
    await reader.start_inventory()
    await rig.listener.rounds_at_least(2)
    await reader.stop_inventory()
    placed = {tag.epc.hex(): tag.antenna for tag in field.tags.values()}
    assert rig.listener.tags
    assert all(placed[read.epc] == read.antenna for read in rig.listener.tags)
    assert {read.antenna for read in rig.listener.tags} == {1, 3}
    assert rig.listener.epcs() == {epc for epc, ant in placed.items() if ant in (1, 3)}
    first, second = rig.listener.rounds[:2]
    assert (first.number, second.number) == (1, 2)
    assert first.antennas == (1, 3) and first.reads == 4
    # Antenna ids are 0-based on the wire; each antenna gets 0x74 then 0x89 with repeat 1.
    round_requests = [raw for raw in sim.received if raw[3] in (0x74, 0x89)][:4]
    assert round_requests == [
        p.encode(0xFF, 0x74, b"\x00"),
        p.encode(0xFF, 0x89, b"\x01"),
        p.encode(0xFF, 0x74, b"\x02"),
        p.encode(0xFF, 0x89, b"\x01"),
    ]
    assert all(read.rssi == 129 - 55 for read in rig.listener.tags)  # the field's -55 dBm


async def test_population_of_200_is_found_in_a_few_rounds(rig: Rig) -> None:
    field = field_with(200, antennas=2, read_probability=0.95, seed=7)
    _sim, reader = await rig.start(field, antennas=(1, 2))
    await reader.start_inventory()
    await rig.listener.until(
        lambda: rig.listener.epcs() == field.epcs() or len(rig.listener.rounds) >= 6
    )
    assert rig.listener.epcs() == field.epcs()
    assert len(rig.listener.rounds) <= 5
    assert reader.metrics.corrupt_frames == 0 and reader.metrics.timeouts == 0
    assert reader.metrics.tag_reads == len(rig.listener.tags)
    # Each tag answers a round with probability 0.95, not always.
    assert any(end.reads < 200 for end in rig.listener.rounds)


async def test_set_power_reaches_the_reader(rig: Rig) -> None:
    sim, reader = await rig.start(field_with(0))
    await reader.set_power(26.2)
    assert sim.received[-1] == bytes.fromhex("A0 04 FF 76 1A CD")
    assert sim.power_dbm == 26
    with pytest.raises(ValueError, match=r"0\.\.33"):
        await reader.set_power(40)
    sim.fail_next(p.OUTPUT_POWER_OUT_OF_RANGE)
    with pytest.raises(ReaderRejected, match="output power out of range"):
        await reader.set_power(20)
    assert sim.power_dbm == 26 and reader.metrics.error_replies == 1
    assert reader.available


async def test_set_power_while_inventory_runs(rig: Rig) -> None:
    sim, reader = await rig.start(field_with(10))
    await reader.start_inventory()
    await rig.listener.rounds_at_least(1)
    await reader.set_power(18)
    assert sim.power_dbm == 18
    rounds = len(rig.listener.rounds)
    await rig.listener.rounds_at_least(rounds + 1)  # inventory goes on


async def test_corrupt_frames_are_skipped_without_losing_rounds(rig: Rig) -> None:
    field = field_with(30, read_probability=1.0, misread_rate=0.2, seed=3)
    sim, reader = await rig.start(field)
    await reader.start_inventory()
    await rig.listener.until(lambda: sim.corrupted_frames >= 10)
    await reader.stop_inventory()
    m = reader.metrics
    assert m.corrupt_frames >= 1 and m.timeouts == 0 and m.reconnects == 0
    assert reader.available
    assert rig.listener.epcs() == field.epcs()
    # Every frame that crossed the line intact was read; every corrupted one was dropped.
    assert m.tag_reads == sim.tag_frames - sim.corrupted_frames
    assert [end.number for end in rig.listener.rounds] == list(
        range(1, len(rig.listener.rounds) + 1)
    )
    assert len(rig.listener.rounds) == len(requests(sim, 0x89))


async def test_garbage_between_frames_is_skipped(rig: Rig) -> None:
    field = field_with(20, seed=1)
    sim, reader = await rig.start(field, sim={"noise": 3})
    sim.inject(b"\x00\x55\xff")  # noise while the reader is idle
    await reader.start_inventory()
    await rig.listener.rounds_at_least(3)
    await reader.stop_inventory()
    m = reader.metrics
    assert m.garbage_bytes == 3 + 3 * sim.tag_frames
    assert m.corrupt_frames == 0 and m.timeouts == 0
    assert m.tag_reads == sim.tag_frames
    assert rig.listener.epcs() == field.epcs()


async def test_stretched_len_does_not_swallow_the_reply(rig: Rig) -> None:
    """A corrupted Len claiming 149 bytes swallows the next reply until the line goes quiet;
    the driver then gives the candidate up and finds the reply inside it, well within the
    command timeout."""
    sim, reader = await rig.start(field_with(0))
    sim.inject(bytes.fromhex("A0 93 01 89"))
    await reader.set_power(12)
    assert sim.power_dbm == 12
    assert reader.metrics.corrupt_frames == 1 and reader.metrics.timeouts == 0
    assert reader.available


async def test_legacy_ind903_round_end(rig: Rig) -> None:
    field = field_with(5)
    sim, reader = await rig.start(field, sim={"legacy_round_end": True})
    await reader.start_inventory()
    await rig.listener.rounds_at_least(3)
    await reader.stop_inventory()
    ends = [raw for raw in sim.sent if raw[3] == 0x89 and raw[1] == 0x08]
    assert len(ends) >= 3
    assert ends[0] == p.encode(0x01, 0x89, bytes.fromhex("00 00 00 00 05"))
    assert [end.reads for end in rig.listener.rounds[:3]] == [5, 5, 5]
    assert reader.metrics.timeouts == 0


async def test_error_reply_to_inventory_makes_the_pass_no_round(rig: Rig) -> None:
    field = field_with(4, antennas=2)
    sim, reader = await rig.start(field, antennas=(1, 2))
    sim.fail_next(p.ANTENNA_MISSING, cmd=0x89)
    await reader.start_inventory()
    await rig.listener.rounds_at_least(2)
    await reader.stop_inventory()
    assert p.encode(0x01, 0x89, b"\x22") in sim.sent
    assert reader.metrics.error_replies == 1 and reader.metrics.timeouts == 0
    # Antenna 1's tags were unknown in the failed pass, not absent: that pass is no round, and
    # every round reported read both antennas.
    assert reader.metrics.incomplete_rounds == 1
    assert [end.reads for end in rig.listener.rounds[:2]] == [4, 4]
    assert [end.number for end in rig.listener.rounds[:2]] == [1, 2]
    assert reader.available


async def test_no_tag_error_is_an_empty_round(rig: Rig) -> None:
    sim, reader = await rig.start(field_with(0))
    sim.fail_next(p.NO_TAG, cmd=0x89)
    await reader.start_inventory()
    await rig.listener.rounds_at_least(2)
    await reader.stop_inventory()
    assert reader.metrics.incomplete_rounds == 0
    assert [end.reads for end in rig.listener.rounds[:2]] == [0, 0]


async def test_error_reply_to_set_work_antenna_makes_the_pass_no_round(rig: Rig) -> None:
    field = field_with(4, antennas=2)
    sim, reader = await rig.start(field, antennas=(1, 2))
    sim.fail_next(p.ANTENNA_ID_OUT_OF_RANGE, cmd=0x74)
    await reader.start_inventory()
    await rig.listener.rounds_at_least(2)
    await reader.stop_inventory()
    assert p.encode(0x01, 0x74, bytes([p.ANTENNA_ID_OUT_OF_RANGE])) in sim.sent
    assert reader.metrics.error_replies == 1 and reader.metrics.incomplete_rounds == 1
    assert [end.reads for end in rig.listener.rounds[:2]] == [4, 4]


async def test_silence_makes_reader_unavailable_until_it_answers(rig: Rig) -> None:
    sim, reader = await rig.start(field_with(3), round_timeout=0.5)
    await reader.start_inventory()
    await rig.listener.rounds_at_least(1)
    sim.silent = True
    assert await rig.next_availability() is False
    assert not reader.available and reader.metrics.timeouts >= 1
    sim.silent = False
    assert await rig.next_availability() is True
    rounds = len(rig.listener.rounds)
    await rig.listener.rounds_at_least(rounds + 2)  # inventory resumed by itself


async def test_unplug_replug_reconnects_and_resumes(rig: Rig) -> None:
    field = field_with(8)
    sim, reader = await rig.start(field, link=True)
    assert reader.port == str(rig.tmp_path / "ttyUSB0")
    await reader.start_inventory()
    await rig.listener.rounds_at_least(1)
    sim.unplug()
    assert await rig.next_availability() is False
    tags_before = len(rig.listener.tags)
    sim.replug()
    assert await rig.next_availability() is True
    rounds = len(rig.listener.rounds)
    await rig.listener.rounds_at_least(rounds + 2)
    assert reader.metrics.reconnects >= 1
    assert len(rig.listener.tags) >= tags_before + 16
    assert sim.received.count(bytes.fromhex("A0 03 FF 72 EC")) >= 2  # identified again


async def test_stop_inventory_stops_rounds(rig: Rig) -> None:
    sim, reader = await rig.start(field_with(5))
    await reader.start_inventory()
    await rig.listener.rounds_at_least(2)
    await reader.stop_inventory()
    rounds, mark = len(rig.listener.rounds), len(sim.received)
    # Two full exchanges after stop: had another round started, its 0x89 would be on the line.
    await reader.set_power(20)
    await reader.set_power(21)
    assert [raw[3] for raw in sim.received[mark:]] == [0x76, 0x76]
    assert len(rig.listener.rounds) == rounds
    await reader.start_inventory()
    await rig.listener.rounds_at_least(rounds + 1)


async def test_reader_address_is_used_and_any_reply_address_accepted(rig: Rig) -> None:
    sim, reader = await rig.start(field_with(2), sim={"address": 0x05}, address=0x05)
    await reader.start_inventory()
    await rig.listener.rounds_at_least(1)
    await reader.stop_inventory()
    assert {raw[2] for raw in sim.received} == {0x05}
    assert rig.listener.rounds[0].reads == 2


def test_reader_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match=r"1\.\.4"):
        R2000Reader("x", "/dev/null", antennas=(1, 5))
    with pytest.raises(ValueError, match="address"):
        R2000Reader("x", "/dev/null", address=256)
