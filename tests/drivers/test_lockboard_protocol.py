"""Lock board codecs: every worked example of PROTOCOLS.md 2a/2b byte for byte, and the parsers."""

from __future__ import annotations

import pytest

from drivers.lockboard import protocol_485 as p485
from drivers.lockboard import protocol_kerong as pk


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# -- 2a worked examples ---------------------------------------------------------------------


def test_485_unlock_board1_lock1() -> None:
    assert p485.encode_unlock(1, 1) == h("8A 01 01 11 9B")


def test_485_unlock_reply_board1_lock1_open() -> None:
    reply = h("8A 01 01 00 8A")
    assert p485.encode_status_frame(p485.HEAD_UNLOCK, 1, 1, locked=False) == reply
    (frame,) = p485.Parser485().feed(reply)
    assert (frame.head, frame.address, frame.lock, frame.status) == (0x8A, 1, 1, 0x00)
    assert frame.locked is False
    assert frame.raw == reply


def test_485_unlock_all_locks_of_board1() -> None:
    assert p485.encode_unlock(1, 0) == h("8A 01 00 11 9A")


def test_485_query_lock1_of_board1() -> None:
    assert p485.encode_query(1, 1) == h("80 01 01 33 B3")


def test_485_query_all_locks_of_board1() -> None:
    assert p485.encode_query_all(1) == h("80 01 00 33 B2")
    assert p485.encode_query(1, 0) == h("80 01 00 33 B2")


def test_485_batch_open_locks_2_10_18_of_board1() -> None:
    assert p485.encode_batch_open(1, [2, 10, 18]) == h("90 01 02 02 02 93")


def test_485_batch_open_byte_order_is_m3_m2_m1() -> None:
    # Lock 17 lives in m3 (first mask byte), lock 1 in m1 (last).
    frame = p485.encode_batch_open(1, [1, 17])
    assert frame[2:5] == h("01 00 01")
    frame = p485.encode_batch_open(1, [24])
    assert frame[2:5] == h("80 00 00")
    assert frame[-1] == p485.bcc(frame[:-1])


def test_485_hold_power_on_board1_lock1() -> None:
    assert p485.encode_hold_power(1, 1, on=True) == h("9A 01 01 11 8B")
    off = p485.encode_hold_power(1, 1, on=False)
    assert off == h("9B 01 01 11 8A")


def test_485_bcc_is_xor() -> None:
    assert p485.bcc(h("8A 01 01 11")) == 0x9B
    assert p485.bcc(b"") == 0


# -- 2b worked examples ---------------------------------------------------------------------


def test_kerong_status_board0() -> None:
    assert pk.encode_status(0) == h("02 00 30 03 35")


def test_kerong_unlock_lock1_board0() -> None:
    assert pk.encode_unlock(0, 1) == h("02 00 31 03 36")


def test_kerong_address_nibbles_and_sum() -> None:
    frame = pk.encode_unlock(3, 16)  # board 3, index 15
    assert frame[:4] == h("02 3F 31 03")
    assert frame[4] == (0x02 + 0x3F + 0x31 + 0x03) & 0xFF
    assert pk.checksum(h("FF FF 02")) == 0x00


# -- range checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: p485.encode_unlock(0, 1), "address"),
        (lambda: p485.encode_unlock(33, 1), "address"),
        (lambda: p485.encode_unlock(1, 25), "lock"),
        (lambda: p485.encode_query(1, -1), "lock"),
        (lambda: p485.encode_batch_open(1, [0]), "lock"),
        (lambda: pk.encode_status(16), "address"),
        (lambda: pk.encode_unlock(0, 0), "lock"),
        (lambda: pk.encode_unlock(0, 17), "lock"),
    ],
)
def test_out_of_range_arguments_raise_value_error(call: object, match: str) -> None:
    assert callable(call)
    with pytest.raises(ValueError, match=match):
        call()


# -- 2a parser --------------------------------------------------------------------------------


def test_485_query_all_reply_decodes_both_polarities() -> None:
    locked = {n: n not in (2, 17) for n in range(1, 25)}  # locks 2 and 17 open
    for closed_bit in (1, 0):
        raw = p485.encode_query_all_reply(1, locked, closed_bit=closed_bit)
        assert len(raw) == 7
        assert raw[:2] == h("80 01") and raw[5] == 0x33
        assert raw[-1] == p485.bcc(raw[:-1])
        parser = p485.Parser485()
        parser.expect_query_all = True
        (frame,) = parser.feed(raw)
        assert frame.is_query_all
        assert frame.locks(24, closed_bit=closed_bit) == locked
        # Read with the wrong polarity, every lock flips: why it is a configuration switch.
        flipped = frame.locks(24, closed_bit=1 - closed_bit)
        assert flipped == {n: not v for n, v in locked.items()}


def test_485_query_all_reply_bit_layout() -> None:
    # S17-24 S9-16 S1-8: only lock 1 closed -> last mask byte bit 0 (polarity 1 = closed).
    raw = p485.encode_query_all_reply(1, {1: True, 2: False}, closed_bit=1)
    assert raw[:6] == h("80 01 00 00 01 33")


def test_485_parser_takes_long_reply_without_hint() -> None:
    raw = p485.encode_query_all_reply(3, {n: True for n in range(1, 25)})
    (frame,) = p485.Parser485().feed(raw)
    assert frame.is_query_all and frame.address == 3


