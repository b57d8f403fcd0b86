"""The label contents the golden images show: one of each kind a shopper meets."""

from __future__ import annotations

from edge.labels.rendering import LabelContent

CASES: dict[str, LabelContent] = {
    "normal": LabelContent(
        gtin="06921168509256",
        name="农夫山泉 饮用天然水 550ml",
        name_en=None,
        price=200,
        currency="CNY",
        unit_price="¥0.36/100ml",
        old_price=None,
        promotion=None,
        size="550ml",
        unit="瓶",
        price_version=3,
    ),
    "promotion": LabelContent(
        gtin="06907992513263",
        name="伊利 安慕希 希腊风味酸奶 原味 205g",
        name_en=None,
        price=490,
        currency="CNY",
        unit_price="¥2.39/100g",
        old_price=650,
        promotion="限时特价",
        size="205g",
        unit="盒",
        price_version=12,
    ),
    "long-name": LabelContent(
        gtin="06922266453076",
        name="维达 超韧系列 抽纸 3层130抽 软抽面巾纸 家用实惠装 整箱24包 母婴适用 无香型",
        name_en=None,
        price=5990,
        currency="CNY",
        unit_price="¥2.50/包",
        old_price=None,
        promotion=None,
        size="24包",
        unit="箱",
        price_version=7,
    ),
    "english": LabelContent(
        gtin="03046920028363",
        name="瑞士莲 特醇排装 85%可可黑巧克力",
        name_en="Lindt Excellence 85% Cocoa Dark Chocolate",
        price=2890,
        currency="CNY",
        unit_price="¥28.90/100g",
        old_price=None,
        promotion=None,
        size="100g",
        unit="块",
        price_version=1,
    ),
}
