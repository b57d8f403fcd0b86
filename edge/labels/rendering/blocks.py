"""The parts every layout is made of: name, price, promotion, details, code and version.

Each part draws itself inside a box it is given and never outside it: text that does not
fit is set smaller (prices) or cut with "…" (names, details), never clipped or overlapped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edge.labels.rendering.canvas import Box, Canvas, Ink
from edge.labels.rendering.model import LabelContent
from edge.labels.rendering.text import ELLIPSIS, PriceParts, ellipsize, price_parts, wrap

OLD_PRICE_LABEL = "原价"
SIZE_LABEL = "规格"
UNIT_LABEL = "单位"
UNIT_PRICE_LABEL = "单价"


@dataclass(frozen=True, slots=True)
class _NameFit:
    size: int
    lines: tuple[str, ...]
    show_en: bool


def _line_height(canvas: Canvas, size: int) -> int:
    metrics = canvas.metrics(size)
    return metrics.ascent + metrics.descent


def _gap(size: int) -> int:
    return max(2, size // 6)


def _block_height(canvas: Canvas, size: int, lines: int) -> int:
    return lines * _line_height(canvas, size) + (lines - 1) * _gap(size)


def _measure(canvas: Canvas, size: int) -> Callable[[str], float]:
    return lambda text: canvas.width(text, size)


def draw_name(
    canvas: Canvas,
    content: LabelContent,
    box: Box,
    sizes: Sequence[int],
    max_lines: int,
    en_size: int,
    smaller_with_en: Sequence[int] = (),
) -> None:
    """The product name as large as it fits whole in the box, the English name under it,
    centred in the box's height.

    The English name is kept if the name fits whole beside it at one of ``sizes`` or, smaller
    still, ``smaller_with_en``; a name that fits no size whole is set at the smallest of
    ``sizes`` and cut with "…".
    """
    fit = _fit_name(canvas, content, box, sizes, max_lines, en_size, smaller_with_en)
    height = _block_height(canvas, fit.size, len(fit.lines))
    if fit.show_en:
        height += _gap(en_size) + _line_height(canvas, en_size)
    y = box.top + (box.height - height) // 2  # centred: the header never looks half empty
    for line in fit.lines:
        ascent = canvas.metrics(fit.size).ascent
        canvas.text(box.left, y + ascent, line, fit.size, canvas.black)
        y += _line_height(canvas, fit.size) + _gap(fit.size)
    if fit.show_en and content.name_en:
        en = ellipsize(one_line(content.name_en), _measure(canvas, en_size), box.width)
        canvas.text(box.left, y + canvas.metrics(en_size).ascent, en, en_size, canvas.black)


def _fit_name(
    canvas: Canvas,
    content: LabelContent,
    box: Box,
    sizes: Sequence[int],
    max_lines: int,
    en_size: int,
    smaller_with_en: Sequence[int],
) -> _NameFit:
    en_height = _line_height(canvas, en_size) + _gap(en_size) if content.name_en else 0
    passes = (True, False) if content.name_en else (False,)
    for with_en in passes:
        room = box.height - (en_height if with_en else 0)
        for size in (*sizes, *smaller_with_en) if with_en else sizes:
            for lines in range(1, max_lines + 1):
                if _block_height(canvas, size, lines) > room:
                    break
                wrapped = wrap(content.name, _measure(canvas, size), box.width, lines)
                if not wrapped.cut:
                    return _NameFit(size, wrapped.lines, with_en)
    size = sizes[-1]
    lines = max(
        1, min(max_lines, (box.height + _gap(size)) // (_line_height(canvas, size) + _gap(size)))
    )
    wrapped = wrap(content.name, _measure(canvas, size), box.width, lines)
    return _NameFit(size, wrapped.lines, False)


@dataclass(frozen=True, slots=True)
class _PriceFit:
    major_size: int
    symbol_size: int
    minor_size: int
    bold: int
    width: int


def _price_fit(canvas: Canvas, parts: PriceParts, box: Box, max_size: int) -> _PriceFit:
    size = max_size
    while True:
        fit = _price_at(canvas, parts, size)
        digits_height = canvas.fonts.digit_height(size) + fit.bold
        if (fit.width <= box.width and digits_height <= box.height) or size <= 12:
            return fit
        size -= 2


def _price_at(canvas: Canvas, parts: PriceParts, size: int) -> _PriceFit:
    bold = round(size / 28)  # 2 px a side at 56 px: a heavy price from a one-weight font
    symbol_size = max(10, round(size * (0.3 if parts.symbol_is_code else 0.42)))
    minor_size = max(10, round(size * 0.55))
    width = (
        canvas.width(parts.symbol, symbol_size)
        + _symbol_gap(size)
        + canvas.width(parts.major, size, bold)
        + canvas.width(parts.minor, minor_size, _minor_bold(bold))
    )
    return _PriceFit(size, symbol_size, minor_size, bold, int(width + 0.999))


def _minor_bold(bold: int) -> int:
    return max(1, bold - 1) if bold else 0


def _symbol_gap(size: int) -> int:
    return max(1, size // 16)


def draw_price(
    canvas: Canvas, amount: int, currency: str, box: Box, max_size: int, ink: Ink
) -> None:
    """The price right-aligned on the box's bottom edge (its baseline), as large as fits.

    The whole units are the largest and heaviest, the currency and the decimals smaller, all
    on one baseline: "¥" "12" ".50".
    """
    parts = price_parts(amount, currency)
    fit = _price_fit(canvas, parts, box, max_size)
    baseline = box.bottom - fit.bold
    x = box.right
    minor_bold = _minor_bold(fit.bold)
    canvas.text(x - minor_bold, baseline, parts.minor, fit.minor_size, ink, "rs", minor_bold)
    x -= int(canvas.width(parts.minor, fit.minor_size, minor_bold))
    canvas.text(x - fit.bold, baseline, parts.major, fit.major_size, ink, "rs", fit.bold)
    x -= int(canvas.width(parts.major, fit.major_size, fit.bold)) + _symbol_gap(fit.major_size)
    canvas.text(x, baseline, parts.symbol, fit.symbol_size, ink, "rs")


def _badge_pad(size: int) -> int:
    return max(2, size // 4)


def badge_width(canvas: Canvas, text: str, size: int) -> int:
    return int(canvas.width(text, size)) + 2 * _badge_pad(size)


def draw_badge(canvas: Canvas, text: str, left: int, top: int, size: int, max_width: int) -> int:
    """``text`` in white on a block of the accent colour, cut with "…" to ``max_width``;
    returns the badge's width (0: no room even for one character)."""
    pad = _badge_pad(size)
    text = ellipsize(one_line(text), _measure(canvas, size), max_width - 2 * pad)
    if text == ELLIPSIS:
        return 0
    width = badge_width(canvas, text, size)
    metrics = canvas.metrics(size)
    height = metrics.ascent + metrics.descent + 2
    canvas.fill(Box(left, top, left + width, top + height), canvas.accent)
    canvas.text(left + pad, top + 1 + metrics.ascent, text, size, canvas.white)
    return width


