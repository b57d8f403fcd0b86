"""What a closed door means in money: the diff of two inventories, priced.

Pure and in memory, so that door-close to committed order costs milliseconds: the EPCs are
decoded once (cached) and prices come from the in-memory price book.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from drivers.rfid.epc import decode_epc
from edge.catalog.prices import PriceBook, Quote


@dataclass(frozen=True, slots=True)
class Line:
    epc: str
    gtin: str
    name: str
    price_version: int
    amount: int
    regular_amount: int | None = None
    """The price version's amount, where a promotion or a label's lower price applied."""
    promotion_id: str | None = None
    promotion_version: int | None = None
    price_source: str = "catalog"


@dataclass(frozen=True, slots=True)
class Unpriced:
    epc: str
    gtin: str | None
    reason: str
    """``undecodable`` (no GTIN in the EPC), ``no_price`` (none in force), ``currency``."""


@dataclass(frozen=True)
class Settlement:
    taken: tuple[str, ...]
    """Present before the door opened, gone after it closed."""
    added: tuple[str, ...]
    """Present after, not before: never stocked here (a purchase session charges nothing)."""
    lines: tuple[Line, ...]
    unpriced: tuple[Unpriced, ...]
    total: int
    currency: str

    @property
    def complete(self) -> bool:
        """Every taken item has a price: the order can be charged without a guess."""
        return not self.unpriced


def settle(
    before: Collection[str],
    after: Collection[str],
    prices: PriceBook,
    at: datetime,
    currency: str,
) -> Settlement:
    before_set = before if isinstance(before, set | frozenset) else set(before)
    after_set = after if isinstance(after, set | frozenset) else set(after)
    taken = sorted(before_set.difference(after_set))
    added = sorted(after_set.difference(before_set))
    lines: list[Line] = []
    unpriced: list[Unpriced] = []
    quotes: dict[str, Quote | None] = {}
    for epc in taken:
        gtin = decode_epc(epc).gtin
        if gtin is None:
            unpriced.append(Unpriced(epc, None, "undecodable"))
            continue
        if gtin not in quotes:
            quotes[gtin] = prices.quote(gtin, at)
        quote = quotes[gtin]
        if quote is None:
            unpriced.append(Unpriced(epc, gtin, "no_price"))
        elif quote.currency != currency:
            unpriced.append(Unpriced(epc, gtin, "currency"))
        else:
            lines.append(_line(epc, quote))
    return Settlement(
        tuple(taken),
        tuple(added),
        tuple(lines),
        tuple(unpriced),
        sum(line.amount for line in lines),
        currency,
    )


def _line(epc: str, quote: Quote) -> Line:
    lowered = quote.amount != quote.regular_amount
    return Line(
        epc,
        quote.gtin,
        quote.name,
        quote.version,
        quote.amount,
        regular_amount=quote.regular_amount if lowered else None,
        promotion_id=quote.promotion_id,
        promotion_version=quote.promotion_version,
        price_source=quote.source,
    )
