"""A face payment the power cut left undecided is decided at the next start, exactly once.

An order paid by face commits with its payment ``pending``; the decision follows in a
transaction of its own. When the power goes between the two, the next start's sweep
(``FacePayService.decide_pending_payments``) decides it: one ``payment.authorized`` or
``payment.declined`` for the order, never two, however often the controller starts again.

Two ways there:

- the state such a power cut leaves on disk (the order and its pending face payment committed,
  no decision), then three starts of the real controller on that database;
- ``edge run`` as a process, a shopper verified by face on a camera simulator, the cabinet
  open, then SIGKILL: the next process settles the session into an order and decides its
  payment, is killed in turn, and the one after that finds nothing left to decide.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from sqlmodel import col, select

from drivers.camera.simulator import MjpegCameraSimulator
from edge.app import EdgeApp
from edge.clock import Clock, ManualClock
from edge.commands.keys import public_key_b64
from edge.db import Database
from edge.db.tables import OutboxEvent, PaymentRequest
from edge.demo.shopper import ShopperPhoto, SimulatedShopper
from edge.demo.site import SimulatedSite
from tests.edge import test_facepay_flow as flow
from tests.edge import test_power_cut
from tests.edge.test_cabinet_power_cut import poll
from tests.edge.test_facepay_flow import (
    KEY,
    enroll,
    face_check,
    facepay_config,
    open_by_face,
    started,
    template_of,
)
from tests.edge.test_facepay_payments import Shop
from tests.edge.test_power_cut import EdgeProcess, config_document, free_port, start_edge

# The face payment flow tests' fixtures (prepared models, the shopper's photo, a cabinet site, a
# camera showing the shopper) and the power-cut tests' child processes, killed at the end.
models_cache = flow.models_cache
face_models = flow.face_models
grace = flow.grace
site = flow.site
camera = flow.camera
processes = test_power_cut.processes

PAYMENT_EVENTS = ("payment.authorized", "payment.declined")


@pytest.fixture
def clock() -> ManualClock:
    """Today, not the tests' usual fixed date: the controller processes below keep real time,
    and the prices and signed commands the in-process controller writes must hold for them."""
    return ManualClock(Clock().now())


async def payment_events(db: Database, order_id: str) -> list[OutboxEvent]:
    """Every decision for the order in the outbox: what upstream will be told, across starts."""

    def read(s: Any) -> list[OutboxEvent]:
        query = (
            select(OutboxEvent)
            .where(col(OutboxEvent.type).in_(PAYMENT_EVENTS))
            .order_by(col(OutboxEvent.seq))
        )
        return [e for e in s.exec(query).all() if e.data["order_id"] == order_id]

    return await db.read(read)


def any_template(app: EdgeApp) -> np.ndarray:
    """A member's template: no face check runs in this test, any unit vector will do."""
    assert app.facepay is not None
    vector = np.random.default_rng(4).normal(size=app.facepay.models.embedder.dim)
    normalised: np.ndarray = (vector / np.linalg.norm(vector)).astype(np.float32)
    return normalised


def events_of(app: EdgeApp) -> list[Any]:
    """The events this controller committed since it started."""
    return list(app.events.events)  # type: ignore[attr-defined]


async def test_a_face_payment_left_pending_is_decided_once_by_the_next_starts(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
) -> None:
    no_camera = str(tmp_path / "no-camera.avi")  # no face check here: the camera may be absent

    async def start() -> EdgeApp:
        app: EdgeApp = await start_app(
            facepay=facepay_config(tmp_path, models_cache, no_camera),
            commands={"trusted_keys": [{"id": "cloud", "public_key": public_key_b64(KEY)}]},
        )
        return app

    first = await start()
    await enroll(first, clock, "grace", any_template(first))
    config = first.config
    await first.stop()
    # What the cabinet's close transaction committed just before the power went: the order,
    # its pending face payment and the verification that opened the session (seeded as in the
    # decider's own tests). No decision, and no event of this start will prompt one.
    db = Database(config.database_path, config.site.id, clock)
    try:
        placed = await Shop(db, clock).order("grace", 350)
    finally:
        db.close()

    second = await start()  # the start-up sweep decides it
    decided = await payment_events(second.db, placed.order_id)
    assert [e.type for e in decided] == ["payment.authorized"], decided
    assert decided[0].data["payment_id"] == placed.payment_id
    assert decided[0].data["member_id"] == "grace" and decided[0].data["mode"] == "offline"
    evidence = decided[0].data["verification"]
    assert isinstance(evidence, dict) and evidence["id"] == placed.verification_id
    assert [e.type for e in events_of(second) if e.type in PAYMENT_EVENTS] == ["payment.authorized"]
    await second.stop()

    third = await start()  # and the next start finds nothing left to decide
    assert third.facepay is not None
    assert await third.facepay.decide_pending_payments() == 0
    assert [e.id for e in await payment_events(third.db, placed.order_id)] == [decided[0].id]
    assert not [e for e in events_of(third) if e.type in PAYMENT_EVENTS]
    row = await third.db.read(lambda s: s.get(PaymentRequest, placed.payment_id))
    assert row is not None and row.state == "authorized"


