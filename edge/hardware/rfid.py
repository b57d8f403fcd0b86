"""RFID readers as the cabinet domain sees them: built from the configuration, their reads
routed by antenna to the cabinet that antenna watches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from drivers.rfid.reader import ReaderError, RfidReader, RoundEnd, TagRead
from edge.cabinet.inventory import CabinetInventory
from edge.config.cabinets import RfidReaderConfig

log = logging.getLogger(__name__)

AvailabilityListener = Callable[[str, bool], None]


def build_reader(config: RfidReaderConfig) -> RfidReader:
    """The driver for one configured reader (imported lazily: a site loads only its own)."""
    serial: dict[str, Any] = {
        "antennas": config.antennas,
        "baudrate": config.baudrate,
        "command_timeout": config.command_timeout_s,
        "round_timeout": config.round_timeout_s,
    }
    if config.address is not None:
        serial["address"] = config.address
    if config.protocol == "r2000":
        from drivers.rfid.r2000 import R2000Reader

        assert config.port is not None
        return R2000Reader(config.name, config.port, **serial)
    if config.protocol == "chafon":
        from drivers.rfid.chafon import ChafonReader

        assert config.port is not None
        return ChafonReader(config.name, config.port, **serial)
    if config.protocol == "m100":
        from drivers.rfid.m100 import M100Reader

        assert config.port is not None
        return M100Reader(config.name, config.port, **serial)
    from drivers.rfid.llrp import LlrpReader

    assert config.host is not None
    return LlrpReader(
        config.name,
        config.host,
        config.tcp_port,
        antennas=config.antennas,
        command_timeout=config.command_timeout_s,
    )


class _Router:
    """The reader's listener: each read goes to the cabinet of its antenna (the hot path)."""

    def __init__(self, by_antenna: dict[int, CabinetInventory]) -> None:
        self._seen = {antenna: inv.tracker for antenna, inv in by_antenna.items()}
        self._inventories = list(dict.fromkeys(by_antenna.values()))

    def on_tag(self, read: TagRead) -> None:
        tracker = self._seen.get(read.antenna)
        if tracker is not None:
            tracker.seen.add(read.epc)

    def on_round(self, end: RoundEnd) -> None:
        for inventory in self._inventories:
            inventory.round_ended()


class ReaderHub:
    def __init__(
        self,
        configs: list[RfidReaderConfig],
        build: Callable[[RfidReaderConfig], RfidReader] = build_reader,
    ) -> None:
        self.configs = {config.name: config for config in configs}
        self.readers: dict[str, RfidReader] = {name: build(c) for name, c in self.configs.items()}
        self._inventories: dict[str, list[CabinetInventory]] = {name: [] for name in self.readers}
        self._routes: dict[str, dict[int, CabinetInventory]] = {name: {} for name in self.readers}
        self._listeners: list[AvailabilityListener] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, reader: str, antennas: list[int], inventory: CabinetInventory) -> None:
        self._inventories[reader].append(inventory)
        self._routes[reader].update(dict.fromkeys(antennas, inventory))

    def add_availability_listener(self, listener: AvailabilityListener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        for name, reader in self.readers.items():
            reader.add_listener(_Router(self._routes[name]))
            reader.add_availability_listener(partial(self._availability, name))
            await reader.start()
            await reader.start_inventory()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for reader in self.readers.values():
            await reader.close()

    def _availability(self, name: str, available: bool) -> None:
        if not available:
            for inventory in self._inventories[name]:
                inventory.forget()
        power = self.configs[name].power_dbm
        if available and power is not None:
            task = asyncio.ensure_future(self._set_power(name, power))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        for listener in self._listeners:
            listener(name, available)

    async def _set_power(self, name: str, dbm: float) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await self.readers[name].set_power(dbm)
            except ReaderError as exc:
                log.warning(
                    "could not set reader power",
                    extra={"reader": name, "dbm": dbm, "error": str(exc)},
                )
