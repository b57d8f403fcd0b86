"""The real LockBus against the real simulator over a pseudo-terminal, both lock board families."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drivers.lockboard import (
    BoardFamily,
    BoardTimeout,
    BoardUnavailable,
    LockBus,
    LockStatus,
)
from drivers.lockboard import protocol_485 as p485
from drivers.lockboard.simulator import LockBoardSimulator

B485 = BoardFamily.BOARD_485
KERONG = BoardFamily.KERONG
WAIT = 3.0  # upper bound for anything awaited; tests finish far sooner


class Rig:
    """Starts simulators and buses, records what the bus reports, and tears everything down."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.sims: list[LockBoardSimulator] = []
        self.buses: list[LockBus] = []
        self.availability: asyncio.Queue[bool] = asyncio.Queue()
        self.reports: asyncio.Queue[LockStatus] = asyncio.Queue()

    async def start(
        self,
        family: BoardFamily,
        boards: dict[int, int],
        *,
        link: bool = False,
        sim: dict[str, Any] | None = None,
        **bus_kwargs: Any,
    ) -> tuple[LockBoardSimulator, LockBus]:
        link_path = str(self.tmp_path / f"ttyLOCK{len(self.sims)}") if link else None
        simulator = LockBoardSimulator(family, boards, link=link_path, **(sim or {}))
        self.sims.append(simulator)
        port = await simulator.start()
        bus = self.bus(port, family, **bus_kwargs)
        await bus.start()
        assert await bus.wait_available(WAIT)
        assert await self.next_availability() is True
        return simulator, bus

    def bus(self, port: str, family: BoardFamily, **kwargs: Any) -> LockBus:
        options: dict[str, Any] = {
            "request_timeout": 0.15,
            "retries": 2,
            "reconnect_initial": 0.02,
            "reconnect_max": 0.2,
            "name": "test",
        }
        options.update(kwargs)
        bus = LockBus(port, family, **options)
        bus.add_availability_listener(self.availability.put_nowait)
        bus.add_report_listener(self.reports.put_nowait)
        self.buses.append(bus)
        return bus

    async def next_availability(self) -> bool:
        return await asyncio.wait_for(self.availability.get(), WAIT)

    async def next_report(self) -> LockStatus:
        return await asyncio.wait_for(self.reports.get(), WAIT)

    async def aclose(self) -> None:
        for bus in self.buses:
            await bus.close()
        for sim in self.sims:
            await sim.stop()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(tmp_path)
    yield r
    await r.aclose()


def status_frame(head: int, address: int, lock: int, locked: bool) -> bytes:
    return p485.encode_status_frame(head, address, lock, locked)


# -- family 2a: the basics --------------------------------------------------------------------


async def test_485_unlock_opens_door_and_returns_ack_status(rig: Rig) -> None:
    sim, bus = await rig.start(B485, {1: 24})
    status = await bus.unlock(1, 3)
    assert status == LockStatus(address=1, lock=3, locked=False)
    assert sim.is_open(1, 3)
    assert sim.unlock_log == [(1, 3)]
    assert sim.frames_received == [bytes.fromhex("8A 01 03 11 99")]
    assert sim.frames_sent == [status_frame(0x8A, 1, 3, locked=False)]
    assert bus.metrics.requests == 1 and bus.metrics.retries == 0
    assert bus.metrics.last_frame_written_at is not None


async def test_485_read_lock_follows_the_door(rig: Rig) -> None:
    sim, bus = await rig.start(B485, {1: 24})
    assert await bus.read_lock(1, 5) == LockStatus(1, 5, locked=True)
    sim.force_open(1, 5)
    assert await bus.read_lock(1, 5) == LockStatus(1, 5, locked=False)
    sim.close_door(1, 5)
    assert await bus.read_lock(1, 5) == LockStatus(1, 5, locked=True)
    assert sim.unlock_log == []  # reading never opens a door


