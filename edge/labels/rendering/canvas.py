"""A label being drawn: its image, the inks it may use, its fonts and the symbol caches.

A crisp template draws straight onto a palette image: text is rasterised without
anti-aliasing and every pixel is a palette index, so nothing a panel cannot show is ever
made. A dithering template draws smooth RGB and dithers it to the palette at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw

from edge.labels.rendering.codes import LruCache, ean13_mask, qr_mask
from edge.labels.rendering.fonts import FontSet, LineMetrics
from edge.labels.rendering.model import (
    BLACK,
    BLACK_INDEX,
    RED,
    RED_INDEX,
    WHITE,
    WHITE_INDEX,
    LabelTemplate,
)

Ink = int | tuple[int, int, int]
_ROTATIONS = {
    90: Image.Transpose.ROTATE_270,  # Pillow turns counter-clockwise
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True, slots=True)
class Box:
    left: int
    top: int
    right: int
    """Exclusive, like ``bottom``."""
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


class Symbols:
    """Barcode and QR masks of recently rendered GTINs: a price change redraws only text."""

    def __init__(self, fonts: FontSet, size: int = 4096) -> None:
        self._fonts = fonts
        self._ean13: LruCache[tuple[str, int, int, int], Image.Image] = LruCache(size)
        self._qr: LruCache[tuple[str, int], Image.Image] = LruCache(size)

    def ean13(self, ean13: str, module: int, bar_height: int, digit_size: int) -> Image.Image:
        return self._ean13.get(
            (ean13, module, bar_height, digit_size),
            lambda: ean13_mask(ean13, module, bar_height, self._fonts, digit_size),
        )

    def qr(self, text: str, max_side: int) -> Image.Image:
        return self._qr.get((text, max_side), lambda: qr_mask(text, max_side))


class Canvas:
    def __init__(self, template: LabelTemplate, fonts: FontSet, symbols: Symbols) -> None:
        self.template = template
        self.fonts = fonts
        self.symbols = symbols
        size = (template.width, template.height)
        self.white: Ink
        self.black: Ink
        self.red: Ink | None
        if template.dither:
            self.image = Image.new("RGB", size, WHITE)
            self.white, self.black, self.red = WHITE, BLACK, RED
        else:
            self.image = Image.new("P", size, WHITE_INDEX)
            self.image.putpalette(_flat(template))
            self.white, self.black, self.red = WHITE_INDEX, BLACK_INDEX, RED_INDEX
        if template.colours == "bw":
            self.red = None
        self.draw = ImageDraw.Draw(self.image)
        if not template.dither:
            self.draw.fontmode = "1"  # no anti-aliasing: only palette colours

    @property
    def accent(self) -> Ink:
        """What promotions are highlighted with: red where the panel has it, else black."""
        return self.black if self.red is None else self.red

    def width(self, text: str, size: int, bold: int = 0) -> float:
        return self.fonts.width(text, size) + 2 * bold if text else 0.0

    def metrics(self, size: int) -> LineMetrics:
        return self.fonts.metrics(size)

    def text(
        self, x: float, y: float, text: str, size: int, ink: Ink, anchor: str = "ls", bold: int = 0
    ) -> None:
        """``text`` anchored at (x, y); ``bold`` thickens strokes by that many pixels a side."""
        if not text:
            return
        if anchor in ("ls", "rs") and self.fonts.by_glyph(size):
            width = self.fonts.width(text, size)
            start = x - width if anchor == "rs" else x
            if float(start).is_integer():
                self._glyphs(int(start), int(y), text, size, ink, bold)
                return
        font = self.fonts.font(size)
        if bold:
            self.draw.text(
                (x, y), text, fill=ink, font=font, anchor=anchor, stroke_width=bold, stroke_fill=ink
            )
        else:
            self.draw.text((x, y), text, fill=ink, font=font, anchor=anchor)

    def _glyphs(self, x: int, y: int, text: str, size: int, ink: Ink, bold: int) -> None:
        """``text`` from cached glyphs, pen at (x, y) on the baseline.

        Each glyph sits where FreeType's hinted metrics put it, the same in every string
        (Pillow, drawing a string whole, may lift a glyph a pixel to the string's tallest).
        """
        mode = self.draw.fontmode
        pen = x
        for char in text:
            glyph = self.fonts.glyph(char, size, bold, mode)
            mask = glyph.mask
            if mask is not None:
                left, top = pen + glyph.left, y + glyph.top
                self.image.paste(ink, (left, top, left + mask.width, top + mask.height), mask)
            pen += glyph.advance

    def fill(self, box: Box, ink: Ink) -> None:
        if box.width > 0 and box.height > 0:
            self.draw.rectangle((box.left, box.top, box.right - 1, box.bottom - 1), fill=ink)

    def stamp(self, mask: Image.Image, left: int, top: int, ink: Ink) -> None:
        """Ink wherever ``mask`` (mode "1") is set."""
        box = (left, top, left + mask.width, top + mask.height)
        self.image.paste(ink, box, mask)

    def finish(self) -> Image.Image:
        image = self.image
        if self.template.dither:
            palette = Image.new("P", (1, 1))
            palette.putpalette(_flat(self.template))
            image = image.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
            image.putpalette(_flat(self.template))
        rotation = _ROTATIONS.get(self.template.rotate)
        return image if rotation is None else image.transpose(rotation)


def _flat(template: LabelTemplate) -> list[int]:
    return [channel for colour in template.palette for channel in colour]
