"""What a label shows (:class:`LabelContent`) and on which panel (:class:`LabelTemplate`).

A template names a panel size and colour mode; the layout is chosen from its proportions (see
:mod:`edge.labels.rendering.layout`), so a new panel size needs only a new template here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Colours = Literal["bw", "bwr"]
CodeKind = Literal["ean13", "qr", "none"]

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)
BLACK: RGB = (0, 0, 0)
RED: RGB = (255, 0, 0)
# Palette index of each colour in a rendered image; a bw image has the first two only.
WHITE_INDEX, BLACK_INDEX, RED_INDEX = 0, 1, 2
PALETTES: dict[Colours, tuple[RGB, ...]] = {"bw": (WHITE, BLACK), "bwr": (WHITE, BLACK, RED)}

_CURRENCY = re.compile(r"^[A-Z]{3}$")


def gtin_check_digit(body: str) -> int:
    """The GS1 check digit of the digits before it (weights 3, 1, 3… from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


@dataclass(frozen=True, slots=True)
class LabelContent:
    gtin: str
    """GTIN-14 as stored; the barcode shows the EAN-13 (the GTIN without its leading 0)."""
    name: str
    """Chinese product name, possibly long: wrapped, then cut with "…" where it does not fit."""
    name_en: str | None
    price: int
    """Minor units (fen, cents)."""
    currency: str
    """ISO 4217: "CNY" is shown as "¥", any other code as a prefix ("USD 3.50")."""
    unit_price: str | None
    """Already formatted, e.g. "¥2.50/100ml"."""
    old_price: int | None
    """On promotion: the regular price, in minor units, drawn struck through."""
    promotion: str | None
    """Promotion text, e.g. "限时特价", drawn highlighted (red on bwr, inverse on bw)."""
    size: str | None
    """E.g. "500ml"."""
    unit: str | None
    """E.g. "瓶"."""
    price_version: int
    """Printed small ("v3") so staff can tell which price a label shows."""

    def __post_init__(self) -> None:
        if len(self.gtin) != 14 or not self.gtin.isdigit():
            raise ValueError(f"a label's GTIN has 14 digits, not {self.gtin!r}")
        if gtin_check_digit(self.gtin[:-1]) != int(self.gtin[-1]):
            raise ValueError(f"GTIN {self.gtin} has a wrong check digit")
        if self.price < 0 or (self.old_price is not None and self.old_price < 0):
            raise ValueError("a price is never negative")
        if not _CURRENCY.match(self.currency):
            raise ValueError(f"currency {self.currency!r} is not an ISO 4217 code")

    @property
    def on_promotion(self) -> bool:
        return self.old_price is not None or bool(self.promotion)


@dataclass(frozen=True, slots=True)
class LabelTemplate:
    name: str
    """E.g. "2.9-bwr"."""
    width: int
    height: int
    """The label as the shopper reads it, before ``rotate``."""
    colours: Colours
    code: CodeKind
    """EAN-13 of the GTIN, a QR code of the GTIN-14, or no code."""
    dither: bool = False
    """Draw smooth (anti-aliased) and dither to the palette (Floyd-Steinberg); off by default:
    crisp text in exact palette colours reads better on a shelf."""
    rotate: int = 0
    """Degrees clockwise the finished image is turned to match how the panel is mounted."""

    def __post_init__(self) -> None:
        if self.width < 64 or self.height < 64:
            raise ValueError(f"template {self.name}: a label is at least 64x64 pixels")
        if self.rotate not in (0, 90, 180, 270):
            raise ValueError(f"template {self.name}: rotate is 0, 90, 180 or 270")

    @property
    def palette(self) -> tuple[RGB, ...]:
        return PALETTES[self.colours]


def _shipped() -> dict[str, LabelTemplate]:
    sizes = {"2.13": (250, 122), "2.9": (296, 128), "4.2": (400, 300)}
    modes: tuple[Colours, ...] = ("bw", "bwr")
    templates = [
        LabelTemplate(f"{size}-{colours}", width, height, colours, "ean13")
        for size, (width, height) in sizes.items()
        for colours in modes
    ]
    # QR variants for stores whose staff scan with phones (a QR reads at any angle).
    templates += [
        LabelTemplate("2.9-bwr-qr", 296, 128, "bwr", "qr"),
        LabelTemplate("4.2-bwr-qr", 400, 300, "bwr", "qr"),
    ]
    return {template.name: template for template in templates}


TEMPLATES: dict[str, LabelTemplate] = _shipped()