async def test_485_stuck_latch_acknowledges_but_stays_closed(rig: Rig) -> None:
    sim, bus = await rig.start(B485, {1: 8})
    sim.set_stuck(1, 2, True)
    assert await bus.unlock(1, 2) == LockStatus(1, 2, locked=True)
    assert not sim.is_open(1, 2)
    assert sim.unlock_log == [(1, 2)]


async def test_485_open_delay_ack_shows_closed_then_door_opens(rig: Rig) -> None:
    sim, bus = await rig.start(B485, {1: 8}, sim={"open_delay": 0.1, "unsolicited_reports": True})
    assert await bus.unlock(1, 1) == LockStatus(1, 1, locked=True)
    assert not sim.is_open(1, 1)
    assert await rig.next_report() == LockStatus(1, 1, locked=False)
    assert sim.is_open(1, 1)
    assert await bus.read_lock(1, 1) == LockStatus(1, 1, locked=False)


async def test_485_auto_close_after(rig: Rig) -> None:
    sim, bus = await rig.start(
        B485, {1: 8}, sim={"auto_close_after": 0.05, "unsolicited_reports": True}
    )
    assert await bus.unlock(1, 8) == LockStatus(1, 8, locked=False)
    assert await rig.next_report() == LockStatus(1, 8, locked=False)
    assert await rig.next_report() == LockStatus(1, 8, locked=True)
    assert not sim.is_open(1, 8)
    assert await bus.read_lock(1, 8) == LockStatus(1, 8, locked=True)


@pytest.mark.parametrize("closed_bit", [1, 0])
async def test_485_read_all_polarity(rig: Rig, closed_bit: int) -> None:
    sim, bus = await rig.start(
        B485,
        {1: 24},
        sim={"query_all_closed_bit": closed_bit},
        query_all_closed_bit=closed_bit,
    )
    sim.force_open(1, 2)
    sim.force_open(1, 17)
    statuses = await bus.read_all(1, 24)
    assert statuses == {n: LockStatus(1, n, locked=n not in (2, 17)) for n in range(1, 25)}
    # The bytes on the wire really differ between the two settings.
    reply = sim.frames_sent[-1]
    expected_mask = bytes.fromhex("FE FF FD") if closed_bit else bytes.fromhex("01 00 02")
    assert reply[:2] == bytes.fromhex("80 01") and reply[2:5] == expected_mask


async def test_485_read_all_with_fewer_locks(rig: Rig) -> None:
    sim, bus = await rig.start(B485, {4: 12})
    sim.force_open(4, 12)
    statuses = await bus.read_all(4, 12)
    assert sorted(statuses) == list(range(1, 13))
    assert [n for n, s in statuses.items() if not s.locked] == [12]


async def test_two_boards_one_bus_concurrent_requests_are_serialized(rig: Rig) -> None:
    sim, bus = await rig.start(B485, {1: 24, 2: 24}, request_timeout=0.5)
    replies_sent_at_request: list[int] = []
    sim.add_frame_listener(lambda raw: replies_sent_at_request.append(len(sim.frames_sent)))
    sim.force_open(2, 9)
    # Each reply comes 30 ms late: if requests overlapped, all four would reach the board
    # before its first reply.
    sim.fault_late_reply(delay=0.03, count=4)
    results = await asyncio.wait_for(
        asyncio.gather(
            bus.unlock(1, 1), bus.unlock(2, 5), bus.read_lock(2, 9), bus.read_all(1, 24)
        ),
        WAIT,
    )
    assert results[0] == LockStatus(1, 1, locked=False)
    assert results[1] == LockStatus(2, 5, locked=False)
    assert results[2] == LockStatus(2, 9, locked=False)
    assert isinstance(results[3], dict)
    assert [n for n, s in results[3].items() if not s.locked] == [1]
    assert replies_sent_at_request == [0, 1, 2, 3]
    assert sim.unlock_log == [(1, 1), (2, 5)]
    assert bus.metrics.requests == 4 and bus.metrics.stray_frames == 0


