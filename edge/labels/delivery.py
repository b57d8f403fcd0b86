"""Delivery to one access point: send queued pushes at its pace, then confirm them on the labels.

Two loops per access point. The sender takes queued pushes, earliest effective first, renders
each, and uploads it no faster than ``uploads_per_s`` (an ESP32 access point converts and stores
every image). A busy (409) or unreachable access point holds the push back with exponential
backoff and marks the access point unavailable; it never drops a push. The confirmer reads the
labels' states every ``poll_interval_s`` while uploads wait, and marks each push delivered once
its label has fetched it, or failed (``label.failed``) when it has not by its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from drivers.esl.backend import (
    DeliveryStatus,
    EslError,
    LabelBackend,
    TagState,
    Upload,
    delivery_status,
)
from edge.clock import Clock, as_utc
from edge.config.labels import AccessPointConfig, LabelsConfig
from edge.db import Database
from edge.db.tables import LabelPush
from edge.labels import pushes
from edge.labels.content import content_key
from edge.labels.pushes import DuePush
from edge.runtime.backoff import Backoff

log = logging.getLogger(__name__)

Render = Callable[[DuePush], bytes]
AvailabilityListener = Callable[[str, bool, str | None], None]

# Pushes read from the queue at a time.
BATCH = 50
# Longest the sender idles before looking at the queue again (commands wake it at once).
IDLE_CHECK_S = 5.0


class Deliverer:
    def __init__(
        self,
        access_point: AccessPointConfig,
        settings: LabelsConfig,
        backend: LabelBackend,
        db: Database,
        clock: Clock,
        render: Render,
        render_pool: Executor,
        on_confirmed: Callable[[set[str]], Awaitable[None]],
        on_availability: AvailabilityListener | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = access_point.name
        self.config = access_point
        self.settings = settings
        self.backend = backend
        self.db = db
        self.clock = clock
        self._render = render
        self._render_pool = render_pool
        self._on_confirmed = on_confirmed
        self._on_availability = on_availability
        self._rng = rng or random.Random()  # noqa: S311 - backoff jitter, not a secret
        self._send_wake = asyncio.Event()
        self._confirm_wake = asyncio.Event()
        self._backoff = Backoff(settings.retry_initial_s, settings.retry_max_s, self._rng.random)
        self._next_slot = 0.0
        self.available: bool | None = None
        self.uploads = 0
        self.upload_errors = 0
        self.confirmed = 0
        self.dropped = 0  # uploads the access point never turned into a transfer
        self.failed = 0
        self.render_ms: list[float] = []
        self._progress = asyncio.Event()  # replaced after every upload or judgement

    async def wait_until(
        self,
        condition: Callable[[Deliverer], bool],
        timeout: float,  # noqa: ASYNC109 - like Camera.wait_until
    ) -> None:
        """Until ``condition(self)`` holds; checked after every upload and judgement."""
        async with asyncio.timeout(timeout):
            while not condition(self):
                await self._progress.wait()

    def _moved(self) -> None:
        progress, self._progress = self._progress, asyncio.Event()
        progress.set()

    def wake(self) -> None:
        self._send_wake.set()
        self._confirm_wake.set()

    # ------------------------------------------------------------------ sending

    async def send_forever(self) -> None:
        while True:
            batch = await self.db.read(
                partial(pushes.due, access_point=self.name, now=self.clock.now(), limit=BATCH)
            )
            if not batch:
                await self._idle_until_due()
                continue
            for push in batch:
                # Each label's own state, just before its upload: one small query. (Reading a
                # batch's states at once pages through the whole tag database on a large AP.)
                try:
                    baseline = (await self.backend.states([push.label_id])).get(push.label_id)
                except EslError as exc:
                    await self._refused(push, exc)
                    break
                if not await self._send(push, baseline):
                    break  # the access point is busy or gone: back off before the next one

    async def _idle_until_due(self) -> None:
        retry_at = await self.db.read(lambda s: pushes.next_retry(s, self.name))
        timeout = IDLE_CHECK_S
        if retry_at is not None:
            timeout = min(timeout, max(0.0, (retry_at - self.clock.now()).total_seconds()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._send_wake.wait()
        self._send_wake.clear()

    async def _pace(self) -> None:
        """At most ``uploads_per_s``: each upload takes the next free slot."""
        now = time.monotonic()
        slot = max(now, self._next_slot)
        self._next_slot = slot + 1.0 / self.config.uploads_per_s
        if slot > now:
            await asyncio.sleep(slot - now)

    async def _send(self, push: DuePush, baseline: TagState | None) -> bool:
        """Render, record the upload with the label's state read before it, then upload.

        Recording first means a crash during the upload loses nothing: the confirmer judges
        the recorded upload, and one the access point never got is sent again (``dropped``).
        """
        if push.deadline_at is not None and self.clock.now() >= push.deadline_at:
            await self._fail(push.label_id, push.content_key, "not_confirmed")
            return True
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            image = await loop.run_in_executor(self._render_pool, self._render, push)
        except Exception as exc:  # a content the renderer cannot draw never will be
            log.exception("rendering a label failed", extra={"label": push.label_id})
            await self._fail(push.label_id, push.content_key, f"render_failed: {exc}")
            return True
        self.render_ms = [*self.render_ms[-99:], (time.perf_counter() - started) * 1000]
        await self._pace()
        if baseline is None:
            await self._fail(push.label_id, push.content_key, "unknown_label")
            return True
        now = self.clock.now()
        deadline = now + timedelta(seconds=self.settings.confirm_timeout_s)
        receipt = _receipt(Upload(push.label_id, None, baseline, now))
        recorded = await self.db.transact(
            lambda tx: pushes.mark_uploaded(
                tx, push.label_id, push.content_key, receipt, now, deadline
            )
        )
        if not recorded:
            return True  # newer content replaced it meanwhile: that one goes next
        try:
            await self.backend.upload(push.label_id, image, baseline=baseline)
        except EslError as exc:
            return await self._refused(push, exc)
        self.uploads += 1
        self._backoff.reset()
        self._set_available(True, None)
        self._confirm_wake.set()
        self._moved()
        return True

    async def _refused(self, push: DuePush, exc: EslError) -> bool:
        """False when the access point should be left alone for a while."""
        self.upload_errors += 1
        if exc.retryable:
            await self._hold_back(push, exc)
            return False
        await self._fail(push.label_id, push.content_key, f"upload_refused: {exc}")
        return True

    async def _hold_back(self, push: DuePush, exc: EslError) -> None:
        delay = self._backoff.next_delay()
        now = self.clock.now()
        retry_at = now + timedelta(seconds=delay)
        log.warning(
            "access point did not take a label image; retrying",
            extra={
                "access_point": self.name,
                "label": push.label_id,
                "error": str(exc),
                "retry_in_s": round(delay, 1),
            },
        )
        self._set_available(False, str(exc))
        await self.db.transact(
            lambda tx: pushes.retry_later(
                tx, push.label_id, push.content_key, now, retry_at, str(exc)
            )
        )
        self._moved()

    async def _fail(self, label_id: str, key: str, reason: str) -> None:
        now = self.clock.now()
        if await self.db.transact(lambda tx: pushes.mark_failed(tx, label_id, key, now, reason)):
            self.failed += 1
            log.error("label update failed", extra={"label": label_id, "reason": reason})

    # ------------------------------------------------------------------ confirming

    async def confirm_forever(self) -> None:
        while True:
            waiting = await self.db.read(lambda s: pushes.awaiting(s, self.name))
            if not waiting:
                await self._confirm_wake.wait()
                self._confirm_wake.clear()
                continue
            started = time.monotonic()
            await self.confirm(waiting)
            # Reading a large tag database takes a while and holds the access point's one
            # connection: never spend more than a third of the time reading it.
            pause = max(self.config.poll_interval_s, 2 * (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._confirm_wake.wait()  # new uploads do not hurry the labels…
            self._confirm_wake.clear()

    async def confirm(self, waiting: list[LabelPush] | None = None) -> int:
        """Judge every upload waiting for its label; returns how many were confirmed."""
        if waiting is None:
            waiting = await self.db.read(lambda s: pushes.awaiting(s, self.name))
        if not waiting:
            return 0
        try:
            states = await self.backend.states([push.label_id for push in waiting])
        except EslError as exc:
            self._set_available(False, str(exc))
            return 0
        self._set_available(True, None)
        now = self.clock.now()
        verdicts = [(push, _judge(push, states.get(push.label_id), now)) for push in waiting]
        confirmed = [p for p, verdict in verdicts if verdict == "confirmed"]
        dropped = [p for p, verdict in verdicts if verdict == "dropped"]
        overdue = [p for p, verdict in verdicts if verdict == "overdue"]

        def record(tx: Any) -> tuple[int, int]:
            done = sum(
                pushes.mark_confirmed(tx, p.label_id, p.content_key, now) is not None
                for p in confirmed
            )
            gave_up = 0
            for p in dropped:
                # Backed off by this push's own uploads so far (the first drop: the initial delay).
                retry_at = now + timedelta(seconds=self._backoff.delay(max(p.attempts - 1, 0)))
                pushes.requeue(
                    tx, p.label_id, p.content_key, now, retry_at, "dropped_by_access_point"
                )
            for p in overdue:
                gave_up += pushes.mark_failed(tx, p.label_id, p.content_key, now, "not_confirmed")
            return done, gave_up

        if confirmed or dropped or overdue:
            done, gave_up = await self.db.transact(record)
            if done:
                # The price book learns what these products' labels show now.
                await self._on_confirmed({str(p.content["gtin"]) for p in confirmed})
            self.confirmed += done
            self.dropped += len(dropped)
            self.failed += gave_up
            if dropped:
                self._send_wake.set()
            self._moved()
            return done
        return 0

    def _set_available(self, available: bool, reason: str | None) -> None:
        if available != self.available:
            self.available = available
            if self._on_availability is not None:
                self._on_availability(self.name, available, reason)


def _receipt(upload: Upload) -> dict[str, object]:
    baseline = upload.baseline
    return {
        "expected_hash": upload.expected_hash,
        "baseline_hash": baseline.hash if baseline else None,
        "baseline_updates": baseline.update_count if baseline else None,
        "has_baseline": baseline is not None,
        "accepted_at": upload.accepted_at.astimezone(UTC).isoformat(),
    }


def _upload_of(push: LabelPush) -> Upload:
    receipt = push.upload_receipt or {}
    baseline = None
    if receipt.get("has_baseline"):
        updates = receipt.get("baseline_updates")
        baseline = TagState(
            label_id=push.label_id,
            hash=_str_or_none(receipt.get("baseline_hash")),
            pending=False,
            last_seen=None,
            battery_mv=None,
            rssi=None,
            hw_type=None,
            update_count=int(updates) if isinstance(updates, int) else None,
        )
    return Upload(
        label_id=push.label_id,
        expected_hash=_str_or_none(receipt.get("expected_hash")),
        baseline=baseline,
        accepted_at=datetime.fromisoformat(str(receipt["accepted_at"])),
    )


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _judge(push: LabelPush, state: TagState | None, now: datetime) -> str:
    """``confirmed``, ``dropped`` (send again), ``overdue`` (give up) or ``waiting``."""
    deadline = as_utc(push.deadline_at)
    late = deadline is not None and now >= deadline
    if state is None:  # the access point no longer knows the label
        return "overdue" if late else "waiting"
    status = delivery_status(_upload_of(push), state)
    if status is DeliveryStatus.DELIVERED:
        return "confirmed"
    if status is DeliveryStatus.NOT_QUEUED:
        # The access point skips an image equal to what the label shows: if that is this
        # content (a forced refresh), the label shows it.
        shown = push.shown
        return "confirmed" if shown and content_key(dict(shown)) == push.content_key else "dropped"
    return "overdue" if late else "waiting"
