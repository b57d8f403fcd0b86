"""Lock buses as the locker domain sees them: doors addressed by (bus, board, lock).

Door states reach the domain three ways, all through ``on_door``: the status carried in an
unlock acknowledgement, unsolicited board reports, and a poll of every board.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from drivers.lockboard import BoardFamily, BoardTimeout, LockBoardError, LockBus, LockStatus
from edge.config.models import LockBusConfig

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class LockAddress:
    bus: str
    board: int
    lock: int

    def __str__(self) -> str:
        return f"{self.bus}/{self.board}/{self.lock}"


DoorListener = Callable[[LockAddress, bool], None]
AvailabilityListener = Callable[[str, bool], None]
BoardListener = Callable[[str, int, bool], None]


class LockController:
    def __init__(self, configs: list[LockBusConfig]) -> None:
        self.configs = {config.name: config for config in configs}
        self.buses: dict[str, LockBus] = {}
        self._door_listeners: list[DoorListener] = []
        self._board_listeners: list[BoardListener] = []
        # Whether each board answered its last request; absent until it was first asked.
        self._board_answering: dict[tuple[str, int], bool] = {}
        self._availability_listeners: list[AvailabilityListener] = []
        for config in configs:
            bus = lock_bus_for(config)
            bus.add_report_listener(partial(self._seen, config.name))
            bus.add_availability_listener(partial(self._availability_changed, config.name))
            self.buses[config.name] = bus

    def add_door_listener(self, listener: DoorListener) -> None:
        self._door_listeners.append(listener)

    def add_availability_listener(self, listener: AvailabilityListener) -> None:
        self._availability_listeners.append(listener)

    async def start(self) -> None:
        for bus in self.buses.values():
            await bus.start()

    async def close(self) -> None:
        for bus in self.buses.values():
            await bus.close()

    def available(self, bus: str) -> bool:
        return bus in self.buses and self.buses[bus].available

    def board_available(self, bus: str, board: int) -> bool:
        return self.available(bus) and self._board_answering.get((bus, board), True)

    def add_board_listener(self, listener: BoardListener) -> None:
        """Called with (bus, board, answering) when a board stops or starts answering."""
        self._board_listeners.append(listener)

    async def _ask(self, bus: str, board: int, request: Awaitable[T]) -> T:
        try:
            result = await request
        except BoardTimeout:
            self._board_answered(bus, board, False)
            raise
        self._board_answered(bus, board, True)
        return result

    def _board_answered(self, bus: str, board: int, answered: bool) -> None:
        key = (bus, board)
        # The first answer (or silence) counts as a change too: an operator sees each board
        # come up, not only fail.
        if self._board_answering.get(key) == answered:
            return
        self._board_answering[key] = answered
        for listener in self._board_listeners:
            listener(bus, board, answered)

    async def unlock(self, address: LockAddress) -> bool | None:
        """Command the unlock; returns the door state the acknowledgement carried, if any."""
        status = await self._ask(
            address.bus,
            address.board,
            self.buses[address.bus].unlock(address.board, address.lock),
        )
        if status is not None:
            self._seen(address.bus, status)
            return not status.locked
        return None

    async def read_door(self, address: LockAddress) -> bool:
        """True when the door is open."""
        status = await self._ask(
            address.bus,
            address.board,
            self.buses[address.bus].read_lock(address.board, address.lock),
        )
        self._seen(address.bus, status)
        return not status.locked

    async def read_board(self, bus: str, board: int) -> dict[int, bool]:
        locks = next(b.locks for b in self.configs[bus].boards if b.address == board)
        statuses = await self._ask(bus, board, self.buses[bus].read_all(board, locks))
        for status in statuses.values():
            self._seen(bus, status)
        return {lock: not status.locked for lock, status in statuses.items()}

    async def poll_forever(self, bus: str) -> None:
        """Read every board on the bus at the configured interval (not all boards report).

        A bus whose boards stopped answering is polled all the same: an answer to a poll is
        how it becomes available again (a closed port fails at once, without waiting).
        """
        config = self.configs[bus]
        while True:
            for board in config.boards:
                try:
                    await self.read_board(bus, board.address)
                except LockBoardError as exc:
                    log.debug(
                        "poll failed",
                        extra={"bus": bus, "board": board.address, "error": str(exc)},
                    )
            await asyncio.sleep(config.poll_interval_s)

    def _seen(self, bus: str, status: LockStatus) -> None:
        address = LockAddress(bus, status.address, status.lock)
        for listener in self._door_listeners:
            listener(address, not status.locked)

    def _availability_changed(self, bus: str, available: bool) -> None:
        for listener in self._availability_listeners:
            listener(bus, available)


def lock_bus_for(config: LockBusConfig) -> LockBus:
    """The driver of one configured RS-485 lock bus (not started)."""
    return LockBus(
        config.port,
        BoardFamily(config.protocol),
        baudrate=config.baudrate,
        request_timeout=config.request_timeout_s,
        retries=config.retries,
        query_all_closed_bit=config.query_all_closed_bit,
        name=config.name,
    )