async def test_one_silent_board_does_not_take_the_bus_down(rig: Rig) -> None:
    # Board 3 is configured but dead (no board answers at that address).
    _sim, bus = await rig.start(B485, {1: 24}, request_timeout=0.05, retries=0)
    changes: list[bool] = []
    bus.add_availability_listener(changes.append)
    await bus.read_lock(1, 1)
    with pytest.raises(BoardTimeout):
        await bus.read_lock(3, 1)
    assert bus.available, "a neighbour still answers, so the bus works"
    assert changes == []
    assert await bus.unlock(1, 2) == LockStatus(1, 2, locked=False)


# -- timeouts, retries, line faults ---------------------------------------------------------


async def test_dropped_reply_is_retried(rig: Rig) -> None:
    sim, bus = await rig.start(B485, {1: 24})
    sim.fault_no_reply(1)
    assert await bus.read_lock(1, 1) == LockStatus(1, 1, locked=True)
    assert len(sim.frames_received) == 2
    assert (bus.metrics.timeouts, bus.metrics.retries) == (1, 1)
    assert bus.available


async def test_board_timeout_after_all_retries_then_recovers(rig: Rig) -> None:
    sim, bus = await rig.start(B485, {1: 24}, retries=2)
    sim.fault_no_reply()  # until cleared
    with pytest.raises(BoardTimeout, match="3 attempts"):
        await bus.read_lock(1, 1)
    assert len(sim.frames_received) == 3
    assert bus.metrics.timeouts == 3 and bus.metrics.retries == 2
    # The last exchange failed: the bus says so, and says it again once one works.
    assert await rig.next_availability() is False
    assert not bus.available
    sim.clear_faults()
    assert await bus.read_lock(1, 1) == LockStatus(1, 1, locked=True)
    assert await rig.next_availability() is True


async def test_unknown_board_address_times_out(rig: Rig) -> None:
    sim, bus = await rig.start(B485, {1: 24}, retries=1)
    with pytest.raises(BoardTimeout):
        await bus.unlock(7, 1)
    assert sim.unlock_log == []
    assert len(sim.frames_received) == 2


async def test_kerong_board_timeout(rig: Rig) -> None:
    sim, bus = await rig.start(KERONG, {0: 16}, retries=0)
    sim.fault_no_reply(1)
    with pytest.raises(BoardTimeout):
        await bus.read_all(0, 16)
    assert (await bus.read_all(0, 16))[1].locked


async def test_corrupt_checksum_logged_in_hex_skipped_and_retried(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="drivers.lockboard")
    sim, bus = await rig.start(B485, {1: 24})
    sim.fault_corrupt_checksum(1)
    assert await bus.read_lock(1, 6) == LockStatus(1, 6, locked=True)
    good = status_frame(0x80, 1, 6, locked=True)
    corrupt = good[:-1] + bytes([good[-1] ^ 0x5A])
    assert sim.frames_sent == [corrupt, good]
    assert corrupt.hex(" ") in caplog.text
    assert any(r.levelno == logging.WARNING and "corrupt" in r.getMessage() for r in caplog.records)
    assert bus.metrics.corrupt_frames == 1 and bus.metrics.retries == 1


async def test_kerong_corrupt_checksum_skipped(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="drivers.lockboard")
    sim, bus = await rig.start(KERONG, {0: 16})
    sim.fault_corrupt_checksum(1)
    assert (await bus.read_lock(0, 4)).locked
    assert sim.frames_sent[0].hex(" ") in caplog.text
    assert bus.metrics.corrupt_frames == 1


