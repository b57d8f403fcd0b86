"""Value types and errors shared by the lock board codecs, the bus and the simulator."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BoardFamily(StrEnum):
    BOARD_485 = "485-board"
    KERONG = "kerong"


DEFAULT_BAUDRATE: dict[BoardFamily, int] = {
    BoardFamily.BOARD_485: 9600,
    BoardFamily.KERONG: 19200,
}


@dataclass(frozen=True)
class LockStatus:
    """One lock as a board reports it. Lock numbers are 1-based for every family."""

    address: int
    lock: int
    locked: bool  # True = door closed and latched, False = open
    item_present: bool | None = None  # Kerong infrared sensor; None where the board has none


@dataclass
class BusMetrics:
    """Counters of one bus; mutated in place, so a reference stays current."""

    requests: int = 0  # API calls that reached the wire
    retries: int = 0  # request frames re-sent after a timeout
    timeouts: int = 0  # attempts that got no valid reply within request_timeout
    corrupt_frames: int = 0  # frames with a bad checksum, skipped
    stray_frames: int = 0  # valid frames that answered nothing outstanding (late replies...)
    reconnects: int = 0  # successful re-opens of the port after it was lost
    garbage_bytes: int = 0  # bytes between frames that could not start one
    partial_frames: int = 0  # incomplete frames dropped before a new request
    reports: int = 0  # unsolicited status reports delivered to listeners
    last_frame_written_at: float | None = None  # time.perf_counter() after the last write


class LockBoardError(Exception):
    """Base of every lock board error."""


class BoardUnavailable(LockBoardError):
    """The port is not open right now (unplugged, not yet opened, or the bus is closed)."""


class BoardTimeout(LockBoardError):
    """No valid reply after all retries."""