def badge_height(canvas: Canvas, size: int) -> int:
    return _line_height(canvas, size) + 2


def draw_old_price(
    canvas: Canvas,
    amount: int,
    currency: str,
    right: int,
    baseline: int,
    size: int,
    labelled: bool = True,
) -> None:
    """Right-aligned "原价 ¥3.50" (or just "¥3.50"), the amount struck through."""
    amount_text = price_parts(amount, currency).plain()
    amount_width = int(canvas.width(amount_text, size)) + 1
    canvas.text(right, baseline, amount_text, size, canvas.black, "rs")
    strike_y = baseline - canvas.fonts.digit_height(size) // 2
    thickness = 2 if size >= 20 else 1
    canvas.fill(
        Box(right - amount_width - 1, strike_y, right + 1, strike_y + thickness), canvas.black
    )
    if labelled:
        label_right = right - amount_width - _label_gap(size)
        canvas.text(label_right, baseline, OLD_PRICE_LABEL, size, canvas.black, "rs")


def old_price_width(
    canvas: Canvas, amount: int, currency: str, size: int, labelled: bool = True
) -> int:
    width = canvas.width(price_parts(amount, currency).plain(), size) + 2
    if labelled:
        width += canvas.width(OLD_PRICE_LABEL, size) + _label_gap(size)
    return int(width) + 1


def _label_gap(size: int) -> int:
    return max(2, size // 4)


def one_line(text: str) -> str:
    """``text`` with every run of white space (new lines included) made one space."""
    return " ".join(text.split())


def detail_lines(content: LabelContent, combine_size_and_unit: bool) -> list[str]:
    """规格, 单位 and 单价 as lines of text (size and unit on one line on small labels)."""
    facts = []
    if content.size:
        facts.append(f"{SIZE_LABEL} {one_line(content.size)}")
    if content.unit:
        facts.append(f"{UNIT_LABEL} {one_line(content.unit)}")
    lines = ["  ".join(facts)] if combine_size_and_unit and facts else facts
    if content.unit_price:
        lines.append(f"{UNIT_PRICE_LABEL} {one_line(content.unit_price)}")
    return lines


def draw_lines(canvas: Canvas, lines: Sequence[str], box: Box, size: int) -> None:
    """One line of text each, top down, cut with "…" where too long; lines that would fall
    below the box are left out."""
    y = box.top
    step = _line_height(canvas, size) + _gap(size)
    for line in lines:
        if y + _line_height(canvas, size) > box.bottom:
            return
        text = ellipsize(line, _measure(canvas, size), box.width)
        canvas.text(box.left, y + canvas.metrics(size).ascent, text, size, canvas.black)
        y += step


def lines_height(canvas: Canvas, count: int, size: int) -> int:
    return _block_height(canvas, size, count) if count else 0


def draw_ean13(
    canvas: Canvas,
    ean13: str,
    left: int,
    bottom: int,
    module: int,
    bar_height: int,
    digit_size: int,
) -> None:
    """The EAN-13 with its quiet zones, its left edge (quiet zone included) at ``left``."""
    mask = canvas.symbols.ean13(ean13, module, bar_height, digit_size)
    canvas.stamp(mask, left, bottom - mask.height, canvas.black)


def draw_qr(canvas: Canvas, content: LabelContent, box: Box) -> None:
    """The QR code of the GTIN-14 in the box's left, its digits beside it if there is room."""
    mask = canvas.symbols.qr(content.gtin, min(box.width, box.height))
    top = box.top + (box.height - mask.height) // 2
    canvas.stamp(mask, box.left, top, canvas.black)
    size = max(10, min(16, mask.height // 4))
    text_box = Box(box.left + mask.width + 2, box.top, box.right, box.bottom)
    if canvas.width(content.gtin[:7], size) > text_box.width:
        return
    height = lines_height(canvas, 2, size)
    inner = Box(text_box.left, top + (mask.height - height) // 2, text_box.right, box.bottom)
    draw_lines(canvas, (content.gtin[:7], content.gtin[7:]), inner, size)


def draw_version(canvas: Canvas, content: LabelContent, right: int, bottom: int, size: int) -> None:
    """The price version in small print, bottom-right, for staff."""
    descent = canvas.metrics(size).descent
    canvas.text(right, bottom - descent, f"v{content.price_version}", size, canvas.black, "rs")