@pytest.mark.parametrize("family", [B485, KERONG])
async def test_garbage_bytes_before_reply_are_skipped(rig: Rig, family: BoardFamily) -> None:
    address = 1 if family is B485 else 0
    sim, bus = await rig.start(family, {address: 16})
    sim.fault_garbage(2)
    assert (await bus.read_lock(address, 1)).locked
    assert (await bus.unlock(address, 2)) == LockStatus(
        address, 2, locked=False, item_present=None if family is B485 else False
    )
    assert bus.metrics.garbage_bytes >= 2
    assert bus.metrics.retries == 0 and bus.metrics.corrupt_frames == 0


async def test_partial_frame_does_not_wedge_the_next_request(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="drivers.lockboard")
    sim, bus = await rig.start(B485, {1: 24}, retries=0)
    sim.fault_partial(1)
    with pytest.raises(BoardTimeout):
        await bus.read_lock(1, 1)
    assert len(sim.frames_sent[0]) == 2
    assert await bus.unlock(1, 2) == LockStatus(1, 2, locked=False)
    assert bus.metrics.partial_frames == 1
    assert sim.frames_sent[0].hex(" ") in caplog.text


async def test_partial_frame_retry_succeeds(rig: Rig) -> None:
    sim, bus = await rig.start(KERONG, {0: 16})
    sim.fault_partial(1)
    assert (await bus.read_lock(0, 16)).locked
    assert bus.metrics.retries == 1 and bus.metrics.partial_frames == 1


async def test_stale_late_reply_is_not_taken_for_the_next_answer(rig: Rig) -> None:
    sim, bus = await rig.start(B485, {1: 24}, retries=0)
    sim.fault_late_reply()  # held back, sent just before the next reply
    with pytest.raises(BoardTimeout):
        await bus.read_lock(1, 1)
    sim.force_open(1, 2)
    assert await bus.read_lock(1, 2) == LockStatus(1, 2, locked=False)
    # Both replies reached the driver in one write; the stale one was discarded.
    stale, fresh = status_frame(0x80, 1, 1, True), status_frame(0x80, 1, 2, False)
    assert sim.frames_sent[-1] == stale + fresh
    assert bus.metrics.stray_frames == 1


async def test_stale_short_reply_before_query_all_reply(rig: Rig) -> None:
    sim, bus = await rig.start(B485, {1: 24}, retries=0)
    sim.fault_late_reply()
    with pytest.raises(BoardTimeout):
        await bus.read_lock(1, 3)
    sim.force_open(1, 3)
    statuses = await bus.read_all(1, 24)
    assert [n for n, s in statuses.items() if not s.locked] == [3]
    assert bus.metrics.stray_frames == 1 and bus.metrics.corrupt_frames == 0


async def test_stale_unlock_ack_is_not_taken_for_a_later_unlock(rig: Rig) -> None:
    sim, bus = await rig.start(B485, {1: 24}, retries=0)
    sim.fault_late_reply()
    with pytest.raises(BoardTimeout):
        await bus.unlock(1, 1)
    sim.set_stuck(1, 4, True)
    assert await bus.unlock(1, 4) == LockStatus(1, 4, locked=True)
    assert bus.metrics.stray_frames == 1


async def test_kerong_stale_status_not_taken_for_unlock_answer(rig: Rig) -> None:
    sim, bus = await rig.start(KERONG, {0: 16}, retries=0)
    sim.unlock_reply_cmd = 0x30  # a board that answers an unlock with a plain status frame
    sim.fault_late_reply()
    with pytest.raises(BoardTimeout):
        await bus.read_lock(0, 1)
    # The stale status (lock 1 closed) arrives first; the real answer shows lock 1 open.
    assert await bus.unlock(0, 1) == LockStatus(0, 1, locked=False, item_present=False)
    assert bus.metrics.stray_frames == 1


# -- unsolicited reports ----------------------------------------------------------------------


