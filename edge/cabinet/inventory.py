"""One cabinet's live inventory: the reads of its antennas, decided into presence per round."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from edge.cabinet.presence import PresenceTracker
from edge.config.cabinets import PresenceConfig

RoundListener = Callable[["CabinetInventory"], None]


class CabinetInventory:
    def __init__(self, cabinet_id: str, presence: PresenceConfig) -> None:
        self.cabinet_id = cabinet_id
        self.tracker = PresenceTracker(presence.k, presence.m)
        self.last_round_at: float | None = None
        """time.monotonic() of the last round; a reader that answers but completes no rounds
        (an antenna refused) leaves this behind."""
        self._discard_next = False
        self._waiters: list[asyncio.Future[None]] = []
        self._listeners: list[RoundListener] = []

    @property
    def ready(self) -> bool:
        return self.tracker.ready

    @property
    def present(self) -> frozenset[str]:
        return self.tracker.present

    @property
    def rounds(self) -> int:
        return self.tracker.rounds

    def add_round_listener(self, listener: RoundListener) -> None:
        self._listeners.append(listener)

    def counted_within(self, seconds: float) -> bool:
        """Ready, and the last round ended less than ``seconds`` ago."""
        last = self.last_round_at
        return self.ready and last is not None and time.monotonic() - last < seconds

    def round_ended(self) -> None:
        self.last_round_at = time.monotonic()
        if self._discard_next:
            # This round began before the door closed: what it read says nothing of the shelf.
            self._discard_next = False
            self.tracker.reset()
        else:
            self.tracker.end_round()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        for listener in self._listeners:
            listener(self)

    def restart(self) -> None:
        """Count only rounds that start from now on (the door just closed).

        Nothing decided before counts any more (not ready until m new rounds), and the round
        under way, which began before now, is thrown away when it ends.
        """
        self.tracker.reset()
        self._discard_next = True

    def forget(self) -> None:
        """The reader went away: nothing decided so far may be trusted for a sale."""
        self.tracker.reset()
        self._discard_next = False

    async def next_round(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter
