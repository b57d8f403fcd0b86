"""docs/asyncapi.yaml against a real smart cabinet: every envelope a cabinet's day commits.

The catalogue arrives as a signed ``catalog.upsert`` command; then a purchase (items taken, a
stranger's tag left behind), a restock, a session held for an unpriced item and voided, one
held while the reader was silent and settled again, a forced door and a tag gone from the
closed cabinet, all on the simulated R2000 reader and lock board of ``test_cabinet_sessions``.
What the site committed must validate against the ``events`` payload, its telemetry and
``state/cabinets`` snapshot against theirs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from drivers.rfid.epc import decode_epc
from edge.app import EdgeApp
from edge.clock import ManualClock, rfc3339
from edge.commands.envelope import sign_command
from edge.commands.keys import private_key_from_seed, public_key_b64
from edge.demo.site import CABINET_BOARD, CABINET_LOCK, DEMO_PRODUCTS, SimulatedSite
from edge.outbox.cursor import read_batches
from edge.reports import SiteReports
from edge.sync.uplink import UplinkStats
from tests.edge.test_asyncapi import DOCUMENT, problems, validator_for
from tests.edge.test_cabinet_sessions import (
    OPERATOR,
    cabinet_config,
    client,
    closed,
    door_opened,
    events,
    held,
    open_session,
)

KEY = private_key_from_seed(b"\x0c" * 32)
RAW_TAG = "e200301666130121155074ef"  # no GTIN in it: never priced
STRANGER = "3035a537c837754000ffffff"  # a bottle of water that was never stocked here

CABINET_TYPES = {
    "catalog.updated",
    "inventory.snapshot",
    "cabinet.session_started",
    "door.opened",
    "door.closed",
    "order.created",
    "cabinet.foreign_tags",
    "cabinet.session_closed",
    "inventory.restocked",
    "cabinet.session_held",
    "cabinet.session_released",
    "door.forced",
    "inventory.tag_missing",
    "device.offline",
    "device.online",
}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[SimulatedSite]:
    """As in test_cabinet_sessions: a cabinet whose reader misses 5 % of the tags per round."""
    simulated = SimulatedSite(tmp_path / "site", with_cabinet=True)
    simulated.tags.read_probability = 0.95
    await simulated.start()
    yield simulated
    await simulated.stop()


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        json.dumps(yaml.safe_load(DOCUMENT.read_text(encoding="utf-8")))
    )
    return loaded


@pytest.fixture(scope="module")
def events_payload(document: dict[str, Any]) -> Draft7Validator:
    return validator_for(document, "/components/messages/events/payload")


async def catalogue_by_command(app: EdgeApp, clock: ManualClock) -> None:
    """The demo products and a price each, through the signed-command path as upstream sends."""
    since = rfc3339(clock.now() - timedelta(hours=1))
    data = {
        "products": [{"gtin": gtin[1:], "name": name} for gtin, name, _p in DEMO_PRODUCTS],
        "prices": [
            {"gtin": gtin, "version": 1, "amount": price, "effective_at": since}
            for gtin, _n, price in DEMO_PRODUCTS
        ],
    }
    envelope = sign_command(
        KEY,
        "catalog.upsert",
        data,
        ttl_s=300,
        kid="upstream",
        site=app.config.site.id,
        issued_at=clock.now(),
    )
    outcome = await app.commands.handle(json.dumps(envelope).encode())
    assert outcome.ok, outcome
    assert outcome.result == {"products_changed": 5, "prices_added": 5, "promotions_added": 0}
    await app.prices.current()


async def free(app: EdgeApp) -> None:
    """Until the cabinet has let go of its last session.

    The service clears it just after the commit whose ``cabinet.session_closed`` a test may
    already have seen; until then a new session is refused and an opening counts as the old
    session's.
    """
    async with asyncio.timeout(5):
        while app.cabinets.cabinets["K1"].session_id is not None:
            await asyncio.sleep(0.01)


def decodable(epcs: set[str]) -> list[str]:
    return sorted(epc for epc in epcs if decode_epc(epc).gtin is not None)


async def committed(app: EdgeApp) -> list[list[dict[str, Any]]]:
    """The outbox as the publisher would send it: every batch, parsed."""
    batches = await app.db.read(
        lambda s: read_batches(
            s, app.config.site.id, 0, max_events=500, max_bytes=256 * 1024, max_batches=100
        )
    )
    return [json.loads(batch.payload) for batch in batches]


async def test_events_of_a_real_cabinet_day_validate(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    document: dict[str, Any],
    events_payload: Draft7Validator,
) -> None:
    assert site.reader is not None and site.boards is not None
    site.tags.place(RAW_TAG, antenna=1)
    site.stock_cabinet(5)
    app: EdgeApp = await start_app(
        cabinets=cabinet_config(settle={"timeout_s": 3}),
        commands={"trusted_keys": [{"id": "upstream", "public_key": public_key_b64(KEY)}]},
    )
    await catalogue_by_command(app, clock)
    initial = await events(app).wait_for("inventory.snapshot", timeout=30)
    assert initial.data["reason"] == "initial" and initial.data["undecodable"] == [RAW_TAG]
    assert await app.cabinets.snapshot("K1")  # periodic, with the catalogue's names

    async with client(app) as http:
        # A purchase: three items taken, a stranger's bottle left behind.
        session = await open_session(http)
        await door_opened(app, session["id"])
        taken = decodable(site.tags.epcs())[:3]
        for epc in taken:
            site.tags.remove(epc)
        site.tags.place(STRANGER, antenna=2)
        site.close_cabinet()
        assert (await closed(app, session["id"])).data["outcome"] == "charged"

        # A restock: three new bottles in, one item out.
        await free(app)
        r = await http.post("/api/v1/cabinets/K1/restock", headers=OPERATOR, json={})
        assert r.status_code == 201, r.text
        restock = r.json()
        await door_opened(app, restock["id"])
        for n in range(900, 903):
            site.tags.place(f"3035a537c8377540000{n:05x}", antenna=2)
        site.tags.remove(decodable(site.tags.epcs())[-1])
        site.close_cabinet()
        assert (await closed(app, restock["id"])).data["outcome"] == "restocked"

        # The tag without a GTIN taken: held, then voided by an operator.
        await free(app)
        session = await open_session(http, member="member-8")
        await door_opened(app, session["id"])
        site.tags.remove(RAW_TAG)
        site.close_cabinet()
        assert (await held(app, session["id"])).data["reason"] == "unpriced_items"
        r = await http.post(
            f"/api/v1/cabinet-sessions/{session['id']}/void",
            headers=OPERATOR,
            json={"reason": "staff gave the item away"},
        )
        assert r.status_code == 200, r.text
        assert (await closed(app, session["id"])).data["outcome"] == "voided"

        # The reader dies while the door is open: held, then settled again once it is back.
        # (Waiting for the driver to notice keeps this independent of the settle timeout.)
        reader = app.readers.readers["cabinet-reader"]
        await free(app)
        session = await open_session(http, member="member-9")
        await door_opened(app, session["id"])
        site.tags.remove(decodable(site.tags.epcs())[0])
        site.reader.silent = True
        await events(app).wait_for("device.offline", timeout=20)
        assert not reader.available
        site.close_cabinet()
        assert (await held(app, session["id"])).data["reason"] == "reader_unavailable"
        site.reader.silent = False
        await reader.wait_available(30)  # the reconnect backoff may have reached 10 s
        r = await http.post(f"/api/v1/cabinet-sessions/{session['id']}/settle", headers=OPERATOR)
        assert r.status_code == 200, r.text
        assert (await closed(app, session["id"])).data["outcome"] == "charged"

    # Nobody let in, yet the door opens and a bottle leaves.
    await free(app)
    site.boards.force_open(CABINET_BOARD, CABINET_LOCK)
    forced = await events(app).wait_for("door.forced", lambda e: "cabinet" in e.data, timeout=10)
    assert forced.data == {"cabinet": "K1"}
    gone = decodable(site.tags.epcs())[0]
    site.tags.remove(gone)
    site.close_cabinet()
    missing = await events(app).wait_for("inventory.tag_missing", timeout=20)
    assert missing.data["epcs"] == [gone]

    batches = await committed(app)
    for batch in batches:
        assert not problems(events_payload, batch)
    envelopes = [envelope for batch in batches for envelope in batch]
    types = {envelope["type"] for envelope in envelopes}
    assert types >= CABINET_TYPES, CABINET_TYPES - types
    documented = set(document["components"]["schemas"]["EventType"]["enum"])
    assert types <= documented, types - documented
    by_type: dict[str, list[dict[str, Any]]] = {}
    for envelope in envelopes:
        by_type.setdefault(envelope["type"], []).append(envelope)
    assert {e["data"]["kind"] for e in by_type["device.offline"]} == {"rfid_reader"}
    outcomes = [e["data"]["outcome"] for e in by_type["cabinet.session_closed"]]
    assert outcomes == ["charged", "restocked", "voided", "charged"]
    assert len(by_type["order.created"]) == 2
    assert {e["data"]["reason"] for e in by_type["inventory.snapshot"]} == {"initial", "periodic"}
    assert_not_vacuous(events_payload, by_type)

    # Telemetry and the retained state/cabinets snapshot, with this cabinet in them.
    reports = SiteReports(
        app.db, app.db.clock, app.health, app.temperature, UplinkStats(), app.keeper, app.cabinets
    )
    telemetry = json.loads(json.dumps(await reports.telemetry()))
    snapshot = json.loads(json.dumps(await reports.cabinets()))
    for name, body in [("telemetry", telemetry), ("cabinetsState", snapshot)]:
        validator = validator_for(document, f"/components/messages/{name}/payload")
        assert not problems(validator, body), (name, problems(validator, body))
    assert set(snapshot) == {"K1"} and telemetry["cabinets"] == snapshot
    assert snapshot["K1"]["items"] == sum(snapshot["K1"]["by_gtin"].values()) > 0


def assert_not_vacuous(
    events_payload: Draft7Validator, by_type: dict[str, list[dict[str, Any]]]
) -> None:
    """Real cabinet envelopes, each broken in one way the document must notice."""
    charged = next(
        e for e in by_type["cabinet.session_closed"] if e["data"]["outcome"] == "charged"
    )
    opened = by_type["door.opened"][0]
    order = by_type["order.created"][0]
    held_ = by_type["cabinet.session_held"][0]
    cases: list[tuple[dict[str, Any], Callable[[dict[str, Any]], Any]]] = [
        (opened, lambda d: d.pop("session_id")),  # neither the cabinet nor the compartment form
        (opened, lambda d: d.update(compartment="A01", operation=None)),  # both forms at once
        (charged, lambda d: d.pop("total")),
        (charged, lambda d: d.update(order_id=None)),
        (charged, lambda d: d.update(outcome="refunded")),
        (order, lambda d: d["lines"][0].update(amount=2.5)),
        (order, lambda d: d["lines"][0].update(gtin="6901234567892")),
        (order, lambda d: d["payment"].pop("state")),
        (held_, lambda d: d.pop("items")),
        (by_type["inventory.snapshot"][0], lambda d: d.update(reason="hourly")),
        (by_type["inventory.tag_missing"][0], lambda d: d.update(epcs=["XYZ"])),
        (by_type["catalog.updated"][0], lambda d: d.pop("command_id")),
    ]
    for envelope, change in cases:
        broken = json.loads(json.dumps(envelope))
        change(broken["data"])
        assert problems(events_payload, [broken]), (envelope["type"], broken["data"])


async def test_a_cabinet_whose_unlock_fails_closes_its_session_as_documented(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    events_payload: Draft7Validator,
) -> None:
    """``unlock_failed``: the board took the session's unlock badly; nobody was let in."""
    assert site.boards is not None
    site.stock_cabinet(1)
    app: EdgeApp = await start_app()
    await events(app).wait_for("inventory.snapshot", timeout=30)
    async with client(app) as http:
        site.boards.fault_no_reply()
        session = await open_session(http)
        done = await closed(app, session["id"])
        site.boards.clear_faults()
    assert done.data["outcome"] == "unlock_failed"
    for batch in await committed(app):
        assert not problems(events_payload, batch)