async def test_unsolicited_reports_reach_listeners(rig: Rig) -> None:
    sim, bus = await rig.start(B485, {1: 24}, sim={"unsolicited_reports": True})
    assert await bus.unlock(1, 4) == LockStatus(1, 4, locked=False)
    assert await rig.next_report() == LockStatus(1, 4, locked=False)
    sim.close_door(1, 4)
    assert await rig.next_report() == LockStatus(1, 4, locked=True)
    sim.force_open(1, 9)
    assert await rig.next_report() == LockStatus(1, 9, locked=False)
    assert bus.metrics.reports == 3 and bus.metrics.stray_frames == 0


async def test_report_while_a_request_is_waiting(rig: Rig) -> None:
    sim, bus = await rig.start(B485, {1: 24}, sim={"unsolicited_reports": True})
    # The door is forced while the board is still working on the query (its reply comes
    # 50 ms later): the report goes to listeners, the reply to the request.
    sim.add_frame_listener(lambda raw: sim.force_open(1, 7))
    sim.fault_late_reply(delay=0.05)
    assert await bus.read_lock(1, 1) == LockStatus(1, 1, locked=True)
    assert await rig.next_report() == LockStatus(1, 7, locked=False)
    assert sim.frames_sent[0][0] == 0x82 and sim.frames_sent[1][0] == 0x80
    assert bus.metrics.stray_frames == 0 and bus.metrics.retries == 0


async def test_statuses_from_replies_are_not_reported(rig: Rig) -> None:
    sim, bus = await rig.start(B485, {1: 24})
    assert not (await bus.unlock(1, 1)).locked
    assert not (await bus.read_lock(1, 1)).locked
    assert not (await bus.read_all(1, 24))[1].locked
    assert sim.unlock_log == [(1, 1)]
    assert rig.reports.empty() and bus.metrics.reports == 0


# -- Kerong -----------------------------------------------------------------------------------


@pytest.mark.parametrize("reply_cmd", [0x30, 0x35])
async def test_kerong_unlock_read_lock_read_all(rig: Rig, reply_cmd: int) -> None:
    sim, bus = await rig.start(KERONG, {0: 16, 3: 12})
    sim.status_reply_cmd = reply_cmd
    assert await bus.unlock(3, 1) == LockStatus(3, 1, locked=False, item_present=False)
    assert sim.frames_received[-1] == bytes.fromhex("02 30 31 03 66")
    assert sim.unlock_log == [(3, 1)]
    assert await bus.read_lock(3, 1) == LockStatus(3, 1, locked=False, item_present=False)
    assert sim.frames_received[-1] == bytes.fromhex("02 30 30 03 65")
    assert sim.frames_sent[-1][2] == reply_cmd
    sim.close_door(3, 1)
    statuses = await bus.read_all(3, 12)
    assert all(s.locked for s in statuses.values()) and sorted(statuses) == list(range(1, 13))
    assert (await bus.read_lock(0, 16)).locked


async def test_kerong_worked_examples_on_the_wire(rig: Rig) -> None:
    sim, bus = await rig.start(KERONG, {0: 16})
    await bus.read_lock(0, 1)
    await bus.unlock(0, 1)
    assert sim.frames_received == [
        bytes.fromhex("02 00 30 03 35"),
        bytes.fromhex("02 00 31 03 36"),
    ]


async def test_kerong_item_present_from_ir_bits(rig: Rig) -> None:
    sim, bus = await rig.start(KERONG, {0: 16})
    sim.set_item(0, 3, True)
    sim.set_item(0, 16, True)
    statuses = await bus.read_all(0, 16)
    assert [n for n, s in statuses.items() if s.item_present] == [3, 16]
    assert all(s.locked for s in statuses.values())
    assert await bus.read_lock(0, 3) == LockStatus(0, 3, locked=True, item_present=True)
    sim.set_item(0, 3, False)
    assert (await bus.read_lock(0, 3)).item_present is False


async def test_kerong_two_boards_concurrent(rig: Rig) -> None:
    sim, bus = await rig.start(KERONG, {0: 16, 1: 16})
    sim.force_open(1, 8)
    a, b = await asyncio.gather(bus.read_all(0, 16), bus.read_all(1, 16))
    assert all(s.locked and s.address == 0 for s in a.values())
    assert [n for n, s in b.items() if not s.locked] == [8]


