"""What a bound label should show: its product and the price a shopper is charged, as content.

The content is what a push carries and what a confirmed label is known to show; its key (a hash
of it and the template) decides whether a label needs a new image at all.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from edge.catalog.prices import Quote
from edge.db.tables import Product
from edge.labels.rendering.model import LabelContent

# "550ml", "1.5 L", "500克", "2千克": the quantity a unit price is computed from.
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ml|毫升|l|升|g|克|kg|千克|公斤)\s*$", re.IGNORECASE)
_BASE = {  # unit -> (amount of the base it is, base shown on the label)
    "ml": (Decimal(1), "ml"),
    "毫升": (Decimal(1), "ml"),
    "l": (Decimal(1000), "ml"),
    "升": (Decimal(1000), "ml"),
    "g": (Decimal(1), "g"),
    "克": (Decimal(1), "g"),
    "kg": (Decimal(1000), "g"),
    "千克": (Decimal(1000), "g"),
    "公斤": (Decimal(1000), "g"),
}


def unit_price(amount: int, currency: str, size: str | None) -> str | None:
    """The price per 100 ml / 100 g (per litre / kilogram from 1 L or 1 kg), as labels in
    Chinese stores print it; None when the size is not a volume or a weight."""
    match = _SIZE.match(size or "")
    if match is None:
        return None
    factor, base = _BASE[match.group(2).lower()]
    quantity = Decimal(match.group(1)) * factor
    if quantity <= 0:
        return None
    per, shown = (Decimal(1000), "L" if base == "ml" else "kg")
    if quantity < 1000:
        per, shown = Decimal(100), f"100{base}"
    minor = (Decimal(amount) * per / quantity).quantize(Decimal(1))
    symbol = "¥" if currency == "CNY" else f"{currency} "
    return f"{symbol}{minor / 100:.2f}/{shown}"


def label_content(product: Product, quote: Quote) -> LabelContent:
    """The content for a product at the price it is charged at (a promotion shows the regular
    price struck through)."""
    promoted = quote.promotion_id is not None and quote.amount < quote.regular_amount
    return LabelContent(
        gtin=product.gtin,
        name=product.name,
        name_en=product.name_en,
        price=quote.amount,
        currency=quote.currency,
        unit_price=unit_price(quote.amount, quote.currency, product.size),
        old_price=quote.regular_amount if promoted else None,
        promotion=(quote.promotion_text or "特价") if promoted else None,
        size=product.size,
        unit=product.unit,
        price_version=quote.version,
    )


def content_record(content: LabelContent, quote: Quote, template: str) -> dict[str, Any]:
    """The content as stored with a push: enough to render it again, and the price it shows."""
    return {
        **asdict(content),
        "template": template,
        "promotion_id": quote.promotion_id,
        "promotion_version": quote.promotion_version,
        "regular_amount": quote.regular_amount,
        "effective_at": quote.effective_at.astimezone(UTC).isoformat(),
    }


def content_from_record(record: dict[str, Any]) -> LabelContent:
    fields = LabelContent.__dataclass_fields__
    return LabelContent(**{k: v for k, v in record.items() if k in fields})


def content_key(record: dict[str, Any]) -> str:
    """Identifies what the label shows: the same key, the same image."""
    shown = {k: v for k, v in record.items() if k != "effective_at"}
    canonical = json.dumps(shown, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def shown_quote(record: dict[str, Any]) -> Quote:
    """The price a label confirmed it shows, as the price book takes it."""
    return Quote(
        gtin=str(record["gtin"]),
        name=str(record["name"]),
        version=int(record["price_version"]),
        amount=int(record["price"]),
        currency=str(record["currency"]),
        effective_at=datetime.fromisoformat(str(record["effective_at"])),
        regular_amount=int(record["regular_amount"]),
        promotion_id=record.get("promotion_id"),
        promotion_version=record.get("promotion_version"),
    )
