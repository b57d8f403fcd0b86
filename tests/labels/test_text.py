"""Prices as labels print them, and names broken into lines that fit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.labels.rendering import FontNotFound
from edge.labels.rendering.fonts import FontSet, find_cjk_font
from edge.labels.rendering.text import ELLIPSIS, PriceParts, ellipsize, price_parts, wrap


def fixed_width(text: str) -> float:
    """Chinese characters 16 px, everything else 8: easy to reason about."""
    return float(sum(16 if ord(char) > 0x2E80 else 8 for char in text))


@pytest.fixture(scope="module")
def font_measure() -> Callable[[str], float]:
    try:
        fonts = FontSet(find_cjk_font(None))
    except FontNotFound as exc:
        pytest.skip(f"{exc}")
    return lambda text: fonts.width(text, 16)


@pytest.mark.parametrize(
    ("amount", "currency", "parts", "plain"),
    [
        (1250, "CNY", PriceParts("¥", "12", ".50"), "¥12.50"),
        (5, "CNY", PriceParts("¥", "0", ".05"), "¥0.05"),
        (0, "CNY", PriceParts("¥", "0", ".00"), "¥0.00"),
        (100_000_000, "CNY", PriceParts("¥", "1000000", ".00"), "¥1000000.00"),
        (350, "USD", PriceParts("USD", "3", ".50"), "USD 3.50"),
        (1980, "JPY", PriceParts("JPY", "1980", ""), "JPY 1980"),
        (12345, "KWD", PriceParts("KWD", "12", ".345"), "KWD 12.345"),
    ],
)
def test_price_parts(amount: int, currency: str, parts: PriceParts, plain: str) -> None:
    assert price_parts(amount, currency) == parts
    assert parts.plain() == plain


def test_short_text_is_one_line() -> None:
    wrapped = wrap("农夫山泉 550ml", fixed_width, 200, 2)
    assert wrapped.lines == ("农夫山泉 550ml",)
    assert not wrapped.cut


def test_breaks_at_a_space_when_the_text_fits_either_way() -> None:
    # "伊利 安慕希 希腊风味酸奶" is 10 Chinese characters and two spaces: 176 px.
    wrapped = wrap("伊利 安慕希 希腊风味酸奶", fixed_width, 150, 2)
    assert wrapped.lines == ("伊利 安慕希", "希腊风味酸奶")


def test_breaks_inside_chinese_when_spaces_would_not_fit() -> None:
    wrapped = wrap("伊利 安慕希希腊风味酸奶原味", fixed_width, 120, 2)
    assert wrapped.lines == ("伊利 安慕希希腊", "风味酸奶原味")
    assert not wrapped.cut


def test_latin_words_and_numbers_stay_whole() -> None:
    wrapped = wrap("可口可乐零度 330ml×24", fixed_width, 110, 2)  # noqa: RUF001
    assert wrapped.lines == ("可口可乐零度", "330ml×24")  # noqa: RUF001


def test_closing_punctuation_never_starts_a_line() -> None:
    # Ten characters fit; the comma after the tenth takes the tenth down with it.
    wrapped = wrap("可口可乐零度无糖汽水，整箱", fixed_width, 160, 2)  # noqa: RUF001
    assert wrapped.lines == ("可口可乐零度无糖汽", "水，整箱")  # noqa: RUF001


def test_a_word_wider_than_the_line_is_broken() -> None:
    wrapped = wrap("Supercalifragilisticexpialidocious", fixed_width, 80, 4)
    assert wrapped.lines == ("Supercalif", "ragilistic", "expialidoc", "ious")


def test_too_long_is_cut_with_an_ellipsis() -> None:
    wrapped = wrap("维达超韧系列抽纸三层一百三十抽软抽面巾纸", fixed_width, 100, 2)
    assert wrapped.cut
    assert len(wrapped.lines) == 2
    assert wrapped.lines[0] == "维达超韧系列"
    assert wrapped.lines[1] == "抽纸三层一" + ELLIPSIS


def test_ellipsize() -> None:
    assert ellipsize("Water", fixed_width, 100) == "Water"
    assert ellipsize("Natural Mineral Water", fixed_width, 64) == "Natural" + ELLIPSIS
    assert ellipsize("饮用天然水", fixed_width, 10) == ELLIPSIS


names = st.text(
    alphabet=st.sampled_from(list("农夫山泉饮用天然水伊利安慕希（）。，、 abcXYZ0123456789.%-")),  # noqa: RUF001
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(text=names, width=st.integers(min_value=40, max_value=400), max_lines=st.integers(1, 3))
def test_lines_always_fit(
    font_measure: Callable[[str], float], text: str, width: int, max_lines: int
) -> None:
    wrapped = wrap(text, font_measure, width, max_lines)

    assert len(wrapped.lines) <= max_lines
    for line in wrapped.lines:
        assert font_measure(line) <= width
    if not wrapped.cut:  # nothing lost but spaces
        assert "".join("".join(wrapped.lines).split()) == "".join(text.split())
    else:
        assert wrapped.lines[-1].endswith(ELLIPSIS)


def test_font_measure_is_what_pillow_measures() -> None:
    try:
        path = find_cjk_font(None)
    except FontNotFound as exc:
        pytest.skip(f"{exc}")
    fonts = FontSet(Path(path))
    for size in (12, 16, 56):
        font = fonts.font(size)
        for text in ("农夫山泉 饮用天然水 550ml", "Lindt Excellence 85% Cocoa", "¥2.39/100g"):
            assert fonts.width(text, size) == font.getlength(text)
