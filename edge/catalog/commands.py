"""``catalog.upsert``: products and price versions from upstream, applied in one transaction.

A price version, once stored, never changes: orders record the version they were priced at, so
the same version arriving with another amount is refused rather than rewriting history.
Applying the same command twice leaves the catalogue as applying it once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any

from pydantic import AwareDatetime, Field, field_validator, model_validator

from edge.clock import Clock, as_utc
from edge.commands.dispatcher import CommandDispatcher
from edge.commands.errors import CommandFailed
from edge.commands.schema import CommandData
from edge.commands.verify import VerifiedCommand
from edge.db import Transaction
from edge.db.tables import Price, Product, Promotion

MAX_ITEMS = 20_000


def gtin14(value: str) -> str:
    """A GTIN-8/12/13/14 as GTIN-14, with its check digit verified."""
    digits = value.strip()
    if not digits.isdigit() or len(digits) not in (8, 12, 13, 14):
        raise ValueError("a GTIN has 8, 12, 13 or 14 digits")
    digits = digits.zfill(14)
    body = [int(d) for d in digits[:-1]]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(body))
    if (10 - total % 10) % 10 != int(digits[-1]):
        raise ValueError(f"GTIN {value} has a wrong check digit")
    return digits


class ProductIn(CommandData):
    gtin: str
    name: str = Field(min_length=1, max_length=200)
    name_en: str | None = Field(default=None, max_length=200)
    unit: str | None = Field(default=None, max_length=32)
    size: str | None = Field(default=None, max_length=64)

    _gtin = field_validator("gtin")(gtin14)


class PriceIn(CommandData):
    gtin: str
    version: int = Field(ge=1)
    amount: int = Field(ge=0, le=100_000_000)
    """Minor units (fen, cents)."""
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    effective_at: AwareDatetime

    _gtin = field_validator("gtin")(gtin14)


class PromotionIn(CommandData):
    id: str = Field(min_length=1, max_length=64)
    version: int = Field(ge=1)
    """A later version of the same promotion replaces it (a changed window, a cancellation)."""
    gtin: str
    amount: int = Field(ge=0, le=100_000_000)
    """The promotional price, in minor units; a promotion above the regular price is ignored."""
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    text: str | None = Field(default=None, max_length=16)
    """What the shelf label says, e.g. 限时特价."""
    cancelled: bool = False

    _gtin = field_validator("gtin")(gtin14)

    @model_validator(mode="after")
    def _window(self) -> PromotionIn:
        if self.ends_at <= self.starts_at:
            raise ValueError("a promotion must end after it starts")
        return self


class CatalogUpsert(CommandData):
    products: list[ProductIn] = Field(default_factory=list, max_length=MAX_ITEMS)
    prices: list[PriceIn] = Field(default_factory=list, max_length=MAX_ITEMS)
    promotions: list[PromotionIn] = Field(default_factory=list, max_length=MAX_ITEMS)


def register_catalog_commands(dispatcher: CommandDispatcher, clock: Clock) -> None:
    dispatcher.register("catalog.upsert", CatalogUpsert, partial(apply_upsert, clock))


def apply_upsert(
    clock: Clock, tx: Transaction, data: CatalogUpsert, command: VerifiedCommand
) -> dict[str, Any]:
    s = tx.session
    moment = clock.now()
    products_changed = 0
    for item in data.products:
        row = s.get(Product, item.gtin)
        values = item.model_dump(exclude={"gtin"})
        if row is not None and all(getattr(row, k) == v for k, v in values.items()):
            continue
        row = row or Product(gtin=item.gtin, name=item.name, updated_at=moment)
        for key, value in values.items():
            setattr(row, key, value)
        row.updated_at = moment
        s.add(row)
        products_changed += 1
    s.flush()
    prices_added = 0
    for price in data.prices:
        effective = price.effective_at.astimezone(UTC)
        existing = s.get(Price, (price.gtin, price.version))
        if existing is not None:
            same = (existing.amount, existing.currency, as_utc(existing.effective_at)) == (
                price.amount,
                price.currency,
                effective,
            )
            if not same:
                raise CommandFailed(
                    "price_version_conflict",
                    f"price version {price.version} of {price.gtin} already exists with "
                    "other values; publish a new version instead",
                )
            continue
        if s.get(Product, price.gtin) is None:
            raise CommandFailed(
                "unknown_product", f"price for {price.gtin}, which is not in the catalogue"
            )
        s.add(
            Price(
                gtin=price.gtin,
                version=price.version,
                amount=price.amount,
                currency=price.currency,
                effective_at=effective,
                updated_at=moment,
            )
        )
        prices_added += 1
    promotions_added = sum(_add_promotion(tx, promotion, moment) for promotion in data.promotions)
    result = {
        "products_changed": products_changed,
        "prices_added": prices_added,
        "promotions_added": promotions_added,
    }
    if products_changed or prices_added or promotions_added:
        tx.emit("catalog.updated", {"command_id": command.id, **result})
    return result


def _add_promotion(tx: Transaction, promotion: PromotionIn, moment: datetime) -> bool:
    """Store one promotion version; False if it is already stored with the same values."""
    s = tx.session
    row = Promotion(
        id=promotion.id,
        version=promotion.version,
        gtin=promotion.gtin,
        amount=promotion.amount,
        currency=promotion.currency,
        starts_at=promotion.starts_at.astimezone(UTC),
        ends_at=promotion.ends_at.astimezone(UTC),
        text=promotion.text,
        cancelled=promotion.cancelled,
        updated_at=moment,
    )
    existing = s.get(Promotion, (promotion.id, promotion.version))
    if existing is not None:
        if _promotion_terms(existing) != _promotion_terms(row):
            raise CommandFailed(
                "promotion_version_conflict",
                f"version {promotion.version} of promotion {promotion.id} already exists with "
                "other values; publish a new version instead",
            )
        return False
    if s.get(Product, promotion.gtin) is None:
        raise CommandFailed(
            "unknown_product",
            f"promotion {promotion.id} for {promotion.gtin}, which is not in the catalogue",
        )
    s.add(row)
    s.flush()
    return True


def _promotion_terms(row: Promotion) -> tuple[object, ...]:
    """What a promotion version promises: stored once, never rewritten."""
    return (
        row.gtin,
        row.amount,
        row.currency,
        as_utc(row.starts_at),
        as_utc(row.ends_at),
        row.text,
        row.cancelled,
    )
