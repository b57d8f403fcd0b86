"""Draining the outbox to the broker: in ``seq`` order, batched, with a bounded in-flight window.

One message carries every event that is ready, up to the batch limits: a backlog goes out in
full batches, a live site sends each event as it is committed. Up to ``inflight_window``
messages await their PUBACK at once; the delivery cursor moves only over an unbroken run of
acknowledged messages, so after any failure the next connection resumes at the first event the
broker did not confirm (duplicates are at most the messages that were in flight).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from functools import partial

import aiomqtt

from edge.config.sync import MqttConfig
from edge.db import Database, Transaction
from edge.outbox import cursor
from edge.outbox.cursor import Batch
from edge.outbox.store import Envelope

log = logging.getLogger(__name__)
Inflight = deque[tuple[Batch, "asyncio.Task[None]"]]


@dataclass
class UplinkStats:
    events: int = 0
    acked_seq: int = 0
    last_seq: int = 0

    @property
    def pending(self) -> int:
        return max(0, self.last_seq - self.acked_seq)


class OutboxPublisher:
    def __init__(self, config: MqttConfig, db: Database, site: str, topic: str) -> None:
        self.config = config
        self.db = db
        self.site = site
        self.topic = topic
        self.stats = UplinkStats()
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._rewind_to: int | None = None
        self._released = asyncio.Event()
        self._read_through = 0
        """The last ``seq`` handed to the broker on the current connection."""

    def on_commit(self, envelopes: list[Envelope]) -> None:
        """Database listener: new events are ready."""
        self.stats.last_seq = max(self.stats.last_seq, envelopes[-1].seq)
        self._drained.clear()
        self._ready.set()

    async def load_position(self) -> cursor.Position:
        position = await self.db.read(cursor.position)
        self.stats.acked_seq, self.stats.last_seq = position.acked, position.last
        return position

    def rewind(self, to_seq: int) -> None:
        """Publish again everything after ``to_seq`` (an upstream that lost events asks for
        them with ``sync.replay``). Applied by the sender once nothing is in flight, so no
        late acknowledgement can move the cursor back over the replayed range."""
        self._rewind_to = to_seq if self._rewind_to is None else min(self._rewind_to, to_seq)
        self._drained.clear()
        self._ready.set()

    async def wait_drained(self) -> None:
        """Until every committed event is acknowledged (while a connection is up)."""
        await self._drained.wait()

    async def run(self, client: aiomqtt.Client) -> None:
        """Publish until cancelled; raises when the connection fails."""
        await self.load_position()
        inflight: Inflight = deque()
        posted = asyncio.Event()
        slots = asyncio.Semaphore(self.config.inflight_window)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._acknowledge(inflight, posted, slots))
            await self._send(client, inflight, posted, slots, group)

    async def _send(
        self,
        client: aiomqtt.Client,
        inflight: Inflight,
        posted: asyncio.Event,
        slots: asyncio.Semaphore,
        group: asyncio.TaskGroup,
    ) -> None:
        self._read_through = self.stats.acked_seq
        while True:
            if self._rewind_to is not None:
                self._read_through = await self._apply_rewind(slots)
            if self.stats.last_seq <= self._read_through:
                # Everything committed has been read: wait for the next commit (or a rewind).
                if self._in_flight(slots) == 0:
                    self._drained.set()
                self._ready.clear()
                await self._ready.wait()
                continue
            await slots.acquire()
            granted = 1
            while granted < self.config.inflight_window and not slots.locked():
                await slots.acquire()  # free now: does not wait
                granted += 1
            batches = await self.db.read(
                partial(
                    cursor.read_batches,
                    site=self.site,
                    after_seq=self._read_through,
                    max_events=self.config.batch_max_events,
                    max_bytes=self.config.batch_max_bytes,
                    max_batches=granted,
                )
            )
            for batch in batches:
                task = group.create_task(self._publish(client, batch))
                inflight.append((batch, task))
                self._read_through = batch.last_seq
            if batches:
                posted.set()
            for _ in range(granted - len(batches)):
                slots.release()
            if not batches:
                await self._past_missing_events(slots)

    async def _past_missing_events(self, slots: asyncio.Semaphore) -> None:
        """Events were committed after ``_read_through`` but none follows it directly."""
        if self._in_flight(slots):
            self._released.clear()
            await self._released.wait()  # settle what is in flight first
            return
        before = self._read_through
        # The cursor may have moved past it (a truncated backlog): follow the cursor.
        self._read_through = max(before, (await self.load_position()).acked)
        self._read_through = await self._skip_hole(self._read_through)
        if self._read_through == before and self.stats.last_seq > before:
            self._ready.clear()  # nothing to read yet after all: wait for the next commit
            await self._ready.wait()

    async def _apply_rewind(self, slots: asyncio.Semaphore) -> int:
        while self._in_flight(slots):
            self._released.clear()
            await self._released.wait()
        to_seq, self._rewind_to = self._rewind_to, None
        assert to_seq is not None
        await self.db.transact(partial(_rewind, to_seq=to_seq))
        position = await self.load_position()
        log.info("outbox rewound for a replay", extra={"from_seq": position.acked + 1})
        return position.acked

    async def _skip_hole(self, after: int) -> int:
        """Events missing from the file (never by this code: truncation moves the cursor)
        would stall delivery for good; report them and go on with the next one there is."""
        following = await self.db.read(partial(cursor.next_seq_after, after_seq=after))
        if following is None or following == after + 1:
            return after
        log.error(
            "events missing from the outbox; skipping them",
            extra={"first_seq": after + 1, "last_seq": following - 1},
        )
        await self.db.transact(partial(_mark_acked, through_seq=following - 1))
        self.stats.acked_seq = max(self.stats.acked_seq, following - 1)
        return following - 1

    def _in_flight(self, slots: asyncio.Semaphore) -> int:
        return self.config.inflight_window - slots._value

    async def _publish(self, client: aiomqtt.Client, batch: Batch) -> None:
        await client.publish(
            self.topic, batch.payload, qos=1, timeout=self.config.publish_timeout_s
        )

    async def _acknowledge(
        self,
        inflight: Inflight,
        posted: asyncio.Event,
        slots: asyncio.Semaphore,
    ) -> None:
        """Await the oldest message's PUBACK, then move the cursor over every message
        acknowledged in an unbroken run from there."""
        while True:
            while not inflight:
                posted.clear()
                await posted.wait()
            batch, task = inflight[0]
            await task
            inflight.popleft()
            done = [batch]
            while inflight and inflight[0][1].done():
                following, finished = inflight.popleft()
                finished.result()
                done.append(following)
            through = done[-1].last_seq
            await self.db.transact(partial(_mark_acked, through_seq=through))
            self.stats.events += sum(b.count for b in done)
            self.stats.acked_seq = max(self.stats.acked_seq, through)
            for _ in done:
                slots.release()
            self._released.set()
            if self.stats.acked_seq >= self.stats.last_seq and not inflight:
                self._drained.set()


def _mark_acked(tx: Transaction, through_seq: int) -> None:
    cursor.mark_acked(tx.session, through_seq)


def _rewind(tx: Transaction, to_seq: int) -> None:
    cursor.rewind(tx.session, to_seq)
