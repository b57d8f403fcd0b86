"""Shelf labels at the site: keep every bound label showing the price a shopper is charged.

Built by the composition root from ``labels`` in the configuration. What a label should show
is planned in the database (``pushes``): when the catalogue changes, when a price or promotion
takes effect (a timer wakes at the next such instant), and on ``label.bind``/``label.refresh``.
One ``Deliverer`` per access point sends and confirms. What the labels confirmed they show is
handed to the price book, which never charges more than a label showed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from sqlmodel import Session, col, select

from drivers.esl.backend import LabelBackend
from edge.catalog.prices import PriceBook
from edge.clock import Clock
from edge.commands.dispatcher import CommandDispatcher, CommandOutcome
from edge.config.labels import LabelsConfig
from edge.db import Database, Transaction
from edge.db.tables import Label
from edge.labels import pushes
from edge.labels.commands import register_label_commands
from edge.labels.content import content_from_record
from edge.labels.delivery import AvailabilityListener, Deliverer
from edge.labels.pushes import DuePush
from edge.labels.rendering import LabelRenderer, encode_for_upload
from edge.labels.rendering.model import TEMPLATES

log = logging.getLogger(__name__)

# Longest the planner sleeps without looking again (a wall-clock jump, a missed wake-up).
PLAN_CHECK_S = 60.0


class LabelService:
    def __init__(
        self,
        config: LabelsConfig,
        db: Database,
        prices: PriceBook,
        clock: Clock,
        backends: Mapping[str, LabelBackend],
        *,
        renderer: LabelRenderer | None = None,
        on_availability: AvailabilityListener | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.prices = prices
        self.clock = clock
        self.renderer = renderer or LabelRenderer(config.font)
        self.backends = dict(backends)
        self._render_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="label-render")
        self.deliverers = {
            ap.name: Deliverer(
                ap,
                config,
                self.backends[ap.name],
                db,
                clock,
                self.render,
                self._render_pool,
                self.refresh_shown,
                on_availability,
            )
            for ap in config.access_points
        }
        self._plan_wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def register_commands(self, dispatcher: CommandDispatcher) -> None:
        register_label_commands(dispatcher, self.config, self.prices, self.clock.now)
        dispatcher.add_listener(self._command_answered)

    def render(self, push: DuePush) -> bytes:
        """The image a push carries, as the access point takes it (runs in a worker thread)."""
        template = TEMPLATES[push.template]
        image = self.renderer.render(content_from_record(push.content), template)
        return encode_for_upload(image)

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.refresh_shown()
        for name, deliverer in self.deliverers.items():
            self._spawn(f"labels:send:{name}", deliverer.send_forever())
            self._spawn(f"labels:confirm:{name}", deliverer.confirm_forever())
        self._spawn("labels:plan", self._plan_forever())

    def _spawn(self, name: str, work: object) -> None:
        assert asyncio.iscoroutine(work)
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(_log_crash)
        task.add_done_callback(self._tasks.discard)
        self._tasks.add(task)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for backend in self.backends.values():
            with contextlib.suppress(Exception):
                await backend.close()
        self._render_pool.shutdown(wait=True, cancel_futures=True)

    # -- planning ------------------------------------------------------------------------------

    def catalog_changed(self) -> None:
        """A catalogue change was committed: plan again once the price book has it."""
        self._plan_wake.set()

    async def plan(self, at: datetime | None = None) -> int:
        """Queue a push for every bound label whose content changed; wake the senders."""
        moment = at or self.clock.now()
        book = await self.prices.current()

        def work(tx: Transaction) -> int:
            labels = tx.session.exec(select(Label).where(col(Label.gtin).is_not(None))).all()
            return pushes.plan(tx, labels, book, moment)

        queued = await self.db.transact(work)
        if queued:
            log.info("label pushes queued", extra={"count": queued})
            self.wake()
        return queued

    def wake(self) -> None:
        for deliverer in self.deliverers.values():
            deliverer.wake()

    async def _plan_forever(self) -> None:
        while True:
            await self.plan()
            next_change = await self._next_change()
            timeout = PLAN_CHECK_S
            if next_change is not None:
                timeout = min(timeout, (next_change - self.clock.now()).total_seconds())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, timeout)):
                    await self._plan_wake.wait()
            self._plan_wake.clear()

    async def _next_change(self) -> datetime | None:
        gtins = await self.db.read(_bound_gtins)
        now = self.clock.now()
        book = await self.prices.current()
        instants = [t for g in gtins if (t := book.next_change(g, now)) is not None]
        return min(instants, default=None)

    # -- what the labels show ------------------------------------------------------------------

    async def refresh_shown(self, gtins: set[str] | None = None) -> None:
        """Tell the price book what labels show: of ``gtins`` (just confirmed), or of every
        product (at start, and after a binding changed)."""
        shown = await self.db.read(lambda s: pushes.shown_prices(s, gtins))
        products = gtins if gtins is not None else set(shown) | set(self.prices.shown_gtins())
        for gtin in products:
            self.prices.show(gtin, shown.get(gtin, []))

    def _command_answered(self, outcome: CommandOutcome) -> None:
        if outcome.type in ("label.bind", "label.refresh") and outcome.status == "ok":
            self.wake()
            # A rebound label shows another product: recompute what each product's labels show.
            self._spawn("labels:shown", self.refresh_shown())

    async def status(self) -> dict[str, object]:
        counts = await self.db.read(pushes.counts)
        return {
            "pushes": counts,
            "access_points": {
                name: {
                    "available": d.available,
                    "uploads": d.uploads,
                    "upload_errors": d.upload_errors,
                    "confirmed": d.confirmed,
                    "failed": d.failed,
                }
                for name, d in self.deliverers.items()
            },
        }


def _bound_gtins(session: Session) -> list[str]:
    rows = session.exec(select(Label.gtin).where(col(Label.gtin).is_not(None)).distinct()).all()
    return [g for g in rows if g is not None]


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("label task stopped", exc_info=task.exception(), extra={"task": task.get_name()})
