"""Committed events, fanned out live to the screens that watch them (kiosks, the console).

Each watcher has a bounded queue. A screen that stops reading is cut off rather than let grow
without bound; it reconnects with the last ``seq`` it saw and catches up from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.outbox.store import Envelope

log = logging.getLogger(__name__)

# Events a watcher may fall behind by before it is cut off (it then catches up from the outbox).
QUEUE_LIMIT = 1000

# What a kiosk screen is told: the events a shopper or courier waits for at the screen.
KIOSK_EVENT_TYPES = frozenset(
    {
        "door.opened",
        "door.closed",
        "door.unlock_failed",
        "door.left_open",
        "parcel.deposited",
        "parcel.deposit_cancelled",
        "parcel.picked_up",
        "parcel.returned",
        "payment.authorized",
        "payment.declined",
        "cabinet.session_started",
        "cabinet.session_closed",
        "cabinet.session_held",
        "cabinet.session_released",
        "compartment.fault",
        "compartment.enabled",
        "compartment.disabled",
        "device.online",
        "device.offline",
    }
)

# Data fields a kiosk may see: no parcel codes, pickup codes, member ids or courier ids, since a
# public screen (and whoever reads its browser's memory) has no business with them.
KIOSK_DATA_FIELDS = frozenset(
    {
        "compartment",
        "operation",
        "kind",
        "cabinet",
        "session_id",
        "order_id",
        "payment_id",
        "amount",
        "total",
        "currency",
        "reason",
        "state",
        "size",
        "zone",
        "name",
        "outcome",
        "taken",
    }
)


class FeedEnded(Exception):
    """The watcher fell more than ``QUEUE_LIMIT`` events behind, or the controller is stopping."""


class Watcher:
    def __init__(self) -> None:
        # None wakes a waiting reader to find the feed closed or itself cut off.
        self.queue: asyncio.Queue[Envelope | None] = asyncio.Queue(QUEUE_LIMIT + 1)
        self.cut_off = False

    async def next(self) -> Envelope:
        event = None if self.cut_off and self.queue.empty() else await self.queue.get()
        if event is None:
            raise FeedEnded
        return event

    def end(self) -> None:
        self.cut_off = True
        self.queue.put_nowait(None)  # the extra slot is kept for it


class EventFeed:
    def __init__(self) -> None:
        self._watchers: set[Watcher] = set()
        self.closed = False

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def publish(self, events: list[Envelope]) -> None:
        """A database event listener: called with each committed transaction's events."""
        for watcher in list(self._watchers):
            if watcher.cut_off:
                continue
            for event in events:
                if watcher.queue.qsize() >= QUEUE_LIMIT:
                    watcher.end()
                    log.warning("a screen fell behind the event stream and was cut off")
                    break
                watcher.queue.put_nowait(event)

    def close(self) -> None:
        """End every stream (a stop): open streams would otherwise hold the HTTP server up."""
        self.closed = True
        for watcher in list(self._watchers):
            if not watcher.cut_off:
                watcher.end()

    @contextlib.contextmanager
    def watch(self) -> Iterator[Watcher]:
        watcher = Watcher()
        if self.closed:
            watcher.end()
        self._watchers.add(watcher)
        try:
            yield watcher
        finally:
            self._watchers.discard(watcher)


def for_kiosk(event: Envelope) -> dict[str, Any] | None:
    """The event as a kiosk screen sees it, or None when kiosks are not told of it."""
    if event.type not in KIOSK_EVENT_TYPES:
        return None
    data = {k: v for k, v in event.data.items() if k in KIOSK_DATA_FIELDS}
    return {"seq": event.seq, "type": event.type, "ts": event.ts, "data": data}
