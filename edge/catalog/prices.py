"""Prices in memory, so that pricing a 500-item cabinet costs no query per item.

The price in force at an instant is the version with the latest ``effective_at`` not after it;
on a tie the higher version wins. Orders record the version they used.
"""

from __future__ import annotations

import asyncio
import bisect
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import Session, select

from edge.db import Database
from edge.db.tables import Price, Product


@dataclass(frozen=True, slots=True)
class Quote:
    gtin: str
    name: str
    version: int
    amount: int
    currency: str
    effective_at: datetime


@dataclass(frozen=True, slots=True)
class _Version:
    effective_at: datetime
    version: int
    amount: int
    currency: str


def _utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their (UTC) zone."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class PriceBook:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._names: dict[str, str] = {}
        self._versions: dict[str, list[_Version]] = {}
        self._keys: dict[str, list[tuple[datetime, int]]] = {}
        self._reload: asyncio.Task[None] | None = None

    def load_sync(self) -> None:
        """At start-up, before the event loop serves anyone."""
        self._apply(*self._db.transact_sync(lambda tx: _read(tx.session)))

    def changed(self) -> None:
        """The catalogue was committed anew: reload (pricing waits for it, see ``current``)."""
        previous = self._reload

        async def reload() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            self._apply(*await self._db.read(_read))

        self._reload = asyncio.ensure_future(reload())

    async def current(self) -> PriceBook:
        """This book once every committed catalogue change is in it."""
        if self._reload is not None:
            await self._reload
        return self

    def quote(self, gtin: str, at: datetime) -> Quote | None:
        keys = self._keys.get(gtin)
        if not keys:
            return None
        # The last (effective_at, version) not after ``at``: a later version effective at the
        # same instant sorts after, so it wins the tie.
        i = bisect.bisect_right(keys, (_utc(at), 1 << 62)) - 1
        if i < 0:
            return None
        v = self._versions[gtin][i]
        return Quote(
            gtin, self._names.get(gtin, gtin), v.version, v.amount, v.currency, v.effective_at
        )

    def name(self, gtin: str) -> str | None:
        return self._names.get(gtin)

    def __len__(self) -> int:
        return len(self._names)

    def _apply(self, names: dict[str, str], versions: dict[str, list[_Version]]) -> None:
        self._names = names
        self._versions = versions
        self._keys = {g: [(v.effective_at, v.version) for v in vs] for g, vs in versions.items()}


def _read(session: Session) -> tuple[dict[str, str], dict[str, list[_Version]]]:
    names = {p.gtin: p.name for p in session.exec(select(Product)).all()}
    versions: dict[str, list[_Version]] = {}
    for row in session.exec(select(Price)).all():
        versions.setdefault(row.gtin, []).append(
            _Version(_utc(row.effective_at), row.version, row.amount, row.currency)
        )
    for listed in versions.values():
        listed.sort(key=lambda v: (v.effective_at, v.version))
    return names, versions