# -- unplug, reconnect, availability ----------------------------------------------------------


async def test_unplug_mid_request_then_replug_reconnects(rig: Rig) -> None:
    sim, bus = await rig.start(B485, {1: 24}, link=True, request_timeout=2.0)
    sent = asyncio.Event()
    sim.add_frame_listener(lambda raw: sent.set())
    sim.fault_no_reply()
    request = asyncio.create_task(bus.read_lock(1, 1))
    await asyncio.wait_for(sent.wait(), WAIT)
    sim.unplug()
    with pytest.raises(BoardUnavailable):
        await asyncio.wait_for(request, WAIT)
    assert await rig.next_availability() is False
    assert not bus.available
    with pytest.raises(BoardUnavailable):
        await bus.unlock(1, 1)
    assert sim.unlock_log == []

    sim.clear_faults()
    assert sim.replug() == str(rig.tmp_path / "ttyLOCK0")
    assert await rig.next_availability() is True
    assert bus.available and bus.metrics.reconnects == 1
    assert await bus.unlock(1, 1) == LockStatus(1, 1, locked=False)


async def test_missing_port_does_not_raise_and_connects_when_it_appears(rig: Rig) -> None:
    link = str(rig.tmp_path / "ttyLATE")
    bus = rig.bus(link, KERONG)
    await bus.start()  # the port does not exist yet
    assert await bus.wait_available(0.05) is False
    with pytest.raises(BoardUnavailable):
        await bus.read_lock(0, 1)
    sim = LockBoardSimulator(KERONG, {0: 16}, link=link)
    rig.sims.append(sim)
    await sim.start()
    assert await bus.wait_available(WAIT)
    assert await rig.next_availability() is True
    assert (await bus.read_lock(0, 1)).locked
    assert bus.metrics.reconnects == 0  # first open, not a reconnect


async def test_close_fails_further_requests(rig: Rig) -> None:
    _sim, bus = await rig.start(B485, {1: 24})
    await bus.close()
    assert await rig.next_availability() is False
    with pytest.raises(BoardUnavailable):
        await bus.read_lock(1, 1)


# -- arguments --------------------------------------------------------------------------------


async def test_out_of_range_arguments_raise_value_error() -> None:
    b485 = LockBus("/nonexistent/ttyX", B485)
    kerong = LockBus("/nonexistent/ttyX", KERONG)
    for call, match in [
        (b485.unlock(0, 1), "address"),
        (b485.unlock(33, 1), "address"),
        (b485.unlock(1, 0), "lock"),
        (b485.read_lock(1, 25), "lock"),
        (b485.read_all(1, 25), "lock_count"),
        (kerong.unlock(16, 1), "address"),
        (kerong.read_lock(0, 17), "lock"),
        (kerong.read_all(0, 0), "lock_count"),
    ]:
        with pytest.raises(ValueError, match=match):
            await call
    with pytest.raises(ValueError, match="query_all_closed_bit"):
        LockBus("/dev/null", B485, query_all_closed_bit=2)


# -- the installer's command line -------------------------------------------------------------


async def test_simulator_command_line_serves_a_bus(rig: Rig) -> None:
    link = str(rig.tmp_path / "ttyCLI")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "drivers.lockboard.simulator",
        "--family",
        "kerong",
        "--boards",
        "0:16,1:8",
        "--link",
        link,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "LOGLEVEL": "WARNING"},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert line.decode().strip() == link
        bus = rig.bus(link, KERONG)
        await bus.start()
        assert await bus.wait_available(WAIT)
        assert await bus.unlock(1, 8) == LockStatus(1, 8, locked=False, item_present=False)
        line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
        assert line.decode().strip() == "unlock board 1 lock 8"
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
