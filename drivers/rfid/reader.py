"""What every UHF RFID reader driver offers, whatever its wire protocol.

A driver runs continuous inventory over the antennas it was given: it reports every tag it
reads (``on_tag``) and the end of every pass over all of its antennas (``on_round``). A pass is
what presence decisions count ("seen in k of the last m rounds"), so a driver reports a round
only when every antenna of the pass was actually inventoried; a pass cut short by an error or a
lost port is not a round.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TagRead:
    """One reply of one tag in one inventory round."""

    epc: str
    """Lower-case hex of the EPC bank's EPC field (length from the PC word)."""
    antenna: int
    """1-based antenna port."""
    rssi: int | None = None
    """dBm where the protocol says so, the reader's raw RSSI byte otherwise; None if absent."""
    pc: int | None = None


@dataclass(frozen=True, slots=True)
class RoundEnd:
    """The end of one pass over every antenna of a reader."""

    number: int
    """Counts passes since the driver started; consecutive, never reused."""
    antennas: tuple[int, ...]
    reads: int
    """Tag replies received during the pass (duplicates included)."""


class InventoryListener(Protocol):
    def on_tag(self, read: TagRead) -> None: ...

    def on_round(self, end: RoundEnd) -> None: ...


AvailabilityListener = Callable[[bool], None]


@dataclass
class ReaderMetrics:
    """Counters of one reader; mutated in place, so a reference stays current."""

    frames: int = 0
    tag_reads: int = 0
    rounds: int = 0
    corrupt_frames: int = 0
    """Frames whose checksum or length did not add up: logged (hex) and skipped."""
    garbage_bytes: int = 0
    """Bytes between frames that could not start one."""
    unknown_frames: int = 0
    """Well-formed frames the driver does not understand: logged and skipped."""
    error_replies: int = 0
    incomplete_rounds: int = 0
    """Passes not reported as rounds because an antenna could not be inventoried."""
    timeouts: int = 0
    reconnects: int = 0
    last_error: str | None = None
    extra: dict[str, int] = field(default_factory=dict)


class ReaderError(Exception):
    """Base of every reader error."""


class ReaderUnavailable(ReaderError):
    """The reader cannot be reached right now (port missing, connection lost, closed)."""


class ReaderTimeout(ReaderError):
    """The reader did not answer in time."""


class ReaderRejected(ReaderError):
    """The reader answered a command with an error code."""


class RoundIncomplete(ReaderError):
    """One antenna of a pass could not be inventoried (the reader answered with an error).

    The pass is then not a round: its missing tags are unknown, not absent, and counting them
    as misses would eventually charge a shopper for goods still on the shelf.
    """


class RfidReader(abc.ABC):
    """A reader behind one connection, with continuous inventory over its antennas.

    ``start`` returns at once; the driver connects in the background, reconnects with backoff
    for ever, and reports availability changes. While inventory is wanted (``start_inventory``)
    it resumes inventory after every reconnect by itself.
    """

    def __init__(self, name: str, antennas: Sequence[int]) -> None:
        if not antennas:
            raise ValueError("a reader needs at least one antenna")
        if len(set(antennas)) != len(antennas) or min(antennas) < 1:
            raise ValueError(f"antennas must be distinct and 1-based, got {list(antennas)}")
        self.name = name
        self.antennas: tuple[int, ...] = tuple(antennas)
        self.metrics = ReaderMetrics()
        self._listeners: list[InventoryListener] = []
        self._availability_listeners: list[AvailabilityListener] = []
        self._available = False
        self._available_event = asyncio.Event()

    # -- listeners ---------------------------------------------------------------------------

    def add_listener(self, listener: InventoryListener) -> None:
        self._listeners.append(listener)

    def add_availability_listener(self, listener: AvailabilityListener) -> None:
        self._availability_listeners.append(listener)

    @property
    def available(self) -> bool:
        """Connected, and the reader answered its last exchange."""
        return self._available

    # The agreed API takes a timeout rather than leaving it to the caller's asyncio.timeout.
    async def wait_available(self, timeout: float) -> bool:  # noqa: ASYNC109
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._available_event.wait()
        return self._available

    # -- lifecycle and control -----------------------------------------------------------------

    @abc.abstractmethod
    async def start(self) -> None:
        """Begin connecting (in the background); returns at once."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop inventory, close the connection, stop reconnecting."""

    @abc.abstractmethod
    async def start_inventory(self) -> None:
        """Run inventory rounds over every antenna until ``stop_inventory``; survives reconnects."""

    @abc.abstractmethod
    async def stop_inventory(self) -> None:
        """Stop after the current command; no round is reported after this returns."""

    @abc.abstractmethod
    async def set_power(self, dbm: float) -> None:
        """Output power for every antenna; raises ReaderError when the reader refuses."""

    # -- for subclasses --------------------------------------------------------------------------

    def _emit_tag(self, read: TagRead) -> None:
        self.metrics.tag_reads += 1
        for listener in self._listeners:
            listener.on_tag(read)

    def _emit_round(self, end: RoundEnd) -> None:
        self.metrics.rounds += 1
        for listener in self._listeners:
            listener.on_round(end)

    def _set_available(self, available: bool, reason: str | None = None) -> None:
        if not available:
            self.metrics.last_error = reason
        if available == self._available:
            return
        self._available = available
        if available:
            self._available_event.set()
        else:
            self._available_event.clear()
        for listener in list(self._availability_listeners):
            listener(available)
