"""How many 2.9" black/white/red labels with Chinese names one core renders a second.

The workload is a store's steady state: the same products re-rendered with new prices (every
third one on promotion), so fonts are loaded and each GTIN's barcode is drawn before timing
starts, as they are after a store's first full refresh; every name is laid out and every
text drawn anew each time.
"""

from __future__ import annotations

import time
from pathlib import Path

from edge.labels.rendering.model import LabelContent, gtin_check_digit
from edge.labels.rendering.renderer import LabelRenderer

TEMPLATE = "2.9-bwr"
_BRANDS = (
    "农夫山泉",
    "康师傅",
    "伊利",
    "蒙牛",
    "统一",
    "娃哈哈",
    "旺旺",
    "洽洽",
    "良品铺子",
    "三只松鼠",
)
_PRODUCTS = (
    "饮用天然水",
    "红烧牛肉面 五连包",
    "纯牛奶 全脂 礼盒装",
    "冰红茶 柠檬味",
    "香瓜子 原味 大包装",
    "每日坚果 混合果仁",
    "老坛酸菜牛肉面",
    "希腊风味酸奶 原味",
)
_SIZES = ("550ml", "5x105g", "250ml x 12", "1L", "308g", "750g")


def bench_contents(count: int = 200) -> list[LabelContent]:
    """``count`` different products, Chinese names of 8 to 20 characters, varied prices."""
    contents = []
    for i in range(count):
        body = f"0692{i:09d}"
        size = _SIZES[i % len(_SIZES)]
        promoted = i % 3 == 0
        price = 150 + (i * 137) % 9000
        contents.append(
            LabelContent(
                gtin=body + str(gtin_check_digit(body)),
                name=f"{_BRANDS[i % len(_BRANDS)]} {_PRODUCTS[i % len(_PRODUCTS)]} {size}",
                name_en=None,
                price=price,
                currency="CNY",
                unit_price=f"¥{price / 500:.2f}/100g",
                old_price=price + 100 if promoted else None,
                promotion="限时特价" if promoted else None,
                size=size,
                unit="件",
                price_version=1 + i % 9,
            )
        )
    return contents


def render_rate(seconds: float = 2.0, font_path: Path | None = None) -> float:
    """Labels rendered per second on this thread, measured for about ``seconds``."""
    renderer = LabelRenderer(font_path)
    contents = bench_contents()
    for content in contents:  # warm: fonts loaded, barcodes drawn
        renderer.render(content, TEMPLATE)
    rendered = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        for content in contents:
            renderer.render(content, TEMPLATE)
        rendered += len(contents)
        elapsed = time.perf_counter() - start
    return rendered / elapsed
