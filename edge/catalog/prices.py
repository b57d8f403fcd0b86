"""Prices in memory, so that pricing a 500-item cabinet costs no query per item.

The price in force at an instant is the version with the latest ``effective_at`` not after it
(on a tie the higher version wins), lowered by the cheapest promotion whose window holds the
instant. A shelf label may still show an older, lower price while its update travels to it:
the shopper is then charged what the label showed (``source == "label"``), never more. Orders
record the version, and promotion, they used.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlmodel import Session, select

from edge.clock import as_utc
from edge.db import Database
from edge.db.tables import Price, Product, Promotion


@dataclass(frozen=True, slots=True)
class Quote:
    gtin: str
    name: str
    version: int
    amount: int
    """What is charged."""
    currency: str
    effective_at: datetime
    regular_amount: int
    """The price version's own amount (above ``amount`` under a promotion)."""
    promotion_id: str | None = None
    promotion_version: int | None = None
    promotion_text: str | None = None
    source: str = "catalog"
    """``catalog``, or ``label`` when a label still showed a lower price than the catalogue's."""


@dataclass(frozen=True, slots=True)
class _Version:
    effective_at: datetime
    version: int
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class _Promotion:
    id: str
    version: int
    amount: int
    currency: str
    starts_at: datetime
    ends_at: datetime
    text: str | None


class PriceBook:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._names: dict[str, str] = {}
        self._versions: dict[str, list[_Version]] = {}
        self._keys: dict[str, list[tuple[datetime, int]]] = {}
        self._promotions: dict[str, list[_Promotion]] = {}
        self._shown: dict[str, Quote] = {}
        self._reload: asyncio.Task[None] | None = None

    def load_sync(self) -> None:
        """At start-up, before the event loop serves anyone."""
        self._apply(self._db.transact_sync(lambda tx: _read(tx.session)))

    def changed(self) -> None:
        """The catalogue was committed anew: reload (pricing waits for it, see ``current``)."""
        previous = self._reload

        async def reload() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            self._apply(await self._db.read(_read))

        self._reload = asyncio.ensure_future(reload())

    async def current(self) -> PriceBook:
        """This book once every committed catalogue change is in it."""
        if self._reload is not None:
            await self._reload
        return self

    def catalogue_quote(self, gtin: str, at: datetime) -> Quote | None:
        """The catalogue's price at ``at``: the version in force, under its best promotion."""
        keys = self._keys.get(gtin)
        if not keys:
            return None
        # The last (effective_at, version) not after ``at``: a later version effective at the
        # same instant sorts after, so it wins the tie.
        at = as_utc(at)
        i = bisect.bisect_right(keys, (at, 1 << 62)) - 1
        if i < 0:
            return None
        v = self._versions[gtin][i]
        quote = Quote(
            gtin,
            self._names.get(gtin, gtin),
            v.version,
            v.amount,
            v.currency,
            v.effective_at,
            regular_amount=v.amount,
        )
        best = min(
            (
                p
                for p in self._promotions.get(gtin, ())
                if p.starts_at <= at < p.ends_at and p.currency == v.currency
            ),
            key=lambda p: (p.amount, p.id),
            default=None,
        )
        if best is not None and best.amount < v.amount:  # a "promotion" above the price is none
            quote = replace(
                quote,
                amount=best.amount,
                promotion_id=best.id,
                promotion_version=best.version,
                promotion_text=best.text,
            )
        return quote

    def quote(self, gtin: str, at: datetime) -> Quote | None:
        """What a shopper is charged: the catalogue's price, or the lower one a label showed."""
        quote = self.catalogue_quote(gtin, at)
        shown = self._shown.get(gtin)
        if (
            quote is not None
            and shown is not None
            and shown.currency == quote.currency
            and shown.amount < quote.amount
        ):
            return replace(shown, name=quote.name, source="label")
        return quote

    def show(self, gtin: str, shown: Iterable[Quote]) -> None:
        """The prices the product's shelf labels show now (the label service keeps this)."""
        lowest = min(shown, key=lambda q: q.amount, default=None)
        if lowest is None:
            self._shown.pop(gtin, None)
        else:
            self._shown[gtin] = lowest

    def shown_gtins(self) -> list[str]:
        return list(self._shown)

    def next_change(self, gtin: str, after: datetime) -> datetime | None:
        """The first instant after ``after`` at which the catalogue's price of ``gtin`` may
        change (a version taking effect, a promotion starting or ending)."""
        after = as_utc(after)
        instants = [v.effective_at for v in self._versions.get(gtin, ())]
        for p in self._promotions.get(gtin, ()):
            instants += [p.starts_at, p.ends_at]
        return min((t for t in instants if t > after), default=None)

    def gtins(self) -> list[str]:
        return list(self._names)

    def name(self, gtin: str) -> str | None:
        return self._names.get(gtin)

    def __len__(self) -> int:
        return len(self._names)

    def _apply(self, catalogue: _Catalogue) -> None:
        self._names, self._versions, self._promotions = catalogue
        self._keys = {
            g: [(v.effective_at, v.version) for v in vs] for g, vs in self._versions.items()
        }


_Catalogue = tuple[dict[str, str], dict[str, list[_Version]], dict[str, list[_Promotion]]]


def _read(session: Session) -> _Catalogue:
    names = {p.gtin: p.name for p in session.exec(select(Product)).all()}
    versions: dict[str, list[_Version]] = {}
    for price in session.exec(select(Price)).all():
        versions.setdefault(price.gtin, []).append(
            _Version(as_utc(price.effective_at), price.version, price.amount, price.currency)
        )
    for listed in versions.values():
        listed.sort(key=lambda v: (v.effective_at, v.version))
    latest: dict[str, Promotion] = {}
    for row in session.exec(select(Promotion)).all():
        if row.id not in latest or row.version > latest[row.id].version:
            latest[row.id] = row
    promotions: dict[str, list[_Promotion]] = {}
    for row in latest.values():
        if not row.cancelled:
            promotions.setdefault(row.gtin, []).append(
                _Promotion(
                    row.id,
                    row.version,
                    row.amount,
                    row.currency,
                    as_utc(row.starts_at),
                    as_utc(row.ends_at),
                    row.text,
                )
            )
    return names, versions, promotions
