"""The composition root: builds the whole controller from one configuration, and runs it.

Everything the controller is made of is created here and nowhere else; the pieces receive
what they need through their constructors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from functools import partial
from typing import Any

import uvicorn

from drivers.esl.backend import LabelBackend
from drivers.esl.openepaperlink import OpenEPaperLinkAP
from edge import __version__
from edge.api.feed import EventFeed
from edge.cabinet.service import CabinetService
from edge.catalog.commands import register_catalog_commands
from edge.catalog.prices import PriceBook
from edge.clock import Clock
from edge.commands.dispatcher import CommandDispatcher
from edge.commands.verify import CommandVerifier
from edge.config.models import EdgeConfig
from edge.db import Database
from edge.db.migrate import upgrade_to_head
from edge.devices.health import DeviceHealth
from edge.facepay.service import FacePayService
from edge.hardware.locks import LockController
from edge.hardware.rfid import ReaderHub
from edge.labels.service import LabelService
from edge.lockers.commands import register_locker_commands
from edge.lockers.service import LockerService
from edge.lockers.temperature import TemperatureMonitor
from edge.metrics import Metrics
from edge.outbox.retention import OutboxKeeper
from edge.outbox.store import Envelope
from edge.reports import SiteReports
from edge.runtime.supervisor import Supervisor
from edge.scans.devices import SiteScanners
from edge.scans.flows import ScanRouter
from edge.scans.handlers import FlowHandlers
from edge.scans.hub import ScanHub
from edge.scans.payloads import trusted_payload_keys
from edge.sync.engine import SyncEngine
from edge.sync.replay import register_sync_commands

log = logging.getLogger(__name__)

# How long a stop waits for doors already being unlocked before it lets go.
SHUTDOWN_GRACE_S = 5.0
# How long a stop keeps draining the outbox to a connected broker.
FLUSH_GRACE_S = 5.0


class EdgeApp:
    def __init__(self, config: EdgeConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.version = __version__
        self.db = Database(config.database_path, config.site.id, clock)
        upgrade_to_head(self.db.engine)
        self.metrics = Metrics()
        self.db.add_event_listener(self.metrics.count_events)
        self.feed = EventFeed()  # live updates for screens
        self.db.add_event_listener(self.feed.publish)
        self.health = DeviceHealth(self.db)
        self.locks = LockController(config.lockboards)
        for bus in config.lockboards:
            self.health.register(bus.name, "lock_bus")
            for board in bus.boards:
                self.health.register(board_device(bus.name, board.address), "lock_board")
        self.lockers = LockerService(config, self.db, self.locks, clock)
        self.prices = PriceBook(self.db)
        self.readers = ReaderHub(config.rfid_readers)
        for reader in config.rfid_readers:
            self.health.register(reader.name, "rfid_reader")
        self.cabinets = CabinetService(config.cabinets, self.db, self.locks, self.prices, clock)
        for cabinet in self.cabinets.cabinets.values():
            self.readers.attach(
                cabinet.config.reader,
                cabinet.config.antennas or self.readers.configs[cabinet.config.reader].antennas,
                cabinet.inventory,
            )
        self.db.add_event_listener(self._catalog_changed)
        self.temperature = TemperatureMonitor(config, self.db, self.health)
        self.keeper = OutboxKeeper(config.outbox, self.db, self.db.clock)
        self.commands = CommandDispatcher(
            CommandVerifier(config.commands, self.db.clock, config.site.id), self.db, self.db.clock
        )
        register_locker_commands(self.commands, self.lockers)
        register_catalog_commands(self.commands, self.db.clock)
        self.sync = self._build_sync(config) if config.mqtt is not None else None
        if self.sync is not None:
            register_sync_commands(self.commands, self.db, self.sync.uplink)
        self.labels = self._build_labels(config) if config.labels is not None else None
        self.scans = ScanHub(self.db.clock)
        self.scan_router = ScanRouter(self.scans, self.db.clock)
        FlowHandlers(
            self.lockers,
            self.cabinets,
            trusted_payload_keys(config.commands),
            config.site.id,
            self.db.clock,
            config.commands.clock_skew_s,
        ).register(self.scan_router)
        self.scans.listeners.append(lambda scan: self._spawn_check(self.scan_router.route(scan)))
        self.facepay = self._build_facepay(config) if config.facepay is not None else None
        self.site_scanners = SiteScanners(config.scanners, self.scans, self._scanner_availability)
        for name in self.site_scanners.names:
            self.health.register(name, "scanner")
        if config.facepay is not None and self.facepay is not None:
            for terminal in config.facepay.terminals:
                if terminal.codes:  # the face camera also reads member QR codes
                    camera = self.facepay.terminals[terminal.id].camera
                    self.site_scanners.read_codes(terminal.id, camera, terminal.codes)
        self.supervisor = Supervisor()
        self.http: uvicorn.Server | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._checks: set[asyncio.Task[object]] = set()
        self._sync_task: asyncio.Task[None] | None = None
        self.started = asyncio.Event()
        self._stopping = False

    def _build_sync(self, config: EdgeConfig) -> SyncEngine:
        assert config.mqtt is not None
        engine = SyncEngine(
            config.mqtt,
            config.site.id,
            self.version,
            self.db,
            self.db.clock,
            on_command=self.commands.handle,
        )
        reports = SiteReports(
            self.db,
            self.db.clock,
            self.health,
            self.temperature,
            engine.uplink.stats,
            self.keeper,
            self.cabinets,
        )
        engine.telemetry = reports.telemetry
        engine.snapshots = {"compartments": reports.compartments, "devices": reports.devices}
        if config.cabinets:
            engine.snapshots["cabinets"] = reports.cabinets
        self.db.add_event_listener(lambda _events: engine.snapshot_changed())
        return engine

    def _build_labels(self, config: EdgeConfig) -> LabelService:
        assert config.labels is not None
        backends: dict[str, LabelBackend] = {
            ap.name: OpenEPaperLinkAP(ap.url, timeout_s=ap.timeout_s, name=ap.name)
            for ap in config.labels.access_points
        }
        for name in backends:
            self.health.register(name, "esl_access_point")
        service = LabelService(
            config.labels,
            self.db,
            self.prices,
            self.db.clock,
            backends,
            on_availability=self._access_point_availability,
        )
        service.register_commands(self.commands)
        return service

    def _scanner_availability(self, name: str, available: bool, reason: str | None) -> None:
        if not self._stopping:
            self.health.set(name, available, reason)

    def _access_point_availability(self, name: str, available: bool, reason: str | None) -> None:
        if not self._stopping:
            self.health.set(name, available, reason)

    def _build_facepay(self, config: EdgeConfig) -> FacePayService:
        assert config.facepay is not None
        sync = self.sync
        service = FacePayService(
            config.facepay,
            self.db,
            self.db.clock,
            config.resolve,
            # Without a broker configured, upstream is never reachable: offline limits apply.
            sync.state.down_for if sync is not None else lambda: float("inf"),
            code_attempts=config.lockers.code_attempts,
        )
        service.members.register_commands(self.commands)
        for terminal in service.terminals.values():
            for camera in (terminal.camera, terminal.nir):
                if camera is not None:
                    self.health.register(camera.name, "camera")
        service.camera_listener = self._camera_availability
        self.db.add_event_listener(self._facepay_events)
        return service

    def _facepay_events(self, events: list[Envelope]) -> None:
        assert self.facepay is not None
        enrolled = [str(e.data["member_id"]) for e in events if e.type == "member.enrolled"]
        if enrolled:
            self._spawn_check(self.facepay.members.refresh(enrolled))
        if any(e.type == "member.removed" for e in events):
            self._spawn_check(self.db.checkpoint())  # the erased template leaves the WAL too
        face_orders = [
            e
            for e in events
            if e.type == "order.created" and e.data.get("payment", {}).get("method") == "face"
        ]
        if face_orders and not self._stopping:
            self._spawn_check(self.facepay.decide_pending_payments())

    def _spawn_check(self, work: Coroutine[Any, Any, object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(work)
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    def _camera_availability(self, camera: str, available: bool, reason: str | None) -> None:
        if not self._stopping:
            self.health.set(camera, available, reason)

    def _catalog_changed(self, events: list[Envelope]) -> None:
        if any(event.type == "catalog.updated" for event in events):
            self.prices.changed()
            if self.labels is not None:
                self.labels.catalog_changed()

    async def start(self, serve_http: bool = True) -> None:
        self.lockers.sync_from_config()
        self.prices.load_sync()
        self.cabinets.load()
        if self.facepay is not None:
            self.facepay.load()
        interrupted = await self.lockers.recover_interrupted()
        if interrupted:
            log.warning(
                "operations interrupted by the last stop were flagged", extra={"count": interrupted}
            )
        self.locks.add_door_listener(self.lockers.door_seen)
        self.locks.add_door_listener(self.cabinets.door_seen)
        self.readers.add_availability_listener(self._reader_availability)
        await self.readers.start()
        self.locks.add_availability_listener(self._bus_availability)
        self.locks.add_board_listener(self._board_availability)
        self.supervisor.start("door-events", self.lockers.process_door_events)
        await self.locks.start()
        for bus in self.config.lockboards:
            self.supervisor.start(f"poll:{bus.name}", partial(self.locks.poll_forever, bus.name))
        for sensor in self.config.temperature_sensors:
            self.supervisor.start(
                f"temperature:{sensor.name}", partial(self.temperature.watch_forever, sensor)
            )
        self.supervisor.start("expiry", self.lockers.expire_forever)
        if self.config.cabinets:
            self.supervisor.start("inventory-snapshots", self.cabinets.snapshot_forever)
        await self.commands.recover()  # commands a crash cut short: answered, never re-run
        await self.cabinets.recover()  # sessions a crash cut short: settled from a fresh count
        if self.facepay is not None:
            await self.facepay.start()
            await self.facepay.decide_pending_payments()  # orders a crash left undecided
        await self.site_scanners.start()
        if self.labels is not None:
            await self.labels.start()
        await self.keeper.check()
        self.supervisor.start("outbox-retention", self.keeper.run_forever)
        self.supervisor.start("command-receipts", self._prune_receipts_forever)
        if self.sync is not None:
            # Not supervised: the engine reconnects by itself, forever, and ends only on stop.
            self._sync_task = asyncio.create_task(self.sync.run_forever(), name="sync")
        if serve_http:
            await self._start_http()
        # A bus whose port is missing at boot is reported offline, not left unknown.
        results = await asyncio.gather(
            *(self.locks.buses[bus.name].wait_available(2.0) for bus in self.config.lockboards)
        )
        for bus, up in zip(self.config.lockboards, results, strict=True):
            if not up:
                self.health.set(bus.name, False, f"port {bus.port} not available")
        # Ready once every reachable door was compared with the database: before that no
        # compartment is offered, so the health check says "starting".
        await self.wait_checked()
        self.started.set()
        log.info(
            "controller started",
            extra={
                "site": self.config.site.id,
                "version": self.version,
                "database": str(self.db.path),
            },
        )

    async def _prune_receipts_forever(self) -> None:
        while True:
            await self.commands.prune()
            await asyncio.sleep(self.config.outbox.prune_interval_s)

    def _bus_availability(self, bus: str, available: bool) -> None:
        if self._stopping:
            return  # closing a port on a clean stop is not a device failure
        self.health.set(bus, available, None if available else "no answer from the bus")
        if available:
            # Every time a bus comes (back) up, compare its doors with the database.
            self._spawn_check(self.lockers.check_bus(bus))

    def _reader_availability(self, reader: str, available: bool) -> None:
        self.cabinets.reader_availability(reader, available)
        if not self._stopping:
            self.health.set(reader, available, None if available else "reader does not answer")

    def _board_availability(self, bus: str, board: int, answering: bool) -> None:
        if not self._stopping:
            self.health.set(
                board_device(bus, board), answering, None if answering else "board does not answer"
            )

    async def wait_checked(self) -> None:
        """Until the boot checks started so far have finished (tests and the demo)."""
        while self._checks:
            await asyncio.gather(*list(self._checks), return_exceptions=True)

    async def _start_http(self) -> None:
        from edge.api.app import create_api

        api = create_api(self)
        config = uvicorn.Config(
            api,
            host=self.config.http.host,
            port=self.config.http.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            # Screens long-poll (up to 60 s): a stop does not wait for those answers.
            timeout_graceful_shutdown=2,
        )
        self.http = uvicorn.Server(config)
        self._http_task = asyncio.create_task(self.http.serve(), name="http")
        while not self.http.started:
            if self._http_task.done():
                self._http_task.result()  # raises why it could not start (port taken)
                raise RuntimeError("the HTTP server stopped during start-up")
            await asyncio.sleep(0.01)

    @property
    def http_port(self) -> int | None:
        if self.http is None or not self.http.servers:
            return None
        port: int = self.http.servers[0].sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        """Clean stop: refuse new unlocks, let commanded ones finish, then close everything."""
        self.lockers.stop_accepting()
        self.cabinets.stop_accepting()
        self._stopping = True
        await self.lockers.drain_in_flight(SHUTDOWN_GRACE_S)
        self.feed.close()
        if self.http is not None and self._http_task is not None:
            self.http.should_exit = True
            with contextlib.suppress(Exception):
                await self._http_task
        for task in list(self._checks):
            task.cancel()
        await self.health.flush()
        if self.sync is not None and self._sync_task is not None:
            await self.sync.stop(FLUSH_GRACE_S)
            try:
                await asyncio.wait_for(self._sync_task, FLUSH_GRACE_S)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("the upstream link did not close in time")
        await self.supervisor.stop()
        await self.lockers.close()
        await self.cabinets.close()
        await self.site_scanners.close()
        if self.labels is not None:
            await self.labels.close()
        if self.facepay is not None:
            await self.facepay.close()
        await self.readers.close()
        await self.locks.close()
        await self.temperature.close()
        await self.health.flush()
        self.db.close()
        log.info("controller stopped", extra={"site": self.config.site.id})


def board_device(bus: str, board: int) -> str:
    return f"{bus}/board{board}"


async def run_until_signalled(app: EdgeApp, stop: asyncio.Event) -> None:
    """Start, serve until ``stop`` is set, stop cleanly; telling systemd each step under it."""
    from edge.runtime.systemd import Notifier

    notifier = Notifier.from_environment()
    site = app.config.site.id
    try:
        async with notifier.watchdog():  # pinged from this loop: a hung loop gets restarted
            notifier.status(f"starting: site {site}, checking doors")
            await app.start()
            notifier.ready(f"serving on {app.config.http.host}:{app.http_port}, site {site}")
            try:
                await stop.wait()
            finally:
                notifier.stopping(f"stopping: site {site}, finishing unlocks, flushing the outbox")
                await app.stop()
    finally:
        notifier.close()
