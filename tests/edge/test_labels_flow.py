"""Shelf labels end to end: signed catalog.upsert and label.bind commands, the controller's label
service, and the OpenEPaperLink access point simulator over real HTTP, whose tags check in by
themselves. What the tags end up showing is compared pixel for pixel with the renderer's output.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from PIL import ImageChops

from drivers.esl.simulator import AccessPointSimulator
from edge.app import EdgeApp
from edge.clock import ManualClock
from edge.commands.envelope import sign_command
from edge.commands.keys import private_key_from_seed, public_key_b64
from edge.db.tables import LabelPush
from edge.labels.content import content_from_record
from edge.labels.rendering import LabelRenderer

KEY = private_key_from_seed(b"labels-tests-upstream-key-32byte")
MILK = "06901234567892"
BREAD = "06901234567885"
TAG_A, TAG_B = "0000021000000001", "0000021000000002"


@pytest.fixture
async def ap() -> AsyncIterator[AccessPointSimulator]:
    simulator = AccessPointSimulator(checkin_interval_s=0.05)
    simulator.add_tag(TAG_A)
    simulator.add_tag(TAG_B)
    async with simulator:
        yield simulator


def labels_config(ap: AccessPointSimulator, **changes: Any) -> dict[str, Any]:
    access_point = {"name": "ap1", "url": ap.base_url, "uploads_per_s": 200, "poll_interval_s": 0.1}
    config: dict[str, Any] = {
        "access_points": [access_point],
        "retry_initial_s": 0.05,
        "retry_max_s": 0.2,
    }
    config.update(changes)
    return config


async def started(start_app: Callable[..., Any], ap: AccessPointSimulator, **changes: Any) -> Any:
    return await start_app(
        labels=labels_config(ap, **changes),
        commands={"trusted_keys": [{"id": "cloud", "public_key": public_key_b64(KEY)}]},
    )


async def send(app: EdgeApp, clock: ManualClock, type_: str, data: dict[str, Any]) -> Any:
    envelope = sign_command(KEY, type_, data, ttl_s=300, issued_at=clock.now())
    outcome = await app.commands.handle(json.dumps(envelope).encode())
    assert outcome.ok, outcome
    return outcome


def price(gtin: str, version: int, amount: int, clock: ManualClock, hours: float = -1) -> Any:
    effective = clock.now() + timedelta(hours=hours)
    return {
        "gtin": gtin,
        "version": version,
        "amount": amount,
        "effective_at": effective.isoformat(),
    }


async def catalogue(app: EdgeApp, clock: ManualClock, **extra: Any) -> None:
    products = [
        {"gtin": MILK, "name": "鲜牛奶", "size": "950ml", "unit": "盒"},
        {"gtin": BREAD, "name": "全麦面包", "size": "400g"},
    ]
    prices = [price(MILK, 1, 1290, clock), price(BREAD, 1, 650, clock)]
    await send(app, clock, "catalog.upsert", {"products": products, "prices": prices, **extra})


def events(app: EdgeApp) -> Any:
    return app.events  # type: ignore[attr-defined]


async def updated(app: EdgeApp, label: str, version: int, timeout: float = 15) -> Any:
    failed = events(app).of_type("label.failed")
    assert not failed, [e.data for e in failed]
    return await events(app).wait_for(
        "label.updated",
        lambda e: e.data["label_id"] == label and e.data["price_version"] == version,
        timeout=timeout,
    )


def backoff_elapsed(app: EdgeApp, clock: ManualClock) -> None:
    """The retry delay (on the controller's clock) has passed."""
    clock.advance(1)
    assert app.labels is not None
    app.labels.wake()


def shows(ap: AccessPointSimulator, label: str, content: dict[str, Any]) -> bool:
    """The tag's display equals the renderer's image of ``content``, pixel for pixel."""
    displayed = ap.displayed_image(label)
    assert displayed is not None
    expected = LabelRenderer().render(content_from_record(content), content["template"])
    diff = ImageChops.difference(displayed.convert("RGB"), expected.convert("RGB"))
    return diff.getbbox() is None


async def test_bound_labels_show_the_price_and_follow_changes_in_effective_order(
    start_app: Callable[..., Any], clock: ManualClock, ap: AccessPointSimulator
) -> None:
    app = await started(start_app, ap)
    await catalogue(app, clock)
    await send(app, clock, "label.bind", {"label_id": TAG_A, "gtin": MILK})
    await send(
        app, clock, "label.bind", {"label_id": TAG_B.lower(), "gtin": BREAD, "template": "2.9-bw"}
    )
    first_a = await updated(app, TAG_A, 1)
    first_b = await updated(app, TAG_B, 1)
    assert (first_a.data["amount"], first_b.data["amount"]) == (1290, 650)
    milk = await app.db.read(lambda s: s.get(LabelPush, TAG_A))
    assert milk is not None and milk.state == "confirmed" and shows(ap, TAG_A, milk.content)
    assert milk.content["unit_price"] == "¥1.36/100ml"

    # Version 2 now, version 3 in an hour: the labels show 2, then 3 when it takes effect.
    await send(
        app,
        clock,
        "catalog.upsert",
        {"prices": [price(MILK, 2, 1190, clock, hours=-0.5), price(MILK, 3, 990, clock, hours=1)]},
    )
    await updated(app, TAG_A, 2)
    clock.advance(3601)
    assert app.labels is not None
    app.labels.catalog_changed()  # what the planner's timer does at the effective instant
    await updated(app, TAG_A, 3)
    versions = [
        e.data["price_version"]
        for e in events(app).of_type("label.updated")
        if e.data["label_id"] == TAG_A
    ]
    assert versions == [1, 2, 3]
    assert [e.data["label_id"] for e in events(app).of_type("label.updated")].count(TAG_B) == 1


async def test_a_promotion_shows_the_old_price_struck_through_and_ends_on_time(
    start_app: Callable[..., Any], clock: ManualClock, ap: AccessPointSimulator
) -> None:
    app = await started(start_app, ap)
    window = {
        "starts_at": (clock.now() - timedelta(minutes=1)).isoformat(),
        "ends_at": (clock.now() + timedelta(hours=2)).isoformat(),
    }
    promotion = {
        "id": "P-milk",
        "version": 1,
        "gtin": MILK,
        "amount": 990,
        "text": "限时特价",
        **window,
    }
    await catalogue(app, clock, promotions=[promotion])
    await send(app, clock, "label.bind", {"label_id": TAG_A, "gtin": MILK})
    on_sale = await updated(app, TAG_A, 1)
    assert (on_sale.data["amount"], on_sale.data["promotion_id"]) == (990, "P-milk")

    clock.advance(2 * 3600 + 1)
    assert app.labels is not None
    app.labels.catalog_changed()
    over = await events(app).wait_for(
        "label.updated",
        lambda e: e.data["label_id"] == TAG_A and e.data["amount"] == 1290,
        timeout=15,
    )
    assert over.data["promotion_id"] is None


async def test_a_shopper_pays_what_the_label_shows_until_it_shows_the_new_price(
    start_app: Callable[..., Any], clock: ManualClock, ap: AccessPointSimulator
) -> None:
    app = await started(start_app, ap)
    await catalogue(app, clock)
    await send(app, clock, "label.bind", {"label_id": TAG_A, "gtin": BREAD})
    await updated(app, TAG_A, 1)

    ap.set_online(TAG_A, False)  # the label is out of radio reach for a while
    await send(app, clock, "catalog.upsert", {"prices": [price(BREAD, 2, 750, clock, -0.1)]})
    await app.prices.current()
    quote = app.prices.quote(BREAD, clock.now())
    assert quote is not None and (quote.amount, quote.version, quote.source) == (650, 1, "label")

    ap.set_online(TAG_A, True)
    await updated(app, TAG_A, 2)
    assert app.labels is not None  # the price book learns right after the commit
    await app.labels.deliverers["ap1"].wait_until(lambda d: d.confirmed == 2, timeout=5)
    quote = app.prices.quote(BREAD, clock.now())
    assert quote is not None and (quote.amount, quote.version, quote.source) == (750, 2, "catalog")


async def test_an_access_point_that_answers_409_is_retried_with_backoff(
    start_app: Callable[..., Any], clock: ManualClock
) -> None:
    # Firmware of 2024-04 to 2025-03 answers 409 "come back later" while it is not running.
    async with AccessPointSimulator(checkin_interval_s=0.05, web_server="esphome") as old_ap:
        old_ap.add_tag(TAG_A)
        app = await started(start_app, old_ap)
        await catalogue(app, clock)
        old_ap.set_running(False)
        await send(app, clock, "label.bind", {"label_id": TAG_A, "gtin": MILK})
        down = await events(app).wait_for(
            "device.offline", lambda e: e.data["device"] == "ap1", timeout=15
        )
        assert down.data["kind"] == "esl_access_point"
        assert "not running" in down.data["reason"]
        old_ap.set_running(True)
        backoff_elapsed(app, clock)
        await updated(app, TAG_A, 1)
        await events(app).wait_for("device.online", lambda e: e.data["device"] == "ap1", timeout=15)


async def test_an_upload_a_paused_access_point_dropped_is_sent_again(
    start_app: Callable[..., Any], clock: ManualClock, ap: AccessPointSimulator
) -> None:
    # Current firmware answers every upload 200, and drops it while it is not running.
    app = await started(start_app, ap)
    await catalogue(app, clock)
    ap.set_running(False)
    await send(app, clock, "label.bind", {"label_id": TAG_A, "gtin": MILK})
    assert app.labels is not None
    deliverer = app.labels.deliverers["ap1"]
    await deliverer.wait_until(lambda d: d.dropped >= 1, timeout=15)
    ap.set_running(True)
    backoff_elapsed(app, clock)
    confirmed = await updated(app, TAG_A, 1)
    assert confirmed.data["attempts"] >= 2
    assert not events(app).of_type("label.failed")


async def test_a_label_that_never_answers_fails_and_keeps_what_it_showed(
    start_app: Callable[..., Any], clock: ManualClock, ap: AccessPointSimulator
) -> None:
    app = await started(start_app, ap, confirm_timeout_s=60)
    await catalogue(app, clock)
    await send(app, clock, "label.bind", {"label_id": TAG_B, "gtin": BREAD})
    await updated(app, TAG_B, 1)
    ap.set_online(TAG_B, False)  # its battery died
    await send(app, clock, "catalog.upsert", {"prices": [price(BREAD, 2, 750, clock, -0.1)]})
    assert app.labels is not None
    deliverer = app.labels.deliverers["ap1"]
    await deliverer.wait_until(lambda d: d.uploads >= 2, timeout=15)
    assert await deliverer.confirm() == 0  # uploaded; the tag never fetches it
    clock.advance(61)
    await deliverer.confirm()
    failed = await events(app).wait_for("label.failed", timeout=5)
    assert (failed.data["label_id"], failed.data["reason"]) == (TAG_B, "not_confirmed")
    assert (failed.data["price_version"], failed.data["shown_price_version"]) == (2, 1)
    quote = app.prices.quote(BREAD, clock.now())  # the shelf still says 6.50: so does the till
    assert quote is not None and (quote.amount, quote.source) == (650, "label")