async def test_power_cut_with_a_face_paid_cabinet_open_decides_the_payment_once(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
    face_models: Any,
    grace: ShopperPhoto,
    camera: tuple[MjpegCameraSimulator, SimulatedShopper],
    processes: list[EdgeProcess],
) -> None:
    simulator, shopper = camera
    # Set up in-process, as upstream would have: the catalogue, and the member enrolled by a
    # signed command. Then the same configuration and database for ``edge run``.
    setup = await started(
        start_app,
        site,
        clock,
        tmp_path,
        models_cache,
        simulator.url,
        liveness={"steps": 1},  # the face check is not what is tested here
    )
    await enroll(setup, clock, "grace", template_of(face_models, grace.photo))
    document = config_document(setup.config)
    await setup.stop()
    document["http"]["port"] = free_port()
    document["logging"] = {"level": "INFO", "format": "json"}
    config_path = tmp_path / "edge.yaml"
    config_path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")

    first = await start_edge(processes, config_path, 1)
    async with httpx.AsyncClient(base_url=first.base_url, timeout=15) as http:
        await poll(http, "/api/v1/kiosk/cabinets", lambda cabs: cabs[0]["available"])
        check = await face_check(http, shopper)
        assert check["state"] == "verified", (check["reason"], check["hint"])
        r = await open_by_face(http, check["id"])
        assert r.status_code == 201, r.text
        session_id = r.json()["id"]
        await poll(
            http, f"/api/v1/kiosk/cabinet-sessions/{session_id}", lambda s: s["state"] == "open"
        )
    for epc in sorted(site.tags.epcs())[:2]:
        site.tags.remove(epc)
    await first.kill()
    site.close_cabinet()  # the shopper shuts the door while the power is off

    second = await start_edge(processes, config_path, 2)
    async with httpx.AsyncClient(base_url=second.base_url, timeout=15) as http:
        session = await poll(
            http, f"/api/v1/cabinet-sessions/{session_id}", lambda s: s["state"] == "closed"
        )
        order_id = session["order_id"]
        assert order_id is not None
        decided = await poll(
            http,
            "/api/v1/events?limit=1000",
            lambda found: any(
                e["type"] in PAYMENT_EVENTS and e["data"]["order_id"] == order_id for e in found
            ),
        )
    await second.kill()  # a second power cut, right after the decision

    third = await start_edge(processes, config_path, 3)  # ready: its start-up sweep has run
    async with httpx.AsyncClient(base_url=third.base_url, timeout=15) as http:
        found = await test_power_cut.events(http)
    await third.kill()
    orders = [e for e in found if e["type"] == "order.created"]
    assert [e["data"]["order_id"] for e in orders] == [order_id]
    assert orders[0]["data"]["payment"]["method"] == "face"
    payments = [e for e in found if e["type"] in PAYMENT_EVENTS]
    assert [e["id"] for e in payments] == [
        e["id"] for e in decided if e["type"] in PAYMENT_EVENTS
    ], payments
    (paid,) = payments
    assert paid["type"] == "payment.authorized", paid
    assert paid["data"]["order_id"] == order_id and paid["data"]["member_id"] == "grace"
    assert paid["data"]["amount"] == orders[0]["data"]["total"]
    # The verification that opened the session before the power cut is the payment's evidence.
    assert paid["data"]["verification"]["id"] == check["id"]
