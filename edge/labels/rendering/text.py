"""Prices as a label prints them, and product names broken into lines that fit."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# ISO 4217 currencies whose minor unit is not a hundredth; every other has two decimals.
_MINOR_DIGITS = {
    "JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "PYG": 0, "UGX": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}  # fmt: skip
_SYMBOLS = {"CNY": "¥"}
ELLIPSIS = "…"

# A run of Latin letters and digits (with what joins them: "550ml", "2.5%", "Coca-Cola") is
# kept together; every other character (each Chinese one) may end a line.
_TOKEN = re.compile(r"[0-9A-Za-z\u00c0-\u024f.,%/+\-'&\u00d7*#]+|\s+|.", re.DOTALL)
# Characters that never start a line (Chinese line-breaking rules): the one before comes too.
_NO_LINE_START = frozenset("，。、；：？！）》」』】〉〕,.;:?!)]}%…·”’")  # noqa: RUF001 (full width)


@dataclass(frozen=True, slots=True)
class PriceParts:
    symbol: str
    """"¥", or the ISO code for other currencies."""
    major: str
    """The whole units: "12"."""
    minor: str
    """The decimal point and the minor units: ".50" (empty for currencies without them)."""

    @property
    def symbol_is_code(self) -> bool:
        return self.symbol.isalpha() and len(self.symbol) == 3

    def plain(self) -> str:
        """All of it on one line: "¥12.50", "USD 3.50"."""
        gap = " " if self.symbol_is_code else ""
        return f"{self.symbol}{gap}{self.major}{self.minor}"


def price_parts(amount: int, currency: str) -> PriceParts:
    """``amount`` minor units of ``currency`` as a label shows it: ¥ 12 .50."""
    digits = _MINOR_DIGITS.get(currency, 2)
    symbol = _SYMBOLS.get(currency, currency)
    if digits == 0:
        return PriceParts(symbol, str(amount), "")
    major, minor = divmod(amount, 10**digits)
    return PriceParts(symbol, str(major), f".{minor:0{digits}d}")


@dataclass(frozen=True, slots=True)
class Wrapped:
    lines: tuple[str, ...]
    cut: bool
    """The text did not fit: the last line ends with an ellipsis."""


def wrap(text: str, measure: Callable[[str], float], width: float, max_lines: int) -> Wrapped:
    """``text`` in at most ``max_lines`` lines no wider than ``width``, cut with "…" if need be.

    Lines break between Chinese characters and at spaces, never inside a Latin word or number
    unless the word alone is wider than a line, and never before closing punctuation. Where
    the text fits either way, a line ends at a space rather than inside a run of Chinese
    (product names put spaces between brand, product and variant: "伊利 安慕希 / 原味 205g").
    """
    at_spaces = _wrap(text, measure, width, max_lines, prefer_spaces=True)
    if not at_spaces.cut or max_lines == 1:
        return at_spaces
    return _wrap(text, measure, width, max_lines, prefer_spaces=False)


def _wrap(
    text: str, measure: Callable[[str], float], width: float, max_lines: int, prefer_spaces: bool
) -> Wrapped:
    tokens = _TOKEN.findall(" ".join(text.split()))
    lines: list[str] = []
    starts: list[int] = []
    start = 0
    while start < len(tokens) and len(lines) < max_lines:
        end = _fill(tokens, start, measure, width)
        if end == start:  # one word wider than the line: it is broken where the line ends
            head, tail = _longest_prefix(tokens[start], measure, width)
            tokens[start : start + 1] = [head, tail] if tail else [head]
            end = start + 1
        elif end < len(tokens) and tokens[end][0] in _NO_LINE_START and end - start > 1:
            end -= 1  # the closing punctuation takes the character before it to the next line
        elif prefer_spaces and end < len(tokens) and not tokens[end].isspace():
            end = _last_space(tokens, start, end, measure, width / 2) or end
        starts.append(start)
        lines.append("".join(tokens[start:end]).strip())
        start = end
        while start < len(tokens) and tokens[start].isspace():
            start += 1
    if start >= len(tokens):
        return Wrapped(tuple(lines), cut=False)
    rest = "".join(tokens[starts[-1] :]).strip()
    lines[-1] = ellipsize(rest, measure, width)
    return Wrapped(tuple(lines), cut=True)


def ellipsize(text: str, measure: Callable[[str], float], width: float) -> str:
    """``text`` cut short with "…" so that it fits ``width`` (whole if it fits as it is)."""
    if measure(text) <= width:
        return text
    low, high = 0, len(text)  # the longest prefix that fits with the ellipsis, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if measure(text[:middle].rstrip() + ELLIPSIS) <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + ELLIPSIS


def _fill(tokens: list[str], start: int, measure: Callable[[str], float], width: float) -> int:
    """The end of the longest run of whole tokens from ``start`` that fits ``width``."""
    line = ""
    end = start
    while end < len(tokens):
        candidate = line + tokens[end]
        if measure(candidate.rstrip()) > width:
            break
        line = candidate
        end += 1
    return end


def _last_space(
    tokens: list[str], start: int, end: int, measure: Callable[[str], float], min_width: float
) -> int | None:
    """The last space in ``tokens[start:end]`` with at least ``min_width`` of text before it."""
    for index in range(end - 1, start, -1):
        if tokens[index].isspace():
            if measure("".join(tokens[start:index])) >= min_width:
                return index
            return None
    return None


def _longest_prefix(word: str, measure: Callable[[str], float], width: float) -> tuple[str, str]:
    cut = 1
    while cut < len(word) and measure(word[: cut + 1]) <= width:
        cut += 1
    return word[:cut], word[cut:]
