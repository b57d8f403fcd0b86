"""Promotions through catalog.upsert: the price in force at any instant, what order lines
record, and a lower price a shelf label still shows being the one charged."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from drivers.rfid.epc import encode_sgtin96
from edge.app import EdgeApp
from edge.cabinet.settlement import settle
from edge.catalog.prices import Quote
from edge.clock import ManualClock
from edge.commands.dispatcher import CommandDispatcher
from tests.edge.test_catalog import BREAD, MILK, T0, commands, last_result, price, upsert

__all__ = ["commands"]  # fixture

HOUR = timedelta(hours=1)


def promotion(
    id_: str, version: int, gtin: str, amount: int, starts: int, ends: int, **extra: Any
) -> dict[str, Any]:
    return {
        "id": id_,
        "version": version,
        "gtin": gtin,
        "amount": amount,
        "starts_at": (T0 + starts * HOUR).isoformat(),
        "ends_at": (T0 + ends * HOUR).isoformat(),
        **extra,
    }


CATALOGUE: dict[str, Any] = {
    "products": [{"gtin": MILK, "name": "鲜牛奶 950ml"}, {"gtin": BREAD, "name": "面包"}],
    "prices": [price(MILK, 1, 1290, T0), price(BREAD, 1, 650, T0)],
}


async def test_a_promotion_lowers_the_price_within_its_window_only(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    data = {
        **CATALOGUE,
        "promotions": [
            promotion("P1", 1, MILK, 990, 2, 4, text="限时特价"),
            promotion("P2", 1, MILK, 1090, 3, 6),  # overlaps P1: the cheaper one wins
            promotion("P3", 1, BREAD, 700, 0, 9),  # above the regular price: no promotion
        ],
    }
    await upsert(commands, clock, data)
    assert (await last_result(app))["result"]["promotions_added"] == 3
    book = await app.prices.current()

    def at(hours: float, gtin: str = MILK) -> Quote:
        quote = book.quote(gtin, T0 + hours * HOUR)
        assert quote is not None
        return quote

    assert (at(1).amount, at(1).promotion_id) == (1290, None)
    p1 = at(2)  # starts_at is inside the window
    assert (p1.amount, p1.regular_amount, p1.promotion_id, p1.promotion_text) == (
        990,
        1290,
        "P1",
        "限时特价",
    )
    assert (at(3.5).amount, at(3.5).promotion_id) == (990, "P1")
    assert (at(4).amount, at(4).promotion_id) == (1090, "P2")  # ends_at is outside P1
    assert (at(6).amount, at(6).promotion_id) == (1290, None)
    assert (at(5, BREAD).amount, at(5, BREAD).promotion_id) == (650, None)
    changes = [book.next_change(MILK, T0 + h * HOUR) for h in (0, 2, 3, 4, 6)]
    assert changes == [T0 + 2 * HOUR, T0 + 3 * HOUR, T0 + 4 * HOUR, T0 + 6 * HOUR, None]


async def test_a_later_version_moves_or_cancels_a_promotion(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    await upsert(
        commands, clock, {**CATALOGUE, "promotions": [promotion("P1", 1, MILK, 990, 0, 9)]}
    )
    await upsert(commands, clock, {"promotions": [promotion("P1", 2, MILK, 890, 0, 9)]})
    book = await app.prices.current()
    quote = book.quote(MILK, T0 + HOUR)
    assert quote is not None and (quote.amount, quote.promotion_version) == (890, 2)

    cancel = promotion("P1", 3, MILK, 890, 0, 9, cancelled=True)
    await upsert(commands, clock, {"promotions": [cancel]})
    book = await app.prices.current()
    quote = book.quote(MILK, T0 + HOUR)
    assert quote is not None and (quote.amount, quote.promotion_id) == (1290, None)


async def test_a_stored_promotion_version_is_never_rewritten_and_unknown_products_refused(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    await upsert(
        commands, clock, {**CATALOGUE, "promotions": [promotion("P1", 1, MILK, 990, 0, 9)]}
    )
    again = await upsert(commands, clock, {"promotions": [promotion("P1", 1, MILK, 990, 0, 9)]})
    assert again.ok and (await last_result(app))["result"]["promotions_added"] == 0

    changed = await upsert(commands, clock, {"promotions": [promotion("P1", 1, MILK, 890, 0, 9)]})
    assert not changed.ok
    assert (await last_result(app))["error"]["code"] == "promotion_version_conflict"

    unknown = "06901234567878"
    refused = await upsert(commands, clock, {"promotions": [promotion("P9", 1, unknown, 1, 0, 1)]})
    assert not refused.ok and (await last_result(app))["error"]["code"] == "unknown_product"


async def test_a_promotion_that_ends_before_it_starts_fails_the_schema(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    outcome = await upsert(
        commands, clock, {**CATALOGUE, "promotions": [promotion("P1", 1, MILK, 990, 5, 5)]}
    )
    assert not outcome.ok
    result = await last_result(app)
    assert result["status"] == "rejected" and "end after it starts" in result["error"]["message"]
    book = await app.prices.current()
    assert book.quote(MILK, T0) is None  # nothing of the refused command was kept


async def test_order_lines_record_the_promotion_and_a_label_price_still_shown(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    data = {
        **CATALOGUE,
        "prices": [*CATALOGUE["prices"], price(BREAD, 2, 750, T0 + 2 * HOUR)],
        "promotions": [promotion("P1", 4, MILK, 990, 0, 9)],
    }
    await upsert(commands, clock, data)
    book = await app.prices.current()
    milk, bread = encode_sgtin96(MILK, 1), encode_sgtin96(BREAD, 2)

    # The bread's label still shows version 1 (650) after version 2 (750) took effect.
    shown = book.catalogue_quote(BREAD, T0 + HOUR)
    assert shown is not None and shown.amount == 650
    book.show(BREAD, [shown])
    result = settle([milk, bread], [], book, T0 + 3 * HOUR, "CNY")
    by_gtin = {line.gtin: line for line in result.lines}
    assert by_gtin[MILK].amount == 990
    assert (by_gtin[MILK].regular_amount, by_gtin[MILK].promotion_id) == (1290, "P1")
    assert by_gtin[MILK].promotion_version == 4 and by_gtin[MILK].price_source == "catalog"
    assert (by_gtin[BREAD].amount, by_gtin[BREAD].price_version) == (650, 1)
    assert by_gtin[BREAD].price_source == "label"
    assert result.total == 990 + 650

    # A label showing a higher price than the catalogue's changes nothing.
    higher = book.catalogue_quote(BREAD, T0 + 3 * HOUR)
    assert higher is not None
    book.show(BREAD, [higher])
    quote = book.quote(BREAD, T0 + 3 * HOUR)
    assert quote is not None and (quote.amount, quote.source) == (750, "catalog")
    book.show(BREAD, [])
    assert book.quote(BREAD, T0 + HOUR) == book.catalogue_quote(BREAD, T0 + HOUR)
