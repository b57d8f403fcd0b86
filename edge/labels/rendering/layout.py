"""Where each part of a label goes, by the label's shape.

Strip (up to 160 px tall and at least 1.6 times as wide: 2.13" 250x122, 2.9" 296x128)::

    农夫山泉 饮用天然水 550ml                 name: 20/18/16 px, 1-2 lines, centred
    ────────────────────────────────────     rule
    规格 550ml  单位 瓶 │ [限时特价]  原价 -¥3.50-  promotion row (only on promotion)
    单价 ¥0.36/100ml    │                          details: 12 px
    ║│║║│║│║║│║│║║│    │        ¥ 2.00             price: up to 64 px, bottom-right
    6 921168 509256     │                    v3    EAN-13 (1 px modules) or QR (2 px)

Block (anything else: 4.2" 400x300)::

    农夫山泉 饮用天然水                        name: 32-20 px, 1-2 lines, the English name
    550ml                                     under it, centred in the top third
    ══════════════════════════════════════    rule
    规格 550ml                                details: 18 px, one a line
    单位 瓶                  ¥ 2.00            price: up to 120 px, right
    单价 ¥0.36/100ml
    [限时特价]                                 promotion badge under the details
    ║│║║│║│║║│║│║║│         原价 -¥3.50-       old price under the price
    6 921168 509256                     v3    EAN-13 (2 px modules) or QR (3 px)

The product name is set as large as it fits whole (the English name kept if it fits beside
it), else cut with "…"; the price is set as large as fits its box. Sizes scale with the
panel's pixels, so any panel of either shape gets a layout. Red (bwr) marks promotions only:
the badge and the price; on black and white the badge is inverse. -¥3.50- is struck through.
"""

from __future__ import annotations

from edge.labels.rendering.blocks import (
    badge_height,
    badge_width,
    detail_lines,
    draw_badge,
    draw_ean13,
    draw_lines,
    draw_name,
    draw_old_price,
    draw_price,
    draw_qr,
    draw_version,
    lines_height,
    old_price_width,
)
from edge.labels.rendering.canvas import Box, Canvas
from edge.labels.rendering.codes import ean13_of, ean13_width, qr_side
from edge.labels.rendering.model import LabelContent
from edge.labels.rendering.text import ELLIPSIS

STRIP_MAX_HEIGHT = 160
_BADGE_MIN_CHARS = 3
_ROW_GAP = 6


def draw_label(canvas: Canvas, content: LabelContent) -> None:
    template = canvas.template
    if template.height <= STRIP_MAX_HEIGHT and template.width >= template.height * 1.6:
        _draw_strip(canvas, content)
    else:
        _draw_block(canvas, content)


def _draw_strip(canvas: Canvas, content: LabelContent) -> None:
    width, height = canvas.template.width, canvas.template.height
    margin = 4
    header = Box(margin, 2, width - margin, round(height * 0.32))
    draw_name(canvas, content, header, (20, 18, 16), max_lines=2, en_size=12, smaller_with_en=(14,))
    rule = header.bottom + 2  # a clear gap under descenders (g, y) of a second line
    canvas.fill(Box(0, rule, width, rule + 1), canvas.black)

    body_top = rule + 4
    column = ean13_width(1) + 2
    details = detail_lines(content, combine_size_and_unit=True)
    # Bars need about 36 px; a QR code 2-pixel modules (a phone reads 1-pixel ones badly), for
    # which the details are set smaller if they must.
    code_height = qr_side(module=2) if _code_kind(canvas, content) == "qr" else 36
    for detail_size in (12, 11, 10):
        code_top = body_top + lines_height(canvas, len(details), detail_size) + 3
        if height - code_top >= code_height:
            break
    draw_lines(canvas, details, Box(margin, body_top, column, code_top), detail_size)
    _draw_code(canvas, content, Box(2, code_top, column, height), module=1, digit_size=11)

    version_size = 10
    price_box = Box(column + 6, body_top, width - margin, height - version_size - 3)
    _draw_offer(canvas, content, price_box, promo_size=13, max_price_size=64)
    draw_version(canvas, content, width - 2, height - 1, version_size)


