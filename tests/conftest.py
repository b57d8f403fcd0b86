"""Shared fixtures: a simulated site on pseudo-terminals and the real controller driving it.

Nothing here replaces the thing under test: the controller speaks the real lock-board and
Modbus protocols to simulators that answer with the same bytes as the hardware.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from edge.app import EdgeApp
from edge.clock import ManualClock
from edge.demo.site import SimulatedSite
from edge.outbox.store import Envelope


class EventLog:
    """Every envelope the app commits, with a way to wait for one without sleeping."""

    def __init__(self) -> None:
        self.events: list[Envelope] = []
        self._changed = asyncio.Condition()

    def __call__(self, envelopes: list[Envelope]) -> None:
        self.events.extend(envelopes)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def of_type(self, type_: str) -> list[Envelope]:
        return [e for e in self.events if e.type == type_]

    async def wait_for(
        self,
        type_: str,
        where: Callable[[Envelope], bool] = lambda _e: True,
        timeout: float = 5.0,
    ) -> Envelope:
        def found() -> Envelope | None:
            return next((e for e in self.events if e.type == type_ and where(e)), None)

        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: found() is not None)
        event = found()
        assert event is not None
        return event


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[SimulatedSite]:
    simulated = SimulatedSite(tmp_path / "site")
    await simulated.start()
    yield simulated
    await simulated.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_app(site: SimulatedSite, clock: ManualClock) -> Callable[..., Any]:
    """Build (not start) an app on the simulated site; overrides go to ``SimulatedSite.config``."""
    created: list[EdgeApp] = []

    def build(**overrides: Any) -> EdgeApp:
        app = EdgeApp(site.config(http_port=0, **overrides), clock=clock)
        created.append(app)
        return app

    build.created = created  # type: ignore[attr-defined]
    return build


@pytest.fixture
async def app(make_app: Callable[..., EdgeApp]) -> AsyncIterator[EdgeApp]:
    """A started controller (no HTTP listener; API tests use the ASGI app in-process)."""
    controller = make_app()
    controller.events = EventLog()  # type: ignore[attr-defined]
    controller.db.add_event_listener(controller.events)  # type: ignore[attr-defined]
    await controller.start(serve_http=False)
    await controller.wait_checked()
    yield controller
    await controller.stop()


# ---------------------------------------------------------------- locker-domain helpers


@pytest.fixture
def locker_rules(site: SimulatedSite) -> Callable[..., dict[str, Any]]:
    """The ``lockers`` section of the simulated site's config, with some settings changed.

    ``SimulatedSite.config`` replaces whole top-level keys, so an override of one locker setting
    has to carry the compartments and couriers along.
    """

    def build(**changes: Any) -> dict[str, Any]:
        rules: dict[str, Any] = {
            "compartments": site.compartments,
            "couriers": [{"id": "courier-1", "name": "Demo Courier", "credential": "2468"}],
            "door_open_timeout_s": 2,
        }
        rules.update(changes)
        return rules

    return build


@pytest.fixture
async def start_app(
    make_app: Callable[..., EdgeApp],
) -> AsyncIterator[Callable[..., Any]]:
    """Start a controller with config overrides (``events`` attached, boot checks done).

    Apps still running at the end of the test are stopped; a test may stop one itself (to
    restart on the same database) with ``await app.stop()``.
    """
    running: list[EdgeApp] = []

    async def start(**overrides: Any) -> EdgeApp:
        controller = make_app(**overrides)
        controller.events = EventLog()  # type: ignore[attr-defined]
        controller.db.add_event_listener(controller.events)  # type: ignore[attr-defined]
        await controller.start(serve_http=False)
        await controller.wait_checked()
        running.append(controller)
        original_stop = controller.stop

        async def stop() -> None:
            if controller in running:
                running.remove(controller)
                await original_stop()

        controller.stop = stop  # type: ignore[method-assign]
        return controller

    yield start
    for controller in reversed(list(running)):
        await controller.stop()


# ---------------------------------------------------------------- MQTT: a real broker per test

# Imported here, not at the top, so that this section stays one appended block.
from collections.abc import Awaitable  # noqa: E402

from edge.broker import BrokerTls, LocalBroker, find_mosquitto  # noqa: E402
from tests.mqtt import TlsMaterial, Upstream, make_tls_material  # noqa: E402

MakeBroker = Callable[..., Awaitable[LocalBroker]]


@pytest.fixture
def mosquitto() -> str:
    """The mosquitto executable; the test is skipped where there is none."""
    executable = find_mosquitto()
    if executable is None:
        pytest.skip(
            "mosquitto not installed: not on PATH nor in /usr/sbin or /usr/local/sbin "
            "(apt-get install mosquitto; scripts/test does it when run as root)"
        )
    return executable


@pytest.fixture
async def make_broker(tmp_path: Path, mosquitto: str) -> AsyncIterator[MakeBroker]:
    """Start a LocalBroker with options (``LocalBroker`` keywords) in its own directory.

    Every broker started is on its own free port, never 1883; all are stopped at teardown.
    """
    brokers: list[LocalBroker] = []

    async def start(**options: Any) -> LocalBroker:
        options.setdefault("executable", mosquitto)
        broker = LocalBroker(tmp_path / f"broker-{len(brokers) + 1}", **options)
        brokers.append(broker)
        await broker.start()
        return broker

    yield start
    for broker in reversed(brokers):
        await broker.stop()


@pytest.fixture
async def broker(make_broker: MakeBroker) -> LocalBroker:
    """A started mosquitto on a free loopback port, persistence on, anonymous clients allowed."""
    return await make_broker()


@pytest.fixture
def tls_material(tmp_path: Path) -> TlsMaterial:
    return make_tls_material(tmp_path / "tls")


@pytest.fixture
async def tls_broker(make_broker: MakeBroker, tls_material: TlsMaterial) -> LocalBroker:
    """A broker whose listener is TLS only (server certificate for 127.0.0.1 and localhost)."""
    tls = BrokerTls(tls_material.ca_file, tls_material.server_cert, tls_material.server_key)
    return await make_broker(tls=tls)


@pytest.fixture
async def mtls_broker(make_broker: MakeBroker, tls_material: TlsMaterial) -> LocalBroker:
    """A TLS broker that also requires a client certificate signed by the test CA."""
    tls = BrokerTls(
        tls_material.ca_file,
        tls_material.server_cert,
        tls_material.server_key,
        require_certificate=True,
    )
    return await make_broker(tls=tls)


@pytest.fixture
async def upstream(broker: LocalBroker) -> AsyncIterator[Upstream]:
    """The upstream consumer (``tests.mqtt.Upstream``) on ``broker``, already subscribed."""
    async with Upstream(broker.host, broker.port) as consumer:
        yield consumer
