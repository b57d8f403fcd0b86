"""``edge demo``: the whole controller on simulated hardware, with a guided deposit and pickup,
a cabinet purchase by member QR code and, where the face models and photo are at hand, one by
face.

The walkthrough talks to the controller only through its real HTTP API, like a kiosk would, and
to its upstream side only through signed commands and the events it publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from drivers.lockboard.simulator import LockBoardSimulator
from edge.app import EdgeApp
from edge.broker import LocalBroker, find_mosquitto
from edge.cabinet.service import SessionView
from edge.catalog.commands import CatalogUpsert, apply_upsert
from edge.commands.canonical import canonical_json
from edge.commands.envelope import sign_command
from edge.commands.keys import generate_private_key, public_key_b64
from edge.commands.send import send_command
from edge.commands.verify import VerifiedCommand
from edge.config.sync import MqttConfig
from edge.demo.site import (
    COURIER_CREDENTIAL,
    COURIER_ID,
    DEMO_PRODUCTS,
    KIOSK_TOKEN,
    OPERATOR_TOKEN,
    SITE_ID,
    SimulatedSite,
)
from edge.logs import configure_logging

if TYPE_CHECKING:
    from edge.demo.facepay import FaceDemo

log = logging.getLogger(__name__)

PARCEL = "SF1234567890"
PRICES_SINCE = "2025-01-01T00:00:00Z"
"""When the demo prices came into force: a fixed moment, so that a kept --data-dir takes the
same catalog.upsert again (an upsert is idempotent; a price version's values never change)."""


def say(step: str, text: str) -> None:
    print(f"  {step:<10} {text}", flush=True)


def _free_port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def run_demo(data_dir: Path | None, port: int, exit_after_walkthrough: bool) -> int:
    configure_logging("WARNING", "console")
    workdir = data_dir or Path(tempfile.mkdtemp(prefix="edge-demo-"))
    async with running_demo(workdir, port) as demo:
        await demo.walk()
        if exit_after_walkthrough:
            return 0
        waiting = await demo.leave_a_parcel("DEMO-PARCEL-KIOSK")
        demo.door_closing_delay_s = 8.0  # time enough to try the API by hand
        print(
            f"\nThe controller keeps running:\n"
            f"  kiosk screen:     {demo.base_url}/kiosk/#token={KIOSK_TOKEN}\n"
            f"  operator console: {demo.base_url}/console/  (token {OPERATOR_TOKEN})\n"
            f"  API docs:         {demo.base_url}/docs\n"
            f"  metrics:          {demo.base_url}/metrics\n"
            f"Doors you open on the kiosk close by themselves "
            f"{demo.door_closing_delay_s:.0f} s later, as if a person closed them."
        )
        print(
            f"Kiosk token: {KIOSK_TOKEN}   operator token: {OPERATOR_TOKEN}   "
            f"courier {COURIER_ID} / {COURIER_CREDENTIAL}"
        )
        if waiting is not None:
            print(f"A parcel waits in {waiting[0]}: pick it up on the kiosk with code {waiting[1]}")
        print("Press Ctrl-C to stop.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    return 0


@dataclass
class Demo:
    """The running demo: simulated site, its upstream, the controller, and face payment if any."""

    site: SimulatedSite
    upstream: UpstreamLink
    app: EdgeApp
    base_url: str
    face: FaceDemo | None
    door_closing_delay_s: float = 1.0
    """How long the simulated people take to close a door they opened."""

    def people_close_doors(self, sim: LockBoardSimulator) -> None:
        def closing(address: int, lock: int) -> None:
            loop = asyncio.get_running_loop()
            loop.call_later(self.door_closing_delay_s, sim.close_door, address, lock)

        sim.add_unlock_listener(closing)

    async def leave_a_parcel(self, code: str) -> tuple[str, str] | None:
        """Deposit one more parcel, for the visitor to collect on the kiosk: (compartment,
        pickup code), or None if the site could not take it."""
        try:
            door = await self.app.lockers.start_deposit(COURIER_ID, code, "S")
            done = await self.app.lockers.wait_operation(door.operation_id, wait_s=15)
        except Exception:  # the demo goes on without it; the kiosk still works
            log.warning("the demo could not leave a parcel for the kiosk", exc_info=True)
            return None
        return (door.compartment_id, done.pickup_code) if done.pickup_code else None

    async def walk(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as http:
            await walkthrough(http, self.upstream)
            await cabinet_walkthrough(http, self.upstream, self.app, self.site)
            if self.face is not None:
                from edge.demo.facepay import face_walkthrough  # builds on this module

                await face_walkthrough(http, self.upstream, self.app, self.site, self.face)


@contextlib.asynccontextmanager
async def running_demo(workdir: Path, port: int) -> AsyncIterator[Demo]:
    """Start the simulated site, the upstream link and the controller; stop them all after."""
    from edge.demo.facepay import prepare_face_demo  # builds on this module

    site = SimulatedSite(workdir, with_cabinet=True)
    site.tags.read_probability = 0.95  # a real cabinet misses a few reads every round
    await site.start()
    site.stock_cabinet(10)
    port = _free_port(port)
    upstream = await UpstreamLink.start(workdir)
    face: FaceDemo | None = None
    app: EdgeApp | None = None
    try:
        print(f"Edge controller demo — site data in {workdir}")
        print(f"Upstream link: {upstream.describe()}")
        face = await prepare_face_demo(workdir)
        site.facepay = face.config() if face is not None else None
        app = EdgeApp(site.config(http_port=port, **upstream.config()))
        demo = Demo(site, upstream, app, f"http://127.0.0.1:{port}", face)
        assert site.boards and site.frozen
        demo.people_close_doors(site.boards)
        demo.people_close_doors(site.frozen)
        await app.start()
        await app.wait_checked()
        if app.sync is not None:
            await app.sync.wait_connected(5)
        yield demo
    finally:
        if app is not None:
            await app.stop()
        if face is not None:
            await face.stop()
        await site.stop()
        await upstream.stop()


class UpstreamLink:
    """The demo's upstream: a local Mosquitto, a signing key, and a consumer of the events."""

    def __init__(self, workdir: Path, broker: LocalBroker | None) -> None:
        self.broker = broker
        self.key = generate_private_key()
        self.received: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()
        self._consumer: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    @classmethod
    async def start(cls, workdir: Path) -> UpstreamLink:
        if find_mosquitto() is None:
            return cls(workdir, None)
        broker = LocalBroker(workdir / "broker", persistence=False)
        await broker.start()
        link = cls(workdir, broker)
        link._consumer = asyncio.create_task(link._consume())
        await asyncio.wait_for(link._subscribed.wait(), 10)
        return link

    def describe(self) -> str:
        if self.broker is None:
            return "off (mosquitto is not installed: events wait in the outbox)"
        return f"embedded Mosquitto at {self.broker.url}"

    def config(self) -> dict[str, object]:
        # The key is trusted even without a broker: commands then go to the dispatcher directly.
        trusted = {"trusted_keys": [{"id": "demo-cloud", "public_key": public_key_b64(self.key)}]}
        if self.broker is None:
            return {"commands": trusted}
        return {"mqtt": {"host": self.broker.host, "port": self.broker.port}, "commands": trusted}

    @property
    def mqtt(self) -> MqttConfig:
        assert self.broker is not None
        return MqttConfig(host=self.broker.host, port=self.broker.port)

    async def command(self, app: EdgeApp, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        """Sign a command and send it over MQTT (without a broker: straight to the controller's
        command dispatcher); its ``command.result``, which must say ``ok``."""
        envelope = sign_command(self.key, type_, data, ttl_s=300)
        result: dict[str, Any] | None
        if self.broker is not None:
            result = await send_command(self.mqtt, SITE_ID, envelope, wait_s=10)
        else:
            outcome = await app.commands.handle(canonical_json(envelope))
            result = outcome.event_data()
        if result is None or result["status"] != "ok":
            raise RuntimeError(f"{type_} was not applied: {result}")
        return result

    async def wait_for(
        self, matches: Callable[[dict[str, Any]], bool], within_s: float
    ) -> dict[str, Any]:
        """The first event received upstream that ``matches``, waiting up to ``within_s``."""

        def found() -> dict[str, Any] | None:
            return next((event for event in self.received if matches(event)), None)

        async with asyncio.timeout(within_s), self._arrived:
            await self._arrived.wait_for(lambda: found() is not None)
        event = found()
        assert event is not None
        return event

    async def _consume(self) -> None:
        import aiomqtt

        assert self.broker is not None
        async with aiomqtt.Client(self.broker.host, self.broker.port) as client:
            await client.subscribe("edge/v1/+/events", qos=1)
            self._subscribed.set()
            async for message in client.messages:
                if isinstance(message.payload, bytes):
                    self.received.extend(json.loads(message.payload))
                    async with self._arrived:
                        self._arrived.notify_all()

    async def stop(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._consumer
        if self.broker is not None:
            await self.broker.stop()


async def walkthrough(http: httpx.AsyncClient, upstream: UpstreamLink) -> None:
    kiosk = {"X-Kiosk-Token": KIOSK_TOKEN}
    operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}

    expected = {"parcel_code": PARCEL, "size": "M", "zone": "chilled"}
    if upstream.broker is not None:
        print("\n1. Upstream announces a chilled parcel: a signed parcel.expect over MQTT")
        command = sign_command(upstream.key, "parcel.expect", expected, ttl_s=300)
        result = await send_command(upstream.mqtt, SITE_ID, command, wait_s=10)
        if result is None or result["status"] != "ok":
            raise RuntimeError(f"parcel.expect was not applied: {result}")
        say("expected", f"parcel {PARCEL}, size M, chilled zone (command.result: ok)")
    else:
        print("\n1. Upstream announces a chilled parcel (through the operator API: no broker)")
        r = await http.post(
            "/api/v1/parcels/expected",
            headers=operator,
            json={"code": PARCEL, "size": "M", "zone": "chilled"},
        )
        r.raise_for_status()
        say("expected", f"parcel {PARCEL}, size M, chilled zone")

    print("2. A courier signs in at the kiosk and scans the parcel")
    r = await http.post(
        "/api/v1/kiosk/courier/sessions",
        headers=kiosk,
        json={"courier_id": COURIER_ID, "credential": COURIER_CREDENTIAL},
    )
    r.raise_for_status()
    courier = {**kiosk, "X-Courier-Session": r.json()["token"]}
    say("signed in", f"{r.json()['courier_name']}")
    r = await http.post("/api/v1/kiosk/deposits", headers=courier, json={"parcel_code": PARCEL})
    r.raise_for_status()
    deposit = r.json()
    say("door open", f"compartment {deposit['compartment']} unlocked over RS-485 and seen open")

    print("3. The courier puts the parcel in and closes the door")
    r = await http.get(
        f"/api/v1/kiosk/operations/{deposit['operation_id']}", headers=kiosk, params={"wait": 20}
    )
    r.raise_for_status()
    code = r.json()["pickup_code"]
    say("deposited", f"committed; pickup code {code} (stored only as a hash)")

    print("4. The resident mistypes the code, then types it right")
    wrong = "0" * len(code) if code != "0" * len(code) else "1" * len(code)
    r = await http.post("/api/v1/kiosk/pickups", headers=kiosk, json={"code": wrong})
    say(
        "refused",
        f"{r.json()['error']['message']} "
        f"({r.json()['error']['details']['attempts_left']} tries left)",
    )
    r = await http.post("/api/v1/kiosk/pickups", headers=kiosk, json={"code": code})
    r.raise_for_status()
    pickup = r.json()
    say("door open", f"compartment {pickup['compartment']}")
    r = await http.get(
        f"/api/v1/kiosk/operations/{pickup['operation_id']}", headers=kiosk, params={"wait": 20}
    )
    say("picked up", f"door closed, operation {r.json()['state']}")

    print("5. What the site synced upstream (the outbox, in seq order)")
    r = await http.get("/api/v1/events", headers=operator, params={"limit": 1000})
    events = r.json()
    if upstream.broker is not None:
        # Give the live link a moment to deliver the last events (it is milliseconds).
        for _ in range(50):
            if len({e["id"] for e in upstream.received}) >= len(events):
                break
            await asyncio.sleep(0.05)
    arrived = {e["id"] for e in upstream.received}
    for event in events:
        if event["type"].startswith(("parcel.", "door.", "compartment.", "command.")):
            compartment = event["data"].get("compartment", "")
            where = "received upstream" if event["id"] in arrived else "waiting in the outbox"
            say(f"seq {event['seq']}", f"{event['type']:<20} {compartment:<6} {where}")
    with contextlib.suppress(httpx.HTTPError):
        r = await http.get("/metrics")
        up = [line for line in r.text.splitlines() if line.startswith("edge_device_up")]
        print(
            "6. Devices: "
            + ", ".join(
                line.split('device="')[1].split('"')[0]
                + (" up" if line.endswith(" 1.0") else " DOWN")
                for line in up
            )
        )


async def cabinet_walkthrough(
    http: httpx.AsyncClient, upstream: UpstreamLink, app: EdgeApp, site: SimulatedSite
) -> None:
    kiosk = {"X-Kiosk-Token": KIOSK_TOKEN}
    now = app.db.clock.now()
    catalog = {
        "products": [{"gtin": gtin, "name": name} for gtin, name, _price in DEMO_PRODUCTS],
        "prices": [
            {"gtin": gtin, "version": 1, "amount": price, "effective_at": PRICES_SINCE}
            for gtin, _name, price in DEMO_PRODUCTS
        ],
    }
    print("\n7. Upstream publishes the cabinet's catalogue and prices (catalog.upsert)")
    if upstream.broker is not None:
        command = sign_command(upstream.key, "catalog.upsert", catalog, ttl_s=300)
        result = await send_command(upstream.mqtt, SITE_ID, command, wait_s=10)
        if result is None or result["status"] != "ok":
            raise RuntimeError(f"catalog.upsert was not applied: {result}")
    else:
        command_data = CatalogUpsert.model_validate(catalog)
        verified = VerifiedCommand("local", "catalog.upsert", now, now, catalog, "demo")
        await app.db.transact(lambda tx: apply_upsert(app.db.clock, tx, command_data, verified))
    await app.prices.current()
    say("catalogue", f"{len(DEMO_PRODUCTS)} products with prices")

    print("8. A member scans their QR code at cabinet K1, takes two items and closes the door")
    for _ in range(200):
        cabinets = (await http.get("/api/v1/kiosk/cabinets", headers=kiosk)).json()
        if cabinets[0]["available"]:
            break
        await asyncio.sleep(0.05)  # the reader's first rounds after start
    say("counted", f"{cabinets[0]['items']} tagged items inside, read by the R2000 reader")
    r = await http.post(
        "/api/v1/kiosk/cabinets/K1/sessions",
        headers=kiosk,
        json={"member_id": "member-1001", "member_source": "qr"},
    )
    r.raise_for_status()
    session = r.json()
    view = await take_two_items(app, site, session["id"])
    if view.total is not None:
        say("order", f"{view.order_id} total ¥{view.total / 100:.2f}, payment request pending")


async def take_two_items(app: EdgeApp, site: SimulatedSite, session_id: str) -> SessionView:
    """The shopper takes two items from the open cabinet; the door closes by itself."""
    for epc in sorted(site.tags.epcs())[::23][:2]:
        site.tags.remove(epc)  # the simulated shopper's hand
    view = await app.cabinets.wait_finished(session_id, 30)
    say("settled", f"door closed, inventory counted again: session {view.state}")
    for line in view.lines:
        say("", f"{line['name']:<20} ¥{line['amount'] / 100:.2f}  (price v{line['price_version']})")
    return view