def _draw_block(canvas: Canvas, content: LabelContent) -> None:
    width, height = canvas.template.width, canvas.template.height
    margin = max(6, width // 50)
    scale = height / 300
    header = Box(margin, margin // 2, width - margin, round(height * 0.33))
    name_sizes = tuple(round(s * scale) for s in (32, 28, 24, 20))
    draw_name(canvas, content, header, name_sizes, max_lines=2, en_size=round(16 * scale))
    rule = header.bottom + 2
    canvas.fill(Box(0, rule, width, rule + 2), canvas.black)

    body_top = rule + 2 + margin
    module = max(1, round(2 * scale))
    # A QR code is square: it gets a taller strip than the bars so its modules can be bigger.
    code_height = round(height * (0.27 if canvas.template.code == "qr" else 0.22))
    code_top = height - margin // 2 - code_height
    column = width * 2 // 5
    detail_size = round(18 * scale)
    promo_size = round(20 * scale)
    details = detail_lines(content, combine_size_and_unit=False)
    draw_lines(canvas, details, Box(margin, body_top, column, code_top), detail_size)
    if content.promotion:
        badge_top = body_top + lines_height(canvas, len(details), detail_size) + margin * 2
        if badge_top + badge_height(canvas, promo_size) <= code_top:
            draw_badge(canvas, content.promotion, margin, badge_top, promo_size, column - margin)
    code_box = Box(margin // 2, code_top, width // 2, height - margin // 2)
    _draw_code(canvas, content, code_box, module, round(16 * scale))

    price_box = Box(column + margin, body_top, width - margin, code_top - margin)
    ink = canvas.accent if content.on_promotion else canvas.black
    draw_price(canvas, content.price, content.currency, price_box, round(120 * scale), ink)
    if content.old_price is not None:
        # Under the price, right of the barcode: where the eye lands after the price.
        baseline = code_top + margin + canvas.metrics(promo_size).ascent
        draw_old_price(
            canvas, content.old_price, content.currency, width - margin, baseline, promo_size
        )
    version_size = round(12 * scale)
    draw_version(canvas, content, width - margin // 2, height - margin // 2, version_size)


def _draw_code(
    canvas: Canvas, content: LabelContent, box: Box, module: int, digit_size: int
) -> None:
    kind = _code_kind(canvas, content)
    ean13 = ean13_of(content.gtin)
    if kind == "ean13" and ean13 is not None:
        digits_height = canvas.fonts.digit_height(digit_size) + 2
        bar_height = box.height - digits_height - 1
        draw_ean13(canvas, ean13, box.left, box.bottom - 1, module, bar_height, digit_size)
    elif kind == "qr":
        draw_qr(canvas, content, box)


def _code_kind(canvas: Canvas, content: LabelContent) -> str:
    kind = canvas.template.code
    if kind == "ean13" and ean13_of(content.gtin) is None:
        return "qr"  # a GTIN-14 with a packaging indicator has no EAN-13
    return kind


def _draw_offer(
    canvas: Canvas, content: LabelContent, box: Box, promo_size: int, max_price_size: int
) -> None:
    """The promotion and the struck-through old price at the top, the price below."""
    top = box.top
    if content.on_promotion:
        top = _draw_promotion_rows(canvas, content, box, promo_size)
        top += max(3, promo_size // 3)
    ink = canvas.accent if content.on_promotion else canvas.black
    price_box = Box(box.left, top, box.right, box.bottom)
    draw_price(canvas, content.price, content.currency, price_box, max_price_size, ink)


def _draw_promotion_rows(canvas: Canvas, content: LabelContent, box: Box, size: int) -> int:
    """Badge left and old price right in one row, the old price without its "原价" if that
    makes room; two rows when the badge would still show less than its first characters.
    Returns where the rows end."""
    row_height = badge_height(canvas, size)
    old_width, labelled = 0, True
    badge_min = 0
    if content.promotion:
        shortest = content.promotion[:_BADGE_MIN_CHARS]
        if len(content.promotion) > _BADGE_MIN_CHARS:
            shortest += ELLIPSIS
        badge_min = badge_width(canvas, shortest, size) + _ROW_GAP
    if content.old_price is not None:
        old_width = old_price_width(canvas, content.old_price, content.currency, size)
        if badge_min and badge_min + old_width > box.width:
            labelled = False
            old_width = old_price_width(canvas, content.old_price, content.currency, size, False)
    same_row = badge_min + old_width <= box.width
    labelled = labelled or not same_row  # on a row of its own there is room for "原价"
    top = box.top
    if content.promotion:
        room = box.width - old_width - _ROW_GAP if same_row else box.width
        draw_badge(canvas, content.promotion, box.left, top, size, room)
        if not same_row:
            top += row_height + 2
    if content.old_price is not None:
        baseline = top + 1 + canvas.metrics(size).ascent
        draw_old_price(
            canvas, content.old_price, content.currency, box.right, baseline, size, labelled
        )
    return top + row_height
