"""EAN-13 and QR symbols as whole-pixel masks, made once per GTIN and kept.

zxing-cpp encodes; the bars are drawn here at a whole number of pixels per module, so a
symbol is never resampled (no blur, no uneven bars). The masks are mode "1" (1 = ink) and
carry their quiet zones, so a symbol pasted anywhere on white reads.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np
import zxingcpp
from PIL import Image, ImageDraw

from edge.labels.rendering.fonts import FontSet

EAN13_MODULES = 95
# GS1 quiet zones, in modules; the left one also holds the first digit.
EAN13_QUIET_LEFT, EAN13_QUIET_RIGHT = 11, 7
_EAN13_GUARDS = ((0, 3), (45, 50), (92, 95))  # start, centre, end guard modules
# Modules of white around a QR code in its mask. ISO/IEC 18004 asks for 4, readers need far
# less; 2 lets a 2.9" label carry 2-pixel modules, and the layouts keep more white beyond it.
QR_QUIET = 2


def ean13_of(gtin14: str) -> str | None:
    """The EAN-13 a GTIN-14 is printed as, or None if it has a packaging indicator digit."""
    return gtin14[1:] if gtin14.startswith("0") else None


def ean13_width(module: int) -> int:
    return (EAN13_QUIET_LEFT + EAN13_MODULES + EAN13_QUIET_RIGHT) * module


def ean13_mask(
    ean13: str, module: int, bar_height: int, fonts: FontSet, digit_size: int
) -> Image.Image:
    """Bars with their digits under them, guard bars running down between the digit groups."""
    font = fonts.font(digit_size)
    digit_height = fonts.digit_height(digit_size)
    guard_extra = digit_height // 2 + 1
    mask = Image.new("1", (ean13_width(module), bar_height + digit_height + 2), 0)
    draw = ImageDraw.Draw(mask)
    left = EAN13_QUIET_LEFT * module
    for start, end in _bar_runs(_ean13_modules(ean13)):
        long = any(g0 <= start < g1 for g0, g1 in _EAN13_GUARDS)
        bottom = bar_height + (guard_extra if long else 0) - 1
        draw.rectangle((left + start * module, 0, left + end * module - 1, bottom), fill=1)
    baseline = bar_height + 1 + digit_height
    draw.text((left - 2 * module, baseline), ean13[0], fill=1, font=font, anchor="rs")
    for group, first_module in ((ean13[1:7], 3), (ean13[7:], 50)):
        for i, digit in enumerate(group):
            centre = left + (first_module + 7 * i + 3.5) * module
            draw.text((centre, baseline), digit, fill=1, font=font, anchor="ms")
    return mask


def qr_side(module: int, version: int = 1) -> int:
    """Pixels a QR code of ``version`` takes, quiet zone included (a GTIN-14 makes a version 1:
    14 digits, where level H holds 17)."""
    return (17 + 4 * version + 2 * QR_QUIET) * module


def qr_mask(text: str, max_side: int) -> Image.Image:
    """A QR code with its quiet zone, as many whole pixels a module as fit in ``max_side``.

    zxing-cpp picks the version and error correction (a GTIN-14 makes a version 1 at level H).
    """
    symbol = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode)
    dark = np.asarray(symbol.to_image(scale=1, add_quiet_zones=False)) < 128
    padded = np.pad(dark, QR_QUIET)
    module = max(1, max_side // padded.shape[0])
    modules = Image.fromarray(padded.astype(np.uint8) * 255).convert("1", dither=Image.Dither.NONE)
    side = padded.shape[0] * module
    return modules.resize((side, side), Image.Resampling.NEAREST)


def _ean13_modules(ean13: str) -> list[bool]:
    symbol = zxingcpp.create_barcode(ean13, zxingcpp.BarcodeFormat.EAN13)
    row = np.asarray(symbol.to_image(scale=1, add_quiet_zones=False, add_hrt=False))[0]
    if row.shape[0] != EAN13_MODULES:
        raise ValueError(f"zxing-cpp drew {row.shape[0]} modules for EAN-13 {ean13}")
    return [bool(value < 128) for value in row]


def _bar_runs(modules: list[bool]) -> list[tuple[int, int]]:
    """Each bar as (first module, module after it)."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i, dark in enumerate([*modules, False]):
        if dark and start is None:
            start = i
        elif not dark and start is not None:
            runs.append((start, i))
            start = None
    return runs


K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """The last ``size`` values made, by key (symbols of the GTINs rendered lately)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K, make: Callable[[], V]) -> V:
        value = self._items.get(key)
        if value is None:
            value = self._items[key] = make()
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return value
