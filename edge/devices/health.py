"""Availability of every configured device, reported once per change as an event."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from edge.clock import rfc3339
from edge.db import Database, Transaction

log = logging.getLogger(__name__)


@dataclass
class DeviceStatus:
    name: str
    kind: str
    available: bool | None = None
    """None until the device was first seen up or down."""
    reason: str | None = None
    since: str | None = None


class DeviceHealth:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.devices: dict[str, DeviceStatus] = {}
        self._pending: set[asyncio.Task[None]] = set()

    def register(self, name: str, kind: str) -> None:
        self.devices[name] = DeviceStatus(name, kind)

    def set(self, name: str, available: bool, reason: str | None = None) -> None:
        """Record a change; the event is written in the background (callers may be sync)."""
        device = self.devices[name]
        if device.available == available:
            return
        device.available, device.reason = available, None if available else reason
        device.since = rfc3339(self.db.clock.now())
        log.log(
            logging.INFO if available else logging.WARNING,
            "device online" if available else "device offline",
            extra={"device": name, "kind": device.kind, "reason": reason},
        )

        def work(tx: Transaction) -> None:
            tx.emit(
                "device.online" if available else "device.offline",
                {"device": name, "kind": device.kind, "reason": device.reason},
            )

        task = asyncio.ensure_future(self.db.transact(work))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
