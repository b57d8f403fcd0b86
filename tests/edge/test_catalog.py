"""catalog.upsert through the signed-command path, and the price in force at an instant."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

from edge.app import EdgeApp
from edge.catalog.commands import gtin14, register_catalog_commands
from edge.clock import ManualClock
from edge.commands.dispatcher import CommandDispatcher, CommandOutcome
from edge.commands.envelope import sign_command
from edge.commands.keys import private_key_from_seed, public_key_b64
from edge.commands.verify import CommandVerifier
from edge.config.sync import CommandsConfig
from edge.db.tables import OutboxEvent, Price

KEY = private_key_from_seed(b"\x09" * 32)
MILK = "06901234567892"
BREAD = "06901234567885"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def commands(app: EdgeApp, clock: ManualClock) -> CommandDispatcher:
    config = CommandsConfig.model_validate(
        {"trusted_keys": [{"id": "cloud", "public_key": public_key_b64(KEY)}]}
    )
    dispatcher = CommandDispatcher(CommandVerifier(config, clock), app.db, clock)
    register_catalog_commands(dispatcher, clock)
    return dispatcher


async def upsert(
    commands: CommandDispatcher, clock: ManualClock, data: dict[str, Any]
) -> CommandOutcome:
    envelope = sign_command(KEY, "catalog.upsert", data, ttl_s=300, issued_at=clock.now())
    return await commands.handle(json.dumps(envelope).encode())


def price(gtin: str, version: int, amount: int, at: datetime) -> dict[str, Any]:
    return {"gtin": gtin, "version": version, "amount": amount, "effective_at": at.isoformat()}


async def last_result(app: EdgeApp) -> dict[str, Any]:
    rows = await app.db.read(
        lambda s: s.exec(select(OutboxEvent).where(OutboxEvent.type == "command.result")).all()
    )
    return dict(rows[-1].data)


async def test_prices_in_force_follow_effective_time_and_version(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    data = {
        "products": [
            {"gtin": MILK, "name": "鲜牛奶 950ml"},
            {"gtin": "6901234567885", "name": "面包"},
        ],
        "prices": [
            price(MILK, 1, 1290, T0),
            price(MILK, 2, 1190, T0 + timedelta(hours=2)),
            price(MILK, 3, 1090, T0 + timedelta(hours=2)),  # same instant: the higher version
            price(BREAD, 1, 650, T0 + timedelta(hours=1)),
        ],
    }
    await upsert(commands, clock, data)
    assert (await last_result(app))["status"] == "ok"
    book = await app.prices.current()
    assert book.quote(MILK, T0 - timedelta(seconds=1)) is None  # nothing in force yet
    first = book.quote(MILK, T0 + timedelta(hours=1))
    assert first is not None and (first.version, first.amount) == (1, 1290)
    later = book.quote(MILK, T0 + timedelta(hours=2))
    assert later is not None and (later.version, later.amount, later.name) == (
        3,
        1090,
        "鲜牛奶 950ml",
    )
    bread = book.quote(BREAD, T0 + timedelta(hours=3))  # GTIN-13 stored as GTIN-14
    assert bread is not None and bread.amount == 650


async def test_the_same_upsert_twice_changes_nothing_the_second_time(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    data = {"products": [{"gtin": MILK, "name": "牛奶"}], "prices": [price(MILK, 1, 990, T0)]}
    await upsert(commands, clock, data)
    await upsert(commands, clock, data)
    results = await app.db.read(
        lambda s: s.exec(select(OutboxEvent).where(OutboxEvent.type == "command.result")).all()
    )
    assert [r.data["result"] for r in results] == [
        {"products_changed": 1, "prices_added": 1, "promotions_added": 0},
        {"products_changed": 0, "prices_added": 0, "promotions_added": 0},
    ]
    updated = await app.db.read(
        lambda s: s.exec(select(OutboxEvent).where(OutboxEvent.type == "catalog.updated")).all()
    )
    assert len(updated) == 1


async def test_a_stored_price_version_is_never_rewritten(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    await upsert(
        commands,
        clock,
        {"products": [{"gtin": MILK, "name": "牛奶"}], "prices": [price(MILK, 1, 990, T0)]},
    )
    await upsert(commands, clock, {"prices": [price(MILK, 1, 10, T0)]})
    result = await last_result(app)
    assert result["status"] == "failed"
    assert result["error"]["code"] == "price_version_conflict"
    rows = await app.db.read(lambda s: s.exec(select(Price)).all())
    assert [(p.version, p.amount) for p in rows] == [(1, 990)]


async def test_a_price_for_an_unknown_product_is_refused_and_nothing_is_kept(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    await upsert(
        commands,
        clock,
        {"products": [{"gtin": MILK, "name": "牛奶"}], "prices": [price(BREAD, 1, 650, T0)]},
    )
    result = await last_result(app)
    assert result["error"]["code"] == "unknown_product"
    book = await app.prices.current()
    assert len(book) == 0  # the product in the same command was rolled back too


async def test_a_gtin_with_a_wrong_check_digit_fails_the_schema(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    await upsert(commands, clock, {"products": [{"gtin": "06901234567893", "name": "x"}]})
    result = await last_result(app)
    assert result["status"] == "rejected"
    assert result["error"]["code"] == "invalid_data"


def test_gtin14_normalises_every_length() -> None:
    assert gtin14("96385074") == "00000096385074"  # GTIN-8
    assert gtin14("036000291452") == "00036000291452"  # UPC-A
    assert gtin14("4006381333931") == "04006381333931"  # EAN-13
    with pytest.raises(ValueError, match="check digit"):
        gtin14("4006381333932")
    with pytest.raises(ValueError, match="digits"):
        gtin14("12345")