def test_485_parser_short_then_long_in_one_chunk_while_expecting_long() -> None:
    short = p485.encode_status_frame(p485.HEAD_QUERY, 1, 1, locked=True)
    long = p485.encode_query_all_reply(1, {1: True})
    parser = p485.Parser485()
    parser.expect_query_all = True
    frames = parser.feed(short + long)
    assert [f.raw for f in frames] == [short, long]
    assert not frames[0].is_query_all and frames[1].is_query_all


def test_485_parser_waits_for_long_reply_split_across_reads() -> None:
    long = p485.encode_query_all_reply(1, {1: False, 2: True})
    parser = p485.Parser485()
    parser.expect_query_all = True
    assert parser.feed(long[:5]) == []
    assert parser.pending == long[:5]
    (frame,) = parser.feed(long[5:])
    assert frame.raw == long


def test_485_parser_buffers_partial_short_frame() -> None:
    reply = h("8A 01 01 00 8A")
    parser = p485.Parser485()
    assert parser.feed(reply[:2]) == []
    assert parser.feed(reply[2:4]) == []
    (frame,) = parser.feed(reply[4:])
    assert frame.raw == reply


def test_485_parser_skips_garbage_and_reports_it() -> None:
    junk: list[bytes] = []
    parser = p485.Parser485(on_garbage=junk.append)
    reply = h("8A 01 01 00 8A")
    frames = parser.feed(h("00 13 7F") + reply + h("55"))
    assert [f.raw for f in frames] == [reply]
    assert b"".join(junk) == h("00 13 7F 55")


def test_485_parser_reports_corrupt_frame_and_resyncs() -> None:
    bad: list[bytes] = []
    parser = p485.Parser485(on_corrupt=bad.append)
    good = h("82 02 05 11 94")
    assert p485.bcc(good[:-1]) == good[-1]
    frames = parser.feed(h("8A 01 01 00 8B") + good)
    assert bad == [h("8A 01 01 00 8B")]
    assert [f.raw for f in frames] == [good]


def test_485_parser_resyncs_on_head_inside_corrupt_candidate() -> None:
    # A truncated frame immediately followed by a whole one: the whole one must survive.
    bad: list[bytes] = []
    parser = p485.Parser485(on_corrupt=bad.append)
    good = h("8A 01 01 00 8A")
    frames = parser.feed(h("8A 01") + good)
    assert [f.raw for f in frames] == [good]
    assert len(bad) == 1


def test_485_parser_corrupt_short_query_reply_detected_without_waiting() -> None:
    bad: list[bytes] = []
    parser = p485.Parser485(on_corrupt=bad.append)
    assert parser.feed(h("80 01 01 11 00")) == []
    assert bad == [h("80 01 01 11 00")]
    assert parser.pending == b""


def test_485_parser_clear_drops_partial() -> None:
    parser = p485.Parser485()
    parser.feed(h("80 01"))
    assert parser.clear() == h("80 01")
    assert parser.feed(h("82 01 02 00 81"))[0].lock == 2


def test_485_unsolicited_report_decodes() -> None:
    raw = p485.encode_status_frame(p485.HEAD_REPORT, 5, 7, locked=True)
    assert raw == h("82 05 07 11") + bytes([0x82 ^ 0x05 ^ 0x07 ^ 0x11])
    (frame,) = p485.Parser485().feed(raw)
    assert frame.head == 0x82 and frame.locked


# -- 2b parser --------------------------------------------------------------------------------


@pytest.mark.parametrize("cmd", [0x30, 0x35, 0x31])
def test_kerong_status_reply_round_trip(cmd: int) -> None:
    hooks = 0b1111_1111_1111_1101  # lock 2 open
    ir = 0b0000_0000_0000_0100  # item in lock 3
    raw = pk.encode_status_reply(0x20, cmd, hooks, ir)
    assert raw == bytes([0x02, 0x20, cmd, 0xFD, 0xFF, 0x04, 0x00, 0x03, pk.checksum(raw[:-1])])
    (frame,) = pk.KerongParser().feed(raw)
    assert (frame.address, frame.index, frame.cmd) == (2, 0, cmd)
    assert frame.locked(1) and not frame.locked(2)
    assert frame.item_present(3) and not frame.item_present(1)


def test_kerong_parser_handles_stx_inside_data_and_garbage() -> None:
    junk: list[bytes] = []
    bad: list[bytes] = []
    parser = pk.KerongParser(on_corrupt=bad.append, on_garbage=junk.append)
    good = pk.encode_status_reply(0x00, 0x30, 0x0202, 0x0002)  # STX values inside the data
    corrupt = good[:-1] + bytes([good[-1] ^ 0xFF])
    frames = parser.feed(h("11 22") + corrupt + good)
    assert [f.raw for f in frames] == [good]
    assert bad and bad[0] == corrupt
    assert junk[0] == h("11 22")


def test_kerong_parser_buffers_partial_frame() -> None:
    good = pk.encode_status_reply(0x10, 0x35, 0xFFFF, 0)
    parser = pk.KerongParser()
    assert parser.feed(good[:4]) == []
    (frame,) = parser.feed(good[4:])
    assert frame.address == 1 and frame.cmd == 0x35
